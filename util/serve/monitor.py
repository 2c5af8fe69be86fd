"""Watching the answers: what one model version answers, in /metrics, and whether its label mix drifts.

`ServedModel.scores` hands every batch of per-label scores that a prediction route answers to
`Monitor.observe`, once per image, so the native, TF Serving and V2 routes count alike (the
occluded passes of an explanation are not answers and are not observed). An answer is the
top-1 of the ranked list, the `label` and `confidence` of the native body, whatever the output
kind: for a multi-label model it is the strongest label's own score.

Drift is the total variation distance between the label mix of the last `window` answers and
the baseline, the mix of the first `window` answers this worker gave for the version. Each
worker keeps its own (no state is shared between processes); the gauge is absent until the
baseline and one full window exist. README "Watching the answers" says why this baseline.
"""
from __future__ import annotations

import threading
from collections import deque

import numpy as np
from prometheus_client import Counter

from util import metrics
from util.serve.metadata import Monitoring
from util.serve.spec import ModelSpec


def total_variation(p: np.ndarray, q: np.ndarray) -> float:
    """Half the L1 distance between two label distributions (counts are normalised): 0 same, 1 disjoint."""
    p, q = np.asarray(p, dtype=np.float64), np.asarray(q, dtype=np.float64)
    return float(0.5 * np.abs(p / p.sum() - q / q.sum()).sum())


class Drift:
    """The label mix of a sliding window of answers against a baseline: the first `window` answers."""

    def __init__(self, labels: int, window: int) -> None:
        self.window = window
        self.baseline = np.zeros(labels, dtype=np.int64)
        self.seen = 0  # answers in the baseline so far
        self.recent: deque[int] = deque(maxlen=window)
        self.counts = np.zeros(labels, dtype=np.int64)  # the window's label counts, kept as it slides

    @property
    def ready(self) -> bool:
        """Whether the baseline and a full window exist (before that, a distance would be noise)."""
        return self.seen == self.window and len(self.recent) == self.window

    def add(self, label: int) -> float | None:
        """Count one answer's label index; the distance once ready, else None."""
        if self.seen < self.window:
            self.baseline[label] += 1
            self.seen += 1
            return None
        if len(self.recent) == self.window:
            self.counts[self.recent[0]] -= 1  # the deque drops it on append
        self.recent.append(label)
        self.counts[label] += 1
        return self.distance()

    def distance(self) -> float | None:
        """Total variation distance between the window's label mix and the baseline's; None until ready."""
        return total_variation(self.counts, self.baseline) if self.ready else None


class Monitor:
    """One model version's answers: top-1 confidence, label counts, low-confidence answers and drift."""

    def __init__(self, spec: ModelSpec, settings: Monitoring | None = None) -> None:
        self.name, self.version = spec.name, str(spec.version)
        self.labels = spec.labels
        self.settings = settings or spec.monitoring
        self.drift = Drift(len(spec.labels), self.settings.window)
        self._counters: dict[int, Counter] = {}
        # Request threads of one worker share the window; the metrics have their own locks.
        self._lock = threading.Lock()

    def observe(self, scores: np.ndarray) -> None:
        """Record the answers for per-label scores (N, labels): one observation per image."""
        if not len(scores):
            return
        top = np.argmax(scores, axis=1)  # the first of equal scores, as ServedModel.ranked orders ties
        confidence = scores[np.arange(len(scores)), top]
        histogram = metrics.ANSWER_CONFIDENCE.labels(self.name, self.version)
        for value in confidence:
            histogram.observe(float(value))
        low = int((confidence < self.settings.low_confidence).sum())
        if low:
            metrics.LOW_CONFIDENCE.labels(self.name, self.version).inc(low)
        indices, counts = np.unique(top, return_counts=True)
        for index, count in zip(indices.tolist(), counts.tolist(), strict=True):
            self._counter(index).inc(count)
        with self._lock:  # set under the lock too, so a later window's distance is never overwritten
            distance = None
            for index in top.tolist():
                distance = self.drift.add(index)
            if distance is not None:  # only once ready: the series stays absent before
                metrics.ANSWER_DRIFT.labels(self.name, self.version).set(distance)

    def _counter(self, index: int) -> Counter:
        # Children are made on first use: a 1000-label model does not publish 1000 zero series up front.
        child = self._counters.get(index)
        if child is None:
            child = self._counters[index] = metrics.ANSWERS.labels(self.name, self.version, self.labels[index])
        return child
