"""scikit-learn's bundled handwritten digits, rendered the way people upload them.

The default `digits` model is trained in-repo from `sklearn.datasets.load_digits` (8x8
intensities 0..16, light ink on black). Uploads are the opposite: a dark digit on light
paper at any size, so these helpers draw each 8x8 digit as such a picture; the training
script, the tests and the benchmarks all share them. numpy, Pillow and scikit-learn only:
nothing here imports TensorFlow.
"""
from __future__ import annotations

import io
import math
from functools import lru_cache
from pathlib import Path

import matplotlib
import numpy as np
from PIL import Image, ImageDraw, ImageFilter, ImageFont
from scipy.ndimage import distance_transform_edt
from sklearn.datasets import load_digits
from sklearn.model_selection import train_test_split

TEST_FRACTION = 0.2
MAX_INTENSITY = 16.0  # load_digits counts set pixels in 4x4 blocks: 0..16
CANVAS_RANGE = (24, 300)  # pixels per side of an augmented upload
FILL_RANGE = (0.55, 1.0)  # share of the canvas's short side the digit covers
MAX_ROTATION = 12.0  # degrees
MAX_SLANT = 0.35  # horizontal shift per unit of height: hands lean forward or back
SQUEEZE_RANGE = (0.7, 1.3)  # width / height: narrow or broad hands
STROKE_SIZE = 32  # working size (pixels) for thickening / thinning strokes
PEN_SIZE = 64  # working size (pixels) for redrawing a digit's skeleton with a pen
PEN_SHARE = 0.5  # of augmented digits, redrawn as pen strokes
PEN_RANGE = (0.015, 0.12)  # pen radius, as a share of the digit's height
# matplotlib's bundled fonts (a dev requirement) whose digits are shaped differently from each other
PEN_FONTS = ("DejaVuSans.ttf", "DejaVuSans-Oblique.ttf", "DejaVuSansMono.ttf", "DejaVuSerif.ttf",
             "DejaVuSerif-Italic.ttf", "STIXGeneral.ttf", "STIXGeneralItalic.ttf", "cmr10.ttf", "cmss10.ttf",
             "cmtt10.ttf", "cmti10.ttf")


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
    if rng.random() < PEN_SHARE:  # drawn with a pen of one width, as on the demo page's pad
        return _upload(restroke(np.asarray(_ink(digit, (PEN_SIZE, PEN_SIZE), Image.Resampling.BICUBIC)) > 96,
                                rng.uniform(*PEN_RANGE)), rng)
    # Stroke weight changes at a fixed working size: cheap, and alike for every canvas size.
    ink = _ink(digit, (STROKE_SIZE, STROKE_SIZE), Image.Resampling.BICUBIC)
    if rng.random() < 0.5:
        size = int(rng.choice([3, 3, 5]))
        ink = ink.filter(ImageFilter.MaxFilter(size) if rng.random() < 0.6 else ImageFilter.MinFilter(size))
    return _upload(ink, rng)


def render_pen_font(label: int, rng: np.random.Generator) -> Image.Image:
    """`label` in one of matplotlib's bundled fonts, its centre lines redrawn with a pen, then varied as an upload.

    scikit-learn's writers all wrote some digits one way (a 1 with a long flag and no foot, a 6
    with a short top); fonts add the other common shapes (a 1 with a foot, a round-topped 6,
    an open 4, a 7 without a bar), and the pen makes them strokes rather than print.
    """
    centre = _font_skeletons()[label][int(rng.integers(len(PEN_FONTS)))]
    return _upload(restroke(centre, rng.uniform(*PEN_RANGE), thin=False), rng)


@lru_cache(maxsize=1)
def _font_skeletons() -> dict[int, list[np.ndarray]]:
    """Per digit, its centre lines in each of PEN_FONTS (thinning is the slow part: done once)."""
    fonts = Path(matplotlib.get_data_path()) / "fonts" / "ttf"
    out: dict[int, list[np.ndarray]] = {label: [] for label in range(10)}
    for name in PEN_FONTS:
        font = ImageFont.truetype(str(fonts / name), PEN_SIZE)
        for label in range(10):
            left, top, right, bottom = font.getbbox(str(label))
            glyph = Image.new("L", (right - left + 4, bottom - top + 4), 0)
            ImageDraw.Draw(glyph).text((2 - left, 2 - top), str(label), fill=255, font=font)
            out[label].append(skeleton(np.asarray(glyph) > 128))
    return out


