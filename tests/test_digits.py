"""The committed default model: files, a fresh artifact, and accuracy on uploads as people make them."""
from __future__ import annotations

import numpy as np
import pytest

from scripts.digits import render, render_printed, to_jpeg, to_png
from tests.support.strokes import drawn_digits
from util.serve.artifacts import artifact_status
from util.serve.image import preprocess
from util.serve.runtimes import LiteRTRuntime
from util.serve.spec import ModelSpec, discover


@pytest.fixture(scope="module")
def spec() -> ModelSpec:
    from tests.conftest import ROOT
    return {s.name: s for s in discover(ROOT / "saved_models")}["digits"]


@pytest.fixture(scope="module")
def runtime(spec: ModelSpec) -> LiteRTRuntime:
    return LiteRTRuntime(spec.artifact)


def accuracy(runtime: LiteRTRuntime, spec: ModelSpec, uploads: list[bytes], labels: np.ndarray) -> float:
    x = np.stack([preprocess(data, runtime.input_shape, spec.preprocessing, 40_000_000) for data in uploads])
    return float(np.mean(runtime.predict(x).argmax(axis=1) == labels))


def test_default_model_is_complete_and_compiled(spec: ModelSpec) -> None:
    assert spec.version == 1 and spec.labels == tuple(str(i) for i in range(10))
    for name in ("model.json", "weights.h5", "labels.txt", "model.yaml", "model.tflite", "model.tflite.json"):
        assert (spec.path / name).is_file(), name
    state, manifest = artifact_status(spec)
    assert state == "fresh", "retrained without recompiling: run `make train-digits`"
    assert manifest and manifest["runtime"] == "tflite" and manifest["verification"]["max_abs_diff"] <= 1e-4
    assert spec.preprocessing.invert and spec.title == "Handwritten digits"


@pytest.mark.parametrize("encode, size", [(to_png, 128), (to_png, 28), (to_jpeg, 300)])
def test_held_out_digits_as_uploads(runtime: LiteRTRuntime, spec: ModelSpec, digits_split,
                                    encode, size: int) -> None:
    _, _, x_test, y_test = digits_split
    assert accuracy(runtime, spec, [encode(render(d, size)) for d in x_test], y_test) >= 0.97


def test_printed_digits(runtime: LiteRTRuntime, spec: ModelSpec) -> None:
    labels = np.array([d for _ in range(3) for d in range(10)])
    sizes = [24] * 10 + [64] * 10 + [160] * 10
    uploads = [to_png(render_printed(int(d), size)) for size, d in zip(sizes, labels, strict=True)]
    assert accuracy(runtime, spec, uploads, labels) >= 0.9


DRAWN_PER_LABEL = 60  # 600 digits: one wrong answer moves the figure by 0.17 points
DRAWN_SEED = 2311


def test_digits_drawn_as_strokes(runtime: LiteRTRuntime, spec: ModelSpec, capsys: pytest.CaptureFixture) -> None:
    """Held out from all the model was trained on: pen strokes at any size and place (tests/support/strokes.py)."""
    uploads, labels = drawn_digits(DRAWN_PER_LABEL, DRAWN_SEED)
    x = np.stack([preprocess(data, runtime.input_shape, spec.preprocessing, 40_000_000) for data in uploads])
    predicted = runtime.predict(x).argmax(axis=1)
    score = float(np.mean(predicted == labels))
    per_label = " ".join(f"{d}:{np.mean(predicted[labels == d] == d):.0%}" for d in range(10))
    with capsys.disabled():  # the figure the README quotes, printed in every run
        print(f"\nheld-out drawn digits: {score:.1%} right (n={len(labels)}; {per_label})")
    assert spec.preprocessing.crop == "content"
    assert score >= 0.97
