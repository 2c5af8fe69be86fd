"""What the TF Serving (api/tfserving.py) and Open Inference (api/openinference.py) modules share:
their error shape, base64 images in JSON, and the bound on images per request."""
from __future__ import annotations

import base64
import binascii
from typing import Any

from flask import current_app
from flask_restx import Resource

from api.errors import error_response
from util.errors import InvalidParameter


class ErrorFieldResource(Resource):
    """Errors as `{"error": "<message>"}`, the shape both protocols write: the one mapping
    (api/errors.py) decides the message, status and headers; this only reshapes the body."""

    def dispatch_request(self, *args: Any, **kwargs: Any) -> Any:
        try:
            return super().dispatch_request(*args, **kwargs)
        except Exception as exc:  # every failure, refusals and the unforeseen alike (logged there)
            body, status, headers = error_response(exc)
            return {"error": body["message"]}, status, headers


def decode_base64(text: str, invalid: str) -> bytes:
    """Strict base64 (no stray characters); `invalid` is the 400's message otherwise."""
    try:
        return base64.b64decode(text, validate=True)
    except (binascii.Error, ValueError):
        raise InvalidParameter(invalid) from None


def batch_limit() -> int:
    """Most images in one request (MAX_BATCH_IMAGES)."""
    return int(current_app.config["MAX_BATCH_IMAGES"])
