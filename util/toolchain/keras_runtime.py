"""The model itself as a runtime (TensorFlow): for MODEL_RUNTIME=keras and models that cannot convert."""
from __future__ import annotations

import threading

import numpy as np

from util.serve.runtimes import Runtime
from util.serve.spec import ModelSpec
from util.toolchain import formats


class KerasRuntime(Runtime):
    kind = "keras"

    def __init__(self, spec: ModelSpec, tensor_shape: tuple[int, ...] = ()) -> None:
        self._source = formats.load(spec)
        self.facts = self._source.facts()
        dims = self.facts["model_input"]
        self._rank = len(dims)
        self.input_shape = (dims[0] or 0, dims[1] or 0, dims[2] if len(dims) == 3 else 1)
        self.output_units = int(self.facts["output"]["units"])
        self._lock = threading.Lock()

    def predict(self, batch: np.ndarray) -> np.ndarray:
        x = np.asarray(batch, dtype=np.float32)
        if self._rank == 2:  # (N, H, W, 1) images for a model that takes (N, H, W)
            x = x[..., 0]
        with self._lock:
            return self._source.reference(x)
