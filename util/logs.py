"""Logging set-up: text or JSON lines, every record carrying the request id it belongs to.

The request id lives in a context variable (set by api/requestlog.py for each request), so
logic in util/ logs with the id without knowing about Flask.
"""
from __future__ import annotations

import contextvars
import datetime as dt
import json
import logging
import os
import re
import sys
import uuid
from typing import Any, TextIO

# A client's X-Request-ID is kept only when it looks like this: anything else could forge log lines.
SANE_REQUEST_ID = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._:-]{0,127}$")
request_id: contextvars.ContextVar[str | None] = contextvars.ContextVar("request_id", default=None)
# Attributes every LogRecord has; anything else was passed with `extra=` and belongs in the JSON line.
_STANDARD = set(vars(logging.LogRecord("", 0, "", 0, "", None, None))) | {"message", "asctime", "request_id"}


def accepted_request_id(given: str) -> str:
    """The client's X-Request-ID when it is a sane token, otherwise a new one."""
    return given if SANE_REQUEST_ID.match(given) else uuid.uuid4().hex


def log_access(method: str, path: str, status: int, request_id: str, **fields: Any) -> None:
    """The one access line per request: method, path, status, request id; duration_ms, model, version,
    bytes_in (None where unknown) and any other `fields`."""
    logging.getLogger(ACCESS).info("%s %s %s", method, path, status, extra={
        "method": method, "path": path, "status": status, "duration_ms": None, "model": None, "version": None,
        "bytes_in": None, **fields, "request_id": request_id})


class RequestIdFilter(logging.Filter):
    def filter(self, record: logging.LogRecord) -> bool:
        if not getattr(record, "request_id", None):
            record.request_id = request_id.get()
        return True


class JsonFormatter(logging.Formatter):
    """One JSON object per line: time, level, logger, message, request_id, extras, traceback."""

    def format(self, record: logging.LogRecord) -> str:
        line: dict[str, Any] = {
            "time": dt.datetime.fromtimestamp(record.created, dt.UTC).isoformat(timespec="milliseconds"),
            "level": record.levelname.lower(), "logger": record.name, "message": record.getMessage(),
            "request_id": getattr(record, "request_id", None)}
        line.update({k: v for k, v in vars(record).items() if k not in _STANDARD and not k.startswith("_")})
        if record.exc_info:
            line["traceback"] = self.formatException(record.exc_info)
        return json.dumps(line, default=str)


class TextFormatter(logging.Formatter):
    def __init__(self) -> None:
        super().__init__("%(asctime)s %(levelname)s %(name)s [%(request_id)s] %(message)s")

    def format(self, record: logging.LogRecord) -> str:
        shown = ("method", "path", "status")  # already in the message
        extras = {k: v for k, v in vars(record).items()
                  if k not in _STANDARD and k not in shown and not k.startswith("_")}
        text = super().format(record)
        return text + ("".join(f" {k}={v}" for k, v in extras.items()) if extras and record.name == ACCESS else "")


ACCESS = "access"


class StderrHandler(logging.StreamHandler):
    """Writes to whatever sys.stderr is when a record is emitted (test capture, redirection)."""

    @property  # a property where logging has an attribute: sys.stderr read at every emit
    def stream(self) -> TextIO:
        return sys.stderr

    @stream.setter
    def stream(self, _value: object) -> None:
        pass


def default_format() -> str:
    """JSON where logs are collected by a platform (Heroku sets DYNO), text on a terminal."""
    return "json" if os.environ.get("DYNO") else "text"


def configure(fmt: str | None = None, level: str | None = None) -> None:
    """Route the service's loggers (util, api, access) to stderr in `fmt` (LOG_FORMAT), once."""
    fmt = (fmt or os.environ.get("LOG_FORMAT") or default_format()).lower()
    if fmt not in {"json", "text"}:
        raise ValueError(f"LOG_FORMAT must be json or text, not {fmt!r}")
    handler = StderrHandler()
    handler.setFormatter(JsonFormatter() if fmt == "json" else TextFormatter())
    handler.addFilter(RequestIdFilter())
    for name in ("util", "api", ACCESS):
        logger = logging.getLogger(name)
        logger.handlers = [handler]
        logger.propagate = False
        logger.setLevel((level or os.environ.get("LOG_LEVEL") or "info").upper())
