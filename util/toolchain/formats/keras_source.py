"""A loaded Keras model (Keras 3 or tf.keras 2) as a `Source`; what every Keras save format yields."""
from __future__ import annotations

import contextlib
import io
from typing import Any

import numpy as np

from util.toolchain import inspect


class KerasSource:
    def __init__(self, model: Any, keras_format: str) -> None:
        if len(model.inputs) != 1 or len(model.outputs) != 1:
            raise ValueError(f"the model has {len(model.inputs)} inputs and {len(model.outputs)} outputs; "
                             "one of each is served")
        self.model = model
        self.keras_format = keras_format

    def facts(self) -> dict[str, Any]:
        shape = self.model.inputs[0].shape[1:]
        activation, where = inspect.last_activation(self.model)
        return {"model_input": [None if d is None else int(d) for d in shape],
                "output": {"units": int(self.model.outputs[0].shape[-1]), "activation": activation,
                           "detected_from": where},
                "preprocessing_in_model": inspect.preprocessing_layer(self.model)}

    def reference(self, batch: np.ndarray) -> np.ndarray:
        return np.asarray(self.model(batch, training=False))

    def convert(self, quantize: str = "none", representative: np.ndarray | None = None) -> bytes:
        import tensorflow as tf

        from util.toolchain.quantize import configure
        converter = tf.lite.TFLiteConverter.from_keras_model(self.model)
        configure(converter, quantize, representative)
        with contextlib.redirect_stdout(io.StringIO()):  # Keras 3 prints the traced signature
            return converter.convert()
