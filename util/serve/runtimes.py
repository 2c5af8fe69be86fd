"""The Runtime interface and the LiteRT runtime (the Keras one is in util/toolchain/keras_runtime.py).

A runtime turns a float32 image batch (N, H, W, C) into the model's raw outputs (N, units).
It knows nothing about HTTP, images, output kinds or batching; util/serve/batching.py wraps it.
"""
from __future__ import annotations

import threading
import time
from contextlib import AbstractContextManager, nullcontext
from pathlib import Path
from typing import Any, Protocol

import numpy as np

from util.serve import activity, scheduling
from util.serve.scheduling import Lanes
from util.serve.spec import ModelSpec


class Runtime(Protocol):
    """What serving needs of a runtime; implementations subclass it for the no-op defaults."""

    kind: str
    input_shape: tuple[int, int, int]  # the image (height, width, channels) fed to `predict`
    output_units: int

    def predict(self, batch: np.ndarray) -> np.ndarray: ...

    def incoming(self) -> AbstractContextManager[None]:
        """Wraps the decoding of a request that will call `predict` (a batcher waits for it)."""
        return nullcontext()

    @property
    def plan(self) -> dict[str, Any] | None:
        """How inference runs (interpreters and threads), for metadata; None when not applicable."""
        return None

    def close(self) -> None:
        """Finish what is queued; called when the worker stops."""
        return None  # a default, not an abstract method: most runtimes queue nothing


class _Interpreter:
    """One LiteRT interpreter: one set of tensors, so one inference at a time."""

    def __init__(self, model: bytes, num_threads: int, shape: tuple[int, ...] | None = None) -> None:
        from ai_edge_litert.interpreter import Interpreter

        self.threads = num_threads
        self.interpreter = Interpreter(model_content=model, num_threads=num_threads)
        self.input = self.interpreter.get_input_details()[0]
        self.output = self.interpreter.get_output_details()[0]
        self.batch = int(self.input["shape"][0])
        # A model of unknown height/width is planned for the size it is served at.
        self.shape = tuple(shape) if shape else tuple(int(d) for d in self.input["shape"][1:])
        if self.shape != tuple(int(d) for d in self.input["shape"][1:]):
            self.interpreter.resize_tensor_input(self.input["index"], [self.batch, *self.shape])
        self.interpreter.allocate_tensors()

    def run(self, batch: np.ndarray) -> np.ndarray:
        if batch.shape[0] != self.batch:
            # Re-planning costs milliseconds; batch sizes repeat under load.
            self.interpreter.resize_tensor_input(self.input["index"], [batch.shape[0], *self.shape])
            self.interpreter.allocate_tensors()
            self.batch = batch.shape[0]
        self.interpreter.set_tensor(self.input["index"], batch)
        self.interpreter.invoke()  # releases the GIL: lanes run in parallel
        return np.array(self.interpreter.get_tensor(self.output["index"]))


