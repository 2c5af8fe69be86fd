"""A complete HTTP request in, a complete WSGI answer out (PEP 3333), run in a worker thread.

The answers here are small JSON or the Swagger UI's files, so the whole answer is collected in
the thread and handed back at once: one hand-off per request between the event loop and a thread.
"""
from __future__ import annotations

import io
import json
import logging
import sys
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from email.utils import formatdate
from typing import Any
from urllib.parse import unquote_to_bytes

import httptools

from util.errors import ServiceError

log = logging.getLogger(__name__)
WSGIApp = Callable[[dict[str, Any], Callable[..., Any]], Iterable[bytes]]
Headers = list[tuple[bytes, bytes]]
Answer = tuple[int, str, Headers, bytes]  # status, reason, headers, body


@dataclass
class Request:
    """One request as read off the connection (headers lower-cased, body whole)."""

    method: str
    target: bytes
    version: str
    headers: Headers
    body: bytes | bytearray = b""  # a bytearray while it arrives
    keep_alive: bool = True
    server: tuple[str, int] = ("", 0)
    client: tuple[str, int] = ("", 0)
    received: float = 0.0  # time.monotonic() at its first byte

    def header(self, name: bytes) -> bytes:
        """The first value of header `name` (lower-case), or b""."""
        return next((value for key, value in self.headers if key == name), b"")


def environ(request: Request) -> dict[str, Any]:
    """The WSGI environ for `request` (PEP 3333: the path percent-decoded, every str latin-1)."""
    url = httptools.parse_url(request.target)  # also takes the absolute form (`POST http://host/path`)
    env: dict[str, Any] = {
        "REQUEST_METHOD": request.method, "SCRIPT_NAME": "",
        "PATH_INFO": unquote_to_bytes(url.path or b"/").decode("latin-1"),
        "QUERY_STRING": (url.query or b"").decode("latin-1"), "RAW_URI": request.target.decode("latin-1"),
        "SERVER_NAME": request.server[0], "SERVER_PORT": str(request.server[1]),
        "SERVER_PROTOCOL": f"HTTP/{request.version}", "REMOTE_ADDR": request.client[0],
        "REMOTE_PORT": str(request.client[1]), "CONTENT_LENGTH": str(len(request.body)),
        "wsgi.version": (1, 0), "wsgi.url_scheme": "http", "wsgi.input": io.BytesIO(request.body),
        "wsgi.errors": sys.stderr, "wsgi.multithread": True, "wsgi.multiprocess": True, "wsgi.run_once": False}
    for name, value in request.headers:
        if name in (b"content-length", b"upgrade"):
            continue  # the body is whole: its real length is set above; and no protocol upgrade is made here
        if b"_" in name:
            continue  # `X_Forwarded_For` would pass for `X-Forwarded-For` in the environ: dropped, as gunicorn does
        text = value.decode("latin-1")
        if name == b"content-type":
            env["CONTENT_TYPE"] = text
            continue
        key = "HTTP_" + name.decode("latin-1").upper().replace("-", "_")
        env[key] = f"{env[key]},{text}" if key in env else text
    return env


def call(app: WSGIApp, env: dict[str, Any]) -> Answer:
    """Run the WSGI app: (status, reason, headers, body). Anything it lets escape is a logged JSON 500."""
    started: list[Any] = []
    written: list[bytes] = []

    def start_response(status: str, headers: list[tuple[str, str]], exc_info: Any = None) -> Callable[..., Any]:
        started[:] = [status, headers]
        return written.append
    try:
        result = app(env, start_response)
        try:
            content = b"".join(written) + b"".join(result)
        finally:
            close = getattr(result, "close", None)
            if close is not None:
                close()
        status, headers = started
    except Exception:  # the Flask app answers its own errors; this is a failure around it
        log.exception("unhandled error in the WSGI app for %s %s", env["REQUEST_METHOD"], env["PATH_INFO"])
        error = ServiceError("internal server error")
        return 500, "Internal Server Error", [(b"content-type", b"application/json")], \
            (json.dumps(error.to_dict()) + "\n").encode()
    code, _, reason = status.partition(" ")
    return int(code), reason, [(k.lower().encode("latin-1"), v.encode("latin-1")) for k, v in headers], content


_date: tuple[int, bytes] = (0, b"")


def http_date() -> bytes:
    """The Date header's value, formatted once per second."""
    global _date
    now = int(time.time())
    if now != _date[0]:
        _date = (now, formatdate(now, usegmt=True).encode())
    return _date[1]


def address(value: Any) -> tuple[str, int]:
    """(host, port) of a socket address; ("", 0) for a Unix socket."""
    return (str(value[0]), int(value[1])) if isinstance(value, tuple) else ("", 0)
