"""schemathesis hooks: positive cases upload a real image, and address a served model.

Swagger 2.0 can only say `type: file`; that the file must be an image is not expressible, so
without this every schema-valid case would carry random bytes and be refused with a 400.
Likewise TF Serving's `/v1/models/<target>` paths put the model name and the verb in one
parameter: positive cases name `digits` (version 1) and predict one base64 image; V2
positive cases infer one base64 image the same way.
Negative cases keep whatever schemathesis generated.
"""
from __future__ import annotations

import base64
import io
from typing import Any

import schemathesis
from PIL import Image


def _png() -> bytes:
    buf = io.BytesIO()
    image = Image.new("RGB", (12, 9), (40, 90, 200))
    image.paste((240, 240, 240), (3, 2, 6, 7))  # something drawn: the digits model refuses a blank picture
    image.save(buf, "PNG")
    return buf.getvalue()


PNG = _png()


@schemathesis.hook
def map_case(context: Any, case: Any) -> Any:
    meta = getattr(case, "_meta", None)
    negative = meta is not None and meta.generation.mode.is_negative
    for field in ("image", "images"):
        if not negative and isinstance(case.body, dict) and field in case.body:
            case.body[field] = PNG
    if negative and isinstance(case.body, dict):
        # A form field whose value is an empty list sends no part at all, so a negative case built on an
        # extra field would reach the server as a valid request; send the field, empty, instead.
        case.body = {name: [""] if value == [] else value for name, value in case.body.items()}
    headers = case.headers or {}
    timeout = headers.get("X-Request-Timeout")
    try:
        short = not negative and timeout is not None and float(timeout) < 10
    except (TypeError, ValueError):
        short = False
    if short:
        # Any positive number is schema-valid, and a deadline too short to meet is answered with the
        # documented 504 (tests/test_scheduling.py); schemathesis counts every 5xx as a server error.
        headers["X-Request-Timeout"] = "10"
        case.headers = headers
    if negative and any(name.lower().startswith("x-schemathesis-unknown-property") for name in headers):
        # HTTP servers ignore headers they do not know (RFC 9110), so a negative case whose violation is an
        # unknown header is a valid request; make it negative the way HTTP allows: a bad X-Priority.
        headers["X-Priority"] = "not-a-priority"
        case.headers = headers
    path = case.operation.path
    if not negative and path.startswith("/v1/models"):
        params = case.path_parameters or {}
        if "name" in params:
            params["name"] = "digits"
        if "version" in params:
            params["version"] = 1
        if "target" in params:
            base = "1" if "/versions/" in path else "digits"
            params["target"] = f"{base}:predict" if case.method.upper() == "POST" else base
        case.path_parameters = params
        if case.method.upper() == "POST" and isinstance(case.body, dict):
            case.body = {"instances": [{"b64": base64.b64encode(PNG).decode()}]}
    if not negative and path.startswith("/v2/models"):
        params = case.path_parameters or {}
        params.update({k: v for k, v in (("name", "digits"), ("version", "1")) if k in params})
        case.path_parameters = params
        if case.method.upper() == "POST" and isinstance(case.body, dict):
            case.body = {"inputs": [{"name": "image", "datatype": "BYTES", "shape": [1],
                                     "data": [base64.b64encode(PNG).decode()]}]}
    return case
