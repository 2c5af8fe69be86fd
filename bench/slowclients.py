"""Slow uploads against a running server: N connections trickle a body at a few bytes per second
while normal requests are timed. Prints one JSON line; run in its own process by bench/run.py.
"""
from __future__ import annotations

import argparse
import contextlib
import json
import socket
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from urllib.parse import urlsplit

import requests


@contextmanager
def trickling(address: tuple[str, int], path: str, slow: int, timeout: float = 10.0) -> Iterator[list[socket.socket]]:
    """`slow` connections that announce a 100 kB body and send 2 bytes of it every half second."""
    head = (f"POST {path} HTTP/1.1\r\nHost: bench\r\nContent-Type: multipart/form-data; boundary=XyZ\r\n"
            "Content-Length: 100000\r\n\r\n--XyZ\r\n").encode()
    sockets = []
    for _ in range(slow):
        sock = socket.create_connection(address, timeout=timeout)
        sock.sendall(head)
        sockets.append(sock)
    stop = threading.Event()

    def drip() -> None:
        while not stop.wait(0.5):
            for sock in sockets:
                with contextlib.suppress(OSError):  # closed by the server: the others keep dripping
                    sock.sendall(b"ab")
    dripper = threading.Thread(target=drip, daemon=True)
    dripper.start()
    try:
        yield sockets
    finally:
        stop.set()
        dripper.join()
        for sock in sockets:
            sock.close()


def measure(url: str, image: Path, slow: int, requests_n: int, timeout: float) -> dict:
    parts = urlsplit(url)
    address = (parts.hostname or "127.0.0.1", parts.port or 80)
    data, timings, failed = image.read_bytes(), [], 0
    with trickling(address, parts.path, slow, timeout):
        time.sleep(1.0)
        for _ in range(requests_n):
            started = time.monotonic()
            try:
                ok = requests.post(url, files={"image": (image.name, data)}, timeout=timeout).status_code == 200
            except requests.RequestException:
                ok = False
            timings.append(time.monotonic() - started)
            failed += not ok
    return {"slow_connections": slow, "requests": requests_n, "failed": failed, "timeout_s": timeout,
            "worst_ms": max(timings) * 1000, "median_ms": sorted(timings)[len(timings) // 2] * 1000}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("url")
    parser.add_argument("image", type=Path)
    parser.add_argument("--slow", type=int, default=64)
    parser.add_argument("--requests", type=int, default=5)
    parser.add_argument("--timeout", type=float, default=10.0)
    args = parser.parse_args()
    print(json.dumps(measure(args.url, args.image, args.slow, args.requests, args.timeout)))


if __name__ == "__main__":
    main()
