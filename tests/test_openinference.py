"""The Open Inference Protocol (V2) driven by Triton's own client (`tritonclient[http]`) against the
Procfile server: health, metadata, BYTES and FP32 inputs in JSON and binary form, the
classification extension; every score must equal the native route's for the same image."""
from __future__ import annotations

import base64

import numpy as np
import pytest
import requests
import tritonclient.http as triton
from tritonclient.utils import InferenceServerException

from util.serve.image import Preprocessing, preprocess

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def digits() -> list[bytes]:
    from scripts.digits import load_split, render, to_png
    _, _, x_test, _ = load_split()
    return [to_png(render(x)) for x in x_test[:8]]


@pytest.fixture(scope="module")
def native(live_server: str, digits: list[bytes]) -> np.ndarray:
    """Per image, every label's score from POST /digits/prediction."""
    rows = []
    for image in digits:
        answer = requests.post(f"{live_server}/digits/prediction", files={"image": ("d.png", image)},
                               data={"top_k": "10"}, timeout=10).json()
        scores = {p["label"]: p["confidence"] for p in answer["predictions"]}
        rows.append([scores[str(d)] for d in range(10)])
    assert len({int(np.argmax(r)) for r in rows}) >= 3  # the images really differ to the model
    return np.array(rows)


def client(url: str) -> triton.InferenceServerClient:
    return triton.InferenceServerClient(url.removeprefix("http://"))


def test_health_and_metadata(live_server: str) -> None:
    c = client(live_server)
    assert c.is_server_live() and c.is_server_ready() and c.is_model_ready("digits")
    assert c.is_model_ready("digits", "1") and not c.is_model_ready("nothing")
    assert set(c.get_server_metadata()["extensions"]) >= {"classification", "binary_tensor_data"}
    meta = c.get_model_metadata("digits")
    assert [i["name"] for i in meta["inputs"]] == ["image", "tensor"]
    assert meta["outputs"] == [{"name": "scores", "datatype": "FP32", "shape": [-1, 10]}]


@pytest.mark.parametrize("binary", [True, False])
def test_bytes_input_equals_the_native_route(live_server: str, digits: list[bytes], native: np.ndarray,
                                             binary: bool) -> None:
    values = digits if binary else [base64.b64encode(d).decode() for d in digits]  # JSON carries base64 text
    image = triton.InferInput("image", [len(digits)], "BYTES")
    image.set_data_from_numpy(np.array(values, dtype=np.object_), binary_data=binary)
    result = client(live_server).infer("digits", [image], outputs=[triton.InferRequestedOutput(
        "scores", binary_data=binary)])
    assert result.as_numpy("scores") == pytest.approx(native, abs=1e-6)
    assert result.get_response()["model_version"] == "1"


@pytest.mark.parametrize("binary", [True, False])
def test_fp32_tensor_input_equals_the_native_route(live_server: str, digits: list[bytes], native: np.ndarray,
                                                   binary: bool) -> None:
    info = requests.get(f"{live_server}/digits/", timeout=5).json()  # the preprocessing in force
    settings = Preprocessing.from_dict({k: v for k, v in info["preprocessing"].items() if v is not None})
    tensor = np.stack([preprocess(d, (8, 8, 1), settings, 10**6) for d in digits])
    assert tensor.shape == (8, 8, 8, 1)
    inp = triton.InferInput("tensor", list(tensor.shape), "FP32")
    inp.set_data_from_numpy(tensor.astype(np.float32), binary_data=binary)
    result = client(live_server).infer("digits", [inp], model_version="1")
    assert result.as_numpy("scores") == pytest.approx(native, abs=1e-6)


@pytest.mark.parametrize("binary", [True, False])
def test_classification_extension(live_server: str, digits: list[bytes], native: np.ndarray, binary: bool) -> None:
    image = triton.InferInput("image", [len(digits)], "BYTES")
    image.set_data_from_numpy(np.array(digits, dtype=np.object_), binary_data=True)
    result = client(live_server).infer("digits", [image], outputs=[triton.InferRequestedOutput(
        "scores", binary_data=binary, class_count=3)])
    top = result.as_numpy("scores")
    assert top.shape == (len(digits), 3)
    for row, expected in zip(top, native, strict=True):
        score, index, label = (row[0].decode() if isinstance(row[0], bytes) else row[0]).split(":")
        assert int(index) == int(np.argmax(expected)) and label == str(int(index))
        assert float(score) == pytest.approx(expected.max(), abs=1e-5)


def test_errors_reach_the_client(live_server: str, digits: list[bytes]) -> None:
    c = client(live_server)
    image = triton.InferInput("image", [1], "BYTES")
    image.set_data_from_numpy(np.array(digits[:1], dtype=np.object_))
    with pytest.raises(InferenceServerException, match="unknown model"):
        c.infer("nothing", [image])
    wrong = triton.InferInput("pixels", [1], "BYTES")
    wrong.set_data_from_numpy(np.array(digits[:1], dtype=np.object_))
    with pytest.raises(InferenceServerException, match="must be named"):
        c.infer("digits", [wrong])
    junk = triton.InferInput("image", [1], "BYTES")
    junk.set_data_from_numpy(np.array([b"not an image"], dtype=np.object_))
    with pytest.raises(InferenceServerException, match="not a readable image"):
        c.infer("digits", [junk])


@pytest.mark.parametrize("part, where", [
    ({"inputs": [{"name": "image", "datatype": "BYTES", "shape": [1], "parameters": [None, None]}]}, "input"),
    ({"outputs": [{"name": "scores", "parameters": "top"}]}, "output"),
    ({"parameters": [1]}, "request"),
])
def test_parameters_that_are_not_objects_are_a_400(live_server: str, digits: list[bytes], part: dict,
                                                   where: str) -> None:
    # Found by schemathesis once the spec described each input: a list here was a 500.
    image = {"name": "image", "datatype": "BYTES", "shape": [1], "data": [base64.b64encode(digits[0]).decode()]}
    body = {"inputs": [image], **part}
    answer = requests.post(f"{live_server}/v2/models/digits/infer", json=body, timeout=10)
    assert answer.status_code == 400 and f"the {where}'s \"parameters\" must be an object" in answer.json()["error"]
