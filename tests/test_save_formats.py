"""Save-format detection, refusals of what cannot be served, output-kind checks, weak verification, 500s.

Format detection reads file names only (no TensorFlow). Tests marked slow build real tiny
Keras 3 models and compile them (util/toolchain/compile.py), or run the `flask models` CLI.
"""
from __future__ import annotations

import functools
import io
import json
import logging
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from tests.support import builders
from util.errors import ModelLoadError
from util.serve.spec import read_spec

ROOT = Path(__file__).resolve().parents[1]
FLASK = str(Path(sys.executable).parent / "flask")


def touch(path: Path, *names: str, labels: str = "a\nb\nc\n") -> Path:
    """A model directory holding empty files (and directories for names ending in '/') plus labels.txt."""
    path.mkdir(parents=True, exist_ok=True)
    (path / "labels.txt").write_text(labels)
    for name in names:
        target = path / name
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_bytes(b"{}" if name.endswith(".json") else b"x")
    return path


# --- format detection (fast) -----------------------------------------------------------------------

@pytest.mark.parametrize("names, message, mentioned", [
    (("model.json", "weights.h5", "model.keras"), "two candidate models", ("model.json", "model.keras")),
    (("model.weights.h5",), "holds weights only", ("model.weights.h5",)),
    ((), "no model found", ()),
    (("saved/saved_model.pb", "x.keras"), "two candidate models", ("saved/saved_model.pb", "x.keras")),
])
def test_detection_refusals(tmp_path: Path, names: tuple[str, ...], message: str,
                            mentioned: tuple[str, ...]) -> None:
    path = touch(tmp_path / "m", *names)
    with pytest.raises(ModelLoadError, match=message) as info:
        read_spec(path)
    assert str(path) in info.value.message
    for name in mentioned:
        assert name in info.value.reason


@pytest.mark.parametrize("names, fmt, source", [
    (("my.tflite",), "tflite", "my.tflite"),
    (("model.keras",), "keras", "model.keras"),
    (("saved_model.pb", "variables/variables.index"), "savedmodel", "."),
    (("model.json", "model.weights.h5"), "json", "model.json"),
    (("full.h5",), "hdf5", "full.h5"),
])
def test_detected_formats(tmp_path: Path, names: tuple[str, ...], fmt: str, source: str) -> None:
    spec = read_spec(touch(tmp_path / "m" / "2", *names).parent)
    assert spec.format == fmt and spec.version == 2
    assert spec.source == (spec.path / source if source != "." else spec.path)


# --- real Keras 3 models (slow) --------------------------------------------------------------------

def save_json(model: Any, path: Path, labels: int = 3, yaml: str | None = None, text: str | None = None) -> Path:
    """model.json + model.weights.h5 + labels.txt (+ model.yaml) for a Keras 3 model."""
    path.mkdir(parents=True, exist_ok=True)
    (path / "model.json").write_text(text if text is not None else model.to_json())
    model.save_weights(str(path / "model.weights.h5"))
    (path / "labels.txt").write_text("\n".join(f"label{i}" for i in range(labels)) + "\n")
    if yaml is not None:
        (path / "model.yaml").write_text(yaml)
    return path


def head(*middle: Any, units: int = 3, activation: str = "softmax") -> Any:
    import keras
    return keras.Sequential([keras.Input((8, 8, 3)), *middle, keras.layers.GlobalAveragePooling2D(),
                             keras.layers.Dense(units, activation=activation)])


def lambda_model(path: Path) -> Path:
    import keras
    return save_json(head(keras.layers.Lambda(lambda x: x * 2)), path)


@functools.cache
def doubler_class() -> type:
    """A custom layer registered under TestPkg (defined lazily so detection tests never import Keras)."""
    import keras

    @keras.saving.register_keras_serializable(package="TestPkg")
    class Doubler(keras.layers.Layer):
        def call(self, x: Any) -> Any:
            return x * 2
    return Doubler


def compile_dir(path: Path) -> dict[str, Any]:
    from util.toolchain.compile import compile_model
    return compile_model(read_spec(path))


def flask_cli(models: Path, *args: str) -> subprocess.CompletedProcess[str]:
    env = {"MODELS_DIR": str(models), "PATH": str(Path(sys.executable).parent), "TF_CPP_MIN_LOG_LEVEL": "3"}
    return subprocess.run([FLASK, "--app", "application", "models", *args], cwd=ROOT, env=env,
                          capture_output=True, text=True, timeout=240)


@pytest.mark.slow
def test_lambda_layer_is_refused_with_advice(tmp_path: Path) -> None:
    path = lambda_model(tmp_path / "lam")
    with pytest.raises(ModelLoadError) as info:
        compile_dir(path)
    assert str(path) in info.value.message
    assert "Lambda" in info.value.reason and "SavedModel" in info.value.reason
    assert not (path / "model.tflite").exists() and not (path / "model.tflite.json").exists()