class LiteRTRuntime(Runtime):
    """A TFLite flatbuffer on LiteRT (XNNPACK on CPU), with `lanes` interpreters run in parallel.

    Each lane has `lane_threads` threads. A request that finds no other inference running
    anywhere in the server (util.serve.activity) gets a solo interpreter with `solo_threads`
    instead: all the cores when idle, none oversubscribed when busy. The interpreters share
    one model buffer.
    """

    kind = "tflite"

    def __init__(self, model: Path | bytes, lane_threads: int = 1, lanes: int = 1, solo_threads: int = 0,
                 solo_min_speedup: float = 1.25, tensor_shape: tuple[int, ...] | None = None) -> None:
        self._model = model if isinstance(model, bytes) else Path(model).read_bytes()
        self.solo_speedup: float | None = None
        self.runs = {"solo": 0, "lane": 0}  # diagnostics: which interpreters served requests
        self._lanes = [_Interpreter(self._model, lane_threads, tensor_shape) for _ in range(max(1, lanes))]
        self._free = Lanes(list(self._lanes))  # by priority, oldest first (util/serve/scheduling.py)
        self._tensor_shape = self._lanes[0].shape
        shape = (*self._tensor_shape, 1) if len(self._tensor_shape) == 2 else self._tensor_shape
        if len(shape) != 3:
            raise ValueError(f"expected an image input (height, width[, channels]), got {self._tensor_shape}")
        self.input_shape: tuple[int, int, int] = shape
        self.output_units = int(self._lanes[0].output["shape"][-1])
        self._solo = self._solo_if_faster(solo_threads, solo_min_speedup) if solo_threads > lane_threads else None
        self._solo_busy = threading.Lock()  # one inference at a time on it

    def _solo_if_faster(self, threads: int, min_speedup: float) -> _Interpreter | None:
        """A solo interpreter, kept only if it is `min_speedup` times as fast as a lane (small models
        gain nothing from more threads, and the interpreter costs memory)."""
        solo, x = _Interpreter(self._model, threads, self._tensor_shape), np.zeros((1, *self._tensor_shape), np.float32)

        def once(interpreter: _Interpreter) -> float:
            start = time.perf_counter()
            interpreter.run(x)
            return time.perf_counter() - start
        with activity.alone():  # workers starting together would otherwise skew each other's timing
            self._lanes[0].run(x)  # the first run sets XNNPACK up
            solo.run(x)
            # Alternating, so a disturbance (another worker still importing) hits both alike; the
            # fastest of each is its least disturbed run: noise only ever adds time.
            pairs = [(once(self._lanes[0]), once(solo)) for _ in range(9)]
        lane, alone = min(p[0] for p in pairs), min(p[1] for p in pairs)
        self.solo_speedup = round(lane / alone, 2)
        return solo if lane >= min_speedup * alone else None

    @property
    def plan(self) -> dict[str, object]:
        """How inference runs: lanes, threads per lane, threads for a request at an idle server."""
        return {"lanes": len(self._lanes), "lane_threads": self._lanes[0].threads,
                "solo_threads": self._solo.threads if self._solo else None, "solo_speedup": self.solo_speedup}

    def _acquire(self) -> _Interpreter:
        ticket = scheduling.ticket()
        ticket.check("before its inference started")
        alone = activity.start(solo_possible=self._solo is not None)
        # The all-cores interpreter serves a request alone in the server, and a `high` one whenever it is
        # free: a person need not wait behind the batch work on the lanes (whose threads run niced).
        if self._solo is not None and (alone or ticket.priority == scheduling.PRIORITIES["high"]) and \
                self._solo_busy.acquire(blocking=False):
            self.runs["solo"] += 1
            return self._solo
        try:
            lane = self._free.acquire(ticket)
        except BaseException:
            activity.finish()
            raise
        self.runs["lane"] += 1
        return lane

    def _release(self, interpreter: _Interpreter) -> None:
        activity.finish()
        if interpreter is self._solo:
            self._solo_busy.release()
        else:
            self._free.release(interpreter)

    def predict(self, batch: np.ndarray) -> np.ndarray:
        # (N, H, W, 1) images for a model that takes (N, H, W): the channel axis is ours.
        batch = np.ascontiguousarray(batch, dtype=np.float32).reshape(len(batch), *self._tensor_shape)
        interpreter = self._acquire()
        try:
            return interpreter.run(batch)
        finally:
            self._release(interpreter)


def open_runtime(spec: ModelSpec, kind: str, tensor_shape: tuple[int, ...],
                 plan: tuple[int, int, int] = (1, 1, 0)) -> Runtime:
    """Create a runtime of `kind` for `spec` ((lane threads, lanes, solo threads) for LiteRT)."""
    if kind == "tflite":
        return LiteRTRuntime(spec.artifact, *plan, tensor_shape=tensor_shape)
    # The Keras runtime is the tool chain itself (TensorFlow): only for MODEL_RUNTIME=keras and fallbacks.
    from util.toolchain.keras_runtime import KerasRuntime
    return KerasRuntime(spec, tensor_shape)
