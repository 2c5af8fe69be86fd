"""Images for verification and the answer gate: generated shapes, gradients and solid colours,
plus the model's own `samples/`. Pillow and numpy only: the web process uses them too (answers.py).
"""
from __future__ import annotations

from pathlib import Path

import numpy as np
from PIL import Image, ImageDraw

from util.errors import ServiceError
from util.serve.image import decode

SOLID = {"black": (0, 0, 0), "white": (255, 255, 255), "grey": (128, 128, 128), "red": (220, 30, 30),
         "green": (30, 180, 60), "blue": (30, 60, 220), "yellow": (240, 220, 40)}
SAMPLE_PIXELS = 40_000_000


def generated(size: tuple[int, int], seed: int = 0) -> list[tuple[str, Image.Image]]:
    """Solid colours, gradients, simple shapes and noise at `size` (width, height)."""
    w, h = size
    images = [(f"solid {name}", Image.new("RGB", size, rgb)) for name, rgb in SOLID.items()]
    x, y = np.meshgrid(np.linspace(0, 255, w), np.linspace(0, 255, h))
    for name, channels in (("horizontal", (x, x, x)), ("vertical", (y, y, y)), ("diagonal", (x, y, 255 - x))):
        images.append((f"gradient {name}", Image.fromarray(np.stack(channels, -1).astype(np.uint8), "RGB")))
    for name, background, colour, draw in (
            ("circle", "black", "white", lambda d: d.ellipse((w * .2, h * .2, w * .8, h * .8), fill="white")),
            ("square", "white", "black", lambda d: d.rectangle((w * .3, h * .3, w * .7, h * .7), fill="black")),
            ("triangle", "blue", "red", lambda d: d.polygon([(w * .5, h * .1), (w * .9, h * .9), (w * .1, h * .9)],
                                                            fill="red")),
            ("bars", "white", "black", lambda d: [d.rectangle((i, 0, i + max(1, w // 8) - 1, h), fill="black")
                                                  for i in range(0, w, max(2, w // 4))])):
        image = Image.new("RGB", size, background)
        draw(ImageDraw.Draw(image))
        images.append((f"{name} ({colour} on {background})", image))
    checker = ((np.indices((h, w)) // max(1, min(w, h) // 4)).sum(0) % 2 * 255).astype(np.uint8)
    images.append(("checkerboard", Image.fromarray(checker, "L").convert("RGB")))
    noise = np.random.default_rng(seed).integers(0, 256, (h, w, 3), dtype=np.uint8)
    images.append(("noise", Image.fromarray(noise, "RGB")))
    return images


def sample_files(directory: Path) -> list[Path]:
    """The files of a model's `samples/` directory, sorted, hidden ones skipped (none if it is absent)."""
    if not directory.is_dir():
        return []
    return [p for p in sorted(directory.iterdir()) if p.is_file() and not p.name.startswith(".")]


def samples(directory: Path) -> list[tuple[str, Image.Image]]:
    """Every readable image in the model's `samples/` directory (others are skipped)."""
    found = []
    for path in sample_files(directory):
        try:
            found.append((f"samples/{path.name}", decode(path.read_bytes(), SAMPLE_PIXELS)))
        except ServiceError:
            continue
    return found
