"""One module per save format behind one small interface: `load(spec)` -> a `Source`.

A Source gives the compiler what it needs of any model: its facts (input shape, output
units and activation, preprocessing inside the model), Keras' own outputs on a batch (the
reference), and a TFLite flatbuffer. TensorFlow is imported inside functions only.
"""
from __future__ import annotations

import importlib
from typing import Any, Protocol

import numpy as np

from util.errors import ModelLoadError
from util.serve.spec import ModelSpec

LOADERS = {"json": "json_weights", "hdf5": "hdf5", "keras": "keras_archive", "savedmodel": "savedmodel"}


class Source(Protocol):
    keras_format: str  # what read it: "keras 3", "tf.keras 2" or "tensorflow saved_model"

    def facts(self) -> dict[str, Any]:
        """{"model_input": [H, W(, C)] with None for unknown, "output": {units, activation, detected_from},
        "preprocessing_in_model": description or None}."""
        ...

    def reference(self, batch: np.ndarray) -> np.ndarray:
        """The model's own raw outputs for a batch in its input shape."""
        ...

    def convert(self, quantize: str = "none", representative: np.ndarray | None = None) -> bytes:
        """The TFLite flatbuffer: float32, float16 weights, or full-integer int8 with float input and output
        (calibrated on `representative`, images in the model's input shape)."""
        ...


def load(spec: ModelSpec) -> Source:
    """Load `spec`'s model for compiling or the Keras runtime; ModelLoadError names what is wrong."""
    if spec.format == "tflite":
        raise ModelLoadError(spec.path, f"{spec.source.name} is a bare .tflite: there is no source model to load")
    module = importlib.import_module(f"util.toolchain.formats.{LOADERS[spec.format]}")
    return module.load(spec)
