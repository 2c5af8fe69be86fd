"""Train the default `digits` model from scikit-learn's bundled handwritten digits.

Retrain with `make train-digits`, which runs this script and then
`flask --app application models compile digits` to rebuild model.tflite. By hand, from
the repository root with the dev requirements (TensorFlow) installed:

    .venv/bin/python scripts/train_digits.py

Every training image is drawn as an upload (scripts/digits.py) and then goes through the
serving preprocessing (util/serve/image.py), so the model learns exactly what it will be fed.
Seeds are fixed; the run takes a few minutes on two CPU cores and writes model.json,
weights.h5, labels.txt and model.yaml to saved_models/digits/1/. It exits non-zero if
the held-out accuracy on cleanly rendered PNG digits is below ACCURACY_FLOOR.
"""
from __future__ import annotations

import json
import shutil
import sys
import tempfile
import time
from collections.abc import Iterable
from pathlib import Path

import keras
import numpy as np
from keras import layers
from PIL import Image

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from scripts.digits import load_split, render, render_augmented, render_pen_font, render_printed, to_jpeg, to_png  # noqa: E402 - after sys.path
from util.serve.crop import BlankImage  # noqa: E402 - after sys.path
from util.serve.image import Preprocessing, preprocess, preprocess_image  # noqa: E402 - after sys.path

SEED = 0
EVAL_SEED = 1  # augmented test uploads must not repeat the training draws
SHAPE = (8, 8, 1)
PREPROCESSING = Preprocessing(resize="pad", resample="bilinear", scale="unit", invert=True, autocontrast=True,
                              crop="content", crop_margin=0.1)
MAX_PIXELS = 40_000_000
AUGMENTED_PER_DIGIT = 20
JPEG_SHARE = 0.3  # of augmented samples, decoded from JPEG bytes as the server would
PRINTED_PER_LABEL = 300  # font-printed digits too: without them a printed 6 or 9 reads as 0
PEN_FONT_PER_LABEL = 500  # fonts' shapes redrawn with a pen: the ways of writing a digit sklearn's lack
PRINTED_SIZES = (10, 200)  # font sizes (px) for printed training digits
EVAL_PRINTED_SIZES = (16, 24, 32, 48, 64, 96, 128)
EVAL_AUGMENTED_PER_DIGIT = 3
EPOCHS = 30
BATCH_SIZE = 128
ACCURACY_FLOOR = 0.97
OUTPUT = ROOT / "saved_models" / "digits" / "1"
TITLE = "Handwritten digits"
DESCRIPTION = ("Recognises a single handwritten or printed digit (0-9). Send one digit per image, dark on "
               "a light background, anywhere on the picture and at any size: the picture is cut to the drawn "
               "digit first. A blank picture is refused (400).")


def prepare(image: Image.Image, jpeg: bool = False) -> np.ndarray:
    """One rendered upload -> model input, via bytes when the server would decode them."""
    if jpeg:
        return preprocess(to_jpeg(image), SHAPE, PREPROCESSING, max_pixels=MAX_PIXELS)
    return preprocess_image(image, SHAPE, PREPROCESSING)


