"""One error path: every exception a request raises becomes (JSON body, status, headers) here.

The native shape is `{"message", "error"}`; the TF Serving and V2 modules only reshape it to
their documented `{"error": message}` (api/protocols.py). Refusals made before Flask sees the
request (api/front/http.py) write the same bodies from the same util.errors classes.
"""
from __future__ import annotations

import logging

from flask import current_app, request
from werkzeug.exceptions import HTTPException

from api.dataplane import registry
from util.errors import PayloadTooLarge, ServiceError

log = logging.getLogger(__name__)


def error_response(exc: BaseException) -> tuple[dict[str, str], int, dict[str, str]]:
    """Any exception as (native body, status, headers): refusals with their reason, the unforeseen as a
    logged 500 that tells the client nothing internal."""
    if isinstance(exc, ServiceError):
        return exc.to_dict(), exc.status, dict(exc.headers)
    if isinstance(exc, HTTPException):
        return http_error_body(exc), exc.code or 500, http_error_headers(exc)
    return internal_error(exc), 500, {}


def http_error_body(exc: HTTPException) -> dict[str, str]:
    """werkzeug's HTTP errors in the service's error shape, with a hint for unknown URLs."""
    code = (exc.name or "error").lower().replace(" ", "_")
    message = exc.description or exc.name
    if exc.code == 413:
        limit = current_app.config["MAX_CONTENT_LENGTH"]
        if request.content_length is not None and request.content_length <= limit:  # werkzeug's form limits
            return PayloadTooLarge(f"a multipart text field or part header is larger than "
                                   f"{current_app.config['MAX_FORM_MEMORY_SIZE']} bytes, or there are more than "
                                   f"{current_app.config['MAX_FORM_PARTS']} parts").to_dict()
        return PayloadTooLarge(f"the request body is larger than the {limit} byte limit "
                               "(MAX_CONTENT_LENGTH)").to_dict()
    if exc.code == 404:
        models = ", ".join(f"/{name}/prediction" for name in registry().models) or "none"
        message = f"no such URL: {request.path}. Prediction routes: {models}; API documentation at /"
    return {"message": message, "error": code}


def internal_error(exc: BaseException) -> dict[str, str]:
    """Log an unexpected exception with its traceback; the client gets no internals."""
    log.error("unexpected error on %s %s", request.method, request.path, exc_info=exc)
    return {"message": "internal server error: the failure is logged on the server", "error": "internal_error"}


def http_error_headers(exc: HTTPException) -> dict[str, str]:
    """werkzeug's own headers for the error (e.g. `Allow` on a 405), minus its HTML content type."""
    return {k: v for k, v in exc.get_headers() if k.lower() != "content-type"}
