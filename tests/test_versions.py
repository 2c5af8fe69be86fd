"""Versions side by side (model.yaml `versions`, `default_version`, /<name>/versions/<v>/ routes) and
Registry.refresh picking up new, changed, broken and removed versions and models (Flask test client)."""
from __future__ import annotations

import io
import shutil
from pathlib import Path

import pytest

from application import create_app, rebuild_routes
from tests.support.versions import DIGITS, THREE, add_version


@pytest.fixture
def models(tmp_path: Path) -> Path:
    (tmp_path / "models" / "digits").mkdir(parents=True)
    add_version(tmp_path / "models" / "digits", 1)
    return tmp_path / "models"


def make_client(models: Path, policy: str = ""):
    if policy:
        (models / "digits" / "model.yaml").write_text(policy)
    app = create_app({"MODELS_DIR": str(models), "TESTING": True, "MODEL_POLL_SECONDS": 0})
    return app, app.test_client()


def predict(client, path: str = "/digits/prediction"):
    return client.post(path, data={"image": (io.BytesIO(THREE), "d.png")})






def test_all_versions_are_served_side_by_side(models: Path) -> None:
    add_version(models / "digits", 2, reversed_labels=True)
    _app, client = make_client(models, "versions: all\n")
    default, one, two = (predict(client, p) for p in ("/digits/prediction", "/digits/versions/1/prediction",
                                                      "/digits/versions/2/prediction"))
    assert default.status_code == one.status_code == two.status_code == 200
    assert default.get_json()["version"] == 2 and one.get_json()["version"] == 1 and two.get_json()["version"] == 2
    assert two.get_json()["label"] == str(9 - int(one.get_json()["label"]))  # v2 computed it, with its labels
    info = client.get("/digits/").get_json()
    assert info["version"] == 2
    assert [(v["version"], v["state"], v["default"]) for v in info["versions"]] == [(1, "serving", False),
                                                                                  (2, "serving", True)]
    assert client.get("/digits/versions/1/").get_json()["version"] == 1
    spec = client.get("/swagger.json").get_json()
    assert "/digits/versions/{version}/prediction" in spec["paths"] and "/digits/versions/{version}/" in spec["paths"]


@pytest.mark.parametrize("policy, default, served", [
    ("", 2, [2]),                                     # latest
    ("versions: all\ndefault_version: 1\n", 1, [1, 2]),
    ("versions: [1]\n", 1, [1]),
])
def test_policy_and_default(models: Path, policy: str, default: int, served: list[int]) -> None:
    add_version(models / "digits", 2)
    _, client = make_client(models, policy)
    assert predict(client).get_json()["version"] == default
    assert [v["version"] for v in client.get("/digits/").get_json()["versions"]] == served


@pytest.mark.parametrize("path", ["/digits/versions/7/prediction", "/digits/versions/7/"])
def test_an_unserved_version_is_a_json_404_listing_the_served(models: Path, path: str) -> None:
    add_version(models / "digits", 2)
    _, client = make_client(models, "versions: all\n")
    answer = predict(client, path) if path.endswith("prediction") else client.get(path)
    assert answer.status_code == 404 and answer.get_json()["error"] == "version_not_found"
    assert "served: 1, 2" in answer.get_json()["message"]


def test_a_bad_policy_names_the_key(models: Path) -> None:
    _, client = make_client(models, "versions: newest\n")
    ready = client.get("/health/ready")  # the model is reported, not a crash at start
    assert ready.status_code == 503, ready.get_json()
    assert "versions must be latest, all or a list" in ready.get_json()["failures"]["digits"]["model"]


def test_refresh_swaps_versions_keeps_a_good_one_and_reports_a_bad_one(models: Path) -> None:
    app, client = make_client(models)
    registry = app.extensions["registry"]
    registry.load_all()
    add_version(models / "digits", 2, reversed_labels=True)
    assert registry.refresh() is False  # same model names: no new routes needed
    assert predict(client).get_json()["version"] == 2
    broken = models / "digits" / "3"
    shutil.copytree(DIGITS, broken)
    (broken / "model.json").write_text("{ not json")
    registry.refresh()
    assert predict(client).get_json()["version"] == 2  # the broken one never replaced it
    states = client.get("/digits/").get_json()["versions"]
    assert states[-1]["version"] == 3 and states[-1]["state"] == "failed" and "not valid JSON" in states[-1]["error"]
    ready = client.get("/health/ready")
    assert ready.status_code == 200 and "not valid JSON" in ready.get_json()["failures"]["digits"]["v3"]
    shutil.rmtree(broken)
    shutil.rmtree(models / "digits" / "2")
    registry.refresh()
    assert predict(client).get_json()["version"] == 1  # back to version 1
    assert "failures" not in client.get("/health/ready").get_json()


def test_a_new_model_gets_routes_and_a_removed_one_loses_them(models: Path) -> None:
    app, client = make_client(models)
    registry = app.extensions["registry"]
    add_version(models / "again", 1)
    assert registry.refresh() is True
    rebuild_routes(app)
    assert predict(client, "/again/prediction").status_code == 200
    assert "/again/prediction" in client.get("/swagger.json").get_json()["paths"]
    shutil.rmtree(models / "again")
    assert registry.refresh() is True
    rebuild_routes(app)
    assert predict(client, "/again/prediction").status_code == 404
    assert "/again/prediction" not in client.get("/swagger.json").get_json()["paths"]


def test_changed_files_of_a_served_version_are_reloaded(models: Path) -> None:
    app, client = make_client(models)
    registry = app.extensions["registry"]
    registry.load_all()
    before = predict(client).get_json()["label"]
    (models / "digits" / "1" / "labels.txt").write_text("".join(f"digit {d}\n" for d in range(10)))
    registry.refresh()
    assert predict(client).get_json()["label"] == f"digit {before}"


def test_a_version_that_cannot_be_compiled_here_keeps_the_previous_one(models: Path) -> None:
    app = create_app({"MODELS_DIR": str(models), "MODEL_POLL_SECONDS": 0, "AUTO_COMPILE": False})
    client, registry = app.test_client(), app.extensions["registry"]
    registry.load_all()
    uncompiled = add_version(models / "digits", 2)
    (uncompiled / "model.tflite").unlink()
    (uncompiled / "model.tflite.json").unlink()
    registry.refresh()
    assert predict(client).get_json()["version"] == 1
    failed = client.get("/digits/").get_json()["versions"][-1]
    assert failed["version"] == 2 and failed["state"] == "failed" and "models compile digits" in failed["error"]


def test_compile_command_selects_every_served_version(models: Path) -> None:
    from util.toolchain.cli import _select
    add_version(models / "digits", 2)
    assert [s.version for s in _select(models, ())] == [2]
    (models / "digits" / "model.yaml").write_text("versions: all\n")
    assert [s.version for s in _select(models, ("digits",))] == [1, 2]
