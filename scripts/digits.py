"""scikit-learn's bundled handwritten digits, rendered the way people upload them.

The default `digits` model is trained in-repo from `sklearn.datasets.load_digits` (8x8
intensities 0..16, light ink on black). Uploads are the opposite: a dark digit on light
paper at any size, so these helpers draw each 8x8 digit as such a picture; the training
script, the tests and the benchmarks all share them. numpy, Pillow and scikit-learn only:
nothing here imports TensorFlow.
"""
from __future__ import annotations

import io

import numpy as np
from PIL import Image, ImageDraw, ImageFilter, ImageFont
from sklearn.datasets import load_digits
from sklearn.model_selection import train_test_split

TEST_FRACTION = 0.2
MAX_INTENSITY = 16.0  # load_digits counts set pixels in 4x4 blocks: 0..16
CANVAS_RANGE = (24, 300)  # pixels per side of an augmented upload
FILL_RANGE = (0.55, 1.0)  # share of the canvas's short side the digit covers
MAX_ROTATION = 12.0  # degrees
STROKE_SIZE = 32  # working size (pixels) for thickening / thinning strokes


def load_split(seed: int = 0) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """x_train, y_train, x_test, y_test: (n, 8, 8) float intensities 0..16 and int labels."""
    data = load_digits()
    x_train, x_test, y_train, y_test = train_test_split(
        data.images, data.target, test_size=TEST_FRACTION, random_state=seed, stratify=data.target)
    return x_train, y_train, x_test, y_test


def _ink(digit: np.ndarray, size: tuple[int, int], resample: Image.Resampling) -> Image.Image:
    """The digit as an "L" image of ink coverage (255 = full ink), smoothly upscaled."""
    coverage = np.clip(np.asarray(digit, dtype=np.float32) / MAX_INTENSITY, 0.0, 1.0)
    return Image.fromarray(np.rint(coverage * 255).astype(np.uint8), "L").resize(size, resample)


def render(digit: np.ndarray, size: int = 128) -> Image.Image:
    """The 8x8 digit as a clean upload: dark ink on white, "L", size x size, bicubic upscale."""
    ink = _ink(digit, (size, size), Image.Resampling.BICUBIC)
    return Image.fromarray(255 - np.asarray(ink), "L")


def render_augmented(digit: np.ndarray, rng: np.random.Generator) -> Image.Image:
    """The digit as a varied real upload: canvas, scale, shift, angle, stroke, paper, noise."""
    short = int(rng.integers(CANVAS_RANGE[0], CANVAS_RANGE[1] + 1))
    long = short if rng.random() < 0.6 else int(short * rng.uniform(1.0, 1.5))
    width, height = (short, long) if rng.random() < 0.5 else (long, short)
    side = max(8, round(short * rng.uniform(*FILL_RANGE)))
    # Stroke weight changes at a fixed working size: cheap, and alike for every canvas size.
    ink = _ink(digit, (STROKE_SIZE, STROKE_SIZE), Image.Resampling.BICUBIC)
    if rng.random() < 0.5:
        size = int(rng.choice([3, 3, 5]))
        ink = ink.filter(ImageFilter.MaxFilter(size) if rng.random() < 0.6 else ImageFilter.MinFilter(size))
    ink = ink.resize((side, side), Image.Resampling.BICUBIC)
    if rng.random() < 0.5:  # pen strokes have crisp edges, unlike the blurry upscale
        ink = _sharpen(ink, threshold=rng.uniform(0.25, 0.55))
    ink = ink.rotate(rng.uniform(-MAX_ROTATION, MAX_ROTATION), Image.Resampling.BILINEAR, expand=True)

    canvas = Image.new("L", (width, height), 0)
    # Anywhere on the canvas; a rotated digit larger than the canvas loses only blank corners.
    left = int(rng.integers(0, width - ink.width + 1)) if width > ink.width else (width - ink.width) // 2
    top = int(rng.integers(0, height - ink.height + 1)) if height > ink.height else (height - ink.height) // 2
    canvas.paste(ink, (left, top))

    paper = rng.uniform(150.0, 255.0)
    pen = rng.uniform(0.0, min(90.0, paper - 70.0))  # keep at least some contrast
    pixels = paper - (paper - pen) * np.asarray(canvas, dtype=np.float32) / 255.0
    if rng.random() < 0.25:  # tinted paper, photographed in colour
        tint = rng.uniform(-20.0, 20.0, size=3)
        pixels = pixels[:, :, None] + tint * (pixels[:, :, None] / 255.0)
    if rng.random() < 0.5:
        pixels = pixels + rng.standard_normal(pixels.shape, dtype=np.float32) * rng.uniform(2.0, 10.0)
    image = Image.fromarray(np.clip(np.rint(pixels), 0, 255).astype(np.uint8))
    if rng.random() < 0.3:
        image = image.filter(ImageFilter.GaussianBlur(rng.uniform(0.3, 1.0) * short / 100.0))
    return image


def _sharpen(ink: Image.Image, threshold: float) -> Image.Image:
    """Steep sigmoid around `threshold`: a soft blob becomes a stroke with a clean edge."""
    x = np.asarray(ink, dtype=np.float32) / 255.0
    y = 1.0 / (1.0 + np.exp(-(x - threshold) * 20.0))
    floor = 1.0 / (1.0 + np.exp(threshold * 20.0))  # so blank paper stays exactly blank
    return Image.fromarray(np.rint(255.0 * np.clip((y - floor) / (1.0 - floor), 0, 1)).astype(np.uint8), "L")


def render_printed(label: int, font_size: int = 48, rng: np.random.Generator | None = None) -> Image.Image:
    """`label` printed with Pillow's bundled font, dark on white, cropped with a margin.

    With `rng`, the margin, position and stroke weight vary as in `render_augmented`.
    """
    font = ImageFont.load_default(size=font_size)
    text = str(label)
    stroke = int(rng.integers(0, max(1, font_size // 16) + 1)) if rng is not None else 0  # bolder
    left, top, right, bottom = font.getbbox(text, stroke_width=stroke)
    glyph_h = bottom - top
    margin = glyph_h * (rng.uniform(0.05, 0.4) if rng is not None else 0.2)
    side = round(max(glyph_h, right - left) + 2 * margin)
    image = Image.new("L", (side, side), 255)
    x = (side - (right - left)) / 2 - left
    y = (side - glyph_h) / 2 - top
    if rng is not None:  # off-centre, but never cut off
        x += rng.uniform(-0.5, 0.5) * margin
        y += rng.uniform(-0.5, 0.5) * margin
    ImageDraw.Draw(image).text((x, y), text, fill=0, font=font, stroke_width=stroke, stroke_fill=0)
    return image


def to_png(image: Image.Image) -> bytes:
    """PNG-encoded bytes of `image`."""
    buffer = io.BytesIO()
    image.save(buffer, format="PNG")
    return buffer.getvalue()


def to_jpeg(image: Image.Image, quality: int = 90) -> bytes:
    """JPEG-encoded bytes of `image` (greyscale or RGB)."""
    buffer = io.BytesIO()
    image.save(buffer, format="JPEG", quality=quality)
    return buffer.getvalue()
