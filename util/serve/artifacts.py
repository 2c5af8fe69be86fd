"""The compiled artifact and its manifest, as serving needs them: freshness, and compiling when stale.

Compiling itself (TensorFlow) runs in a child process, `python -m util.toolchain`, so the web
process never imports the tool chain. A bare .tflite needs no compiling: its manifest is
read off the flatbuffer here and says it is unverified.
"""
from __future__ import annotations

import datetime as dt
import fcntl
import hashlib
import importlib.util
import json
import os
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Any

from util.config import ROOT
from util.errors import ModelLoadError
from util.serve.graph import graph_facts
from util.serve.spec import ModelSpec

MANIFEST_FORMAT = 3  # 3: `answers` for the answer gate (util/serve/answers.py)


def sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


def source_hashes(spec: ModelSpec) -> dict[str, str]:
    """sha256 of every source file, by its path relative to the version directory."""
    return {p.relative_to(spec.path).as_posix(): sha256(p) for p in spec.sources}


def read_manifest(spec: ModelSpec) -> dict[str, Any] | None:
    try:
        return json.loads(spec.manifest.read_text())
    except (OSError, ValueError):
        return None


def artifact_status(spec: ModelSpec) -> tuple[str, dict[str, Any] | None]:
    """("fresh" | "stale" | "missing", manifest): fresh means built from today's sources."""
    manifest = read_manifest(spec)
    if spec.format == "tflite":  # nothing to compile: describe the flatbuffer as it is
        if (manifest is None or manifest.get("format") != MANIFEST_FORMAT
                or manifest.get("sources") != source_hashes(spec)):
            manifest = tflite_manifest(spec)
        return "fresh", manifest
    if manifest is None:
        return "missing", None
    if manifest.get("format") != MANIFEST_FORMAT:
        return "stale", manifest
    if spec.published:  # no sources to hash: the artifact must be the manifest's, and served by LiteRT
        if manifest.get("runtime") != "tflite":
            return "missing", manifest
    elif manifest.get("sources") != source_hashes(spec):
        return "stale", manifest
    if ((manifest.get("quantization") or {}).get("mode") or "none") != spec.quantize:
        return "stale", manifest  # model.yaml asks for another quantization than was compiled
    if manifest.get("runtime") == "tflite":
        artifact = manifest.get("artifact") or {}
        if not spec.artifact.is_file() or artifact.get("sha256") != sha256(spec.artifact):
            return "stale", manifest
    return "fresh", manifest


def tflite_manifest(spec: ModelSpec) -> dict[str, Any]:
    """The manifest of a bare .tflite: facts from its graph, no verification (there is no source model)."""
    data = spec.source.read_bytes()
    try:
        facts = graph_facts(data)
    except (ValueError, RuntimeError) as exc:
        raise ModelLoadError(spec.path, f"{spec.source.name} is not a servable TFLite model: {exc}") from None
    return {"format": MANIFEST_FORMAT, "model": spec.name, "version": spec.version, "save_format": "tflite",
            "runtime": "tflite", "fallback_reason": None, "sources": source_hashes(spec),
            "artifact": {"file": spec.source.name, "sha256": hashlib.sha256(data).hexdigest(), "bytes": len(data)},
            **facts, "verified": False,
            "verification": {"status": "unverified", "reason": "a bare .tflite has no source model to compare with"},
            "compiled_at": dt.datetime.now(dt.UTC).isoformat(timespec="seconds")}


def tensorflow_installed() -> bool:
    return importlib.util.find_spec("tensorflow") is not None


def ensure_compiled(spec: ModelSpec, models_dir: Path, tolerance: float, auto_compile: bool) -> dict[str, Any]:
    """Return a fresh manifest, compiling in a child process (never in this one) if needed."""
    state, manifest = artifact_status(spec)
    if state == "fresh" and manifest is not None:
        return manifest
    if spec.published:
        raise ModelLoadError(spec.path, f"this version holds compiled files only and its model.tflite is {state} "
                                        f"(compiled by an older release, or a file changed); run `flask --app "
                                        f"application models publish {spec.name} --to <store>` where its sources "
                                        "and requirements-dev.txt are")
    command = f"flask --app application models compile {spec.name}"
    if not auto_compile or not tensorflow_installed():
        why = "TensorFlow is not installed here" if auto_compile else "AUTO_COMPILE is off"
        raise ModelLoadError(spec.path, f"model.tflite is {state} (sources changed or never compiled) and {why}; "
                                        f"run `{command}` where requirements-dev.txt is installed, then commit "
                                        "the result")
    with _compile_lock(spec.path):
        state, manifest = artifact_status(spec)  # another worker may have compiled it meanwhile
        if state != "fresh":
            child = subprocess.run(
                [sys.executable, "-m", "util.toolchain", "--models-dir", str(models_dir), "--tolerance",
                 str(tolerance), spec.name], cwd=ROOT, capture_output=True, text=True, check=False)
            state, manifest = artifact_status(spec)
            if child.returncode != 0 or state != "fresh":
                tail = (child.stderr or child.stdout).strip().splitlines()[-3:]
                raise ModelLoadError(spec.path, f"compiling failed ({' | '.join(tail)}); run `{command}` to see why")
    assert manifest is not None  # fresh: another worker compiled it, or we did
    return manifest


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
