"""The answer gate: a version serves only if it answers its samples as Keras did at compile, and a
version that cannot serve leaves the newest one that can serving (at start as in hot reload)."""
from __future__ import annotations

import io
import json
import shutil
from pathlib import Path

import pytest

from application import create_app
from tests.support import builders
from util.serve.artifacts import sha256

RED = builders.encode(builders.solid((230, 20, 20)))


@pytest.fixture(scope="module")
def shifted_artifact(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The model.tflite of a colours model that calls red green: same shapes, other answers."""
    from util.serve.spec import read_spec
    from util.toolchain.compile import compile_model
    path = builders.write_colors_model(tmp_path_factory.mktemp("shifted") / "colors" / "1", shift=1)
    compile_model(read_spec(path.parent))
    return path / "model.tflite"


def swap_artifact(version: Path, artifact: Path) -> None:
    """Another model's flatbuffer, with the manifest's hash updated: every file check passes."""
    shutil.copy(artifact, version / "model.tflite")
    manifest = json.loads((version / "model.tflite.json").read_text())
    manifest["artifact"].update(sha256=sha256(artifact), bytes=artifact.stat().st_size)
    (version / "model.tflite.json").write_text(json.dumps(manifest))


def colors_versions(models_dir: Path, root: Path, versions: int) -> Path:
    for v in range(1, versions + 1):
        shutil.copytree(models_dir / "colors" / "1", root / "colors" / str(v))
    return root


def predict(client, path: str = "/colors/prediction"):
    return client.post(path, data={"image": (io.BytesIO(RED), "red.png")})


def test_compile_records_keras_answers(models_dir: Path) -> None:
    digits = json.loads((Path(__file__).parents[1] / "saved_models/digits/1/model.tflite.json").read_text())
    assert len(digits["answers"]["images"]) == 30  # its samples/
    assert all(row["name"].startswith("samples/") for row in digits["answers"]["images"])
    colors = json.loads((models_dir / "colors" / "1" / "model.tflite.json").read_text())["answers"]
    assert colors["images"] and not any(r["name"].startswith("samples/") for r in colors["images"])  # probes
    assert {r["top"][0][0] for r in colors["images"]} == {0, 1, 2}  # the probes tell the labels apart
    assert colors["tolerance"] == 1e-4 and colors["top1_exempt"] == []


def test_a_swapped_artifact_fails_the_gate_and_the_good_version_serves(
        models_dir: Path, shifted_artifact: Path, tmp_path: Path) -> None:
    root = colors_versions(models_dir, tmp_path / "models", 2)
    swap_artifact(root / "colors" / "2", shifted_artifact)
    app = create_app({"MODELS_DIR": str(root), "PRELOAD_MODELS": True, "AUTO_COMPILE": False,
                      "MODEL_POLL_SECONDS": 0})
    client = app.test_client()
    answer = predict(client).get_json()
    assert answer["version"] == 1 and answer["label"] == "red", answer
    states = {s["version"]: s for s in client.get("/colors/").get_json()["versions"]}
    assert states[1]["state"] == "serving" and states[2]["state"] == "failed"
    assert "differently from Keras at compile" in states[2]["error"] and "'green'" in states[2]["error"]
    ready = client.get("/health/ready")
    assert ready.status_code == 200 and "v2" in ready.get_json()["failures"]["colors"]
    assert client.get("/colors/").get_json()["answers_checked"] == len(
        json.loads((root / "colors/1/model.tflite.json").read_text())["answers"]["images"])


def test_the_gate_can_pass_the_same_swap_when_the_answers_agree(models_dir: Path, tmp_path: Path) -> None:
    # The same flatbuffer bytes swapped in (a republish): the gate passes, so it is the answers it checks.
    root = colors_versions(models_dir, tmp_path / "models", 2)
    swap_artifact(root / "colors" / "2", models_dir / "colors" / "1" / "model.tflite")
    app = create_app({"MODELS_DIR": str(root), "PRELOAD_MODELS": True, "AUTO_COMPILE": False})
    assert predict(app.test_client()).get_json()["version"] == 2


def test_hot_reload_never_serves_a_version_that_fails_the_gate(
        models_dir: Path, shifted_artifact: Path, tmp_path: Path) -> None:
    root = colors_versions(models_dir, tmp_path / "models", 1)
    app = create_app({"MODELS_DIR": str(root), "PRELOAD_MODELS": True, "AUTO_COMPILE": False})
    registry = app.extensions["registry"]
    incoming = root / "colors" / ".incoming"
    shutil.copytree(models_dir / "colors" / "1", incoming)
    swap_artifact(incoming, shifted_artifact)
    incoming.rename(root / "colors" / "2")
    registry.refresh()
    assert predict(app.test_client()).get_json()["version"] == 1
    assert "differently from Keras" in registry.groups["colors"].failures[2]


def test_at_start_a_stale_newest_version_leaves_the_older_serving(models_dir: Path, tmp_path: Path) -> None:
    root = colors_versions(models_dir, tmp_path / "models", 2)
    shutil.copytree(models_dir / "shades", root / "shades")
    (root / "colors" / "2" / "model.json").write_text((root / "colors" / "2" / "model.json").read_text() + " ")
    (root / "shades" / "model.tflite").write_bytes(b"not a flatbuffer")  # shades has no good version at all
    app = create_app({"MODELS_DIR": str(root), "PRELOAD_MODELS": True, "AUTO_COMPILE": False})
    client = app.test_client()
    assert predict(client).get_json()["version"] == 1
    assert client.get("/colors/").get_json()["version"] == 1
    body = client.get("/health/ready").get_json()
    assert "model.tflite is stale" in body["failures"]["colors"]["v2"] and "shades" in body["failures"]
    assert body["models"] == {"colors": True}  # the rest of the server serves
    assert client.post("/shades/prediction").status_code == 404
    assert client.get("/v2/health/ready").status_code == 503  # V2: every model must serve
