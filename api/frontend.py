"""The event-loop front end: request bodies are read by an asyncio loop, never by a worker thread.

gunicorn's gthread worker reads each body in one of its few threads, so a handful of clients
uploading a few bytes per second hold every thread and the server stops answering. Here
uvicorn (as a gunicorn worker) reads bodies on its event loop; only a complete request is
handed to the WSGI app, in a pool of `GUNICORN_THREADS` threads. A body larger than
MAX_CONTENT_LENGTH is refused as soon as that many bytes are announced or have arrived (413),
and one that has not fully arrived after BODY_TIMEOUT seconds is cut off (408).
"""
from __future__ import annotations

import asyncio
import json
import logging
import sys
import uuid
from collections.abc import Awaitable, Callable
from typing import Any

from a2wsgi import WSGIMiddleware
from gunicorn.arbiter import Arbiter
from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol
from uvicorn.server import Server
from uvicorn_worker import UvicornWorker

from util import logs
from util.config import load_settings
from util.errors import PayloadTooLarge, RequestTimeout, ServiceError

DRAIN_SECONDS = 1.0  # well inside gunicorn's graceful_timeout (20 s)
Scope = dict[str, Any]
Message = dict[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]
ASGIApp = Callable[[Scope, Receive, Send], Awaitable[None]]


async def refuse(scope: Scope, send: Send, error: ServiceError) -> None:
    """Answer with the service's JSON error and close the connection (the rest of the body is unread)."""
    body = (json.dumps(error.to_dict()) + "\n").encode()
    given = dict(scope["headers"]).get(b"x-request-id", b"").decode("latin-1")
    rid = given if logs.SANE_REQUEST_ID.match(given) else uuid.uuid4().hex
    logging.getLogger(logs.ACCESS).info("%s %s %s", scope["method"], scope["path"], error.status, extra={
        "method": scope["method"], "path": scope["path"], "status": error.status, "duration_ms": None,
        "model": None, "version": None, "bytes_in": None, "request_id": rid, "error": error.code})
    await send({"type": "http.response.start", "status": error.status,
                "headers": [(b"content-type", b"application/json"), (b"content-length", str(len(body)).encode()),
                            (b"connection", b"close"), (b"x-request-id", rid.encode())]})
    await send({"type": "http.response.body", "body": body})


class BufferedBodies:
    """ASGI middleware: read the whole body (bounded in size and time), then call `app` with it."""

    def __init__(self, app: ASGIApp, max_body: int, body_timeout: float) -> None:
        self.app, self.max_body, self.body_timeout = app, max_body, body_timeout

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            return await self.app(scope, receive, send)
        too_large = PayloadTooLarge(f"the request body is larger than the {self.max_body} byte limit "
                                    "(MAX_CONTENT_LENGTH)")
        declared = dict(scope["headers"]).get(b"content-length", b"")
        if declared.isdigit() and int(declared) > self.max_body:
            return await refuse(scope, send, too_large)
        loop = asyncio.get_running_loop()
        deadline, body, more = loop.time() + self.body_timeout, bytearray(), True
        while more:
            try:
                message = await asyncio.wait_for(receive(), max(0.0, deadline - loop.time()))
            except TimeoutError:
                return await refuse(scope, send, RequestTimeout(
                    f"the request body did not arrive within {self.body_timeout:g} s (BODY_TIMEOUT)"))
            if message["type"] == "http.disconnect":
                return  # the client left: nobody to answer
            body += message.get("body", b"")
            more = message.get("more_body", False)
            if len(body) > self.max_body:
                return await refuse(scope, send, too_large)
        replay = [{"type": "http.request", "body": bytes(body), "more_body": False}]

        async def buffered() -> Message:
            return replay.pop() if replay else await receive()
        await self.app(scope, buffered, send)


def asgi(wsgi_app: Any, threads: int, settings: dict[str, Any] | None = None) -> BufferedBodies:
    """The WSGI app behind the buffering front, run in a pool of `threads` threads."""
    settings = settings or {}
    defaults = load_settings()
    return BufferedBodies(WSGIMiddleware(wsgi_app, workers=threads),
                          int(settings.get("MAX_CONTENT_LENGTH") or defaults["MAX_CONTENT_LENGTH"]),
                          float(settings.get("BODY_TIMEOUT") or defaults["BODY_TIMEOUT"]))


class JsonErrorsProtocol(HttpToolsProtocol):
    """uvicorn's HTTP/1.1 protocol, answering bytes that are not HTTP with the service's JSON error,
    and closing each connection after its answer once the worker is draining."""

    def on_headers_complete(self) -> None:
        super().on_headers_complete()
        if getattr(self.server_state, "draining", False) and self.cycle is not None:
            self.cycle.keep_alive = False  # answered, then `connection: close`: the client reconnects elsewhere

    def send_400_response(self, msg: str) -> None:
        body = json.dumps({"message": f"malformed HTTP request: {msg}", "error": "malformed_request"}).encode()
        head = [b"HTTP/1.1 400 Bad Request\r\n"] + [name + b": " + value + b"\r\n"
                                                    for name, value in self.server_state.default_headers]
        head += [b"content-type: application/json\r\n", b"content-length: %d\r\n" % len(body),
                 b"connection: close\r\n\r\n"]
        self.transport.write(b"".join(head) + body)
        self.transport.close()


class DrainingServer(Server):
    """On SIGTERM (shutdown, or gunicorn's HUP replacing workers), stop accepting but keep reading for
    DRAIN_SECONDS: a request already on its way over a kept-alive connection is answered (with
    `connection: close`) instead of finding its connection shut under it."""

    async def shutdown(self, sockets: list[Any] | None = None) -> None:
        for server in self.servers:
            server.close()
        for sock in sockets or []:
            sock.close()
        self.server_state.draining = True  # type: ignore[attr-defined]
        for connection in list(self.server_state.connections):
            if connection.cycle is not None and not connection.cycle.response_complete:  # type: ignore[attr-defined]
                connection.cycle.keep_alive = False  # type: ignore[attr-defined]
        await asyncio.sleep(DRAIN_SECONDS)
        await super().shutdown()


class Worker(UvicornWorker):
    """gunicorn worker: uvicorn's event loop (httptools) in front of the WSGI app the config names."""

    CONFIG_KWARGS = {"loop": "asyncio", "http": JsonErrorsProtocol, "lifespan": "off", "interface": "asgi3"}

    async def _serve(self) -> None:
        self.config.app = self.wsgi
        server = DrainingServer(config=self.config)
        self._install_sigquit_handler()
        await server.serve(sockets=self.sockets)
        if not server.started:
            sys.exit(Arbiter.WORKER_BOOT_ERROR)

    def load_wsgi(self) -> None:
        super().load_wsgi()
        self.flask_app = self.wsgi  # gunicorn.conf.py's hooks reach the registry through it
        self.wsgi = asgi(self.wsgi, self.cfg.threads, getattr(self.wsgi, "config", None))
