"""Adaptive micro-batching, applied as a wrapper around any runtime (which never knows).

Requests that are being decoded announce themselves (`incoming()`); the batch thread runs
what is queued at once when nobody else is on the way, and otherwise waits up to
`max_batch_delay_ms` for them, so a lone request never waits and a crowd shares one invoke.
"""
from __future__ import annotations

import logging
import threading
import time
from collections import deque
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from util import metrics
from util.errors import InferenceError, NotReady
from util.serve.runtimes import Runtime

log = logging.getLogger(__name__)


@dataclass
class _Request:
    batch: np.ndarray
    done: threading.Event = field(default_factory=threading.Event)
    result: np.ndarray | None = None
    error: Exception | None = None


class BatchingRuntime(Runtime):
    """Queue single requests, run them in batches of up to `max_batch_size` samples."""

    def __init__(self, runtime: Runtime, max_batch_size: int, max_batch_delay_ms: float, name: str = "model") -> None:
        if max_batch_size < 1 or max_batch_delay_ms < 0:
            raise ValueError("max_batch_size must be >= 1 and max_batch_delay_ms >= 0")
        self.runtime = runtime
        self.kind = runtime.kind
        self.input_shape = runtime.input_shape
        self.output_units = runtime.output_units
        self.max_batch_size = max_batch_size
        self.max_batch_delay = max_batch_delay_ms / 1000
        self._queue: deque[_Request] = deque()
        self._incoming = 0  # requests being decoded that will be queued soon
        self._cond = threading.Condition()
        self._closed = False
        self.batches: deque[int] = deque(maxlen=1000)  # recent batch sizes, for tests and stats
        self.name = name
        self._thread = threading.Thread(target=self._loop, name=f"batcher-{name}", daemon=True)
        self._thread.start()

    @contextmanager
    def incoming(self) -> Iterator[None]:
        """Wrap the preprocessing of a request that will call `predict`."""
        with self._cond:
            self._incoming += 1
        try:
            yield
        finally:
            with self._cond:
                self._incoming -= 1
                self._cond.notify()

    @property
    def plan(self) -> dict | None:
        return self.runtime.plan

    def predict(self, batch: np.ndarray) -> np.ndarray:
        request = _Request(batch)
        with self._cond:
            if self._closed:
                raise NotReady("the server is shutting down")
            self._queue.append(request)
            self._cond.notify()
        request.done.wait()
        if request.error is not None:
            raise request.error
        assert request.result is not None
        return request.result

    def close(self, timeout: float | None = 30) -> None:
        """Stop accepting requests, finish every queued one, then stop the thread."""
        with self._cond:
            self._closed = True
            self._cond.notify_all()
        self._thread.join(timeout)

    def _queued_samples(self) -> int:
        return sum(len(r.batch) for r in self._queue)

    def _next_batch(self) -> list[_Request] | None:
        with self._cond:
            while not self._queue:
                if self._closed:
                    return None
                self._cond.wait()
            deadline = time.monotonic() + self.max_batch_delay
            while self._incoming and self._queued_samples() < self.max_batch_size:
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    break
                self._cond.wait(remaining)
            taken: list[Any] = []
            size = 0
            while self._queue and (not taken or size + len(self._queue[0].batch) <= self.max_batch_size):
                request = self._queue.popleft()
                taken.append(request)
                size += len(request.batch)
            return taken

    def _loop(self) -> None:
        while (requests := self._next_batch()) is not None:
            self._run(requests)

    def _run(self, requests: list[_Request]) -> None:
        sizes = [len(r.batch) for r in requests]
        self.batches.append(sum(sizes))
        metrics.BATCH_SIZE.labels(self.name).observe(sum(sizes))
        try:
            outputs = self.runtime.predict(np.concatenate([r.batch for r in requests]))
            if len(outputs) != sum(sizes):
                raise ValueError(f"runtime returned {len(outputs)} rows for {sum(sizes)} inputs")
        except Exception as exc:  # fail this batch's requests only; the thread lives on
            log.exception("model %s: inference failed for a batch of %d", self.name, len(requests))
            error = InferenceError(f"inference failed for a batch of {len(requests)} request(s): {exc}")
            for request in requests:
                request.error = error
                request.done.set()
            return
        start = 0
        for request, size in zip(requests, sizes, strict=True):
            request.result = outputs[start:start + size]
            start += size
            request.done.set()
