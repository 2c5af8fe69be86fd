"""The Runtime interface and its two implementations: LiteRT (served) and Keras (reference).

A runtime turns a float32 batch (N, H, W, C) into class probabilities (N, classes). It knows
nothing about HTTP, images or batching; util/batching.py wraps it.
"""
from __future__ import annotations

import threading
from pathlib import Path
from typing import Any, Protocol

import numpy as np

from util.models import ModelSpec, check_outputs, load_keras


class Runtime(Protocol):
    kind: str
    input_shape: tuple[int, int, int]
    output_units: int

    def predict(self, batch: np.ndarray) -> np.ndarray: ...


class LiteRTRuntime:
    """A TFLite flatbuffer on LiteRT's interpreter (XNNPACK on CPU); serialised by a lock."""

    kind = "tflite"

    def __init__(self, model: Path | bytes, num_threads: int = 1) -> None:
        from ai_edge_litert.interpreter import Interpreter

        source: dict[str, Any] = {"model_content": model} if isinstance(model, bytes) else {"model_path": str(model)}
        self._interpreter = Interpreter(num_threads=num_threads, **source)
        self._interpreter.allocate_tensors()
        self._input = self._interpreter.get_input_details()[0]
        self._output = self._interpreter.get_output_details()[0]
        self._batch = int(self._input["shape"][0])
        self._lock = threading.Lock()  # one interpreter holds one set of tensors
        shape = tuple(int(d) for d in self._input["shape"][1:])
        if len(shape) != 3:
            raise ValueError(f"expected an image input (height, width, channels), got {shape}")
        self.input_shape: tuple[int, int, int] = shape  # type: ignore[assignment]
        self.output_units = int(self._output["shape"][-1])

    def predict(self, batch: np.ndarray) -> np.ndarray:
        batch = np.ascontiguousarray(batch, dtype=np.float32)
        with self._lock:
            if batch.shape[0] != self._batch:
                # Re-planning is cheap next to inference, and sizes repeat under load.
                self._interpreter.resize_tensor_input(self._input["index"], list(batch.shape))
                self._interpreter.allocate_tensors()
                self._batch = batch.shape[0]
            self._interpreter.set_tensor(self._input["index"], batch)
            self._interpreter.invoke()
            return np.array(self._interpreter.get_tensor(self._output["index"]))


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
    if np.all(outputs >= 0) and np.allclose(outputs.sum(axis=1), 1.0, atol=1e-3):
        return outputs
    shifted = np.exp(outputs - outputs.max(axis=1, keepdims=True))
    return shifted / shifted.sum(axis=1, keepdims=True)


def open_runtime(spec: ModelSpec, kind: str, num_threads: int) -> Runtime:
    """Create a runtime of `kind` for `spec` and check it against the labels."""
    runtime: Runtime = LiteRTRuntime(spec.artifact, num_threads) if kind == "tflite" else KerasRuntime(spec)
    check_outputs(spec, runtime.output_units)
    return runtime
