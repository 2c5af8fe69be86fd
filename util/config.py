"""Settings in layers: documented defaults, then the environment (and `.env`), then a mapping.

Every key here is also a Flask config key, so `create_app({"MODELS_DIR": ...})` overrides it.
"""
from __future__ import annotations

import os
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

from dotenv import load_dotenv

ROOT = Path(__file__).resolve().parents[1]


def _bool(value: str) -> bool:
    if value.strip().lower() in {"1", "true", "yes", "on"}:
        return True
    if value.strip().lower() in {"0", "false", "no", "off", ""}:
        return False
    raise ValueError(f"expected a boolean, got {value!r}")


# name -> (default, parser, description); the README's configuration table mirrors this.
SETTINGS: dict[str, tuple[Any, Callable[[str], Any], str]] = {
    "MODELS_DIR": (str(ROOT / "saved_models"), str,
                   "directory holding one sub-directory per model, or s3://bucket/prefix (published models, "
                   "fetched into MODEL_CACHE_DIR)"),
    "MODEL_NAME": ("", str, "serve MODELS_DIR as this one model (its files, or its version directories): "
                            "KServe's /mnt/models"),
    "MODEL_CACHE_DIR": ("", str, "where models from an s3:// MODELS_DIR are kept; empty = keras-serve-models "
                                 "under the system's temporary directory"),
    "MODEL_RUNTIME": ("auto", str, "auto (TFLite when verified, else Keras), tflite or keras"),
    "MAX_CONTENT_LENGTH": (10 * 1024 * 1024, int, "largest accepted request body in bytes (413 above)"),
    "BODY_TIMEOUT": (60.0, float, "seconds a request body may take to arrive in full (408 after)"),
    "MAX_IMAGE_PIXELS": (40_000_000, int, "largest accepted image in pixels, width x height (422 above)"),
    "MAX_BATCH_IMAGES": (32, int, "most images in one request (TF Serving instances, V2 batch rows, batch uploads)"),
    "DEFAULT_TOP_K": (5, int, "predictions returned when the request gives no top_k"),
    "INFERENCE_LANES": (0, int, "inferences a worker runs in parallel, one interpreter each; 0 = cores / workers"),
    "INTERPRETER_THREADS": (0, int, "LiteRT threads per lane; 0 = cores / workers / lanes"),
    "SOLO_THREADS": (0, int, "LiteRT threads for a request arriving at an idle server; 0 = all cores, 1 = off"),
    "COMPILE_TOLERANCE": (1e-4, float, "largest max-abs-diff between Keras and TFLite that is accepted"),
    "AUTO_COMPILE": (True, _bool, "compile stale or missing artifacts at start-up (child process, needs TensorFlow)"),
    "MAX_BATCH_SIZE": (1, int, "largest micro-batch per model (1 = no batching); model.yaml `batching` overrides"),
    "MAX_BATCH_DELAY_MS": (2.0, float, "longest wait for a batch to fill while other requests are being decoded"),
    "API_KEYS": ("", str, "comma-separated API keys; when set (or API_KEYS_FILE), model routes need one"),
    "API_KEYS_FILE": ("", str, "file with one API key per line (# comments), added to API_KEYS"),
    "API_KEYS_OPEN": ("health,metrics,docs", str, "what stays open when keys are set: health, metrics, docs"),
    "LOG_FORMAT": ("", str, "json or text log lines; empty = json where DYNO is set (Heroku), else text"),
    "MODEL_POLL_SECONDS": (5.0, float, "seconds between looks at MODELS_DIR for new, changed or removed versions and "
                                       "models (each worker looks itself); 0 = never"),
    "EXPLANATION_GRID": (8, int, "default occlusion grid of POST /<model>/explanation (grid x grid patches)"),
    "EXPLANATION_MAX_PASSES": (256, int, "most occluded forward passes one explanation may ask for (grid x grid; "
                                         "the largest grid is its square root)"),
    "DEMO_PAGE": (True, _bool, "serve the demo page at /demo (false: no page, no link)"),
    "PRELOAD_MODELS": (False, _bool, "load every model in create_app (gunicorn loads them after fork instead)"),
}


def load_settings(overrides: Mapping[str, Any] | None = None) -> dict[str, Any]:
    """Return defaults, updated from the environment (and `.env`), then from `overrides`."""
    load_dotenv(ROOT / ".env", override=False)
    settings: dict[str, Any] = {}
    for name, (default, parse, _) in SETTINGS.items():
        raw = os.environ.get(name)
        if raw is None or raw == "":
            settings[name] = default
            continue
        try:
            settings[name] = parse(raw)
        except ValueError as exc:
            raise ValueError(f"environment variable {name}={raw!r} is invalid: {exc}") from None
    settings.update(overrides or {})
    if settings["MODEL_RUNTIME"] not in {"auto", "tflite", "keras"}:
        raise ValueError(f"MODEL_RUNTIME must be auto, tflite or keras, not {settings['MODEL_RUNTIME']!r}")
    return settings


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
