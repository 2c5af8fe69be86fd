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
import io
import json
import sys
from collections.abc import Awaitable, Callable
from concurrent.futures import ThreadPoolExecutor
from typing import Any, ClassVar

from a2wsgi.wsgi import build_environ
from gunicorn.arbiter import Arbiter
from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol
from uvicorn.server import Server
from uvicorn_worker import UvicornWorker

from api import balance
from util import logs
from util.config import load_settings
from util.errors import MalformedRequest, PayloadTooLarge, RequestTimeout, ServiceError

DRAIN_SECONDS = 1.0  # well inside gunicorn's graceful_timeout (20 s)
Scope = dict[str, Any]
Message = dict[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]


async def refuse(scope: Scope, send: Send, error: ServiceError) -> None:
    """Answer with the service's JSON error and close the connection (the rest of the body is unread)."""
    body = (json.dumps(error.to_dict()) + "\n").encode()
    rid = logs.accepted_request_id(dict(scope["headers"]).get(b"x-request-id", b"").decode("latin-1"))
    logs.log_access(scope["method"], scope["path"], error.status, rid, error=error.code)
    await send({"type": "http.response.start", "status": error.status,
                "headers": [(b"content-type", b"application/json"), (b"content-length", str(len(body)).encode()),
                            (b"connection", b"close"), (b"x-request-id", rid.encode())]})
    await send({"type": "http.response.body", "body": body})


class BufferedWSGI:
    """Runs a WSGI app on a complete request in a thread pool and returns the whole answer at once.

    One hand-off per request between the event loop and a thread (a streaming bridge such as
    a2wsgi's makes one per message); the answers here are small JSON, or the Swagger UI's files.
    """

    def __init__(self, app: Any, threads: int) -> None:
        self.app = app
        self.executor = ThreadPoolExecutor(max_workers=threads, thread_name_prefix="wsgi")

    async def __call__(self, scope: Scope, body: bytes, send: Send) -> None:
        environ = build_environ(scope, io.BytesIO(body))  # type: ignore[arg-type]  # a2wsgi types a stream class
        status, headers, content = await asyncio.get_running_loop().run_in_executor(self.executor, self.run, environ)
        await send({"type": "http.response.start", "status": status, "headers": headers})
        await send({"type": "http.response.body", "body": content})

    def run(self, environ: Any) -> tuple[int, list[tuple[bytes, bytes]], bytes]:
        started: list[Any] = []
        written: list[bytes] = []

        def start_response(status: str, headers: list[tuple[str, str]], exc_info: Any = None) -> Callable:
            started[:] = [status, headers]
            return written.append
        result = self.app(environ, start_response)
        try:
            content = b"".join(written) + b"".join(result)
        finally:
            if hasattr(result, "close"):
                result.close()
        status, headers = started
        return int(status.split(" ", 1)[0]), [(k.lower().encode("latin-1"), v.encode("latin-1")) for k, v in headers], \
            content


class BufferedBodies:
    """ASGI app: read the whole body (bounded in size and time), then hand the request to `app`."""

    def __init__(self, app: BufferedWSGI, max_body: int, body_timeout: float) -> None:
        self.app, self.max_body, self.body_timeout = app, max_body, body_timeout

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            return None  # no websockets, and lifespan is off
        too_large = PayloadTooLarge(f"the request body is larger than the {self.max_body} byte limit "
                                    "(MAX_CONTENT_LENGTH)")
        declared = dict(scope["headers"]).get(b"content-length", b"")
        if declared.isdigit() and int(declared) > self.max_body:
            return await refuse(scope, send, too_large)
        body, more = bytearray(), True
        try:
            async with asyncio.timeout(self.body_timeout):  # one timer for the whole body, not one per read
                while more:
                    message = await receive()
                    if message["type"] == "http.disconnect":
                        return None  # the client left: nobody to answer
                    body += message.get("body", b"")
                    more = message.get("more_body", False)
                    if len(body) > self.max_body:
                        return await refuse(scope, send, too_large)
        except TimeoutError:
            return await refuse(scope, send, RequestTimeout(
                f"the request body did not arrive within {self.body_timeout:g} s (BODY_TIMEOUT)"))
        await self.app(scope, bytes(body), send)


def asgi(wsgi_app: Any, threads: int, settings: dict[str, Any] | None = None) -> BufferedBodies:
    """The WSGI app behind the buffering front, run in a pool of `threads` threads."""
    settings = settings or {}
    defaults = load_settings()
    return BufferedBodies(BufferedWSGI(wsgi_app, threads),
                          int(settings.get("MAX_CONTENT_LENGTH") or defaults["MAX_CONTENT_LENGTH"]),
                          float(settings.get("BODY_TIMEOUT") or defaults["BODY_TIMEOUT"]))


