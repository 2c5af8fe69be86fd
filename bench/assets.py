"""Benchmark inputs, generated (nothing downloaded): MobileNetV2 as JSON + H5, compiled as float32
and as int8; photo-like JPEGs at 224x224 and 1024x768; held-out digits as uploads."""
from __future__ import annotations

import io
import os
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
from PIL import Image

ROOT = Path(__file__).resolve().parents[1]
CLASSES = 10
# Each photo leans towards one of these colours; its class is that colour's index.
TINTS = np.array([(230, 40, 40), (40, 200, 60), (40, 70, 230), (240, 220, 40), (230, 40, 220),
                  (40, 220, 220), (250, 140, 30), (140, 80, 40), (250, 250, 250), (20, 20, 20)], dtype=np.float32)
# A MobileNetV2 backbone whose outputs depend on the image (batch-norm statistics calibrated on
# photos: random init would answer the same for all), with a 10-class head trained on tinted photos.
# Untrained 1000-class MobileNetV2 answers near-uniform scores that int8 cannot resolve.
MAKE_MODEL = """
import os, sys
os.environ["TF_CPP_MIN_LOG_LEVEL"] = "3"
import numpy as np, keras
from PIL import Image
keras.utils.set_random_seed(0)
size, path, train_dir = int(sys.argv[1]), sys.argv[2], sys.argv[3]
files = sorted(os.listdir(train_dir))
x = np.stack([np.asarray(Image.open(os.path.join(train_dir, f)).convert("RGB").resize((size, size)), np.float32)
              for f in files]) / 127.5 - 1
y = np.array([int(f.split("_")[1]) for f in files])
if size == 224:
    base = keras.applications.MobileNetV2(weights=None, include_top=False, pooling="avg", input_shape=(224, 224, 3))
else:  # smoke runs: a tiny stand-in with the same interface
    inputs = keras.Input((size, size, 3))
    h = keras.layers.ReLU()(keras.layers.BatchNormalization()(keras.layers.Conv2D(8, 3, strides=2)(inputs)))
    base = keras.Model(inputs, keras.layers.GlobalAveragePooling2D()(h))
for layer in base.layers:
    if isinstance(layer, keras.layers.BatchNormalization):
        layer.momentum = 0.0
base(x[:64], training=True)
features = base.predict(x, verbose=0)
head = keras.Sequential([keras.Input(features.shape[1:]), keras.layers.Dense(10, activation="softmax")])
head.compile(keras.optimizers.Adam(1e-2), "sparse_categorical_crossentropy", metrics=["accuracy"])
mean, std = features.mean(0), features.std(0) + 1e-6
head.fit((features - mean) / std, y, epochs=60, verbose=0)
kernel, bias = head.layers[0].get_weights()
# Fold the feature standardisation into the head so the served model is backbone + one Dense.
dense = keras.layers.Dense(10, activation="softmax")
model = keras.Model(base.input, dense(base.output))
dense.set_weights([kernel / std[:, None], bias - (mean / std) @ kernel])
os.makedirs(path, exist_ok=True)
open(os.path.join(path, "model.json"), "w").write(model.to_json())
model.save_weights(os.path.join(path, "model.weights.h5"))
open(os.path.join(path, "labels.txt"), "w").write("".join(f"class_{i}\\n" for i in range(10)))
open(os.path.join(path, "model.yaml"), "w").write("title: MobileNetV2\\npreprocessing:\\n  scale: tf\\n")
"""


def run(argv: list[str], env: dict[str, str]) -> None:
    """A quiet child process; its output is shown only when it fails."""
    done = subprocess.run(argv, cwd=ROOT, env=env, capture_output=True, text=True)
    if done.returncode:
        raise RuntimeError(f"{argv[:3]} exited with {done.returncode}:\n{done.stdout[-2000:]}{done.stderr[-3000:]}")


def make_mobilenet(models_dir: Path, train_dir: Path, samples: list[Path], size: int = 224) -> Path:
    """models_dir/mobilenet, built with Keras (fixed seed) and compiled, both in child processes."""
    path = models_dir / "mobilenet"
    env = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3"}
    run([sys.executable, "-c", MAKE_MODEL, str(size), str(path), str(train_dir)], env)
    (path / "samples").mkdir()
    for sample in samples:
        shutil.copy(sample, path / "samples" / sample.name)
    run([sys.executable, "-m", "util.toolchain", "--models-dir", str(models_dir), "mobilenet"], env)
    return path


def copy_as(model_dir: Path, models_dir: Path, quantize: str) -> Path:
    """The same Keras files in another models directory, compiled with `quantize`."""
    path = models_dir / model_dir.name
    shutil.copytree(model_dir, path, ignore=shutil.ignore_patterns("model.tflite", "manifest.json"))
    with open(path / "model.yaml", "a") as f:
        # The bench measures speed: its barely trained model's agreement with Keras is reported in
        # RESULTS.md, not required (a real model keeps the default 0.99).
        f.write(f"quantize: {quantize}\nquantize_min_agreement: 0\n")
    env = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3"}
    run([sys.executable, "-m", "util.toolchain", "--models-dir", str(models_dir), path.name], env)
    return path


def photo(width: int, height: int, rng: np.random.Generator, tint: int) -> Image.Image:
    """Smooth colour fields plus grain, leaning towards TINTS[tint]: compresses and decodes like a
    photograph, not like noise."""
    coarse = rng.uniform(0, 255, (6, 8, 3)).astype(np.uint8)
    image = Image.fromarray(coarse).resize((width, height), Image.Resampling.BICUBIC)
    pixels = 0.55 * np.asarray(image) + 0.45 * TINTS[tint] + rng.normal(0, 12, (height, width, 3))
    return Image.fromarray(np.clip(pixels, 0, 255).astype(np.uint8))


def write_photos(folder: Path, width: int, height: int, count: int, seed: int = 0) -> list[Path]:
    """`count` JPEGs named photo_<class>_<w>x<h>_<i>.jpg, classes in turn."""
    folder.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(seed)
    paths = []
    for i in range(count):
        buf = io.BytesIO()
        photo(width, height, rng, i % CLASSES).save(buf, "JPEG", quality=90)
        paths.append(folder / f"photo_{i % CLASSES}_{width}x{height}_{i}.jpg")
        paths[-1].write_bytes(buf.getvalue())
    return paths


def write_digits(folder: Path, count: int) -> list[Path]:
    from scripts.digits import load_split, render, to_png
    folder.mkdir(parents=True, exist_ok=True)
    _, _, x_test, y_test = load_split()
    paths = []
    for i, (digit, label) in enumerate(zip(x_test[:count], y_test[:count], strict=True)):
        paths.append(folder / f"digit_{i}_{label}.png")
        paths[-1].write_bytes(to_png(render(digit)))
    return paths
