"""Output interpretation: what a model's raw output vector means, decided once at load.

The kind is read off the model at compile time (its last activation and unit count),
written to the manifest, and may be overridden by model.yaml `output:`. Every route turns
raw outputs into per-label scores through `Outputs.scores`, never by guessing per request.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

import numpy as np

Kind = Literal["softmax", "logits", "binary", "binary_logits", "multilabel", "multilabel_logits"]  # KINDS' keys
# kind -> what the raw outputs are
KINDS = {
    "softmax": "class probabilities (softmax): served as they are",
    "logits": "class logits (linear last layer): softmax applied",
    "binary": "one sigmoid unit: p for the second label, 1 - p for the first",
    "binary_logits": "one linear unit (from_logits=True): sigmoid applied, then as binary",
    "multilabel": "independent sigmoid units: each label's own score, never renormalised",
    "multilabel_logits": "independent linear units trained with sigmoid cross-entropy: sigmoid applied",
}
MULTILABEL = ("multilabel", "multilabel_logits")


def detect_kind(activation: str, units: int) -> str:
    """The output kind for a last layer's activation ('softmax', 'sigmoid', 'linear') and unit count."""
    if activation == "softmax":
        return "softmax"
    if activation == "sigmoid":
        return "binary" if units == 1 else "multilabel"
    if activation == "linear":
        return "binary_logits" if units == 1 else "logits"
    raise ValueError(f"the last layer's activation is {activation!r}, which is not a classifier output "
                     f"(softmax, sigmoid or linear); if you know what the outputs mean, set `output:` in "
                     f"model.yaml to one of {list(KINDS)}")


def check_kind(kind: str, units: int, labels: int) -> None:
    """Raise ValueError (with what to do) when the kind, the output units and labels.txt disagree."""
    if kind in ("binary", "binary_logits"):
        if units != 1:
            raise ValueError(f"output {kind} needs one output unit; the model has {units}")
        if labels != 2:
            raise ValueError(f"the model has one sigmoid output unit, so labels.txt needs exactly 2 labels "
                             f"(the label for 0 first, then the label for 1); it has {labels}")
        return
    if kind in ("softmax", "logits") and units == 1:
        raise ValueError(f"{kind} over one unit is always 1.0; a single unit is binary (sigmoid) or binary_logits")
    if units != labels:
        raise ValueError(f"labels.txt has {labels} labels but the model outputs {units} values")


def _sigmoid(x: np.ndarray) -> np.ndarray:
    return 0.5 * (1.0 + np.tanh(0.5 * x))  # no overflow warnings for large |x|


@dataclass(frozen=True)
class Outputs:
    """How to read one model's outputs: the kind, and the threshold for multi-label answers."""

    kind: str
    threshold: float = 0.5

    @property
    def multilabel(self) -> bool:
        return self.kind in MULTILABEL

    def scores(self, raw: np.ndarray) -> np.ndarray:
        """Raw outputs (N, units) -> per-label scores (N, labels) as float64."""
        x = np.asarray(raw, dtype=np.float64).reshape(len(raw), -1)
        if self.kind == "softmax":
            return x
        if self.kind == "logits":
            shifted = np.exp(x - x.max(axis=1, keepdims=True))
            return shifted / shifted.sum(axis=1, keepdims=True)
        if self.kind in ("binary_logits", "multilabel_logits"):
            x = _sigmoid(x)
        if self.kind in ("binary", "binary_logits"):
            return np.concatenate([1.0 - x, x], axis=1)
        return x
