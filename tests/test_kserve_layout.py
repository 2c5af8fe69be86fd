"""KServe's layout: the storage initializer copies one model's files to /mnt/models and the
runtime gets MODEL_NAME; the V2 readiness routes say 503 until that model is loaded."""
from __future__ import annotations

import base64
import io
import shutil
from collections.abc import Callable
from contextlib import AbstractContextManager
from pathlib import Path

import pytest
import requests

from application import create_app
from tests.support.versions import DIGITS, THREE

COMPILED = ["labels.txt", "model.yaml", "model.tflite", "model.tflite.json", "samples"]


def predict(client, name: str) -> dict:
    answer = client.post(f"/{name}/prediction", data={"image": (io.BytesIO(THREE), "d.png")})
    assert answer.status_code == 200, answer.get_json()
    return answer.get_json()


def mnt_models(tmp_path: Path, files: list[str] | None = None, versioned: bool = False) -> Path:
    """What the storage initializer leaves: one model's files (or its version directories)."""
    root = tmp_path / "mnt" / "models"
    target = root / "1" if versioned else root
    target.mkdir(parents=True)
    for name in files or [p.name for p in DIGITS.iterdir()]:
        source = DIGITS / name
        (shutil.copytree if source.is_dir() else shutil.copy)(source, target / name)
    return root


@pytest.mark.parametrize("files, versioned", [(None, False), (None, True), (COMPILED, False)],
                         ids=["sources-and-artifact", "version-directories", "compiled-files-only"])
def test_model_name_serves_one_model_directory(tmp_path: Path, files: list[str] | None, versioned: bool) -> None:
    root = mnt_models(tmp_path, files, versioned)
    app = create_app({"MODELS_DIR": str(root), "MODEL_NAME": "mnist", "AUTO_COMPILE": False, "PRELOAD_MODELS": True})
    client = app.test_client()
    answer = predict(client, "mnist")
    assert answer["label"] == "3" and answer["model"] == "mnist" and answer["version"] == 1
    info = client.get("/mnist/").get_json()
    assert info["published"] is (files == COMPILED) and info["answers_checked"] == 30
    v2 = client.get("/v2/models/mnist").get_json()
    assert v2["name"] == "mnist" and v2["versions"] == ["1"]


def test_v2_readiness_is_503_until_the_model_is_loaded(tmp_path: Path) -> None:
    root = mnt_models(tmp_path, COMPILED)
    app = create_app({"MODELS_DIR": str(root), "MODEL_NAME": "digits", "AUTO_COMPILE": False})
    client = app.test_client()  # nothing loaded yet: gunicorn loads after the fork, a pod may be probed before
    assert client.get("/v2/health/ready").status_code == 503
    assert client.get("/v2/models/digits/ready").status_code == 503
    assert client.get("/v2/health/live").status_code == 200
    app.extensions["registry"].load_all()
    assert client.get("/v2/health/ready").status_code == 200
    assert client.get("/v2/models/digits/ready").status_code == 200


def test_kserve_container_settings_serve_v1_and_v2(server_factory: Callable[..., AbstractContextManager[str]],
                                                  tmp_path: Path) -> None:
    root = mnt_models(tmp_path, COMPILED)
    with server_factory(MODELS_DIR=str(root), MODEL_NAME="digits", AUTO_COMPILE="false",
                        MODEL_POLL_SECONDS="0") as url:
        assert requests.get(f"{url}/v2/health/ready", timeout=5).status_code == 200
        v2 = requests.post(f"{url}/v2/models/digits/infer", timeout=10, json={"inputs": [
            {"name": "image", "datatype": "BYTES", "shape": [1], "data": [base64.b64encode(THREE).decode()]}]})
        assert v2.status_code == 200, v2.text
        v2_scores = v2.json()["outputs"][0]["data"]
        v1 = requests.post(f"{url}/v1/models/digits:predict", timeout=10,
                           json={"instances": [{"b64": base64.b64encode(THREE).decode()}]})
        assert v1.status_code == 200, v1.text
        scores = v1.json()["predictions"][0]  # per-label scores in label order, as TF Serving answers
        assert scores.index(max(scores)) == 3 and scores == pytest.approx(v2_scores, abs=1e-6)
