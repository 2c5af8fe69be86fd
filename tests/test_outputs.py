"""Output kinds (util/serve/outputs.py), serving plans (util/serve/plan.py) and model.yaml validation.

Pure unit tests: no TensorFlow. Model directories are fakes (`model.json` holding "{}" and an
empty `weights.h5`), which is all `read_spec` looks at; the model facts are written by hand.
"""
from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pytest

from util.errors import ModelLoadError
from util.serve.outputs import KINDS, Outputs, check_kind, detect_kind
from util.serve.plan import make_plan
from util.serve.spec import ModelSpec, read_spec

RAW = np.array([[2.0, -1.0, 0.5], [0.0, 0.0, 0.0], [-30.0, 40.0, 1.0]])
ONE = np.array([[0.2], [0.9], [0.0]])


def softmax(x: np.ndarray) -> np.ndarray:
    e = np.exp(x - x.max(axis=1, keepdims=True))
    return e / e.sum(axis=1, keepdims=True)


def sigmoid(x: np.ndarray) -> np.ndarray:
    return 1.0 / (1.0 + np.exp(-x))


# kind -> (raw outputs, the expected per-label scores)
EXPECTED: dict[str, tuple[np.ndarray, np.ndarray]] = {
    "softmax": (softmax(RAW), softmax(RAW)),
    "logits": (RAW, softmax(RAW)),
    "binary": (ONE, np.concatenate([1 - ONE, ONE], axis=1)),
    "binary_logits": (np.array([[0.0], [2.0], [-3.0]]),
                      np.concatenate([1 - sigmoid(np.array([[0.0], [2.0], [-3.0]])),
                                      sigmoid(np.array([[0.0], [2.0], [-3.0]]))], axis=1)),
    "multilabel": (np.array([[0.9, 0.8, 0.1], [0.1, 0.1, 0.1]]), np.array([[0.9, 0.8, 0.1], [0.1, 0.1, 0.1]])),
    "multilabel_logits": (RAW, sigmoid(RAW)),
}


def test_every_kind_is_covered() -> None:
    assert set(EXPECTED) == set(KINDS)


@pytest.mark.parametrize("kind", sorted(KINDS))
def test_scores_per_kind(kind: str) -> None:
    raw, expected = EXPECTED[kind]
    scores = Outputs(kind).scores(raw.astype(np.float32))
    assert scores.dtype == np.float64
    assert scores.shape == expected.shape
    np.testing.assert_allclose(scores, expected, rtol=1e-6, atol=1e-7)


def test_logits_rows_sum_to_one_and_keep_order() -> None:
    scores = Outputs("logits").scores(RAW)
    np.testing.assert_allclose(scores.sum(axis=1), 1.0)
    assert list(scores.argmax(axis=1)) == list(RAW.argmax(axis=1))
    assert np.all(np.isfinite(Outputs("logits").scores(np.array([[1000.0, -1000.0]]))))


def test_binary_is_one_minus_p_then_p() -> None:
    scores = Outputs("binary").scores(np.array([[0.25]]))
    assert scores.tolist() == [[0.75, 0.25]]


def test_multilabel_is_not_renormalised() -> None:
    raw = np.array([[0.9, 0.8, 0.7]])
    scores = Outputs("multilabel").scores(raw)
    assert scores.sum() == pytest.approx(2.4)
    assert Outputs("multilabel").multilabel and Outputs("multilabel_logits").multilabel
    assert not Outputs("softmax").multilabel
    logits = Outputs("multilabel_logits").scores(np.array([[5.0, 5.0, 5.0]]))
    assert logits.sum() > 2.9  # each label its own sigmoid, never divided by the total


@pytest.mark.parametrize("activation, units, kind", [
    ("softmax", 3, "softmax"), ("softmax", 10, "softmax"), ("sigmoid", 1, "binary"), ("sigmoid", 4, "multilabel"),
    ("linear", 1, "binary_logits"), ("linear", 5, "logits")])
def test_detect_kind(activation: str, units: int, kind: str) -> None:
    assert detect_kind(activation, units) == kind


def test_detect_kind_refuses_relu_with_advice() -> None:
    with pytest.raises(ValueError, match="output:") as info:
        detect_kind("relu", 3)
    assert "relu" in str(info.value)


def test_check_kind() -> None:
    with pytest.raises(ValueError, match="exactly 2 labels"):
        check_kind("binary", 1, 3)
    with pytest.raises(ValueError, match="3 labels but the model outputs 4"):
        check_kind("softmax", 4, 3)
    with pytest.raises(ValueError):
        check_kind("multilabel", 2, 5)
    with pytest.raises(ValueError):
        check_kind("binary_logits", 2, 2)
    for kind, units, labels in [("binary", 1, 2), ("binary_logits", 1, 2), ("softmax", 3, 3),
                                ("logits", 5, 5), ("multilabel", 4, 4), ("multilabel_logits", 2, 2)]:
        check_kind(kind, units, labels)  # no error


# --- plans -----------------------------------------------------------------------------------------

