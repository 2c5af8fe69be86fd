"""Tiny, deterministic models and images for tests (TensorFlow imported only when building).

`colors` (Keras 3, `.weights.h5`, RGB): labels red/green/blue by mean colour.
`shades` (tf.keras 2 via tf_keras, legacy `weights.h5`, greyscale): dark/light by mean level.
Their weights are set by hand, so the right answer for an image is known in advance.
"""
from __future__ import annotations

import io
from pathlib import Path

import numpy as np
from PIL import Image, ImageDraw

COLORS = ("red", "green", "blue")
SHADES = ("dark", "light")


def write_colors_model(path: Path, weights_name: str = "model.weights.h5", shift: int = 0) -> Path:
    """`shift` rotates the answers (1: a red image is called green): the same shapes, another model."""
    import keras
    path.mkdir(parents=True, exist_ok=True)
    model = keras.Sequential([keras.Input((8, 8, 3)), keras.layers.GlobalAveragePooling2D(),
                              keras.layers.Dense(3, activation="softmax")])
    # softmax(10 * (mean colour - 0.5)): the dominant channel wins.
    model.layers[-1].set_weights([np.roll(np.eye(3, dtype=np.float32), shift, axis=1) * 10,
                                  np.full(3, -5, np.float32)])
    (path / "model.json").write_text(model.to_json())
    model.save_weights(str(path / "model.weights.h5"))
    if weights_name != "model.weights.h5":
        (path / "model.weights.h5").rename(path / weights_name)
    (path / "labels.txt").write_text("\n".join(COLORS) + "\n")
    (path / "model.yaml").write_text("title: Colours\ndescription: Dominant colour of the picture.\n")
    return path


def write_shades_model(path: Path) -> Path:
    import tf_keras
    path.mkdir(parents=True, exist_ok=True)
    model = tf_keras.Sequential([tf_keras.layers.InputLayer((8, 8, 1)), tf_keras.layers.GlobalAveragePooling2D(),
                                 tf_keras.layers.Dense(2, activation="softmax")])
    # light when the mean level is above 0.5 (logits -10x+5 vs 10x-5).
    model.layers[-1].set_weights([np.array([[-10.0, 10.0]], np.float32), np.array([5.0, -5.0], np.float32)])
    (path / "model.json").write_text(model.to_json())
    model.save_weights(str(path / "weights.h5"))  # tf.keras 2 legacy HDF5 layout
    (path / "labels.txt").write_text("\n".join(SHADES) + "\n")
    (path / "model.yaml").write_text("title: Shades\npreprocessing:\n  resize: crop\n")
    return path


def encode(image: Image.Image, fmt: str = "PNG", **params: object) -> bytes:
    buf = io.BytesIO()
    image.save(buf, fmt, **params)
    return buf.getvalue()


def solid(color: tuple[int, ...] | int, size: tuple[int, int] = (32, 24), mode: str = "RGB") -> Image.Image:
    return Image.new(mode, size, color)


def stroke(size: tuple[int, int] = (8, 8)) -> Image.Image:
    """Light paper with one dark diagonal stroke: any picture for the digits model, which refuses a blank one."""
    image = Image.new("RGB", size, (250, 250, 250))
    ImageDraw.Draw(image).line([(0, 0), (size[0] - 1, size[1] - 1)], fill=(20, 20, 20), width=max(1, size[0] // 8))
    return image


def keras_model(spec):
    """The Keras model a Keras save format loads to (for comparing with what is served)."""
    from util.toolchain import formats
    return formats.load(spec).model


SPOT = (slice(8, 16), slice(16, 24))  # rows, columns of the one region the `spot` model looks at


def write_spot_model(path: Path) -> Path:
    """`spot` (Keras 3, greyscale 32x32): its `spot` score depends on the pixels of SPOT only."""
    import keras
    path.mkdir(parents=True, exist_ok=True)
    model = keras.Sequential([keras.Input((32, 32, 1)), keras.layers.Flatten(),
                              keras.layers.Dense(2, activation="softmax")])
    region = np.zeros((32, 32), np.float32)
    region[SPOT] = 0.1
    # logit(spot) = 0.1 * sum(SPOT) - 3.2: a lit SPOT scores 0.96, and every pixel there counts.
    kernel = np.stack([np.zeros(32 * 32, np.float32), region.reshape(-1)], axis=1)
    model.layers[-1].set_weights([kernel, np.array([0.0, -3.2], np.float32)])
    (path / "model.json").write_text(model.to_json())
    model.save_weights(str(path / "model.weights.h5"))
    (path / "labels.txt").write_text("plain\nspot\n")
    (path / "model.yaml").write_text("title: Spot\ndescription: Whether one region of the image is lit.\n")
    return path


def spot_image(lit: bool = True, noise: float = 0.0, seed: int = 0) -> Image.Image:
    """A 32x32 greyscale image, SPOT lit or not, with optional uniform noise (0..noise of full scale)."""
    pixels = np.random.default_rng(seed).uniform(0, noise * 255, (32, 32))
    if lit:
        pixels[SPOT] = 255
    return Image.fromarray(pixels.round().astype(np.uint8), "L")