def _upload(ink: Image.Image, rng: np.random.Generator) -> Image.Image:
    """Ink coverage ("L", 255 = ink) placed as a varied upload: squeezed, slanted, turned, on paper."""
    short = int(rng.integers(CANVAS_RANGE[0], CANVAS_RANGE[1] + 1))
    long = short if rng.random() < 0.6 else int(short * rng.uniform(1.0, 1.5))
    width, height = (short, long) if rng.random() < 0.5 else (long, short)
    side = max(8, round(short * rng.uniform(*FILL_RANGE)))
    aspect = ink.width / ink.height
    ink = ink.resize((max(4, round(side * aspect * rng.uniform(*SQUEEZE_RANGE))), side), Image.Resampling.BICUBIC)
    if rng.random() < 0.5:  # pen strokes have crisp edges, unlike the blurry upscale
        ink = _sharpen(ink, threshold=rng.uniform(0.25, 0.55))
    ink = _slant(ink, rng.uniform(-MAX_SLANT, MAX_SLANT))
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


def skeleton(mask: np.ndarray) -> np.ndarray:
    """Zhang-Suen thinning of a boolean image: the one-pixel-wide centre lines of its strokes."""
    img = np.pad(mask.astype(np.uint8), 1)
    for _ in range(mask.size):  # each pass peels one layer; the bound is only a safety net
        changed = False
        for step in (0, 1):
            # Neighbours clockwise from the one above: P2..P9 in Zhang and Suen's naming.
            n = [np.roll(img, shift, axis=(0, 1)) for shift in
                 ((1, 0), (1, -1), (0, -1), (-1, -1), (-1, 0), (-1, 1), (0, 1), (1, 1))]
            count = sum(v.astype(np.int32) for v in n)
            rises = sum(((n[i] == 0) & (n[(i + 1) % 8] == 1)).astype(np.int32) for i in range(8))
            p2, p4, p6, p8 = n[0], n[2], n[4], n[6]
            side = (p2 * p4 * p6 == 0) & (p4 * p6 * p8 == 0) if step == 0 else \
                (p2 * p4 * p8 == 0) & (p2 * p6 * p8 == 0)
            peel = (img == 1) & (count >= 2) & (count <= 6) & (rises == 1) & side
            img[peel] = 0
            changed |= bool(peel.any())
        if not changed:
            break
    return img[1:-1, 1:-1].astype(bool)


def restroke(mask: np.ndarray, radius: float, thin: bool = True) -> Image.Image:
    """The centre lines of `mask` (or `mask` itself, already thin) redrawn with a round pen of `radius`
    (a share of the height), as coverage "L" at STROKE_SIZE high."""
    centre = skeleton(mask) if thin else mask
    if not centre.any():
        centre = mask
    pen = radius * centre.shape[0]
    centre = np.pad(centre, int(np.ceil(pen)) + 1)  # room for the pen past the old edges
    coverage = np.clip(pen + 0.5 - distance_transform_edt(~centre), 0.0, 1.0)  # a soft, antialiased edge
    drawn = Image.fromarray(np.rint(coverage * 255).astype(np.uint8), "L")
    return drawn.resize((max(1, round(STROKE_SIZE * drawn.width / drawn.height)), STROKE_SIZE), Image.Resampling.BOX)


def _slant(ink: Image.Image, shear: float) -> Image.Image:
    """Lean the ink by `shear` (x moves by shear x height, the top to the right when positive), widened to fit."""
    width, height = ink.size
    grow = math.ceil(abs(shear) * height)
    # Image.transform maps each output pixel back to the input: x_in = x_out + shear * (y - height / 2) - grow / 2
    return ink.transform((width + grow, height), Image.Transform.AFFINE,
                         (1.0, shear, -shear * height / 2 - grow / 2, 0.0, 1.0, 0.0), Image.Resampling.BILINEAR)


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
