"""A request's priority and deadline (util/serve/scheduling.py) from what it says: `X-Priority`,
`X-Request-Timeout`, V2's `parameters.priority` / `parameters.timeout`, or REQUEST_TIMEOUT.

The deadline counts from when the request arrived: the front end (api/front/) records the time
of its first byte in the environ, so time spent queued for a thread counts too.
"""
from __future__ import annotations

import time
from typing import Any

from flask import Flask, current_app, g, request

from util.serve import scheduling
from util.serve.scheduling import RECEIVED, Ticket, parse_priority, parse_timeout, sooner, v2_priority

PRIORITY, TIMEOUT = "X-Priority", "X-Request-Timeout"
PARAMETERS = {  # documented on every prediction route
    PRIORITY: {"in": "header", "type": "string", "enum": list(scheduling.PRIORITIES), "default": "normal",
               "description": "how urgent: a free inference lane goes to high, then normal, then low (a waiting "
                              "request moves up one level per second)"},
    TIMEOUT: {"in": "header", "type": "number", "minimum": 0, "exclusiveMinimum": True,
              "maximum": scheduling.MAX_TIMEOUT,
              "description": "seconds this request may wait before its inference starts; past it: 504 "
                             "deadline_exceeded, never run (default REQUEST_TIMEOUT)"},
}


def received(environ: dict[str, Any]) -> float:
    """When the request began to arrive (the front end's clock, else now)."""
    return float(environ.setdefault(RECEIVED, time.monotonic()))


def install(app: Flask) -> None:
    """Read the headers into the request's ticket before any view runs; forget it afterwards."""

    @app.before_request
    def from_headers() -> None:
        if request.method in ("GET", "HEAD", "OPTIONS"):
            return  # no inference: nothing to order
        given = request.headers.get(PRIORITY)  # present but empty is refused too: it says nothing valid
        priority = parse_priority(given) if given is not None else scheduling.PRIORITIES["normal"]
        given = request.headers.get(TIMEOUT)
        timeout = parse_timeout(given) if given is not None else float(current_app.config.get("REQUEST_TIMEOUT") or 0)
        deadline = received(request.environ) + timeout if timeout else None
        g.ticket = scheduling.current.set(Ticket(priority, deadline))

    @app.teardown_request
    def forget(_exc: BaseException | None) -> None:
        token = g.pop("ticket", None)
        if token is not None:
            scheduling.current.reset(token)


def admit_v2(priority: int, timeout_us: int | None) -> None:
    """V2's `parameters.priority` (Triton's: 0 keeps the header's or the default) and `timeout` (microseconds)."""
    ticket = scheduling.ticket()
    level = ticket.priority if priority == 0 else v2_priority(priority)
    deadline = None if timeout_us is None else received(request.environ) + timeout_us / 1e6
    scheduling.current.set(Ticket(level, sooner(ticket.deadline, deadline)))
