"""Settings in layers: documented defaults, then the environment (and `.env`), then a mapping.

Every key here is also a Flask config key, so `create_app({"MODELS_DIR": ...})` overrides it.
"""
from __future__ import annotations

import os
from collections.abc import Mapping
from pathlib import Path
from typing import Annotated, Any, Literal, get_type_hints

from dotenv import load_dotenv
from msgspec import Meta, Struct, structs

from util.schemas import SchemaError, convert

ROOT = Path(__file__).resolve().parents[1]


def doc(description: str, **constraints: Any) -> Meta:
    """A setting's line in the README's configuration table, and the bounds it is checked against."""
    return Meta(description=description, **constraints)


class Settings(Struct, frozen=True):
    """Every setting, its type, default and bounds; the README's configuration table mirrors this."""

    MODELS_DIR: Annotated[str, doc("directory holding one sub-directory per model, or s3://bucket/prefix "
                                   "(published models, fetched into MODEL_CACHE_DIR)")] = str(ROOT / "saved_models")
    MODEL_NAME: Annotated[str, doc("serve MODELS_DIR as this one model (its files, or its version directories): "
                                   "KServe's /mnt/models")] = ""
    MODEL_CACHE_DIR: Annotated[str, doc("where models from an s3:// MODELS_DIR are kept; empty = keras-serve-models "
                                        "under the system's temporary directory")] = ""
    MODEL_RUNTIME: Annotated[Literal["auto", "tflite", "keras"],
                             doc("auto (TFLite when verified, else Keras), tflite or keras")] = "auto"
    MAX_CONTENT_LENGTH: Annotated[int, doc("largest accepted request body in bytes (413 above)",
                                           ge=1)] = 10 * 1024 * 1024
    BODY_TIMEOUT: Annotated[float, doc("seconds a request body may take to arrive in full (408 after)", gt=0)] = 60.0
    MAX_IMAGE_PIXELS: Annotated[int, doc("largest accepted image in pixels, width x height (422 above)",
                                         ge=1)] = 40_000_000
    MAX_BATCH_IMAGES: Annotated[int, doc("most images in one request (TF Serving instances, V2 batch rows, batch "
                                         "uploads)", ge=1)] = 32
    REQUEST_TIMEOUT: Annotated[float, doc("seconds a prediction may wait before its inference starts (504 "
                                          "deadline_exceeded after, never run); 0 = no limit; X-Request-Timeout "
                                          "sets it per request", ge=0)] = 0.0
    MAX_QUEUE: Annotated[int, doc("requests a worker holds waiting for a thread; one more is answered 503 "
                                  "queue_full with Retry-After", ge=1)] = 64
    DEFAULT_TOP_K: Annotated[int, doc("predictions returned when the request gives no top_k", ge=1)] = 5
    INFERENCE_LANES: Annotated[int, doc("inferences a worker runs in parallel, one interpreter each; 0 = cores / "
                                        "workers", ge=0)] = 0
    INTERPRETER_THREADS: Annotated[int, doc("LiteRT threads per lane; 0 = cores / workers / lanes", ge=0)] = 0
    SOLO_THREADS: Annotated[int, doc("LiteRT threads for a request arriving at an idle server; 0 = all cores, "
                                     "1 = off", ge=0)] = 0
    COMPILE_TOLERANCE: Annotated[float, doc("largest max-abs-diff between Keras and TFLite that is accepted",
                                            ge=0)] = 1e-4
    AUTO_COMPILE: Annotated[bool, doc("compile stale or missing artifacts at start-up (child process, needs "
                                      "TensorFlow)")] = True
    MAX_BATCH_SIZE: Annotated[int, doc("largest micro-batch per model (1 = no batching); model.yaml `batching` "
                                       "overrides", ge=1)] = 1
    MAX_BATCH_DELAY_MS: Annotated[float, doc("longest wait for a batch to fill while other requests are being "
                                             "decoded", ge=0)] = 2.0
    API_KEYS: Annotated[str, doc("comma-separated API keys; when set (or API_KEYS_FILE), model routes need one")] = ""
    API_KEYS_FILE: Annotated[str, doc("file with one API key per line (# comments), added to API_KEYS")] = ""
    API_KEYS_OPEN: Annotated[str, doc("what stays open when keys are set: health, metrics, docs")] = (
        "health,metrics,docs")
    LOG_FORMAT: Annotated[str, doc("json or text log lines; empty = json where DYNO is set (Heroku), else text")] = ""
    MODEL_POLL_SECONDS: Annotated[float, doc("seconds between looks at MODELS_DIR for new, changed or removed "
                                             "versions and models (each worker looks itself); 0 = never",
                                             ge=0)] = 5.0
    EXPLANATION_GRID: Annotated[int, doc("default occlusion grid of POST /<model>/explanation (grid x grid "
                                         "patches)", ge=1)] = 8
    EXPLANATION_MAX_PASSES: Annotated[int, doc("most occluded forward passes one explanation may ask for (grid x "
                                               "grid; the largest grid is its square root)", ge=1)] = 256
    DEMO_PAGE: Annotated[bool, doc("serve the demo page at /demo (false: no page, no link)")] = True
    PRELOAD_MODELS: Annotated[bool, doc("load every model in create_app (gunicorn loads them after fork "
                                        "instead)")] = False


