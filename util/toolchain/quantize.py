"""Quantized artifacts (model.yaml `quantize`): float16 weights, or full-integer int8 calibrated on
the model's own `samples/` through its own preprocessing, served only when it agrees with Keras.

Measured on MobileNetV2-224, 1 thread: fp32 3.1 ms, int8 1.5 ms, float16 3.3 ms (half the size);
dynamic-range quantization 9.1 ms, so it is not offered.
"""
from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np

from util.errors import ModelLoadError
from util.serve import probes
from util.serve.image import preprocess_image
from util.serve.plan import Plan

MIN_SAMPLES = 20  # images to calibrate int8 activations on; fewer leave ranges to chance


def configure(converter: Any, quantize: str, representative: np.ndarray | None) -> None:
    """Set a TFLiteConverter up for `quantize`; inputs and outputs stay float32 either way."""
    import tensorflow as tf
    if quantize == "none":
        return
    converter.optimizations = [tf.lite.Optimize.DEFAULT]
    if quantize == "float16":
        converter.target_spec.supported_types = [tf.float16]
        return
    assert representative is not None

    def dataset() -> Iterator[list[np.ndarray]]:
        for x in representative:
            yield [x[None].astype(np.float32)]
    converter.representative_dataset = dataset
    converter.target_spec.supported_ops = [tf.lite.OpsSet.TFLITE_BUILTINS_INT8]


def calibration_images(plan: Plan, samples_dir: Path, path: Path) -> np.ndarray:
    """The model's samples, preprocessed as the server does, in the model's input shape."""
    images = probes.samples(samples_dir)
    if len(images) < MIN_SAMPLES:
        raise ModelLoadError(path, f"quantize: int8 needs at least {MIN_SAMPLES} representative images in "
                                   f"{samples_dir.name}/ (found {len(images)}): add real inputs of the kind the "
                                   "model will see, or use quantize: float16")
    x = np.stack([preprocess_image(image, plan.image_shape, plan.preprocessing) for _, image in images])
    return x.reshape(len(x), *plan.tensor_shape).astype(np.float32)
