"""The models people train, built as the tutorials build them, served from a live server and
compared with Keras' own output on the same images (every confidence within 1e-3).

The server is the Procfile's gunicorn with TensorFlow import-blocked; the models are compiled
in this process first, as `flask models compile` would.
"""
from __future__ import annotations

import io
import json
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

import numpy as np
import pytest
import requests
from PIL import Image, ImageDraw

from tests.support.tutorials import BUILDERS, Tutorial
from util.serve.image import preprocess

pytestmark = pytest.mark.slow
TOLERANCE = 1e-3
MAX_PIXELS = 40_000_000


def images() -> list[tuple[str, bytes]]:
    """Varied uploads at sizes unlike any model's input: colours, gradients, shapes, noise, a JPEG."""
    rng = np.random.default_rng(11)
    made = [("red", Image.new("RGB", (64, 48), (220, 20, 20))), ("green", Image.new("RGB", (50, 50), (20, 200, 40))),
            ("blue", Image.new("RGB", (30, 70), (20, 40, 230))), ("white", Image.new("RGB", (40, 40), "white")),
            ("dark", Image.new("L", (33, 33), 12))]
    x = np.linspace(0, 255, 80)[None, :].repeat(60, 0)
    made.append(("gradient", Image.fromarray(np.stack([x, x[::-1], np.full_like(x, 90)], -1).astype(np.uint8))))
    shape = Image.new("RGB", (60, 60), "black")
    ImageDraw.Draw(shape).ellipse((10, 10, 50, 50), fill=(250, 250, 120))
    made.append(("circle", shape))
    made.append(("noise", Image.fromarray(rng.integers(0, 256, (45, 55, 3), dtype=np.uint8))))
    out = []
    for name, image in made:
        buf = io.BytesIO()
        image.save(buf, "JPEG" if name == "noise" else "PNG", quality=95)
        out.append((name, buf.getvalue()))
    return out


UPLOADS = images()


@pytest.fixture(scope="module")
def tutorials(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, dict[str, Tutorial], dict[str, dict]]:
    from util.serve.spec import read_spec
    from util.toolchain.compile import compile_model
    root = tmp_path_factory.mktemp("tutorial-models")
    built = {name: build(root / name / "1") for name, build in BUILDERS.items()}
    manifests = {name: compile_model(read_spec(root / name)) for name in built}
    return root, built, manifests


@pytest.fixture(scope="module")
def server(tutorials: tuple[Path, dict, dict], server_factory: Callable[..., contextmanager[str]]) -> Iterator[str]:
    with server_factory(MODELS_DIR=str(tutorials[0])) as url:
        yield url


def expected_scores(tutorial: Tutorial, data: bytes) -> dict[str, float]:
    x = preprocess(data, tutorial.image_shape, tutorial.preprocessing, MAX_PIXELS)
    return dict(zip(tutorial.labels, tutorial.reference(x[None])[0].tolist(), strict=True))


@pytest.mark.parametrize("name", list(BUILDERS))
def test_every_confidence_matches_keras(name: str, tutorials: tuple[Path, dict, dict], server: str) -> None:
    tutorial = tutorials[1][name]
    table = []
    for image, data in UPLOADS:
        answer = requests.post(f"{server}/{name}/prediction", files={"image": (image, data)},
                               data={"top_k": len(tutorial.labels)}, timeout=30)
        assert answer.status_code == 200, answer.text
        body = answer.json()
        served = {p["label"]: p["confidence"] for p in body["predictions"]}
        expected = expected_scores(tutorial, data)
        assert set(served) == set(tutorial.labels)
        worst = max(abs(served[label] - expected[label]) for label in tutorial.labels)
        assert worst <= TOLERANCE, f"{name} on {image}: served {served}, Keras {expected}"
        confidences = [p["confidence"] for p in body["predictions"]]
        assert confidences == sorted(confidences, reverse=True) and body["label"] == body["predictions"][0]["label"]
        table.append([expected[label] for label in tutorial.labels])
    # The comparison only means something if Keras' answers differ between the images.
    spread = np.ptp(np.array(table), axis=0).max()
    print(f"{name}: {len(UPLOADS)} images, every confidence within {TOLERANCE} of Keras, score spread {spread:.3f}")
    assert spread > 0.05, f"{name}: outputs barely depend on the image (spread {spread:.4f})"