# name -> description, for the README's table and the deploy files' checks
SETTINGS: dict[str, str] = {name: next(m.description or "" for m in hint.__metadata__ if isinstance(m, Meta))
                            for name, hint in get_type_hints(Settings, include_extras=True).items()}
_TYPES = get_type_hints(Settings)
_BOOL_WORDS = {"yes": "true", "on": "true", "no": "false", "off": "false"}  # msgspec reads true/false/1/0


def _text(name: str, raw: str) -> str:
    """An environment value as msgspec's lax mode reads it: numbers and booleans trimmed, yes/no/on/off too."""
    if _TYPES[name] is str:
        return raw
    return _BOOL_WORDS.get(raw.strip().lower(), raw.strip()) if _TYPES[name] is bool else raw.strip()


def parse_setting(name: str, raw: str) -> Any:
    """One setting's value from its environment text, as load_settings reads it (ValueError if invalid)."""
    return getattr(_read({name: raw}, "environment variable"), name)


def _read(given: Mapping[str, Any], source: str) -> Settings:
    try:  # lax: environment text "8" is the integer 8, "true" a boolean
        return convert({k: _text(k, v) if isinstance(v, str) else v for k, v in given.items()}, Settings,
                       strict=False)
    except SchemaError as exc:
        raise ValueError(f"{source} {exc}") from None


def load_settings(overrides: Mapping[str, Any] | None = None) -> dict[str, Any]:
    """Return defaults, updated from the environment (and `.env`), then from `overrides`; all validated.

    Keys of `overrides` that are not settings (Flask's own, such as TESTING) pass through unchecked."""
    load_dotenv(ROOT / ".env", override=False)
    settings = _read({name: raw for name in SETTINGS if (raw := os.environ.get(name))}, "environment variable")
    declared = {k: v for k, v in (overrides or {}).items() if k in SETTINGS}
    if declared:
        settings = _read({**structs.asdict(settings), **declared}, "setting")
    return {**(overrides or {}), **structs.asdict(settings)}


def usable_cores() -> int:
    """Cores this process may use: its CPU affinity, capped by a cgroup v2 CPU quota (containers)."""
    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (os.cpu_count() or 1)
    try:
        quota, period = Path("/sys/fs/cgroup/cpu.max").read_text().split()[:2]
        if quota != "max":
            cores = min(cores, max(1, int(int(quota) / int(period))))
    except (OSError, ValueError):
        pass
    return max(1, cores)


def interpreter_plan(settings: Mapping[str, Any]) -> tuple[int, int, int]:
    """(threads per lane, lanes per worker, solo threads): explicit, or shared out from the cores."""
    cores = usable_cores()
    share = max(1, cores // max(1, int(os.environ.get("WEB_CONCURRENCY") or 1)))
    lanes = settings["INFERENCE_LANES"] or share
    return settings["INTERPRETER_THREADS"] or max(1, share // lanes), lanes, settings["SOLO_THREADS"] or cores
