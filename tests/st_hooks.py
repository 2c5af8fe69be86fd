"""schemathesis hooks: positive cases upload a real image.

Swagger 2.0 can only say `type: file`; that the file must be an image is not expressible, so
without this every schema-valid case would carry random bytes and be refused with a 400.
Negative cases keep whatever schemathesis generated.
"""
from __future__ import annotations

import io
from typing import Any

import schemathesis
from PIL import Image


def _png() -> bytes:
    buf = io.BytesIO()
    Image.new("RGB", (12, 9), (40, 90, 200)).save(buf, "PNG")
    return buf.getvalue()


PNG = _png()


@schemathesis.hook
def map_case(context: Any, case: Any) -> Any:
    meta = getattr(case, "_meta", None)
    negative = meta is not None and meta.generation.mode.is_negative
    if not negative and isinstance(case.body, dict) and "image" in case.body:
        case.body["image"] = PNG
    return case
