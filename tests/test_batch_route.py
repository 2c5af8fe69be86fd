"""POST /<model>/predictions: several `images` in one multipart request, answered in upload order,
each with its filename and its own prediction or error, through the runtime as one batch."""
from __future__ import annotations

import io

from tests.support import builders

COLOURS = [(200, 30, 30), (30, 180, 40), (40, 60, 220)]


def files(*parts: tuple[bytes, str]) -> list[tuple[io.BytesIO, str]]:
    return [(io.BytesIO(data), name) for data, name in parts]


def test_results_in_upload_order_equal_single_requests_and_a_bad_file_fails_alone(client) -> None:
    images = [(builders.encode(builders.solid(c)), f"{i}.png") for i, c in enumerate(COLOURS)]
    upload = [*images[:2], (b"not an image", "notes.txt"), *images[2:]]
    answer = client.post("/colors/predictions", data={"images": files(*upload), "top_k": "2"})
    assert answer.status_code == 200
    results = answer.get_json()["results"]
    assert [r["filename"] for r in results] == ["0.png", "1.png", "notes.txt", "2.png"]
    assert results[2]["status"] == 400 and results[2]["error"] == "invalid_image"
    for result, (data, _) in zip([results[0], results[1], results[3]], images, strict=True):
        single = client.post("/colors/prediction", data={"image": (io.BytesIO(data), "x.png"), "top_k": "2"}).get_json()
        assert {k: v for k, v in result.items() if k != "filename"} == single
    assert [r["label"] for r in (results[0], results[1], results[3])] == ["red", "green", "blue"]


def test_one_runtime_batch(app, client) -> None:
    runtime = app.extensions["registry"].models["colors"].runtime
    before = sum(runtime.runs.values())
    upload = [(builders.encode(builders.solid(c)), "c.png") for c in COLOURS]
    assert client.post("/colors/predictions", data={"images": files(*upload)}).status_code == 200
    assert sum(runtime.runs.values()) == before + 1


def test_limits_and_missing_images(app, client) -> None:
    limit = app.config["MAX_BATCH_IMAGES"]
    many = [(builders.encode(builders.solid((1, 2, 3))), "p.png")] * (limit + 1)
    answer = client.post("/colors/predictions", data={"images": files(*many)})
    assert answer.status_code == 400 and f"at most {limit}" in answer.get_json()["message"]
    answer = client.post("/colors/predictions", data={"top_k": "1"}, content_type="multipart/form-data")
    assert answer.status_code == 400 and answer.get_json()["error"] == "missing_image"
    answer = client.post("/colors/versions/1/predictions", data={"images": files(many[0])})
    assert answer.status_code == 200 and answer.get_json()["version"] == 1


def test_when_no_image_is_readable_the_request_fails_with_the_first_reason(client) -> None:
    answer = client.post("/colors/predictions", data={"images": files((b"%PDF-1.4", "a.pdf"), (b"", "b.png"))})
    assert answer.status_code == 400 and answer.get_json()["error"] == "invalid_image"
    assert "not a readable image" in answer.get_json()["message"]
