"""Small models built and saved the way the Keras and TensorFlow tutorials build and save them.

Each builder writes one model directory and returns a `Tutorial`: the in-memory model's own
outputs (the reference), the preprocessing the test expects the server to choose, and how the
test itself reads the outputs. Weights are set so outputs differ between images: random deep
bases collapse to a constant, so the transfer-learning base has its batch-norm statistics
calibrated on varied images first.
"""
from __future__ import annotations

import contextlib
import io
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from util.serve.image import Preprocessing

FASHION = ("T-shirt/top", "Trouser", "Pullover", "Dress", "Coat", "Sandal", "Shirt", "Sneaker", "Bag", "Ankle boot")


def softmax(x: np.ndarray) -> np.ndarray:
    e = np.exp(x - x.max(axis=1, keepdims=True))
    return e / e.sum(axis=1, keepdims=True)


def sigmoid(x: np.ndarray) -> np.ndarray:
    return 1 / (1 + np.exp(-x))


@dataclass
class Tutorial:
    name: str
    labels: tuple[str, ...]
    model: Any  # what Keras computes: a callable on a batch in the model's own input shape
    image_shape: tuple[int, int, int]  # what the server should resize to
    preprocessing: Preprocessing  # what the server should do to the pixels
    read: Callable[[np.ndarray], np.ndarray]  # raw outputs -> per-label scores, written independently here
    expect: dict[str, Any] = field(default_factory=dict)  # metadata the server should report

    def reference(self, x: np.ndarray) -> np.ndarray:
        """Keras' scores for preprocessed images (N, H, W, C)."""
        if len(self.expect.get("model_input", [0, 0, 0])) == 2:
            x = x[..., 0]
        return self.read(np.asarray(self.model(x, training=False), dtype=np.float64).reshape(len(x), -1))


def _labels(path: Path, labels: tuple[str, ...], yaml: str = "") -> None:
    path.mkdir(parents=True, exist_ok=True)
    (path / "labels.txt").write_text("\n".join(labels) + "\n")
    if yaml:
        (path / "model.yaml").write_text(yaml)


def cats_vs_dogs(path: Path) -> Tutorial:
    """tf.keras 2, Rescaling inside, one sigmoid unit, saved whole with model.save('model.h5')."""
    import tf_keras
    tf_keras.utils.set_random_seed(1)
    layers = tf_keras.layers
    model = tf_keras.Sequential([layers.InputLayer((32, 32, 3)), layers.RandomFlip("horizontal"),
                                 layers.RandomRotation(0.1), layers.Rescaling(1.0 / 255),
                                 layers.Conv2D(8, 3, activation="relu"),
                                 layers.MaxPooling2D(), layers.Conv2D(8, 3, activation="relu"),
                                 layers.GlobalAveragePooling2D(), layers.Dense(1, activation="sigmoid")])
    kernel, bias = model.layers[-1].get_weights()
    model.layers[-1].set_weights([kernel * 20, bias - 1])
    _labels(path, ("cats", "dogs"))  # image_dataset_from_directory: class folders in alphabetical order
    model.save(str(path / "model.h5"))
    return Tutorial("cats_vs_dogs", ("cats", "dogs"), model, (32, 32, 3), Preprocessing(scale="raw"),
                    lambda raw: np.concatenate([1 - raw, raw], axis=1),
                    {"format": "hdf5", "output": "binary", "scale_from": "model"})


def tagger(path: Path) -> Tutorial:
    """Keras 3 multi-label: independent sigmoid units, model.json + weights."""
    import keras
    labels = ("red", "green", "blue", "bright")
    model = keras.Sequential([keras.Input((16, 16, 3)), keras.layers.GlobalAveragePooling2D(),
                              keras.layers.Dense(4, activation="sigmoid")])
    kernel = np.array([[8, -2, -2, 3], [-2, 8, -2, 3], [-2, -2, 8, 3]], np.float32)
    model.layers[-1].set_weights([kernel, np.array([-3, -3, -3, -5], np.float32)])
    _labels(path, labels, "title: Colour tags\nthreshold: 0.5\n")
    (path / "model.json").write_text(model.to_json())
    model.save_weights(str(path / "model.weights.h5"))
    return Tutorial("tagger", labels, model, (16, 16, 3), Preprocessing(), lambda raw: raw,
                    {"format": "json", "output": "multilabel", "scale_from": "default"})


def fashion_mnist(path: Path) -> Tutorial:
    """The Keras 3 basic classification tutorial: Flatten(input_shape=(28, 28)), logits out, saved whole as .h5."""
    import keras
    keras.utils.set_random_seed(2)
    with contextlib.redirect_stderr(io.StringIO()):  # Keras 3 warns about input_shape on a layer
        model = keras.Sequential([keras.layers.Flatten(input_shape=(28, 28)), keras.layers.Dense(32, activation="relu"),
                                  keras.layers.Dense(10)])
    kernel, bias = model.layers[-1].get_weights()
    model.layers[-1].set_weights([kernel * 3, bias])
    _labels(path, FASHION)
    model.save(str(path / "fashion.h5"))
    return Tutorial("fashion", FASHION, model, (28, 28, 1), Preprocessing(), softmax,
                    {"format": "hdf5", "output": "logits", "model_input": [28, 28], "scale_from": "default"})


