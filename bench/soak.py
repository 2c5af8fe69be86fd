"""Soak: a long run at concurrency 16 with good and bad requests mixed; counts every status and
compares the server's memory (all processes) after warm-up with the end.

Each payload carries the statuses it may get; anything else (and any 5xx) is counted as unexpected.
"""
from __future__ import annotations

import asyncio
import io
import struct
import time
import zlib
from collections import Counter
from pathlib import Path
from urllib.parse import urlsplit

from PIL import Image

from bench.loadgen import BOUNDARY, multipart, read_response
from bench.servers import group_rss_mb


def _bomb_png(width: int = 60_000, height: int = 60_000) -> bytes:
    """A PNG header announcing 3.6 gigapixels (with one tiny IDAT): refused before decoding."""
    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))
    return (b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", struct.pack(">IIBBBBB", width, height, 8, 0, 0, 0, 0))
            + chunk(b"IDAT", zlib.compress(b"\0")) + chunk(b"IEND", b""))


def payloads(host: str, path: str, images: list[Path]) -> list[tuple[bytes, set[int]]]:
    """(raw request, acceptable statuses): 2 good uploads for every bad one."""
    def post(body: bytes, content_type: str = f"multipart/form-data; boundary={BOUNDARY}", query: str = "") -> bytes:
        return (f"POST {path}{query} HTTP/1.1\r\nHost: {host}\r\nContent-Type: {content_type}\r\n"
                f"Content-Length: {len(body)}\r\nConnection: keep-alive\r\n\r\n").encode() + body
    good = [(post(multipart(p.read_bytes(), p.name)), {200}) for p in images[:4]]
    png = io.BytesIO()
    Image.new("RGB", (64, 64), "white").save(png, "PNG")
    bad = [
        (post(multipart(png.getvalue()[:40], "cut.png")), {400}),            # truncated image
        (post(multipart(b"just some text", "notes.txt")), {400}),            # not an image
        (post(multipart(b"", "empty.png")), {400}),                           # empty file
        (post(multipart(_bomb_png(), "bomb.png")), {422}),                    # decompression bomb
        (post(b'{"image": "x"}', "application/json"), {415}),                # wrong content type
        (post(multipart(png.getvalue(), "a.png"), query="?top_k=0"), {400}),  # out-of-range top_k
    ]
    mix = []
    for i, refused in enumerate(bad):
        mix += [good[i % len(good)], good[(i + 1) % len(good)], refused]
    return mix


async def client(host: str, port: int, mix: list[tuple[bytes, set[int]]], offset: int, stop: float, warm: float,
                 statuses: Counter, unexpected: Counter) -> None:
    reader, writer = await asyncio.open_connection(host, port)
    i = offset
    try:
        while time.perf_counter() < stop:
            data, allowed = mix[i % len(mix)]
            i += 1
            writer.write(data)
            try:
                status, keep = await read_response(reader)
            except (ConnectionError, asyncio.IncompleteReadError, ValueError, IndexError):
                status, keep = 0, False
            if not keep or status in {408, 413, 415, 400}:  # the server may close after a refusal
                writer.close()
                reader, writer = await asyncio.open_connection(host, port)
            if time.perf_counter() >= warm:
                statuses[status] += 1
                if status not in allowed:
                    unexpected[status] += 1
    finally:
        writer.close()


async def _run(url: str, images: list[Path], concurrency: int, duration: float, warmup: float,
               pgid: int) -> dict:
    parts = urlsplit(url)
    mix = payloads(parts.netloc, parts.path, images)
    statuses: Counter = Counter()
    unexpected: Counter = Counter()
    begin = time.perf_counter()
    warm, stop = begin + warmup, begin + warmup + duration

    async def rss_after_warmup() -> float:
        await asyncio.sleep(warmup)
        return group_rss_mb(pgid)
    rss_task = asyncio.ensure_future(rss_after_warmup())
    await asyncio.gather(*(client(parts.hostname or "127.0.0.1", parts.port or 80, mix, c, stop, warm, statuses,
                                  unexpected) for c in range(concurrency)))
    start_rss, end_rss = await rss_task, group_rss_mb(pgid)
    return {"concurrency": concurrency, "duration_s": duration, "requests": sum(statuses.values()),
            "statuses": {str(k): v for k, v in sorted(statuses.items())},
            "server_errors": sum(v for k, v in statuses.items() if k >= 500),
            "unexpected": {str(k): v for k, v in unexpected.items()},
            "rss_start_mb": start_rss, "rss_end_mb": end_rss, "rss_growth": end_rss / start_rss - 1,
            "at": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime())}


def soak(url: str, images: list[Path], concurrency: int, duration: float, warmup: float, pgid: int) -> dict:
    return asyncio.run(_run(url, images, concurrency, duration, warmup, pgid))