@pytest.mark.parametrize("name", list(BUILDERS))
def test_metadata_says_how_the_model_is_served(name: str, tutorials: tuple[Path, dict, dict], server: str) -> None:
    tutorial, manifest = tutorials[1][name], tutorials[2][name]
    info = requests.get(f"{server}/{name}/", timeout=10).json()
    expect = tutorial.expect
    assert info["format"] == expect["format"] and info["output"] == expect["output"]
    assert info["input_shape"] == list(tutorial.image_shape)
    assert info["preprocessing"]["scale"] == tutorial.preprocessing.scale
    assert info["serving"]["scale_from"].startswith(expect["scale_from"])
    assert info["serving"]["size_from"].startswith(expect.get("size_from", "model"))
    assert info["verified"] is expect.get("verified", True) and manifest["runtime"] == "tflite"
    if info["verified"]:
        verification = manifest["verification"]
        assert verification["max_abs_diff"] <= 1e-4 and verification["top1_agreement"] == 1.0
        assert verification["weak"] is False and verification["images"] >= 16
    else:
        assert info["verification"]["status"] == "unverified" and "no source model" in info["verification"]["reason"]


def test_binary_answers_p_and_one_minus_p(tutorials: tuple[Path, dict, dict], server: str) -> None:
    body = requests.post(f"{server}/cats_vs_dogs/prediction", files={"image": UPLOADS[0]}, timeout=30).json()
    scores = {p["label"]: p["confidence"] for p in body["predictions"]}
    assert set(scores) == {"cats", "dogs"} and abs(scores["cats"] + scores["dogs"] - 1) < 1e-6


def test_multilabel_scores_are_not_renormalised_and_threshold_applies(server: str) -> None:
    white = dict(UPLOADS)["white"]
    body = requests.post(f"{server}/tagger/prediction", files={"image": ("w.png", white)}, timeout=30).json()
    scores = {p["label"]: p["confidence"] for p in body["predictions"]}
    assert sum(scores.values()) > 1.5  # white is red, green, blue and bright at once
    assert body["threshold"] == 0.5 and set(body["positive_labels"]) == {k for k, v in scores.items() if v >= 0.5}
    strict = requests.post(f"{server}/tagger/prediction?threshold=0.999", files={"image": ("w.png", white)},
                           timeout=30).json()
    assert strict["threshold"] == 0.999
    assert strict["positive_labels"] == [p["label"] for p in strict["predictions"] if p["confidence"] >= 0.999]
    assert len(strict["positive_labels"]) < len(body["positive_labels"])
    spec = requests.get(f"{server}/swagger.json", timeout=10).json()["paths"]
    declared = {p["name"]: p for p in spec["/tagger/prediction"]["post"]["parameters"]}
    assert (declared["threshold"]["minimum"], declared["threshold"]["maximum"]) == (0, 1)
    assert "threshold" not in {p["name"] for p in spec["/fashion/prediction"]["post"]["parameters"]}
    wrong = requests.post(f"{server}/fashion/prediction?threshold=0.5", files={"image": ("w.png", white)}, timeout=30)
    assert wrong.status_code == 400 and wrong.json()["error"] == "invalid_parameter"
    bad = requests.post(f"{server}/tagger/prediction", files={"image": ("w.png", white)}, data={"threshold": "2"},
                        timeout=30)
    assert bad.status_code == 400 and "threshold must be from 0 to 1" in bad.json()["message"]


def test_nested_application_base_with_its_own_preprocessing_is_detected() -> None:
    import keras

    from util.toolchain import inspect
    base = keras.applications.MobileNetV3Small(input_shape=(32, 32, 3), include_top=False, weights=None,
                                               include_preprocessing=True, minimalistic=True)
    inputs = keras.Input((32, 32, 3))
    x = keras.layers.RandomFlip()(inputs)
    model = keras.Model(inputs, keras.layers.Dense(2)(keras.layers.GlobalAveragePooling2D()(base(x))))
    found = inspect.preprocessing_layer(model)
    assert found is not None and "Rescaling" in found and base.name in found
    plain = keras.Sequential([keras.Input((8, 8, 3)), keras.layers.Conv2D(2, 3), keras.layers.Rescaling(2.0)])
    assert inspect.preprocessing_layer(plain) is None


def test_start_up_log_says_which_size_and_why(tutorials: tuple[Path, dict, dict],
                                              capsys: pytest.CaptureFixture) -> None:
    from application import create_app
    create_app({"MODELS_DIR": str(tutorials[0]), "PRELOAD_MODELS": True, "LOG_FORMAT": "json"})
    records = [json.loads(line) for line in capsys.readouterr().err.splitlines() if line.startswith("{")]
    lines = {r["message"].split()[1]: r["message"] for r in records
             if r["message"].startswith("model ") and "ready on" in r["message"]}
    assert "input 40x48x3 (size from model.yaml preprocessing.size)" in lines["fcn"]
    assert "input 28x28x1 (size from model)" in lines["fashion"] and "output logits" in lines["fashion"]
    assert "scale raw (from model (Rescaling layer" in lines["transfer"]
    bare = [r["message"] for r in records if r["level"] == "warning" and "model bare" in r["message"]]
    assert bare and "set preprocessing.scale" in bare[0]
