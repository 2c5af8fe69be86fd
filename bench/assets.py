"""Benchmark inputs, generated (nothing downloaded): MobileNetV2 as JSON + H5, compiled;
photo-like JPEGs at 224x224 and 1024x768; held-out digits as uploads."""
from __future__ import annotations

import io
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
from PIL import Image

ROOT = Path(__file__).resolve().parents[1]
MAKE_MODEL = """
import os, sys
os.environ["TF_CPP_MIN_LOG_LEVEL"] = "3"
import keras
keras.utils.set_random_seed(0)
size, path = int(sys.argv[1]), sys.argv[2]
if size == 224:
    model = keras.applications.MobileNetV2(weights=None)
else:  # smoke runs: a tiny stand-in with the same interface
    model = keras.Sequential([keras.Input((size, size, 3)), keras.layers.Conv2D(8, 3, strides=2, activation="relu"),
                              keras.layers.GlobalAveragePooling2D(), keras.layers.Dense(1000, activation="softmax")])
os.makedirs(path, exist_ok=True)
open(os.path.join(path, "model.json"), "w").write(model.to_json())
model.save_weights(os.path.join(path, "model.weights.h5"))
open(os.path.join(path, "labels.txt"), "w").write("".join(f"class_{i}\\n" for i in range(1000)))
open(os.path.join(path, "model.yaml"), "w").write("title: MobileNetV2\\npreprocessing:\\n  scale: tf\\n")
"""


def make_mobilenet(models_dir: Path, size: int = 224) -> Path:
    """models_dir/mobilenet, built with Keras (fixed seed) and compiled, both in child processes."""
    path = models_dir / "mobilenet"
    env = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3"}
    subprocess.run([sys.executable, "-c", MAKE_MODEL, str(size), str(path)], check=True, env=env,
                   capture_output=True)
    subprocess.run([sys.executable, "-m", "util.build", "--models-dir", str(models_dir), "mobilenet"],
                   check=True, cwd=ROOT, env=env, capture_output=True)
    return path


def photo(width: int, height: int, rng: np.random.Generator) -> Image.Image:
    """Smooth colour fields plus grain: compresses and decodes like a photograph, not like noise."""
    coarse = rng.uniform(0, 255, (6, 8, 3)).astype(np.uint8)
    image = Image.fromarray(coarse).resize((width, height), Image.Resampling.BICUBIC)
    grain = rng.normal(0, 12, (height, width, 3))
    return Image.fromarray(np.clip(np.asarray(image) + grain, 0, 255).astype(np.uint8))


def write_photos(folder: Path, width: int, height: int, count: int, seed: int = 0) -> list[Path]:
    folder.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(seed)
    paths = []
    for i in range(count):
        buf = io.BytesIO()
        photo(width, height, rng).save(buf, "JPEG", quality=90)
        paths.append(folder / f"photo_{width}x{height}_{i}.jpg")
        paths[-1].write_bytes(buf.getvalue())
    return paths


def write_digits(folder: Path, count: int) -> list[Path]:
    from scripts.digits import load_split, render, to_png
    folder.mkdir(parents=True, exist_ok=True)
    _, _, x_test, y_test = load_split()
    paths = []
    for i, (digit, label) in enumerate(zip(x_test[:count], y_test[:count])):
        paths.append(folder / f"digit_{i}_{label}.png")
        paths[-1].write_bytes(to_png(render(digit)))
    return paths
