"""A closed-loop HTTP/1.1 load generator, run in its own process: N keep-alive connections,
each posting pre-encoded multipart bodies back to back; prints one JSON line of results.

Raw asyncio streams keep the generator's own CPU cost small next to the server's.
"""
from __future__ import annotations

import argparse
import asyncio
import base64
import json
import ssl
import time
import uuid
from collections import Counter
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

BOUNDARY = "bench" + uuid.uuid4().hex


def multipart(image: bytes, filename: str, field: str = "image") -> bytes:
    return part(image, filename, field) + f"--{BOUNDARY}--\r\n".encode()


def part(image: bytes, filename: str, field: str) -> bytes:
    return (f"--{BOUNDARY}\r\nContent-Disposition: form-data; name=\"{field}\"; filename=\"{filename}\"\r\n"
            f"Content-Type: application/octet-stream\r\n\r\n").encode() + image + b"\r\n"


def request(host: str, path: str, body: bytes, content_type: str = f"multipart/form-data; boundary={BOUNDARY}",
            extra: str = "") -> bytes:
    head = (f"POST {path} HTTP/1.1\r\nHost: {host}\r\nContent-Type: {content_type}\r\n"
            f"Content-Length: {len(body)}\r\nConnection: keep-alive\r\n{extra}\r\n")
    return head.encode() + body


def bodies(host: str, path: str, images: list[Path], kind: str, headers: dict[str, str] | None = None) -> list[bytes]:
    """Pre-encoded requests: `native` (one `image`), `batch4` (four `images`), `v2` (Open Inference JSON);
    `headers` are added to each (a `Host` among them replaces the URL's: an ingress by IP)."""
    given = {k.lower(): (k, v) for k, v in (headers or {}).items()}
    host = given.pop("host", ("Host", host))[1]
    extra = "".join(f"{k}: {v}\r\n" for k, v in given.values())
    data = [(p.read_bytes(), p.name) for p in images]
    if kind == "batch4":
        groups = [[data[(i + j) % len(data)] for j in range(4)] for i in range(len(data))]
        return [request(host, path, b"".join(part(d, n, "images") for d, n in g) + f"--{BOUNDARY}--\r\n".encode(),
                        extra=extra) for g in groups]
    if kind == "v2":
        return [request(host, path, json.dumps({"inputs": [{"name": "image", "datatype": "BYTES", "shape": [1],
                                                            "data": [base64.b64encode(d).decode()]}]}).encode(),
                        "application/json", extra) for d, _ in data]
    return [request(host, path, multipart(d, n), extra=extra) for d, n in data]


async def read_response(reader: asyncio.StreamReader) -> tuple[int, bool]:
    """(status, whether the server keeps the connection open: `connection: close` means reconnect)."""
    status_line = await reader.readline()
    if not status_line:
        raise ConnectionError("connection closed")
    status, keep = int(status_line.split()[1]), True
    length = 0
    while (line := await reader.readline()) not in (b"\r\n", b""):
        name, _, value = line.decode("latin-1").partition(":")
        if name.strip().lower() == "content-length":
            length = int(value)
        elif name.strip().lower() == "connection" and value.strip().lower() == "close":
            keep = False
    await reader.readexactly(length)
    return status, keep


async def connection(host: str, port: int, payloads: list[bytes], offset: int, stop: float, warm: float,
                     latencies: list[float], errors: list[int], tls: ssl.SSLContext | None = None) -> None:
    def connect() -> Any:
        return asyncio.open_connection(host, port, ssl=tls, server_hostname=host if tls else None)
    reader, writer = await connect()
    i = offset
    try:
        while (start := time.perf_counter()) < stop:
            writer.write(payloads[i % len(payloads)])
            i += 1
            try:
                status, keep = await read_response(reader)
            except (ConnectionError, asyncio.IncompleteReadError, ValueError, IndexError):
                status, keep = 0, False
            if not keep:
                writer.close()
                reader, writer = await connect()
            if start >= warm:
                latencies.append(time.perf_counter() - start)
                if status != 200:
                    errors.append(status)
    finally:
        writer.close()


async def run(url: str, images: list[Path], concurrency: int, duration: float, warmup: float,
              kind: str = "native", headers: dict[str, str] | None = None) -> dict:
    parts = urlsplit(url)
    payloads = bodies(parts.netloc, parts.path, images, kind, headers)
    https = parts.scheme == "https"  # the system's trusted certificates (SSL_CERT_FILE for a private CA)
    latencies: list[float] = []
    errors: list[int] = []
    begin, cpu_begin = time.perf_counter(), time.process_time()
    warm, stop = begin + warmup, begin + warmup + duration
    await asyncio.gather(*(connection(parts.hostname or "127.0.0.1", parts.port or (443 if https else 80), payloads,
                                      c, stop, warm, latencies, errors, ssl.create_default_context() if https else None)
                           for c in range(concurrency)))
    elapsed = time.perf_counter() - warm
    cpu_cores = (time.process_time() - cpu_begin) / (time.perf_counter() - begin)  # the generator's own share
    latencies.sort()

    def pct(q: float) -> float:
        return 1000 * latencies[min(len(latencies) - 1, int(q * len(latencies)))] if latencies else float("nan")
    return {"concurrency": concurrency, "requests": len(latencies), "errors": len(errors),
            "throughput": len(latencies) / elapsed, "p50_ms": pct(0.50), "p90_ms": pct(0.90), "p95_ms": pct(0.95),
            "p99_ms": pct(0.99), "loadgen_cores": cpu_cores,
            "statuses": {str(s): n for s, n in sorted(Counter(errors).items())}}  # what the errors were (0: none)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("url")
    parser.add_argument("images", nargs="+", type=Path)
    parser.add_argument("--concurrency", type=int, default=1)
    parser.add_argument("--duration", type=float, default=10.0)
    parser.add_argument("--warmup", type=float, default=2.0)
    parser.add_argument("--body", choices=("native", "batch4", "v2"), default="native",
                        help="one image per multipart request, four `images` per request, or V2 JSON")
    parser.add_argument("--header", action="append", default=[], metavar="NAME:VALUE",
                        help="added to every request, e.g. X-Priority:low (repeatable)")
    args = parser.parse_args()
    if any(":" not in h for h in args.header):
        parser.error("--header takes NAME:VALUE")
    headers = dict((k.strip(), v.strip()) for k, v in (h.split(":", 1) for h in args.header))
    print(json.dumps(asyncio.run(run(args.url, args.images, args.concurrency, args.duration, args.warmup, args.body,
                                     headers))))


if __name__ == "__main__":
    main()
