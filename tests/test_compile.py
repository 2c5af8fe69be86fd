"""util/toolchain/compile.py: conversion, verification, manifest, staleness, fallback, the CLI."""
from __future__ import annotations

import json
import re
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from tests.support import builders
from util.errors import ModelLoadError
from util.serve import artifacts
from util.serve.runtimes import LiteRTRuntime
from util.serve.spec import read_spec
from util.toolchain import compile as compiler
from util.toolchain.formats.keras_source import KerasSource
from util.toolchain.keras_runtime import KerasRuntime

ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture
def fresh(tmp_path: Path, models_dir: Path) -> Path:
    """A compiled copy of `colors` in its own MODELS_DIR."""
    shutil.copytree(models_dir / "colors", tmp_path / "models" / "colors")
    return tmp_path / "models" / "colors" / "1"


def test_manifest_records_sources_tools_and_diff(fresh: Path) -> None:
    spec = read_spec(fresh.parent)
    manifest = json.loads(spec.manifest.read_text())
    assert manifest["runtime"] == "tflite" and manifest["fallback_reason"] is None
    assert manifest["sources"] == {"model.json": artifacts.sha256(spec.source),
                                   "model.weights.h5": artifacts.sha256(spec.weights)}
    assert manifest["artifact"]["sha256"] == artifacts.sha256(spec.artifact)
    assert 0 <= manifest["verification"]["max_abs_diff"] <= 1e-4
    assert manifest["verification"]["tolerance"] == 1e-4
    assert {"tensorflow", "keras", "ai-edge-litert", "numpy", "python"} <= set(manifest["tools"])
    assert artifacts.artifact_status(spec)[0] == "fresh"


def test_litert_and_keras_agree_on_real_inputs(fresh: Path) -> None:
    spec = read_spec(fresh.parent)
    x = np.random.default_rng(1).uniform(0, 1, (5, 8, 8, 3)).astype(np.float32)
    np.testing.assert_allclose(LiteRTRuntime(spec.artifact).predict(x), KerasRuntime(spec).predict(x), atol=1e-5)


@pytest.mark.parametrize("change", ["model.json", "model.weights.h5", "model.tflite"])
def test_changed_sources_or_artifact_are_stale(fresh: Path, change: str) -> None:
    path = fresh / change
    if change == "model.json":
        # Keras numbers layer names per process ("dense_3" after other tests built models): any dense layer
        text, renamed = re.subn(r'"name": "(dense[^"]*)"', r'"name": "\1_renamed"', path.read_text(), count=1)
        assert renamed == 1
        path.write_text(text)
    else:
        path.write_bytes(path.read_bytes() + b"\0")
    assert artifacts.artifact_status(read_spec(fresh.parent))[0] == "stale"


def test_missing_manifest_is_missing(fresh: Path) -> None:
    (fresh / "model.tflite.json").unlink()
    assert artifacts.artifact_status(read_spec(fresh.parent))[0] == "missing"


def test_diff_above_tolerance_falls_back_to_keras(fresh: Path) -> None:
    manifest = compiler.compile_model(read_spec(fresh.parent), tolerance=-1.0)  # no diff can pass
    assert manifest["runtime"] == "keras" and "exceeds tolerance" in manifest["fallback_reason"]
    assert not (fresh / "model.tflite").exists() and manifest["artifact"] is None
    assert artifacts.artifact_status(read_spec(fresh.parent))[0] == "fresh"


def test_conversion_failure_falls_back_to_keras(fresh: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    def broken(self: object) -> bytes:
        raise RuntimeError("converter exploded")
    monkeypatch.setattr(KerasSource, "convert", broken)
    manifest = compiler.compile_model(read_spec(fresh.parent))
    assert manifest["runtime"] == "keras" and manifest["fallback_reason"] == "conversion failed: converter exploded"


def test_stale_artifact_is_recompiled_in_a_child_process(fresh: Path) -> None:
    spec = read_spec(fresh.parent)
    spec.artifact.unlink()
    manifest = artifacts.ensure_compiled(spec, fresh.parent.parent, 1e-4, auto_compile=True)
    assert manifest["runtime"] == "tflite" and spec.artifact.is_file()
    assert artifacts.artifact_status(spec)[0] == "fresh"


def test_stale_without_tensorflow_refuses_with_command(fresh: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    (fresh / "model.tflite").unlink()
    monkeypatch.setattr(artifacts, "tensorflow_installed", lambda: False)
    with pytest.raises(ModelLoadError) as err:
        artifacts.ensure_compiled(read_spec(fresh.parent), fresh.parent.parent, 1e-4, auto_compile=True)
    assert str(fresh) in err.value.message and "flask --app application models compile colors" in err.value.message


def test_cli_compiles_named_model_and_reports(tmp_path: Path) -> None:
    root = tmp_path / "models"
    builders.write_shades_model(root / "shades")
    builders.write_colors_model(root / "colors")
    env = {"MODELS_DIR": str(root), "PATH": str(Path(sys.executable).parent), "TF_CPP_MIN_LOG_LEVEL": "3"}
    run = subprocess.run([str(Path(sys.executable).parent / "flask"), "--app", "application", "models", "compile",
                          "shades"], cwd=ROOT, env=env, capture_output=True, text=True, timeout=240)
    assert run.returncode == 0, run.stderr
    assert "shades v1 (json): model.tflite" in run.stdout and "max abs diff" in run.stdout
    assert (root / "shades" / "model.tflite").is_file() and not (root / "colors" / "model.tflite").exists()
    listing = subprocess.run([str(Path(sys.executable).parent / "flask"), "--app", "application", "models", "list"],
                             cwd=ROOT, env=env, capture_output=True, text=True, timeout=120)
    assert "shades\tv1\tjson\t2 labels\tartifact fresh\truntime tflite" in listing.stdout
    assert "colors\tv1\tjson\t3 labels\tartifact missing" in listing.stdout
    unknown = subprocess.run([str(Path(sys.executable).parent / "flask"), "--app", "application", "models",
                              "compile", "nope"], cwd=ROOT, env=env, capture_output=True, text=True, timeout=120)
    assert unknown.returncode != 0 and "unknown model(s) nope" in unknown.stderr
