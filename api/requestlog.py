"""Request ids and the access log: one line per request, with the id the client sent or a new one."""
from __future__ import annotations

import time
import uuid

from flask import Flask, Response, g, request

from util import logs, metrics
from util.serve import scheduling

HEADER = "X-Request-ID"


def install(app: Flask) -> None:
    """Give every request an id (`X-Request-ID` in and out) and log one access line when it ends."""

    @app.before_request
    def start() -> None:
        g.request_id = logs.accepted_request_id(request.headers.get(HEADER, ""))
        g.started = time.perf_counter()
        g.token = logs.request_id.set(g.request_id)
        metrics.IN_FLIGHT.inc()
        g.counted = True

    @app.after_request
    def finish(response: Response) -> Response:
        response.headers[HEADER] = g.get("request_id") or uuid.uuid4().hex
        seconds = time.perf_counter() - g.get("started", time.perf_counter())
        route = request.url_rule.rule if request.url_rule else "unmatched"  # bounded label values
        model = g.get("model") or ""
        metrics.REQUESTS.labels(model, route, str(response.status_code)).inc()
        metrics.REQUEST_SECONDS.labels(model, route).observe(seconds)
        ticket = scheduling.current.get()  # set for predictions (api/scheduling.py)
        logs.log_access(request.method, request.path, response.status_code, response.headers[HEADER],
                        duration_ms=round(seconds * 1000, 2), model=g.get("model"), version=g.get("version"),
                        bytes_in=request.content_length or 0,
                        priority=scheduling.NAMES.get(ticket.priority) if ticket else None)
        return response

    @app.teardown_request
    def forget(_exc: BaseException | None) -> None:
        if g.pop("counted", False):
            metrics.IN_FLIGHT.dec()
        token = g.pop("token", None)
        if token is not None:
            logs.request_id.reset(token)
