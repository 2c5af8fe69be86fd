"""HTTP/1.1 connections on an asyncio event loop: requests are read here, never by a worker thread.

httptools (llhttp) parses; this module only keeps the rules the service needs:
- a body larger than MAX_CONTENT_LENGTH is refused as soon as that many bytes are announced or
  have arrived (JSON 413), one that has not fully arrived BODY_TIMEOUT seconds after the request
  began is cut off (JSON 408), and bytes that are not HTTP get a JSON 400;
- only a complete request goes to the WSGI app, in a pool of threads (api/front/wsgi.py), so
  clients uploading a few bytes per second hold no thread;
- connections are counted for balancing between workers (api/front/balance.py), and a worker
  that holds more than its share, or is draining, answers with `connection: close`.
"""
from __future__ import annotations

import asyncio
import json
import time
from collections import deque
from collections.abc import Callable
from concurrent.futures import Executor
from dataclasses import dataclass, field
from functools import partial
from http import HTTPStatus
from typing import Any

import httptools

from api.front import balance
from api.front.queue import Dispatcher, Job, ticket
from api.front.wsgi import Answer, Request, WSGIApp, address, call, environ, http_date
from util import logs
from util.errors import MalformedRequest, PayloadTooLarge, RequestTimeout, ServiceError
from util.serve.scheduling import PRIORITIES, RECEIVED

LOW = PRIORITIES["low"]

MAX_HEADER_BYTES = 64 * 1024  # request line and headers together; llhttp itself sets no limit
MAX_PIPELINED = 8  # complete requests queued on one connection before reading pauses


@dataclass
class Front:
    """What every connection of one worker shares: the app, its limits and the open connections."""

    app: WSGIApp
    executor: Executor
    low_executor: Executor  # its threads run at a lower CPU priority (api/front/worker.py)
    max_body: int
    body_timeout: float
    keepalive: float
    dispatcher: Dispatcher
    request_timeout: float = 0.0  # REQUEST_TIMEOUT: 0 = none
    connections: set[Connection] = field(default_factory=set)
    draining: bool = False

    def connection(self) -> Connection:
        """A protocol instance for a newly accepted socket (asyncio's protocol factory)."""
        return Connection(self)