@pytest.mark.slow
@pytest.mark.parametrize("module", ['"nowhere"', "null"])  # null: what Keras writes for a class in __main__
def test_unregistered_custom_class_is_refused(tmp_path: Path, module: str) -> None:
    model = head(doubler_class()())
    written = f'"module": "{__name__}", "class_name": "Doubler"'
    text = model.to_json()
    assert written in text and '"registered_name": "TestPkg>Doubler"' in text
    text = text.replace("TestPkg>Doubler", "Unknown>Doubler")
    text = text.replace(written, f'"module": {module}, "class_name": "Doubler"')
    path = save_json(model, tmp_path / "custom", text=text)
    with pytest.raises(ModelLoadError) as info:
        compile_dir(path)
    assert "Doubler" in info.value.reason and str(path) in info.value.message
    assert "SavedModel" in info.value.reason


@pytest.mark.slow
def test_cli_reports_refusal_without_traceback(tmp_path: Path) -> None:
    lambda_model(tmp_path / "models" / "lam")
    run = flask_cli(tmp_path / "models", "compile", "lam")
    assert run.returncode != 0, run.stdout
    assert "lam v1: FAILED" in run.stderr and "Lambda" in run.stderr
    assert "Traceback" not in run.stderr, run.stderr


@pytest.mark.slow
def test_one_sigmoid_unit_needs_two_labels(tmp_path: Path) -> None:
    path = save_json(head(units=1, activation="sigmoid"), tmp_path / "bin", labels=3)
    with pytest.raises(ModelLoadError, match="exactly 2 labels") as info:
        compile_dir(path)
    assert str(path) in info.value.message


@pytest.mark.slow
def test_relu_output_needs_model_yaml_output(tmp_path: Path) -> None:
    model = head(activation="relu")
    with pytest.raises(ModelLoadError, match="output:"):
        compile_dir(save_json(model, tmp_path / "relu"))
    manifest = compile_dir(save_json(model, tmp_path / "relu_logits", yaml="output: logits\n"))
    assert manifest["plan"]["output"] == "logits" and manifest["plan"]["output_from"] == "model.yaml"
    assert manifest["output"]["activation"] == "relu" and manifest["runtime"] == "tflite"


@pytest.mark.slow
def test_constant_model_verifies_weak(tmp_path: Path, models_dir: Path) -> None:
    model = head()
    model.layers[-1].set_weights([np.zeros((3, 3), np.float32), np.zeros(3, np.float32)])
    root = tmp_path / "models"
    manifest = compile_dir(save_json(model, root / "flat"))
    verification = manifest["verification"]
    assert manifest["verified"] is True and manifest["runtime"] == "tflite"
    assert verification["weak"] is True and verification["status"] == "weak"
    assert verification["output_spread"] < 1e-6

    shutil.copytree(models_dir / "colors", root / "colors")  # compiled by the session fixture
    colors = read_spec(root / "colors")
    trained = json.loads(colors.manifest.read_text())["verification"]
    assert trained["weak"] is False and trained["status"] == "verified" and trained["output_spread"] > 0.5

    listing = flask_cli(root, "list")
    assert listing.returncode == 0, listing.stderr
    lines = {line.split("\t")[0]: line for line in listing.stdout.splitlines() if "\t" in line}
    assert lines["flat"].endswith("verification weak"), listing.stdout
    assert lines["colors"].endswith("verification verified"), listing.stdout


# --- unexpected failures while serving (Flask test client) ------------------------------------------

def post_red(client: Any) -> Any:
    image = builders.encode(builders.solid((200, 0, 0)))
    return client.post("/colors/prediction", data={"image": (io.BytesIO(image), "red.png")})


def test_runtime_failure_is_inference_failed(app: Any, client: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    assert post_red(client).get_json()["label"] == "red"
    runtime = app.extensions["registry"].models["colors"].runtime

    def boom(batch: np.ndarray) -> np.ndarray:
        raise RuntimeError("boom")
    monkeypatch.setattr(runtime, "predict", boom)
    response = post_red(client)
    assert response.status_code == 500 and response.mimetype == "application/json"
    assert response.get_json() == {"error": "inference_failed", "message": "inference failed in model colors: boom"}


def test_unexpected_error_is_logged_not_shown(client: Any, monkeypatch: pytest.MonkeyPatch,
                                              caplog: pytest.LogCaptureFixture) -> None:
    import util.serve.served as served

    def broken(*args: Any, **kwargs: Any) -> np.ndarray:
        raise KeyError("unexpected")
    monkeypatch.setattr(served, "preprocess", broken)
    with caplog.at_level(logging.ERROR):
        response = post_red(client)
    assert response.status_code == 500 and response.mimetype == "application/json"
    body = response.get_json()
    assert body["error"] == "internal_error" and set(body) == {"error", "message"}
    assert "unexpected" not in body["message"] and "KeyError" not in body["message"]
    logged = [r for r in caplog.records if r.exc_info and r.exc_info[0] is KeyError]
    assert logged, [r.getMessage() for r in caplog.records]
    assert logged[0].exc_info[2] is not None and "/colors/prediction" in logged[0].getMessage()
