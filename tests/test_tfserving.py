"""TensorFlow Serving's REST API (api/tfserving.py), with request bodies shaped as its documentation
shows them; every answer must equal the native route's for the same images."""
from __future__ import annotations

import base64
import io

import numpy as np
import pytest

from tests.support import builders
from util.serve.image import preprocess

IMAGES = [builders.encode(builders.solid(c)) for c in ((200, 30, 30), (30, 180, 40), (40, 60, 220), (120, 110, 90))]


def b64(data: bytes) -> str:
    return base64.b64encode(data).decode()


def native_scores(client, data: bytes) -> dict[str, float]:
    answer = client.post("/colors/prediction", data={"image": (io.BytesIO(data), "i.png"), "top_k": "3"}).get_json()
    return {p["label"]: p["confidence"] for p in answer["predictions"]}


def labels(client) -> list[str]:
    return client.get("/colors/").get_json()["labels"]


def test_predict_row_format_equals_the_native_route(client) -> None:
    answer = client.post("/v1/models/colors:predict", json={"instances": [{"b64": b64(im)} for im in IMAGES]})
    assert answer.status_code == 200
    predictions = answer.get_json()["predictions"]
    assert len(predictions) == len(IMAGES)
    for image, row in zip(IMAGES, predictions, strict=True):
        expected = native_scores(client, image)
        assert row == pytest.approx([expected[label] for label in labels(client)], abs=1e-6)
    assert len({int(np.argmax(row)) for row in predictions}) == 3  # the images really differ to the model


def test_predict_columnar_format_and_named_input(client) -> None:
    rows = client.post("/v1/models/colors:predict", json={"instances": [{"b64": b64(IMAGES[0])}]}).get_json()
    columnar = client.post("/v1/models/colors:predict", json={"inputs": {"image": [{"b64": b64(IMAGES[0])}]}})
    assert columnar.get_json() == {"outputs": rows["predictions"]}
    named = client.post("/v1/models/colors/versions/1:predict",
                        json={"instances": [{"image": {"b64": b64(IMAGES[0])}}]})
    assert named.get_json()["predictions"] == rows["predictions"]


def test_a_preprocessed_tensor_answers_as_its_image(app, client) -> None:
    model = app.extensions["registry"].models["colors"]
    tensor = preprocess(IMAGES[2], model.plan.image_shape, model.plan.preprocessing, 10**6)
    by_tensor = client.post("/v1/models/colors:predict", json={"instances": [tensor.tolist()]}).get_json()
    by_image = client.post("/v1/models/colors:predict", json={"instances": [{"b64": b64(IMAGES[2])}]}).get_json()
    assert by_tensor["predictions"][0] == pytest.approx(by_image["predictions"][0], abs=1e-6)


def test_classify_as_the_documentation_writes_it(client) -> None:
    request = {"signature_name": "classify_objects",
               "examples": [{"image": {"b64": b64(IMAGES[0])}, "caption": "seaside"},
                            {"image": {"b64": b64(IMAGES[1])}, "caption": "mountains"}]}
    result = client.post("/v1/models/colors:classify", json=request).get_json()["result"]
    for image, pairs in zip(IMAGES[:2], result, strict=True):
        expected = sorted(native_scores(client, image).items(), key=lambda kv: -kv[1])
        assert [p[0] for p in pairs] == [label for label, _ in expected]
        assert [p[1] for p in pairs] == pytest.approx([score for _, score in expected], abs=1e-6)


def test_all_instances_go_through_the_runtime_as_one_batch(app, client) -> None:
    runtime = app.extensions["registry"].models["colors"].runtime
    before = sum(runtime.runs.values())
    client.post("/v1/models/colors:predict", json={"instances": [{"b64": b64(im)} for im in IMAGES]})
    assert sum(runtime.runs.values()) == before + 1


def test_model_status_and_metadata(client) -> None:
    assert client.get("/v1/models/colors").get_json() == {"model_version_status": [
        {"version": "1", "state": "AVAILABLE", "status": {"error_code": "OK", "error_message": ""}}]}
    assert client.get("/v1/models/colors/versions/1").status_code == 200
    meta = client.get("/v1/models/colors/metadata").get_json()
    assert meta["model_spec"] == {"name": "colors", "signature_name": "", "version": "1"}
    inputs = meta["metadata"]["signature_def"]["signature_def"]["serving_default"]["inputs"]
    assert [d["size"] for d in inputs["image"]["tensor_shape"]["dim"]] == ["-1", "8", "8", "3"]
    assert meta["metadata"]["labels"] == labels(client)


@pytest.mark.parametrize("path, body, status, message", [
    ("/v1/models/half:predict", {"instances": [1.0, 5.0]}, 404, "Servable not found for request: Latest(half)"),
    ("/v1/models/colors/versions/9:predict", {"instances": []}, 404, "Specific(colors, 9)"),
    ("/v1/models/colors:regress", {"examples": []}, 404, ":predict or <model>:classify"),
    ("/v1/models/colors:predict", {"instances": [], "inputs": []}, 400, "not both"),
    ("/v1/models/colors:predict", {"instances": []}, 400, "no instances"),
    ("/v1/models/colors:predict", {"instances": [{"b64": "@@@"}]}, 400, "no valid base64"),
    ("/v1/models/colors:predict", {"instances": [{"b64": b64(b"not an image")}]}, 400, "not a readable image"),
    ("/v1/models/colors:predict", {"instances": [[[1.0, 2.0]]]}, 400, "must have shape [8, 8, 3]"),
    ("/v1/models/colors:predict", {"instances": [{"b64": b64(IMAGES[0])}] * 33}, 400, "at most 32"),
    ("/v1/models/colors:classify", {"examples": [{"caption": "x"}]}, 400, "needs the \"image\" feature"),
])
def test_errors_are_tf_serving_shaped(client, path: str, body: dict, status: int,
                                      message: str) -> None:
    answer = client.post(path, json=body)
    assert answer.status_code == status and set(answer.get_json()) == {"error"}
    assert message in answer.get_json()["error"]


def test_json_is_read_whatever_the_content_type_as_curl_d_sends_it(client) -> None:
    import json
    body = json.dumps({"instances": [{"b64": b64(IMAGES[0])}]})
    answer = client.post("/v1/models/colors:predict", data=body, content_type="application/x-www-form-urlencoded")
    assert answer.status_code == 200 and len(answer.get_json()["predictions"]) == 1


@pytest.mark.slow
def test_live_server_predict_and_classify_equal_the_native_route(live_server: str) -> None:
    import requests

    from scripts.digits import load_split, render, to_png
    _, _, x_test, _ = load_split()
    images = [to_png(render(x)) for x in x_test[:6]]
    v1 = requests.post(f"{live_server}/v1/models/digits:predict",
                       json={"instances": [{"b64": b64(im)} for im in images]}, timeout=10)
    classify = requests.post(f"{live_server}/v1/models/digits:classify",
                             json={"examples": [{"image": {"b64": b64(im)}} for im in images]}, timeout=10).json()
    assert v1.status_code == 200
    for image, row, pairs in zip(images, v1.json()["predictions"], classify["result"], strict=True):
        native = requests.post(f"{live_server}/digits/prediction", files={"image": ("d.png", image)},
                               data={"top_k": "10"}, timeout=10).json()
        scores = {p["label"]: p["confidence"] for p in native["predictions"]}
        assert row == pytest.approx([scores[str(d)] for d in range(10)], abs=1e-6)
        assert pairs[0] == [native["label"], pytest.approx(native["confidence"], abs=1e-6)]
    assert len({p[0][0] for p in classify["result"]}) >= 3  # different digits, different answers
