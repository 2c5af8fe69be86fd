"""The Runtime interface and its two implementations: LiteRT (served) and Keras (reference).

A runtime turns a float32 batch (N, H, W, C) into class probabilities (N, classes). It knows
nothing about HTTP, images or batching; util/batching.py wraps it.
"""
from __future__ import annotations

import threading
import time
from pathlib import Path
from typing import Protocol

import numpy as np

from util import activity
from util.models import ModelSpec, check_outputs, load_keras


class Runtime(Protocol):
    kind: str
    input_shape: tuple[int, int, int]
    output_units: int

    def predict(self, batch: np.ndarray) -> np.ndarray: ...


class _Interpreter:
    """One LiteRT interpreter: one set of tensors, so one inference at a time."""

    def __init__(self, model: bytes, num_threads: int) -> None:
        from ai_edge_litert.interpreter import Interpreter

        self.threads = num_threads
        self.interpreter = Interpreter(model_content=model, num_threads=num_threads)
        self.interpreter.allocate_tensors()
        self.input = self.interpreter.get_input_details()[0]
        self.output = self.interpreter.get_output_details()[0]
        self.batch = int(self.input["shape"][0])

    def run(self, batch: np.ndarray) -> np.ndarray:
        if batch.shape[0] != self.batch:
            # Re-planning costs milliseconds; batch sizes repeat under load.
            self.interpreter.resize_tensor_input(self.input["index"], list(batch.shape))
            self.interpreter.allocate_tensors()
            self.batch = batch.shape[0]
        self.interpreter.set_tensor(self.input["index"], batch)
        self.interpreter.invoke()  # releases the GIL: lanes run in parallel
        return np.array(self.interpreter.get_tensor(self.output["index"]))


class LiteRTRuntime:
    """A TFLite flatbuffer on LiteRT (XNNPACK on CPU), with `lanes` interpreters run in parallel.

    Each lane has `lane_threads` threads. A request that finds no other inference running
    anywhere in the server (util.activity) gets a solo interpreter with `solo_threads`
    instead: all the cores when idle, none oversubscribed when busy. The interpreters share
    one model buffer.
    """

    kind = "tflite"

    def __init__(self, model: Path | bytes, lane_threads: int = 1, lanes: int = 1, solo_threads: int = 0,
                 solo_min_speedup: float = 1.25) -> None:
        self._model = model if isinstance(model, bytes) else Path(model).read_bytes()
        self.solo_speedup: float | None = None
        self.runs = {"solo": 0, "lane": 0}  # diagnostics: which interpreters served requests
        self._lanes = [_Interpreter(self._model, lane_threads) for _ in range(max(1, lanes))]
        self._idle = list(self._lanes)
        self._changed = threading.Condition()
        shape = tuple(int(d) for d in self._lanes[0].input["shape"][1:])
        if len(shape) != 3:
            raise ValueError(f"expected an image input (height, width, channels), got {shape}")
        self.input_shape: tuple[int, int, int] = shape  # type: ignore[assignment]
        self.output_units = int(self._lanes[0].output["shape"][-1])
        self._solo = self._solo_if_faster(solo_threads, solo_min_speedup) if solo_threads > lane_threads else None

    def _solo_if_faster(self, threads: int, min_speedup: float) -> _Interpreter | None:
        """A solo interpreter, kept only if it is `min_speedup` times as fast as a lane (small models
        gain nothing from more threads, and the interpreter costs memory)."""
        solo, x = _Interpreter(self._model, threads), np.zeros((1, *self.input_shape), np.float32)

        def fastest_s(interpreter: _Interpreter) -> float:
            interpreter.run(x)  # the first run sets XNNPACK up
            times = []
            for _ in range(7):
                start = time.perf_counter()
                interpreter.run(x)
                times.append(time.perf_counter() - start)
            return min(times)  # the least disturbed run: noise only ever adds time
        with activity.alone():  # workers starting together would otherwise skew each other's timing
            lane, alone = fastest_s(self._lanes[0]), fastest_s(solo)
        self.solo_speedup = round(lane / alone, 2)
        return solo if lane >= min_speedup * alone else None

    @property
    def plan(self) -> dict[str, object]:
        """How inference runs: lanes, threads per lane, threads for a request at an idle server."""
        return {"lanes": len(self._lanes), "lane_threads": self._lanes[0].threads,
                "solo_threads": self._solo.threads if self._solo else None, "solo_speedup": self.solo_speedup}

    def _acquire(self) -> _Interpreter:
        if activity.start(solo_possible=self._solo is not None):
            self.runs["solo"] += 1
            return self._solo  # type: ignore[return-value]
        with self._changed:
            while not self._idle:
                self._changed.wait()
            self.runs["lane"] += 1
            return self._idle.pop()

    def _release(self, interpreter: _Interpreter) -> None:
        activity.finish()
        if interpreter is not self._solo:
            with self._changed:
                self._idle.append(interpreter)
                self._changed.notify()

    def predict(self, batch: np.ndarray) -> np.ndarray:
        batch = np.ascontiguousarray(batch, dtype=np.float32)
        interpreter = self._acquire()
        try:
            return interpreter.run(batch)
        finally:
            self._release(interpreter)


class KerasRuntime:
    """The Keras model itself: imports TensorFlow, so only for MODEL_RUNTIME=keras and fallbacks."""

    kind = "keras"

    def __init__(self, spec: ModelSpec) -> None:
        self._model = load_keras(spec)
        shape = tuple(int(d) for d in self._model.inputs[0].shape[1:])
        self.input_shape: tuple[int, int, int] = shape  # type: ignore[assignment]
        self.output_units = int(self._model.outputs[0].shape[-1])
        self._lock = threading.Lock()

    def predict(self, batch: np.ndarray) -> np.ndarray:
        with self._lock:
            return np.asarray(self._model(np.asarray(batch, dtype=np.float32), training=False))


def as_probabilities(outputs: np.ndarray) -> np.ndarray:
    """Softmax outputs pass through; logits (rows not summing to 1) get a softmax."""
    outputs = outputs.astype(np.float64).reshape(outputs.shape[0], -1)
    if outputs.min() >= 0 and np.abs(outputs.sum(axis=1) - 1.0).max() <= 1e-3:
        return outputs
    shifted = np.exp(outputs - outputs.max(axis=1, keepdims=True))
    return shifted / shifted.sum(axis=1, keepdims=True)


def open_runtime(spec: ModelSpec, kind: str, plan: tuple[int, int, int] = (1, 1, 0)) -> Runtime:
    """Create a runtime of `kind` for `spec` ((lane threads, lanes, solo threads) for LiteRT)."""
    runtime: Runtime = LiteRTRuntime(spec.artifact, *plan) if kind == "tflite" else KerasRuntime(spec)
    check_outputs(spec, runtime.output_units)
    return runtime
