"""Occlusion sensitivity: which parts of an image a prediction depends on.

The model's input image is cut into a grid of cells; each cell in turn is replaced by the
image's mean colour and the image classified again. A cell's value is how much the chosen
label's score drops without it (negative: the label gains): its confidence, or its log-odds,
which keep telling regions apart where a confident model's probability stays at 1.0. Every pass goes through the
model's own prediction path (`ServedModel.scores`), in batches, so what is explained is
exactly what is served. The cost is grid x grid + 1 forward passes, bounded by
EXPLANATION_MAX_PASSES.
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import numpy as np

from util.errors import InvalidParameter

if TYPE_CHECKING:
    from util.serve.served import ServedModel

# Rows per runtime call: large enough to amortise the call, small enough to interleave with
# other requests between chunks (a chunk of 224x224x3 floats is 9.6 MB).
CHUNK = 16
MEASURES = ("confidence", "log_odds")
TINY = 1e-30  # a score of 0 in float32 is "below 1e-30", not minus infinity


@dataclass(frozen=True)
class Explanation:
    """An occlusion map for one label of one image."""

    label: str
    index: int
    baseline: float  # the label's score on the whole image
    drops: np.ndarray  # (rows, cols): the baseline minus the label's score with that cell occluded
    passes: int  # forward passes run, the whole image included
    measure: str = "confidence"

    def to_dict(self) -> dict[str, Any]:
        return {"label": self.label, "baseline_confidence": self.baseline, "measure": self.measure,
                "shape": list(self.drops.shape), "grid": self.drops.tolist(), "passes": self.passes,
                "occlusion": "mean colour"}


def max_grid(image_shape: tuple[int, int, int], max_passes: int) -> int:
    """The largest grid a model allows: grid x grid passes within the bound, a cell at least a pixel."""
    return max(1, min(math.isqrt(max(1, max_passes)), image_shape[0], image_shape[1]))


def grid_bound(model: ServedModel) -> int:
    """The largest grid `model` allows, known before it is loaded (from its compiled manifest) where possible."""
    plan = model.plan_hint()
    # An unreadable manifest: the bound is checked again, exactly, once loaded.
    return max_grid(plan.image_shape if plan else (4096, 4096, 3), model.settings["EXPLANATION_MAX_PASSES"])


def cells(height: int, width: int, grid: int) -> list[tuple[slice, slice]]:
    """The grid's cells in row-major order, as slices of the model's input image."""
    rows = np.linspace(0, height, grid + 1).round().astype(int)
    cols = np.linspace(0, width, grid + 1).round().astype(int)
    return [(slice(rows[r], rows[r + 1]), slice(cols[c], cols[c + 1])) for r in range(grid) for c in range(grid)]


def occluded(x: np.ndarray, patches: list[tuple[slice, slice]]) -> np.ndarray:
    """Copies of `x` (H, W, C), one per patch, each with that patch set to the image's mean colour."""
    fill = x.reshape(-1, x.shape[-1]).mean(axis=0)
    batch = np.repeat(x[None], len(patches), axis=0)
    for i, (rows, cols) in enumerate(patches):
        batch[i, rows, cols, :] = fill
    return batch


def evidence(scores: np.ndarray, index: int, multilabel: bool) -> np.ndarray:
    """Per row, the log-odds of label `index`: log p - log(the other labels' total, or 1 - p if multi-label)."""
    s = scores.astype(np.float64)
    p = s[:, index]
    # The others are summed directly: 1 - p would round to 0 when p rounds to 1.0.
    rest = 1.0 - p if multilabel else np.delete(s, index, axis=1).sum(axis=1)
    return np.log(np.maximum(p, TINY)) - np.log(np.maximum(rest, TINY))


def explain(model: ServedModel, x: np.ndarray, grid: int | None = None, label: int | None = None,
            measure: str = "confidence") -> Explanation:
    """The occlusion map of prepared image `x` (H, W, C) on a grid x grid grid (default EXPLANATION_GRID, within
    the bound), for the label at index `label` (default: the top one), in `measure` (confidence or log_odds)."""
    if measure not in MEASURES:
        raise InvalidParameter(f"measure must be one of {', '.join(MEASURES)}, not {measure!r}")
    limit = model.settings["EXPLANATION_MAX_PASSES"]
    allowed = max_grid(x.shape, limit)
    grid = min(model.settings["EXPLANATION_GRID"], allowed) if grid is None else grid
    if not 1 <= grid <= allowed:
        raise InvalidParameter(f"grid must be from 1 to {allowed} for model {model.spec.name} (at most "
                               f"EXPLANATION_MAX_PASSES={limit} occluded passes, a cell at least one pixel), "
                               f"got {grid}")
    if label is not None and not 0 <= label < len(model.spec.labels):
        raise InvalidParameter(f"label index {label} is out of range for model {model.spec.name}")
    patches = cells(x.shape[0], x.shape[1], grid)
    # The whole image rides in the first chunk: one batch fewer than running it alone. Not watched: occluded
    # images are no answers, and would swamp the label mix in /metrics.
    rows = [model.scores(np.concatenate([x[None], occluded(x, patches[:CHUNK - 1])]), watch=False)]
    for start in range(CHUNK - 1, len(patches), CHUNK):
        rows.append(model.scores(occluded(x, patches[start:start + CHUNK]), watch=False))
    scores = np.concatenate(rows)
    index = int(np.argmax(scores[0])) if label is None else label
    assert model.plan is not None
    values = (scores[:, index].astype(np.float64) if measure == "confidence"
              else evidence(scores, index, model.plan.outputs.multilabel))
    drops = (values[0] - values[1:]).reshape(grid, grid)
    return Explanation(model.spec.labels[index], index, float(scores[0, index]), drops, len(scores), measure)
