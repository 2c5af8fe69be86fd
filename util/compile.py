"""Keras JSON+H5 -> TFLite flatbuffer, verified against Keras, with a manifest; CLI glue.

Only this module (and the Keras runtime) imports TensorFlow, and only inside functions: the
web process imports it for `artifact_status` and `ensure_compiled`, which never need TF.
"""
from __future__ import annotations

import datetime as dt
import fcntl
import hashlib
import importlib.metadata
import importlib.util
import json
import os
import platform
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Any

import numpy as np

from util.config import ROOT
from util.errors import ModelLoadError
from util.image import input_range
from util.models import ModelSpec, is_legacy_json, load_keras

MANIFEST_FORMAT = 1
VERIFY_SAMPLES = 32
VERIFY_BATCH = 8
TOOLS = ("tensorflow", "tensorflow-cpu", "keras", "tf-keras", "ai-edge-litert", "numpy")


def sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


def source_hashes(spec: ModelSpec) -> dict[str, str]:
    return {p.name: sha256(p) for p in spec.sources}


def read_manifest(spec: ModelSpec) -> dict[str, Any] | None:
    try:
        return json.loads(spec.manifest.read_text())
    except (OSError, ValueError):
        return None


def artifact_status(spec: ModelSpec) -> tuple[str, dict[str, Any] | None]:
    """("fresh" | "stale" | "missing", manifest): fresh means built from today's sources."""
    manifest = read_manifest(spec)
    if manifest is None:
        return "missing", None
    if manifest.get("format") != MANIFEST_FORMAT or manifest.get("sources") != source_hashes(spec):
        return "stale", manifest
    if manifest.get("runtime") == "tflite":
        artifact = manifest.get("artifact") or {}
        if not spec.artifact.is_file() or artifact.get("sha256") != sha256(spec.artifact):
            return "stale", manifest
    return "fresh", manifest


def tool_versions() -> dict[str, str]:
    versions = {"python": platform.python_version()}
    for dist in TOOLS:
        try:
            versions[dist] = importlib.metadata.version(dist)
        except importlib.metadata.PackageNotFoundError:
            pass
    return versions


def _write_atomic(path: Path, data: bytes) -> None:
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    tmp.write_bytes(data)
    os.replace(tmp, path)


def convert(model: Any) -> bytes:
    import tensorflow as tf
    return tf.lite.TFLiteConverter.from_keras_model(model).convert()


def verify(flatbuffer: bytes, model: Any, x: np.ndarray) -> float:
    """Max abs difference between Keras and LiteRT on the same inputs."""
    from util.runtimes import LiteRTRuntime
    runtime = LiteRTRuntime(flatbuffer, lane_threads=os.cpu_count() or 1)
    diffs = []
    for start in range(0, len(x), VERIFY_BATCH):
        batch = x[start:start + VERIFY_BATCH]
        expected = np.asarray(model(batch, training=False), dtype=np.float64)
        diffs.append(np.max(np.abs(runtime.predict(batch).astype(np.float64) - expected)))
    return float(max(diffs))


def compile_model(spec: ModelSpec, tolerance: float = 1e-4, seed: int = 0) -> dict[str, Any]:
    """Convert, verify and write model.tflite + manifest; fall back to Keras on failure."""
    model = load_keras(spec)
    shape = tuple(int(d) for d in model.inputs[0].shape[1:])
    low, high = input_range(spec.preprocessing)
    rng = np.random.default_rng(seed)
    x = rng.uniform(low, high, size=(VERIFY_SAMPLES, *shape)).astype(np.float32)
    x[0], x[1] = low, high  # the flat extremes, where saturation bugs show
    diff: float | None = None
    reason: str | None = None
    flatbuffer = b""
    try:
        flatbuffer = convert(model)
        diff = verify(flatbuffer, model, x)
        if not diff <= tolerance:
            reason = f"verified max abs diff {diff:.3g} exceeds tolerance {tolerance:g}"
    except Exception as exc:  # the converter raises many types (and ConverterError)
        reason = f"conversion failed: {str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__}"
    if reason is None:
        _write_atomic(spec.artifact, flatbuffer)
    elif spec.artifact.exists():
        spec.artifact.unlink()  # never leave an unverified flatbuffer next to the manifest
    manifest = {
        "format": MANIFEST_FORMAT, "model": spec.name, "version": spec.version,
        "runtime": "tflite" if reason is None else "keras", "fallback_reason": reason,
        "sources": source_hashes(spec),
        "keras_format": "tf.keras 2" if is_legacy_json(json.loads(spec.architecture.read_text())) else "keras 3",
        "artifact": {"file": spec.artifact.name, "sha256": hashlib.sha256(flatbuffer).hexdigest(),
                     "bytes": len(flatbuffer)} if reason is None else None,
        "verification": {"samples": VERIFY_SAMPLES, "seed": seed, "input_range": [low, high],
                         "max_abs_diff": diff, "tolerance": tolerance},
        "input_shape": list(shape), "output_units": int(model.outputs[0].shape[-1]),
        "tools": tool_versions(), "compiled_at": dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds"),
    }
    _write_atomic(spec.manifest, (json.dumps(manifest, indent=2) + "\n").encode())
    return manifest


def tensorflow_installed() -> bool:
    return importlib.util.find_spec("tensorflow") is not None


def ensure_compiled(spec: ModelSpec, models_dir: Path, tolerance: float, auto_compile: bool) -> dict[str, Any]:
    """Return a fresh manifest, compiling in a child process (never in this one) if needed."""
    state, manifest = artifact_status(spec)
    if state == "fresh":
        return manifest  # type: ignore[return-value]
    command = f"flask --app application models compile {spec.name}"
    if not auto_compile or not tensorflow_installed():
        why = "TensorFlow is not installed here" if auto_compile else "AUTO_COMPILE is off"
        raise ModelLoadError(spec.path, f"model.tflite is {state} (sources changed or never compiled) and {why}; "
                                        f"run `{command}` where requirements-dev.txt is installed, then commit the result")
    with _compile_lock(spec.path):
        state, manifest = artifact_status(spec)  # another worker may have compiled it meanwhile
        if state != "fresh":
            child = subprocess.run(
                [sys.executable, "-m", "util.compile", "--models-dir", str(models_dir), "--tolerance",
                 str(tolerance), spec.name], cwd=ROOT, capture_output=True, text=True, check=False)
            state, manifest = artifact_status(spec)
            if child.returncode != 0 or state != "fresh":
                tail = (child.stderr or child.stdout).strip().splitlines()[-3:]
                raise ModelLoadError(spec.path, f"compiling failed ({' | '.join(tail)}); run `{command}` to see why")
    return manifest  # type: ignore[return-value]


class _compile_lock:
    """An exclusive file lock per model path, shared by every worker of this machine."""

    def __init__(self, path: Path) -> None:
        key = hashlib.sha256(str(path.resolve()).encode()).hexdigest()[:16]
        self._file = Path(tempfile.gettempdir()) / f"keras-serve-compile-{key}.lock"

    def __enter__(self) -> None:
        self._fd = os.open(self._file, os.O_CREAT | os.O_RDWR, 0o600)
        fcntl.flock(self._fd, fcntl.LOCK_EX)

    def __exit__(self, *exc: object) -> None:
        fcntl.flock(self._fd, fcntl.LOCK_UN)
        os.close(self._fd)


if __name__ == "__main__":
    from util.cli import main
    sys.exit(main())
