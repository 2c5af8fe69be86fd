"""Optional API keys: with API_KEYS (or API_KEYS_FILE) set, model routes need
`Authorization: Bearer <key>` or `X-API-Key: <key>`; what stays open is API_KEYS_OPEN.
"""
from __future__ import annotations

import hmac
from pathlib import Path
from typing import Any

from flask import Flask, request

from util.errors import Unauthorized

# Swagger 2.0 security schemes; the Swagger UI's Authorize button fills these headers in.
SCHEMES = {
    "apikey": {"type": "apiKey", "in": "header", "name": "X-API-Key", "description": "Your API key"},
    "bearer": {"type": "apiKey", "in": "header", "name": "Authorization",
               "description": "`Bearer <your API key>`"},
}
SECURITY = ["apikey", "bearer"]  # either one
# API_KEYS_OPEN names -> the paths they keep open: a path ending in "/" opens everything under it,
# any other only itself (a model named `metrics2` or `demo-x` stays protected).
OPEN_PREFIXES = {"health": ("/health/",), "metrics": ("/metrics",),
                 "docs": ("/swagger.json", "/swaggerui/", "/ui/", "/demo")}


def load_keys(settings: dict[str, Any]) -> tuple[bytes, ...]:
    """Keys from API_KEYS (comma-separated) and API_KEYS_FILE (one per line, # comments)."""
    keys = [k.strip() for k in str(settings.get("API_KEYS") or "").split(",")]
    if settings.get("API_KEYS_FILE"):
        path = Path(settings["API_KEYS_FILE"])
        try:
            lines = path.read_text(encoding="utf-8").splitlines()
        except OSError as exc:
            raise ValueError(f"API_KEYS_FILE {path} cannot be read: {exc.strerror}") from None
        keys += [line.strip() for line in lines if not line.lstrip().startswith("#")]
    return tuple(k.encode() for k in keys if k)


def open_paths(settings: dict[str, Any]) -> tuple[tuple[str, ...], bool]:
    """(open path prefixes, whether the Swagger UI page `/` is open) from API_KEYS_OPEN."""
    names = {n.strip() for n in str(settings.get("API_KEYS_OPEN", "")).split(",") if n.strip()}
    unknown = names - set(OPEN_PREFIXES)
    if unknown:
        raise ValueError(f"API_KEYS_OPEN takes {', '.join(OPEN_PREFIXES)}; not {', '.join(sorted(unknown))}")
    return tuple(p for n in names for p in OPEN_PREFIXES[n]), "docs" in names


def is_open(path: str, opened: tuple[str, ...]) -> bool:
    """Whether `path` is one of the open paths, or under an open folder."""
    return any(path == p or (p.endswith("/") and path.startswith(p)) for p in opened)


def presented_key() -> bytes | None:
    header = request.headers.get("Authorization", "")
    if header[:7].lower() == "bearer ":
        return header[7:].strip().encode()
    key = request.headers.get("X-API-Key")
    return key.strip().encode() if key else None


def matches(key: bytes, keys: tuple[bytes, ...]) -> bool:
    """Compare against every key, always, in constant time per key: timing tells nothing."""
    found = False
    for candidate in keys:
        found |= hmac.compare_digest(key, candidate)
    return found


def install(app: Flask, keys: tuple[bytes, ...]) -> None:
    """Refuse requests to protected paths without a valid key (nothing to do without keys)."""
    if not keys:
        return
    prefixes, docs_open = open_paths(app.config)

    @app.before_request
    def require_key() -> None:
        path = request.path
        if is_open(path, prefixes) or (docs_open and path == "/") or request.method == "OPTIONS":
            return
        key = presented_key()
        if key is None:
            raise Unauthorized("this API needs a key: send `Authorization: Bearer <key>` or `X-API-Key: <key>`")
        if not matches(key, keys):
            raise Unauthorized("the API key is not valid")