class JsonErrorsProtocol(HttpToolsProtocol):
    """uvicorn's HTTP/1.1 protocol, answering bytes that are not HTTP with the service's JSON error,
    and closing each connection after its answer once the worker is draining."""

    counted = False  # in this worker's open-connection count (api/balance.py)

    def connection_made(self, transport: Any) -> None:
        super().connection_made(transport)
        balance.opened()
        self.counted = True

    def connection_lost(self, exc: Exception | None) -> None:
        if self.counted:
            balance.closed()
        super().connection_lost(exc)

    def on_headers_complete(self) -> None:
        super().on_headers_complete()
        if self.cycle is None:
            return
        if getattr(self.server_state, "draining", False):
            self.cycle.keep_alive = False  # answered, then `connection: close`: the client reconnects elsewhere
        elif self.counted and balance.over_share():
            # Uncounted at once, so the next request's check sees it gone: exactly the excess closes.
            balance.closed()
            self.counted = False
            self.cycle.keep_alive = False

    def send_400_response(self, msg: str) -> None:
        body = json.dumps(MalformedRequest(f"malformed HTTP request: {msg}").to_dict()).encode()
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
        self.server_state.draining = True  # type: ignore[attr-defined]  # our flag on uvicorn's state (issue 21)
        balance.leave()  # no new connections here: the other workers must not wait for this one
        for connection in list(self.server_state.connections):
            cycle = getattr(connection, "cycle", None)  # HTTP protocols have one; uvicorn types them all together
            if cycle is not None and not cycle.response_complete:
                cycle.keep_alive = False
        await asyncio.sleep(DRAIN_SECONDS)
        await super().shutdown()


class BalancedLoop(asyncio.SelectorEventLoop):
    """asyncio's loop, accepting one connection per wake-up (not up to 100) and only when it is this
    worker's turn (api/balance.py), so the workers sharing the listening socket share the connections.

    Without it one worker took every keep-alive connection of a client that opened 16 at once:
    138 against 230 req/s for gthread on MobileNetV2 at concurrency 16.
    """

    _deferred_since: float | None = None

    def _accept_connection(self, protocol_factory: Any, sock: Any, sslcontext: Any = None,
                           server: Any = None, backlog: int = 100, *args: Any) -> None:
        if not balance.my_turn():
            now = self.time()
            self._deferred_since = self._deferred_since or now
            if now - self._deferred_since < balance.MAX_DEFER_S:
                self._remove_reader(sock.fileno())  # type: ignore[attr-defined]  # private selector API (issue 21)
                self.call_later(0.001, self._resume_accepting, protocol_factory, sock, sslcontext, server, backlog,
                                *args)
                return None
        self._deferred_since = None
        return super()._accept_connection(protocol_factory, sock, sslcontext, server, 1,  # type: ignore[misc]  # private (issue 21)
                                          *args)

    def _resume_accepting(self, *args: Any) -> None:
        sock = args[1]
        if sock.fileno() != -1:  # not closed by a shutdown meanwhile
            self._add_reader(sock.fileno(), self._accept_connection, *args)  # type: ignore[attr-defined]  # private


class Worker(UvicornWorker):
    """gunicorn worker: uvicorn's event loop (httptools) in front of the WSGI app the config names."""

    CONFIG_KWARGS: ClassVar[dict[str, Any]] = {
        "loop": "api.frontend:BalancedLoop", "http": JsonErrorsProtocol, "lifespan": "off", "interface": "asgi3",
        "access_log": False}  # the app logs its own access lines

    def run(self) -> None:
        balance.join(self.age, self.cfg.workers)
        super().run()

    async def _serve(self) -> None:
        self.config.app = self.wsgi
        server = DrainingServer(config=self.config)
        self._install_sigquit_handler()
        await server.serve(sockets=self.sockets)
        if not server.started:
            sys.exit(Arbiter.WORKER_BOOT_ERROR)

    def load_wsgi(self) -> None:
        super().load_wsgi()
        app: Any = getattr(self, "wsgi")  # noqa: B009 - gunicorn sets it untyped: the Flask app
        self.flask_app = app  # gunicorn.conf.py's hooks reach the registry through it
        self.wsgi = asgi(app, self.cfg.threads, getattr(app, "config", None))
