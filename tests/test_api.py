"""The HTTP surface through Flask's test client: spec, namespaces, metadata, health, predictions."""
from __future__ import annotations

import io
import re
from pathlib import Path

from openapi_spec_validator import validate

from application import create_app
from tests.support import builders


def post(client, model: str, data: bytes, **form: str):
    return client.post(f"/{model}/prediction", data={"image": (io.BytesIO(data), "x.png"), **form},
                       content_type="multipart/form-data")


def test_swagger_ui_is_served_at_root(client) -> None:
    page = client.get("/")
    assert page.status_code == 200 and b"swagger-ui" in page.data
    assert b"swagger.json" in page.data


def test_spec_is_valid_swagger_2_with_a_namespace_per_model(client) -> None:
    spec = client.get("/swagger.json").get_json()
    validate(spec)  # raises on any violation of the Swagger 2.0 schema
    assert spec["swagger"] == "2.0"
    tags = {t["name"]: t.get("description", "") for t in spec["tags"]}
    assert tags["colors"] == "Colours (v1): Dominant colour of the picture."
    assert tags["shades"] == "Shades (v1)"
    predict = spec["paths"]["/colors/prediction"]["post"]
    assert predict["consumes"] == ["multipart/form-data"]
    params = {p["name"]: p for p in predict["parameters"]}
    assert params["image"]["type"] == "file" and params["image"]["required"] is True
    # The same parser reads and documents the bounds, per model (colors has 3 labels, shades 2).
    assert (params["top_k"]["type"], params["top_k"]["minimum"], params["top_k"]["maximum"]) == ("integer", 1, 3)
    shades = {p["name"]: p for p in spec["paths"]["/shades/prediction"]["post"]["parameters"]}
    assert shades["top_k"]["maximum"] == 2
    assert "threshold" not in params  # declared for multi-label models only
    documented = set(predict["responses"])
    assert documented == {"200", "400", "413", "415", "422", "500", "503", "504"}
    assert params["X-Priority"]["in"] == "header" and params["X-Priority"]["enum"] == ["high", "normal", "low"]
    assert params["X-Request-Timeout"]["in"] == "header" and params["X-Request-Timeout"]["type"] == "number"
    for code, response in predict["responses"].items():
        ref = response["schema"]["$ref"]
        assert ref == ("#/definitions/Prediction" if code == "200" else f"#/definitions/Error{code}")
    assert set(spec["paths"]) >= {"/colors/", "/shades/prediction", "/health/live", "/health/ready"}
    assert predict["summary"] and "\n" not in predict["summary"]


def test_every_error_status_shows_its_own_example(client) -> None:
    import util.errors
    spec = client.get("/swagger.json").get_json()
    codes: dict[int, set[str]] = {405: {"method_not_allowed"}, 500: {"internal_error"}}  # raised by the app itself
    for error in vars(util.errors).values():
        if isinstance(error, type) and issubclass(error, util.errors.ServiceError):
            codes.setdefault(error.status, set()).add(error.code)
    seen = {}
    for path in spec["paths"].values():
        for operation in (op for op in path.values() if isinstance(op, dict)):  # not the path's parameters
            for code, response in operation.get("responses", {}).items():
                name = response.get("schema", {}).get("$ref", "").rsplit("/", 1)[-1]
                if name.startswith("Error"):
                    example = spec["definitions"][name]["properties"]["error"]["example"]
                    assert example in codes[int(code)], (code, name, example)  # a code this status really carries
                    seen[code] = example
    assert len(set(seen.values())) == len(seen) >= 7, seen  # one example per status, not the same under all


def test_prediction_body(client) -> None:
    body = post(client, "colors", builders.encode(builders.solid((10, 200, 30)))).get_json()
    assert body["label"] == "green" and body["model"] == "colors" and body["version"] == 1
    assert next(p["label"] for p in body["predictions"]) == "green" and len(body["predictions"]) == 3
    assert body["confidence"] == body["predictions"][0]["confidence"] > 0.9
    assert abs(sum(p["confidence"] for p in body["predictions"]) - 1) < 1e-5


def test_top_k_from_query_string(client) -> None:
    data = {"image": (io.BytesIO(builders.encode(builders.solid((200, 0, 0)))), "r.png")}
    body = client.post("/colors/prediction?top_k=1", data=data).get_json()
    assert len(body["predictions"]) == 1 and body["label"] == "red"


def test_metadata(client) -> None:
    info = client.get("/shades/").get_json()
    assert info["name"] == "shades" and info["labels"] == ["dark", "light"]
    assert info["input_shape"] == [8, 8, 1] and info["runtime"] == "tflite" and info["ready"] is True
    assert info["preprocessing"] == {"resize": "crop", "resample": "bilinear", "scale": "unit",
                                     "invert": False, "autocontrast": False}  # size: only for models of unknown size
    assert set(info["source_sha256"]) == {"model.json", "weights.h5"}
    assert info["format"] == "json" and info["output"] == "softmax" and info["model_input"] == [8, 8, 1]
    assert info["serving"]["size_from"] == "model" and info["serving"]["scale_from"] == "default"
    assert info["verified"] is True and info["verification"]["top1_agreement"] == 1.0
    assert 0 <= info["verified_max_abs_diff"] <= 1e-4


def test_health(client) -> None:
    assert client.get("/health/live").get_json()["status"] == "ok"
    ready = client.get("/health/ready")
    assert ready.status_code == 200 and ready.get_json()["models"] == {"colors": True, "shades": True}


def test_readiness_is_503_with_reason_when_a_model_cannot_load(tmp_path: Path, models_dir: Path) -> None:
    import shutil
    shutil.copytree(models_dir / "shades", tmp_path / "shades")
    (tmp_path / "shades" / "model.tflite").write_bytes(b"not a flatbuffer")
    app = create_app({"MODELS_DIR": str(tmp_path), "AUTO_COMPILE": False})
    ready = app.test_client().get("/health/ready")
    assert ready.status_code == 503
    body = ready.get_json()
    assert body["status"] == "failed" and "model.tflite is stale" in body["message"]
    assert app.test_client().get("/health/live").status_code == 200


def test_preload_starts_and_reports_a_model_that_cannot_load(tmp_path: Path) -> None:
    builders.write_colors_model(tmp_path / "colors")  # never compiled
    app = create_app({"MODELS_DIR": str(tmp_path), "AUTO_COMPILE": False, "PRELOAD_MODELS": True})
    ready = app.test_client().get("/health/ready")
    assert ready.status_code == 503, ready.get_json()  # nothing at all serves
    assert re.search(r"no model serves: colors v1: .*colors.*model.tflite is missing.*AUTO_COMPILE is off",
                     ready.get_json()["message"])
    assert app.test_client().get("/health/live").status_code == 200
    assert app.test_client().post("/colors/prediction").status_code == 404  # no version: no route


def test_method_not_allowed_is_json(client) -> None:
    response = client.get("/colors/prediction")
    assert response.status_code == 405 and response.get_json()["error"] == "method_not_allowed"


def test_keras_runtime_serves_the_same_answers(models_dir: Path) -> None:
    app = create_app({"MODELS_DIR": str(models_dir), "MODEL_RUNTIME": "keras", "PRELOAD_MODELS": True})
    client = app.test_client()
    assert client.get("/colors/").get_json()["runtime"] == "keras"
    body = post(client, "colors", builders.encode(builders.solid((0, 0, 220)))).get_json()
    assert body["label"] == "blue"