def model_dir(root: Path, labels: int = 3, yaml: str | None = None, name: str = "m") -> Path:
    """A fake json-format model directory that read_spec accepts."""
    path = root / name
    path.mkdir()
    (path / "model.json").write_text("{}")
    (path / "weights.h5").write_bytes(b"")
    (path / "labels.txt").write_text("\n".join(f"l{i}" for i in range(labels)) + "\n")
    if yaml is not None:
        (path / "model.yaml").write_text(yaml)
    return path


def spec_of(root: Path, labels: int = 3, yaml: str | None = None) -> ModelSpec:
    return read_spec(model_dir(root, labels, yaml))


def facts(model_input: list[int | None], units: int = 3, activation: str = "softmax",
          in_model: str | None = None) -> dict[str, Any]:
    return {"model_input": model_input, "output": {"units": units, "activation": activation, "detected_from": "x"},
            "preprocessing_in_model": in_model}


def test_rank2_input_is_greyscale_without_channel_axis(tmp_path: Path) -> None:
    plan = make_plan(spec_of(tmp_path), facts([28, 28]))
    assert plan.image_shape == (28, 28, 1) and plan.tensor_shape == (28, 28)
    assert plan.size_from == "model"
    assert plan.outputs.kind == "softmax" and plan.output_from == "model (x)"
    assert make_plan(read_spec(model_dir(tmp_path, name="g")), facts([28, 28, 1])).tensor_shape == (28, 28, 1)


def test_unknown_size_defaults_to_224(tmp_path: Path) -> None:
    plan = make_plan(spec_of(tmp_path), facts([None, None, 3]))
    assert plan.image_shape == (224, 224, 3) and plan.tensor_shape == (224, 224, 3)
    assert "default" in plan.size_from


def test_unknown_size_from_model_yaml(tmp_path: Path) -> None:
    plan = make_plan(spec_of(tmp_path, yaml="preprocessing:\n  size: [40, 48]\n"), facts([None, None, 3]))
    assert plan.image_shape == (40, 48, 3)
    assert "model.yaml" in plan.size_from
    assert plan.to_dict()["image_shape"] == [40, 48, 3]


def test_fixed_size_model_refuses_other_yaml_size(tmp_path: Path) -> None:
    spec = spec_of(tmp_path, yaml="preprocessing:\n  size: [40, 48]\n")
    with pytest.raises(ModelLoadError, match="differs from the model's fixed input 32x32"):
        make_plan(spec, facts([32, 32, 3]))
    assert make_plan(spec, facts([40, 48, 3])).image_shape == (40, 48, 3)  # the same size is fine


def test_scaling_inside_the_model_means_raw_pixels(tmp_path: Path) -> None:
    plan = make_plan(spec_of(tmp_path), facts([8, 8, 3], in_model="Rescaling layer 'r'"))
    assert plan.preprocessing.scale == "raw"
    assert plan.scale_from.startswith("model") and "Rescaling" in plan.scale_from
    assert plan.warnings == ()
    plain = make_plan(read_spec(model_dir(tmp_path, name="plain")), facts([8, 8, 3]))
    assert plain.preprocessing.scale == "unit" and plain.scale_from == "default"


def test_explicit_scale_with_in_model_scaling_warns(tmp_path: Path) -> None:
    spec = spec_of(tmp_path, yaml="preprocessing:\n  scale: unit\n")
    plan = make_plan(spec, facts([8, 8, 3], in_model="Rescaling layer 'r'"))
    assert plan.preprocessing.scale == "unit" and plan.scale_from == "model.yaml"
    assert len(plan.warnings) == 1 and "scaled twice" in plan.warnings[0]
    assert plan.to_dict()["warnings"] == list(plan.warnings)


def test_yaml_output_overrides_detection_with_threshold(tmp_path: Path) -> None:
    plan = make_plan(spec_of(tmp_path, yaml="output: multilabel\nthreshold: 0.7\n"), facts([8, 8, 3]))
    assert plan.outputs.kind == "multilabel" and plan.output_from == "model.yaml"
    assert plan.outputs.threshold == 0.7 and plan.outputs.multilabel
    assert plan.to_dict()["threshold"] == 0.7


def test_one_sigmoid_unit_with_three_labels_names_the_directory(tmp_path: Path) -> None:
    spec = spec_of(tmp_path)
    with pytest.raises(ModelLoadError, match="exactly 2 labels") as info:
        make_plan(spec, facts([8, 8, 3], units=1, activation="sigmoid"))
    assert str(spec.path) in info.value.message and info.value.model_dir == str(spec.path)


def test_four_channels_are_refused(tmp_path: Path) -> None:
    with pytest.raises(ModelLoadError, match="not an image"):
        make_plan(spec_of(tmp_path), facts([8, 8, 4]))


@pytest.mark.parametrize("yaml, message", [
    ("output: bogus\n", "output must be one of"),
    ("threshold: 2\n", "threshold must be a number from 0 to 1"),
    ("threshold: true\n", "threshold must be a number from 0 to 1"),
    ("preprocessing:\n  size: [0, 10]\n", "preprocessing.size"),
])
def test_read_spec_refuses_bad_model_yaml(tmp_path: Path, yaml: str, message: str) -> None:
    path = model_dir(tmp_path, yaml=yaml)
    with pytest.raises(ModelLoadError, match=message) as info:
        read_spec(path)
    assert str(path) in info.value.message and "model.yaml" in info.value.message
