"""`POST /<model>/prediction` through the Flask test client: every format, every refusal."""
from __future__ import annotations

import io
from typing import Any

import pytest
from flask.testing import FlaskClient
from werkzeug.test import TestResponse

from tests.support.builders import COLORS, SHADES
from tests.support.images import ACCEPTED, BAD, Accepted, Bad, by_id

MODELS = {"colors": COLORS, "shades": SHADES}
MAX_BODY = 2 * 1024 * 1024  # MAX_CONTENT_LENGTH of the `app` fixture


def post(client: FlaskClient, model: str, data: bytes | None = None, **fields: Any) -> TestResponse:
    """Multipart POST; the filename and content type say nothing, so the server must sniff bytes."""
    form: dict[str, Any] = {key: str(value) for key, value in fields.items()}
    if data is not None:
        form["image"] = (io.BytesIO(data), "upload", "application/octet-stream")
    return client.post(f"/{model}/prediction", data=form, content_type="multipart/form-data")


def assert_error(response: TestResponse, status: int, code: str | None = None) -> dict[str, Any]:
    assert response.status_code == status, response.get_data(as_text=True)
    assert response.is_json
    body = response.get_json()
    assert isinstance(body.get("message"), str) and body["message"]
    assert isinstance(body.get("error"), str) and body["error"]
    if code is not None:
        assert body["error"] == code
    return body


def assert_prediction(body: dict[str, Any], model: str) -> None:
    """The success shape: top label at the top level, predictions best first."""
    labels = MODELS[model]
    assert body["model"] == model and body["version"] == 1
    predictions = body["predictions"]
    names = [p["label"] for p in predictions]
    assert len(set(names)) == len(names) and set(names) <= set(labels)
    confidences = [p["confidence"] for p in predictions]
    assert confidences == sorted(confidences, reverse=True)
    assert all(0.0 <= c <= 1.0 for c in confidences)
    assert (body["label"], body["confidence"]) == (predictions[0]["label"], predictions[0]["confidence"])


@pytest.mark.parametrize("case", ACCEPTED, ids=lambda c: c.id)
def test_accepted_colors(client: FlaskClient, case: Accepted) -> None:
    response = post(client, "colors", case.data)
    assert response.status_code == 200, response.get_data(as_text=True)
    body = response.get_json()
    assert_prediction(body, "colors")
    assert len(body["predictions"]) == len(COLORS)  # default top_k (5) is capped at the label count
    assert sum(p["confidence"] for p in body["predictions"]) == pytest.approx(1.0, abs=1e-4)
    if case.color is None:  # greyscale: no channel dominates, so all three scores are equal
        confidences = [p["confidence"] for p in body["predictions"]]
        assert max(confidences) - min(confidences) < 1e-5
    else:
        assert body["label"] == case.color


@pytest.mark.parametrize("case", ACCEPTED, ids=lambda c: c.id)
def test_accepted_shades(client: FlaskClient, case: Accepted) -> None:
    response = post(client, "shades", case.data)
    assert response.status_code == 200, response.get_data(as_text=True)
    body = response.get_json()
    assert_prediction(body, "shades")
    assert body["label"] == case.shade


@pytest.mark.parametrize("model", MODELS)
@pytest.mark.parametrize("case", BAD, ids=lambda c: c.id)
def test_bad_images_are_refused(client: FlaskClient, case: Bad, model: str) -> None:
    assert_error(post(client, model, case.data), case.status, case.error)


def test_missing_image_field(client: FlaskClient) -> None:
    assert_error(post(client, "colors", top_k=1), 400, "missing_image")


def test_image_sent_as_text_field(client: FlaskClient) -> None:
    response = client.post("/colors/prediction", data={"image": "iVBORw0KGgo="}, content_type="multipart/form-data")
    body = assert_error(response, 400, "missing_image")
    assert "text field" in body["message"]  # says what to do differently


@pytest.mark.parametrize("kwargs", [
    {"data": by_id("rgb-png").data, "content_type": "image/png"},
    {"json": {"image": "iVBORw0KGgo="}},
    {"data": {"image": "x"}, "content_type": "application/x-www-form-urlencoded"},
    {}], ids=["raw-png", "json", "urlencoded", "no-body"])
def test_non_multipart_body(client: FlaskClient, kwargs: dict[str, Any]) -> None:
    assert_error(client.post("/colors/prediction", **kwargs), 415, "unsupported_media_type")


def test_body_over_the_limit(client: FlaskClient) -> None:
    data = by_id("rgb-png").data
    padded = data + b"\0" * (MAX_BODY + 1 - len(data))  # valid PNG, trailing bytes: only the size is wrong
    assert_error(post(client, "colors", padded), 413, "payload_too_large")


def test_body_just_under_the_limit_is_accepted(client: FlaskClient) -> None:
    # Control for the test above: the limit is the body size, not something else about the upload.
    data = by_id("rgb-png").data
    padded = data + b"\0" * (MAX_BODY - 4096 - len(data))
    response = post(client, "colors", padded)
    assert response.status_code == 200 and response.get_json()["label"] == "red"


@pytest.mark.parametrize("top_k", ["0", "-1", "4", "abc", "1.5", "1e1"])
def test_bad_top_k(client: FlaskClient, top_k: str) -> None:
    body = assert_error(post(client, "colors", by_id("rgb-png").data, top_k=top_k), 400, "invalid_parameter")
    assert "top_k" in body["message"]


@pytest.mark.parametrize("top_k", [1, 2, 3])
def test_top_k_limits_the_predictions(client: FlaskClient, top_k: int) -> None:
    case = by_id("rgb-png")
    response = post(client, "colors", case.data, top_k=top_k)
    assert response.status_code == 200, response.get_data(as_text=True)
    body = response.get_json()
    assert len(body["predictions"]) == top_k
    assert_prediction(body, "colors")
    assert body["label"] == case.color


def test_top_k_two_is_the_two_best(client: FlaskClient) -> None:
    full = post(client, "colors", by_id("webp").data).get_json()["predictions"]
    two = post(client, "colors", by_id("webp").data, top_k=2).get_json()["predictions"]
    assert len(two) == 2 and two == full[:2]
    assert two[0]["confidence"] >= two[1]["confidence"]


def test_unknown_model(client: FlaskClient) -> None:
    body = assert_error(post(client, "nope", by_id("rgb-png").data), 404)
    for model in MODELS:
        assert f"/{model}/prediction" in body["message"]