class Connection(asyncio.Protocol):
    """One client connection: parse requests, answer them in order, one at a time."""

    def __init__(self, front: Front) -> None:
        self.front = front
        self.loop = asyncio.get_running_loop()
        self.parser = httptools.HttpRequestParser(self)
        self.transport: asyncio.Transport | None = None
        self.pending: deque[Request | Refusal] = deque()  # complete requests (or refusals), answered in order
        self.request: Request | None = None  # the one being read
        self.head_bytes = 0
        self.reading = True  # False once a request is refused: nothing after it is parsed
        self.answering = False
        self.last = False  # answer what is due, then close
        self.closed = False
        self.counted = False  # in this worker's open-connection count
        self.timer: asyncio.TimerHandle | None = None  # the request timeout while reading, keep-alive while idle
        self.server: tuple[str, int] = ("", 0)
        self.client: tuple[str, int] = ("", 0)

    @property
    def busy(self) -> bool:
        """True while a request is being read or answered (draining waits for those)."""
        return self.request is not None or self.answering or bool(self.pending)

    # asyncio.Protocol
    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        assert isinstance(transport, asyncio.Transport)
        self.transport = transport
        self.server = address(transport.get_extra_info("sockname"))
        self.client = address(transport.get_extra_info("peername"))
        self.front.connections.add(self)
        balance.opened()
        self.counted = True
        self.wait(self.front.keepalive, self.close)

    def data_received(self, data: bytes) -> None:
        if not self.reading:
            return
        try:
            self.parser.feed_data(data)
        except httptools.HttpParserUpgrade:
            # The request was read whole and is answered as plain HTTP (no upgrade); what follows it
            # would be the other protocol's bytes, so nothing more is read and the connection closes.
            self.reading, self.last = False, True
            if self.request is not None:  # not even the request's head was complete
                self.refuse(MalformedRequest("protocol upgrades (websocket, h2c) are not supported"))
        except httptools.HttpParserError as exc:
            if self.reading:
                self.refuse(MalformedRequest(f"malformed HTTP request: {exc}"))

    def connection_lost(self, exc: Exception | None) -> None:
        self.closed, self.reading = True, False
        self.stop_timer()
        self.front.connections.discard(self)
        self.uncount()

    # httptools' callbacks
    def on_message_begin(self) -> None:
        self.request = Request("", b"", "1.1", [], bytearray(), server=self.server, client=self.client,
                               received=time.monotonic())
        self.head_bytes = 0
        self.wait(self.front.body_timeout, self.timed_out)  # one timer for the whole request, not one per read

    def on_url(self, url: bytes) -> None:
        if self.request is not None and self.within_head(len(url)):
            self.request.target += url

    def on_header(self, name: bytes, value: bytes) -> None:
        if self.request is not None and self.within_head(len(name) + len(value)):
            self.request.headers.append((name.lower(), value))

    def on_headers_complete(self) -> None:
        request = self.request
        if request is None or not self.reading:
            return
        request.method = self.parser.get_method().decode("latin-1")
        request.version = self.parser.get_http_version()
        request.keep_alive = self.parser.should_keep_alive() and not self.front.draining
        if request.keep_alive and self.counted and balance.over_share():
            # Uncounted at once, so the next request's check sees it gone: exactly the excess closes.
            self.uncount()
            request.keep_alive = False
        declared = request.header(b"content-length")
        if declared.isdigit() and int(declared) > self.front.max_body:
            return self.refuse(self.too_large())
        if request.header(b"expect").lower() == b"100-continue" and self.transport is not None:
            self.transport.write(b"HTTP/1.1 100 Continue\r\n\r\n")  # curl waits 1 s for it before a body > 1 KB

    def on_body(self, body: bytes) -> None:
        if self.request is None or not self.reading:
            return
        self.request.body += body  # a bytearray while it arrives: appending to bytes would copy it each time
        if len(self.request.body) > self.front.max_body:
            self.refuse(self.too_large())

    def on_message_complete(self) -> None:
        if self.request is None or not self.reading:
            return
        self.stop_timer()
        self.request.body = bytes(self.request.body)
        self.pending.append(self.request)
        self.request = None
        if len(self.pending) > MAX_PIPELINED and self.transport is not None:
            self.transport.pause_reading()  # a client that pipelines without reading answers waits
        self.next()

    # answering
    def next(self) -> None:
        """Answer the oldest pending request unless one is being answered (pipelined requests wait)."""
        if self.answering or self.closed or not self.pending:
            return
        item = self.pending.popleft()
        if isinstance(item, Refusal):
            return self.answer_error(item.error, item.request)
        try:
            env = environ(item)
        except httptools.HttpParserInvalidURLError:
            return self.answer_error(MalformedRequest(f"malformed request target: {item.target[:200]!r}"), item)
        self.answering = True
        priority, deadline = ticket(item, self.front.request_timeout)
        env[RECEIVED] = item.received  # the app's deadlines count from here too (api/scheduling.py)
        low = priority == LOW
        self.front.dispatcher.submit(Job(priority, deadline, partial(self.start, item, env, low),
                                         partial(self.shed, item), low))

    def start(self, request: Request, env: dict[str, Any], low: bool) -> None:
        """A thread is free for this request (api/front/queue.py)."""
        # A done-callback rather than a task per request: the answer is written as soon as the thread returns.
        executor = self.front.low_executor if low else self.front.executor
        answer = self.loop.run_in_executor(executor, call, self.front.app, env)
        answer.add_done_callback(partial(self.answered, request, low))

    def answered(self, request: Request, low: bool, answer: asyncio.Future[Answer]) -> None:
        self.front.dispatcher.done(low)
        status, reason, headers, body = answer.result()  # call() turns the app's failures into a 500 itself
        self.finish(request, status, reason, headers, body)

    def shed(self, request: Request, error: ServiceError) -> None:
        """Answer a request without running it (503 queue_full, 504 deadline_exceeded); the connection stays."""
        self.finish(request, error.status, HTTPStatus(error.status).phrase, *error_answer(error, request))

    def finish(self, request: Request, status: int, reason: str, headers: list[tuple[bytes, bytes]],
               body: bytes) -> None:
        self.answering = False
        keep_alive = request.keep_alive and not self.front.draining and not (self.last and not self.pending) and \
            all(value.lower() != b"close" for key, value in headers if key == b"connection")
        self.write(status, reason, headers, b"" if request.method == "HEAD" else body, len(body), keep_alive)
        if not keep_alive:
            return
        if self.pending:
            self.next()
        elif self.transport is not None and not self.closed:
            self.transport.resume_reading()
            if self.request is None:
                self.wait(self.front.keepalive, self.close)  # idle keep-alive connection

    def refuse(self, error: ServiceError) -> None:
        """Stop reading and answer `error` after the answers already due; the connection then closes."""
        self.stop_timer()
        self.pending.append(Refusal(error, self.request))
        self.request, self.reading = None, False
        if self.transport is not None:
            self.transport.pause_reading()
        self.next()

    def answer_error(self, error: ServiceError, request: Request | None) -> None:
        headers, body = error_answer(error, request)
        self.write(error.status, HTTPStatus(error.status).phrase, headers, body, len(body), keep_alive=False)

    def write(self, status: int, reason: str, headers: list[tuple[bytes, bytes]], body: bytes, length: int,
              keep_alive: bool) -> None:
        transport = self.transport
        if transport is None or transport.is_closing():
            return  # the client left while its answer was computed
        head = [b"HTTP/1.1 %d %s\r\n" % (status, reason.encode("latin-1"))]
        head += [name + b": " + value + b"\r\n" for name, value in headers
                 if name not in (b"content-length", b"connection", b"date")]
        head.append(b"date: %s\r\ncontent-length: %d\r\n" % (http_date(), length))
        head.append(b"connection: keep-alive\r\n\r\n" if keep_alive else b"connection: close\r\n\r\n")
        transport.write(b"".join(head) + body)
        if not keep_alive:
            self.closed, self.reading = True, False
            transport.close()  # once the buffered answer is sent

    # helpers
    def within_head(self, size: int) -> bool:
        self.head_bytes += size
        if self.head_bytes > MAX_HEADER_BYTES:
            self.refuse(MalformedRequest(f"the request line and headers are larger than {MAX_HEADER_BYTES} bytes"))
            return False
        return True

    def too_large(self) -> PayloadTooLarge:
        return PayloadTooLarge(f"the request body is larger than the {self.front.max_body} byte limit "
                               "(MAX_CONTENT_LENGTH)")

    def timed_out(self) -> None:
        self.timer = None
        self.refuse(RequestTimeout(f"the request body did not arrive within {self.front.body_timeout:g} s "
                                   "(BODY_TIMEOUT)"))

    def wait(self, seconds: float, then: Callable[[], None]) -> None:
        self.stop_timer()
        self.timer = self.loop.call_later(seconds, then)

    def stop_timer(self) -> None:
        if self.timer is not None:
            self.timer.cancel()
            self.timer = None

    def close(self) -> None:
        """Close an idle connection (keep-alive expired, or the worker is going)."""
        self.timer = None
        self.closed, self.reading = True, False
        if self.transport is not None:
            self.transport.close()

    def uncount(self) -> None:
        if self.counted:
            balance.closed()
            self.counted = False


@dataclass
class Refusal:
    """A request refused before it was complete: answered in turn, then the connection closes."""

    error: ServiceError
    request: Request | None


def error_answer(error: ServiceError, request: Request | None) -> tuple[list[tuple[bytes, bytes]], bytes]:
    """The service's JSON error (headers, body) for a request answered here, logged like the app's."""
    body = (json.dumps(error.to_dict()) + "\n").encode()
    rid = logs.accepted_request_id(request.header(b"x-request-id").decode("latin-1") if request else "")
    logs.log_access(request.method if request and request.method else "-",
                    request.target.decode("latin-1")[:200] if request else "-", error.status, rid, error=error.code)
    headers = [(b"content-type", b"application/json"), (b"x-request-id", rid.encode())]
    return headers + [(k.lower().encode(), v.encode()) for k, v in error.headers.items()], body