def training_set(x: np.ndarray, y: np.ndarray, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    """Clean and augmented renders of every training digit, plus font-printed digits."""
    inputs, labels, refused = [], [], 0

    def add(image: Image.Image, label: int, jpeg: bool = False) -> None:
        nonlocal refused
        try:
            inputs.append(prepare(image, jpeg))
        except BlankImage:  # a stroke too faint to find: the server refuses it too, so nothing to learn
            refused += 1
            return
        labels.append(label)

    for digit, label in zip(x, y, strict=True):
        add(render(digit), label)
        for _ in range(AUGMENTED_PER_DIGIT):
            add(render_augmented(digit, rng), label, jpeg=rng.random() < JPEG_SHARE)
    for label in range(10):
        for _ in range(PRINTED_PER_LABEL):
            size = int(rng.integers(*PRINTED_SIZES))
            add(render_printed(label, size, rng), label, jpeg=rng.random() < JPEG_SHARE)
        for _ in range(PEN_FONT_PER_LABEL):
            add(render_pen_font(label, rng), label, jpeg=rng.random() < JPEG_SHARE)
    print(f"{refused} renders too faint to crop, left out")
    return np.stack(inputs), np.asarray(labels)


def build_model() -> keras.Model:
    """A small CNN for 8x8 greyscale inputs; only layers that convert to TFLite cleanly."""
    return keras.Sequential([
        keras.Input(SHAPE, name="image"),
        layers.Conv2D(32, 3, padding="same", activation="relu"),
        layers.Conv2D(32, 3, padding="same", activation="relu"),
        layers.MaxPooling2D(2),
        layers.Conv2D(64, 3, padding="same", activation="relu"),
        layers.MaxPooling2D(2),
        layers.Flatten(),
        layers.Dropout(0.3),
        layers.Dense(128, activation="relu"),
        layers.Dropout(0.3),
        layers.Dense(10, activation="softmax"),
    ], name="digits")


def accuracy(model: keras.Model, inputs: Iterable[np.ndarray], labels: Iterable[int]) -> tuple[float, int]:
    """Share of correct top-1 predictions, and how many were scored."""
    x, y = np.stack(list(inputs)), np.asarray(list(labels))
    predicted = model.predict(x, batch_size=256, verbose=0).argmax(axis=1)
    return float((predicted == y).mean()), len(y)


def evaluate(model: keras.Model, x: np.ndarray, y: np.ndarray) -> dict[str, tuple[float, int]]:
    """Held-out accuracy on clean PNG uploads, varied JPEG uploads and font-printed digits."""
    def served(data: bytes) -> np.ndarray:
        return preprocess(data, SHAPE, PREPROCESSING, max_pixels=MAX_PIXELS)

    def readable(pairs: Iterable[tuple[bytes, int]]) -> list[tuple[np.ndarray, int]]:
        out = []
        for data, label in pairs:
            try:
                out.append((served(data), label))
            except BlankImage:  # refused by the server too: not a wrong answer
                continue
        return out

    rng = np.random.default_rng(EVAL_SEED)
    varied = readable((to_jpeg(render_augmented(d, rng)), label)
                      for d, label in zip(x, y, strict=True) for _ in range(EVAL_AUGMENTED_PER_DIGIT))
    printed = [(n, s) for s in EVAL_PRINTED_SIZES for n in range(10)]
    return {
        "held-out accuracy (rendered PNG)": accuracy(model, (served(to_png(render(d))) for d in x), y),
        "held-out accuracy (augmented JPEG)": accuracy(
            model, (a for a, _ in varied), (label for _, label in varied)),
        "printed digits (Pillow font, sizes " + ",".join(map(str, EVAL_PRINTED_SIZES)) + ")": accuracy(
            model, (served(to_png(render_printed(n, s))) for n, s in printed), (n for n, _ in printed)),
    }


def save(model: keras.Model, directory: Path) -> None:
    """model.json, weights.h5, labels.txt and model.yaml, as util/models.py reads them."""
    # Rebuilt from its JSON minus the training setup: proves the architecture round-trips,
    # and an uncompiled model saves no optimizer state (Adam's moments would triple the file).
    architecture = json.loads(model.to_json())
    architecture.pop("compile_config", None)
    clean = keras.models.model_from_json(json.dumps(architecture))
    clean.set_weights(model.get_weights())
    directory.mkdir(parents=True, exist_ok=True)
    (directory / "model.json").write_text(clean.to_json())
    with tempfile.TemporaryDirectory() as tmp:
        clean.save_weights(Path(tmp) / "model.weights.h5")  # Keras 3 insists on this suffix
        shutil.move(Path(tmp) / "model.weights.h5", directory / "weights.h5")
    (directory / "labels.txt").write_text("".join(f"{label}\n" for label in range(10)))
    p = PREPROCESSING.to_dict()
    (directory / "model.yaml").write_text(
        f"title: {TITLE}\n"
        f"description: >-\n  {DESCRIPTION}\n"
        "preprocessing:\n"
        + "".join(f"  {key}: {str(value).lower() if isinstance(value, bool) else value}\n"
                  for key, value in p.items() if value is not None))


def write_samples(directory: Path, x_test: np.ndarray, y_test: np.ndarray, per_class: int = 3) -> None:
    """samples/: held-out digits of each class as a user would upload them; compile verifies on them and
    calibrates int8 on them (util/toolchain/quantize.py wants at least 20)."""
    samples = directory / "samples"
    samples.mkdir(parents=True, exist_ok=True)
    for label in range(10):
        for n, index in enumerate(np.flatnonzero(y_test == label)[:per_class]):
            (samples / f"digit-{label}-{n}.png").write_bytes(to_png(render(x_test[int(index)])))


def main() -> int:
    started = time.perf_counter()
    keras.utils.set_random_seed(SEED)
    x_train, y_train, x_test, y_test = load_split(SEED)
    inputs, labels = training_set(x_train, y_train, np.random.default_rng(SEED))
    print(f"rendered {len(labels)} training images in {time.perf_counter() - started:.0f}s")

    model = build_model()
    model.summary()
    steps = EPOCHS * -(-len(labels) // BATCH_SIZE)
    schedule = keras.optimizers.schedules.CosineDecay(1e-3, decay_steps=steps)
    model.compile(optimizer=keras.optimizers.Adam(schedule), loss="sparse_categorical_crossentropy",
                  metrics=["accuracy"])
    model.fit(inputs, labels, epochs=EPOCHS, batch_size=BATCH_SIZE, shuffle=True, verbose=2)

    results = evaluate(model, x_test, y_test)
    headline, _ = results["held-out accuracy (rendered PNG)"]
    passed = headline >= ACCURACY_FLOOR
    if passed:  # a failed run must not replace a good model
        save(model, OUTPUT)
        write_samples(OUTPUT, x_test, y_test)
        print(f"wrote {OUTPUT.relative_to(ROOT)}/")
    print(f"finished in {time.perf_counter() - started:.0f}s")
    for name, (score, n) in reversed(results.items()):  # the headline figure last
        print(f"{name}: {score:.1%} (n={n})")
    if not passed:
        print(f"FAILED: below the {ACCURACY_FLOOR:.0%} floor; nothing written", file=sys.stderr)
    return 0 if passed else 1

if __name__ == "__main__":
    sys.exit(main())
