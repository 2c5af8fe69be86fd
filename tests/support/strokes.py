"""Digits drawn as pen strokes, the way people draw them on the demo page's pad.

A held-out set for the default model that shares nothing with its training data: no
scikit-learn digit and no font. Each digit is a few strokes (polylines and arcs) in a unit
box, in one of the common ways of writing it (a 1 with or without its flag, an open or a
closed 4, a 7 with or without a bar...), then bent by chance: every point jittered, the whole
slanted, rotated and squeezed, drawn with a round pen of any width anywhere on a canvas of any
size, antialiased as a browser canvas draws, sometimes blurred. numpy and Pillow only.
"""
from __future__ import annotations

import io
import math

import numpy as np
from PIL import Image, ImageDraw, ImageFilter

Stroke = list[tuple[float, float]]
SUPERSAMPLE = 4  # drawn 4x larger, then reduced: antialiased edges like a canvas's


def arc(cx: float, cy: float, rx: float, ry: float, start: float, end: float, n: int = 24) -> Stroke:
    """Points on an ellipse from angle `start` to `end` (degrees; 0 = right, 90 = down, as on screen)."""
    return [(cx + rx * math.cos(math.radians(a)), cy + ry * math.sin(math.radians(a)))
            for a in np.linspace(start, end, n)]


# Each digit: its ways of being written, each a list of strokes in a unit box (y down).
SHAPES: dict[int, list[list[Stroke]]] = {
    0: [[arc(0.5, 0.5, 0.32, 0.5, -90, 275)], [arc(0.5, 0.5, 0.36, 0.48, -100, 265)]],
    1: [[[(0.5, 0.0), (0.5, 1.0)]],
        [[(0.28, 0.22), (0.52, 0.0), (0.52, 1.0)]],
        [[(0.3, 0.2), (0.5, 0.0), (0.5, 1.0)], [(0.3, 1.0), (0.7, 1.0)]]],
    2: [[[*arc(0.5, 0.28, 0.3, 0.28, 190, 380), (0.16, 1.0), (0.86, 1.0)]],
        [[*arc(0.48, 0.3, 0.32, 0.3, 180, 400), (0.2, 0.95), (0.3, 0.9), (0.85, 1.0)]]],
    3: [[arc(0.45, 0.25, 0.3, 0.25, 200, 450) + arc(0.45, 0.74, 0.33, 0.26, -90, 150)],
        [[(0.15, 0.0), (0.8, 0.0), (0.4, 0.42), *arc(0.45, 0.7, 0.33, 0.3, -80, 150)]]],
    4: [[[(0.62, 0.0), (0.12, 0.68), (0.88, 0.68)], [(0.64, 0.3), (0.64, 1.0)]],
        [[(0.22, 0.0), (0.18, 0.56), (0.82, 0.56)], [(0.7, 0.0), (0.7, 1.0)]]],
    5: [[[(0.82, 0.0), (0.26, 0.0), (0.22, 0.44), *arc(0.48, 0.68, 0.34, 0.3, -120, 150)]],
        [[(0.24, 0.0), (0.2, 0.45), *arc(0.48, 0.68, 0.34, 0.3, -120, 150)], [(0.24, 0.0), (0.85, 0.0)]]],
    6: [[arc(0.78, 0.6, 0.58, 0.6, -80, -180, 12) + arc(0.5, 0.7, 0.3, 0.3, 180, 540)],
        [[(0.68, 0.0), (0.3, 0.45), *arc(0.5, 0.7, 0.3, 0.3, 200, 560)]]],
    7: [[[(0.12, 0.0), (0.88, 0.0), (0.38, 1.0)]],
        [[(0.12, 0.05), (0.88, 0.0), (0.42, 1.0)], [(0.35, 0.5), (0.78, 0.5)]]],
    8: [[arc(0.5, 0.24, 0.25, 0.24, 90, 450), arc(0.5, 0.73, 0.3, 0.27, -90, 270)],
        [[(0.5 + 0.3 * math.sin(2 * t), 0.5 - 0.5 * math.cos(t)) for t in np.linspace(0, 2 * math.pi, 48)]]],
    9: [[arc(0.48, 0.28, 0.28, 0.28, 0, 360), [(0.76, 0.28), (0.72, 1.0)]],
        [arc(0.5, 0.28, 0.3, 0.28, -10, 350) + arc(0.3, 0.28, 0.5, 0.72, 0, 80, 10)]],
}