def transfer_learning(path: Path) -> Tutorial:
    """Keras 3: augmentation, Rescaling, a keras.applications base, a new head; saved as model.keras."""
    import keras
    keras.utils.set_random_seed(3)
    base = keras.applications.MobileNetV2(input_shape=(32, 32, 3), alpha=0.35, include_top=False, weights=None)
    inputs = keras.Input((32, 32, 3))
    x = keras.Sequential([keras.layers.RandomFlip("horizontal"), keras.layers.RandomRotation(0.1),
                          keras.layers.RandomZoom(0.1), keras.layers.RandomContrast(0.1)], name="augmentation")(inputs)
    x = keras.layers.Rescaling(1.0 / 127.5, offset=-1)(x)
    x = keras.layers.GlobalAveragePooling2D()(base(x))
    outputs = keras.layers.Dense(3, activation="softmax")(keras.layers.Dropout(0.2)(x))
    model = keras.Model(inputs, outputs)
    # Untrained, the base's outputs would not depend on the image: calibrate batch-norm statistics.
    rng = np.random.default_rng(3)
    calibration = rng.uniform(0, 255, (64, 32, 32, 3)).astype(np.float32) * rng.uniform(0, 1, (64, 1, 1, 3))
    for layer in base.layers:
        if isinstance(layer, keras.layers.BatchNormalization):
            layer.momentum = 0.0
    model(calibration.astype(np.float32), training=True)
    labels = ("daisy", "roses", "tulips")
    _labels(path, labels)
    model.save(str(path / "flowers.keras"))
    return Tutorial("transfer", labels, model, (32, 32, 3), Preprocessing(scale="raw"), lambda raw: raw,
                    {"format": "keras", "output": "softmax", "scale_from": "model"})


def fully_convolutional(path: Path) -> Tutorial:
    """Keras 3, unknown height and width, exported with model.export() (a SavedModel) in a sub-directory."""
    import keras
    keras.utils.set_random_seed(4)
    inputs = keras.Input((None, None, 3))
    x = keras.layers.Conv2D(8, 3, activation="relu")(inputs)
    x = keras.layers.Conv2D(8, 3, strides=2, activation="relu")(x)
    x = keras.layers.GlobalAveragePooling2D()(keras.layers.Conv2D(3, 1)(x))
    model = keras.Model(inputs, keras.layers.Softmax()(x))
    kernel, bias = model.layers[-3].get_weights()
    model.layers[-3].set_weights([kernel * 4, bias])
    labels = ("sky", "grass", "sand")
    _labels(path, labels, "preprocessing:\n  size: [40, 48]\n")
    with contextlib.redirect_stdout(io.StringIO()):
        model.export(str(path / "exported"))
    return Tutorial("fcn", labels, model, (40, 48, 3), Preprocessing(size=(40, 48)), lambda raw: raw,
                    {"format": "savedmodel", "output": "softmax", "size_from": "model.yaml", "scale_from": "default"})


def tf_keras_saved_model(path: Path) -> Tutorial:
    """tf.keras 2 `model.save(dir)`: the version directory is the SavedModel; Rescaling inside."""
    import tf_keras
    tf_keras.utils.set_random_seed(5)
    layers = tf_keras.layers
    model = tf_keras.Sequential([layers.InputLayer((24, 24, 3)), layers.Rescaling(1.0 / 255),
                                 layers.Conv2D(4, 3, activation="relu"), layers.Flatten(),
                                 layers.Dense(2, activation="softmax")])
    kernel, bias = model.layers[-1].get_weights()
    model.layers[-1].set_weights([kernel * 4, bias])
    model.save(str(path))
    labels = ("day", "night")
    _labels(path, labels)
    return Tutorial("daynight", labels, model, (24, 24, 3), Preprocessing(scale="raw"), lambda raw: raw,
                    {"format": "savedmodel", "output": "softmax", "scale_from": "model"})


def bare_tflite(path: Path) -> Tutorial:
    """A .tflite the user converted themselves, with nothing else but labels."""
    import keras
    import tensorflow as tf
    keras.utils.set_random_seed(6)
    model = keras.Sequential([keras.Input((20, 20, 3)), keras.layers.Conv2D(4, 3, activation="relu"),
                              keras.layers.GlobalAveragePooling2D(), keras.layers.Dense(3, activation="softmax")])
    kernel, bias = model.layers[-1].get_weights()
    model.layers[-1].set_weights([kernel * 4, bias])
    labels = ("left", "middle", "right")
    _labels(path, labels)
    with contextlib.redirect_stdout(io.StringIO()):
        (path / "converted.tflite").write_bytes(tf.lite.TFLiteConverter.from_keras_model(model).convert())
    return Tutorial("bare", labels, model, (20, 20, 3), Preprocessing(), lambda raw: raw,
                    {"format": "tflite", "output": "softmax", "verified": False, "scale_from": "default"})


# directory name -> builder (each writes <models>/<name>/1/)
BUILDERS = {"cats_vs_dogs": cats_vs_dogs, "tagger": tagger, "fashion": fashion_mnist, "transfer": transfer_learning,
            "fcn": fully_convolutional, "daynight": tf_keras_saved_model, "bare": bare_tflite}
