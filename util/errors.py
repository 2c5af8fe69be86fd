"""One exception hierarchy for the whole service; each error knows its HTTP status.

The API layer maps these to JSON (api/assemble.py); the logic never imports Flask.
"""
from __future__ import annotations

from typing import ClassVar


class ServiceError(Exception):
    """Base class: an error with a message, a stable code and an HTTP status."""

    status: int = 500
    code: str = "internal_error"
    headers: ClassVar[dict[str, str]] = {}  # read-only, per class

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message

    def to_dict(self) -> dict[str, str]:
        return {"message": self.message, "error": self.code}


class BadRequest(ServiceError):
    status, code = 400, "bad_request"


class MissingImage(BadRequest):
    code = "missing_image"


class InvalidImage(BadRequest):
    code = "invalid_image"


class InvalidParameter(BadRequest):
    code = "invalid_parameter"


class MalformedRequest(BadRequest):
    code = "malformed_request"


class Unauthorized(ServiceError):
    status, code = 401, "unauthorized"
    headers: ClassVar[dict[str, str]] = {"WWW-Authenticate": 'Bearer realm="keras-serve", charset="UTF-8"'}


class RequestTimeout(ServiceError):
    status, code = 408, "request_timeout"


class PayloadTooLarge(ServiceError):
    status, code = 413, "payload_too_large"


class NotAcceptable(ServiceError):
    status, code = 406, "not_acceptable"


class UnsupportedMediaType(ServiceError):
    status, code = 415, "unsupported_media_type"


class NotFound(ServiceError):
    status, code = 404, "not_found"


class VersionNotFound(NotFound):
    code = "version_not_found"


class ImageTooLarge(ServiceError):
    status, code = 422, "image_too_large"


class InferenceError(ServiceError):
    status, code = 500, "inference_failed"


class NotReady(ServiceError):
    status, code = 503, "not_ready"


class ModelLoadError(ServiceError):
    """A model directory cannot be served; the message names the directory and the reason."""

    status, code = 503, "model_load_failed"

    def __init__(self, model_dir: object, reason: str) -> None:
        super().__init__(f"cannot load model from {model_dir}: {reason}")
        self.model_dir = str(model_dir)
        self.reason = reason


class QueueFull(ServiceError):
    """More requests wait for inference than MAX_QUEUE: come back shortly rather than wait ever longer."""

    status, code = 503, "queue_full"
    headers: ClassVar[dict[str, str]] = {"Retry-After": "1"}


class DeadlineExceeded(ServiceError):
    """The request's deadline (X-Request-Timeout, REQUEST_TIMEOUT) passed before its inference started."""

    status, code = 504, "deadline_exceeded"