def bend(strokes: list[Stroke], rng: np.random.Generator) -> list[np.ndarray]:
    """The strokes jittered, squeezed, slanted and rotated about the box's centre."""
    slant = rng.uniform(-0.35, 0.35)  # forward or backward lean: x moves with height
    angle = math.radians(rng.uniform(-10, 10))
    squeeze = rng.uniform(0.7, 1.3)
    wobble = rng.uniform(0.0, 0.04)
    cos, sin = math.cos(angle), math.sin(angle)
    out = []
    for stroke in strokes:
        p = np.asarray(stroke, dtype=np.float64) - 0.5
        # A hand drifts smoothly: offsets at a few anchors along the stroke, interpolated between them.
        along = np.linspace(0.0, 1.0, len(p))
        anchors = np.linspace(0.0, 1.0, 4)
        p = p + np.stack([np.interp(along, anchors, rng.normal(0.0, wobble, 4)) for _ in range(2)], axis=1)
        x, y = p[:, 0] * squeeze - slant * p[:, 1], p[:, 1]
        out.append(np.stack([x * cos - y * sin, x * sin + y * cos], axis=1))
    return out


def draw(label: int, rng: np.random.Generator) -> Image.Image:
    """`label` drawn by hand: dark strokes on a light canvas of random size, "L"."""
    shapes = SHAPES[label]
    strokes = bend(shapes[int(rng.integers(len(shapes)))], rng)
    width, height = int(rng.integers(120, 480)), int(rng.integers(120, 480))
    points = np.concatenate(strokes)
    low, high = points.min(axis=0), points.max(axis=0)
    digit_height = rng.uniform(0.2, 0.9) * min(width, height)
    scale = digit_height / max(high[1] - low[1], 1e-6)
    scale = min(scale, 0.95 * width / max(high[0] - low[0], 1e-6))  # wide digits still fit
    span = (high - low) * scale
    origin = np.array([rng.uniform(0, width - span[0]), rng.uniform(0, height - span[1])])
    pen = rng.uniform(0.04, 0.16) * digit_height
    paper, ink = int(rng.integers(225, 256)), int(rng.integers(0, 70))

    s = SUPERSAMPLE
    canvas = Image.new("L", (width * s, height * s), paper)
    pencil = ImageDraw.Draw(canvas)
    radius = max(0.5, pen * s / 2)
    for stroke in strokes:
        xy = [tuple(v) for v in ((stroke - low) * scale + origin) * s]
        pencil.line(xy, fill=ink, width=max(1, round(2 * radius)), joint="curve")
        for x, y in (xy[0], xy[-1]):  # round caps, as a canvas's lineCap "round"
            pencil.ellipse((x - radius, y - radius, x + radius, y + radius), fill=ink)
    image = canvas.resize((width, height), Image.Resampling.BOX)
    if rng.random() < 0.3:
        image = image.filter(ImageFilter.GaussianBlur(rng.uniform(0.3, 1.2)))
    return image


def drawn_digits(count_per_label: int, seed: int) -> tuple[list[bytes], np.ndarray]:
    """PNG uploads of `count_per_label` drawn digits of each label, and their labels."""
    rng = np.random.default_rng(seed)
    uploads, labels = [], []
    for _ in range(count_per_label):
        for label in range(10):
            buffer = io.BytesIO()
            draw(label, rng).save(buffer, format="PNG")
            uploads.append(buffer.getvalue())
            labels.append(label)
    return uploads, np.asarray(labels)
