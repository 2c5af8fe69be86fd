"""`preprocessing.crop: content`: against a plain per-pixel implementation, hand-made cases, and the API."""
from __future__ import annotations

import io
import statistics

import numpy as np
import pytest
from PIL import Image, ImageDraw

from util.serve.crop import MIN_CONTRAST, RELATIVE_CONTRAST, BlankImage, crop_to_content
from util.serve.image import Preprocessing, preprocess_image


def reference(image: Image.Image, size: tuple[int, int], margin: float) -> np.ndarray | None:
    """The crop written out pixel by pixel, as the docstring of util/serve/crop.py words it; None when blank."""
    width, height = image.size
    px = image.load()
    channels = 1 if image.mode == "L" else 3

    def at(x: int, y: int) -> tuple[int, ...]:
        v = px[x, y]
        return (v,) if channels == 1 else tuple(v)

    border = [(x, y) for x in range(width) for y in range(height) if x in (0, width - 1) or y in (0, height - 1)]
    colour = [statistics.median(at(x, y)[c] for x, y in border) for c in range(channels)]
    rounded = [round(v) for v in colour]
    diffs = {(x, y): max(abs(at(x, y)[c] - rounded[c]) for c in range(channels))
             for x in range(width) for y in range(height)}
    peak = max(diffs.values())
    if peak <= MIN_CONTRAST:
        return None
    ink = [xy for xy, d in diffs.items() if d > max(MIN_CONTRAST, RELATIVE_CONTRAST * peak)]
    left, right = min(x for x, _ in ink), max(x for x, _ in ink) + 1
    top, bottom = min(y for _, y in ink), max(y for _, y in ink) + 1
    pad = round(margin * max(right - left, bottom - top))
    w, h = right - left + 2 * pad, bottom - top + 2 * pad
    aspect = size[0] / size[1]
    if w < h * aspect:
        w = max(1, round(h * aspect))
    else:
        h = max(1, round(w / aspect))
    x0 = int(np.floor((left + right) / 2 - w / 2))
    y0 = int(np.floor((top + bottom) / 2 - h / 2))
    out = np.zeros((h, w, channels), dtype=np.uint8)
    for y in range(h):
        for x in range(w):
            sx, sy = x0 + x, y0 + y
            out[y, x] = at(sx, sy) if 0 <= sx < width and 0 <= sy < height else rounded
    return out


def cropped(image: Image.Image, size: tuple[int, int], margin: float) -> np.ndarray:
    out = np.asarray(crop_to_content(image, size, margin))
    return out[:, :, None] if out.ndim == 2 else out


def random_picture(rng: np.random.Generator) -> Image.Image:
    """Paper of some colour, a few strokes and blobs of some ink, a little noise; sometimes nothing."""
    mode = "L" if rng.random() < 0.5 else "RGB"
    width, height = (int(v) for v in rng.integers(6, 40, size=2))
    paper = tuple(int(v) for v in rng.integers(150, 256, size=3))
    image = Image.new(mode, (width, height), paper[0] if mode == "L" else paper)
    pen = ImageDraw.Draw(image)
    for _ in range(int(rng.integers(0, 4))):
        ink = tuple(int(v) for v in rng.integers(0, 256, size=3))
        xy = [tuple(int(v) for v in rng.integers(-3, max(width, height) + 3, size=2)) for _ in range(2)]
        pen.line(xy, fill=ink[0] if mode == "L" else ink, width=int(rng.integers(1, 4)))
    pixels = np.asarray(image).astype(np.int16) + rng.integers(-12, 13, size=np.asarray(image).shape)
    return Image.fromarray(np.clip(pixels, 0, 255).astype(np.uint8), mode)


def test_matches_the_reference_on_random_pictures() -> None:
    rng = np.random.default_rng(23)
    blank = 0
    for _ in range(300):
        image = random_picture(rng)
        size = (int(rng.integers(1, 30)), int(rng.integers(1, 30)))
        margin = float(rng.choice([0.0, 0.1, 0.5]))
        expected = reference(image, size, margin)
        if expected is None:
            blank += 1
            with pytest.raises(BlankImage):
                crop_to_content(image, size, margin)
            continue
        np.testing.assert_array_equal(cropped(image, size, margin), expected)
    assert 10 < blank < 150  # both kinds of picture were tried


def test_hand_made_box_margin_and_aspect() -> None:
    image = Image.new("L", (20, 10), 255)
    image.paste(0, (2, 3, 6, 5))  # ink: x 2..5, y 3..4
    out = cropped(image, (8, 8), 0.25)[:, :, 0]
    # pad round(0.25 x 4) = 1 -> 6 x 4, then square: 6 x 6 starting at (1, 1)
    expected = np.full((6, 6), 255, dtype=np.uint8)
    expected[2:4, 1:5] = 0
    np.testing.assert_array_equal(out, expected)


def test_hand_made_one_pixel_and_wide_aspect() -> None:
    image = Image.new("L", (10, 10), 255)
    image.putpixel((7, 2), 0)
    np.testing.assert_array_equal(cropped(image, (1, 1), 0.0)[:, :, 0], [[0]])
    wide = cropped(image, (3, 1), 0.0)[:, :, 0]  # three times as wide as high, the pixel in the middle
    np.testing.assert_array_equal(wide, [[255, 0, 255]])


def test_frame_past_the_edge_is_filled_with_the_background_not_black() -> None:
    image = Image.new("RGB", (12, 12), (200, 220, 240))
    image.paste((10, 10, 10), (0, 0, 3, 6))  # ink in the corner: the square frame reaches past the left edge
    out = cropped(image, (4, 4), 0.5)
    assert out.shape == (12, 12, 3)
    assert (out[0, 0] == (200, 220, 240)).all()
    assert ((out == (10, 10, 10)).all(axis=2)).sum() == 18


def test_faint_fringe_does_not_widen_the_box_but_a_light_stroke_alone_counts() -> None:
    image = Image.new("L", (30, 30), 250)
    image.paste(0, (10, 10, 14, 14))
    image.putpixel((28, 28), 250 - 40)  # above MIN_CONTRAST, below a quarter of the ink's 250
    assert cropped(image, (1, 1), 0.0).shape == (4, 4, 1)
    light = Image.new("L", (30, 30), 250)
    light.paste(250 - 40, (5, 5, 7, 9))
    assert cropped(light, (1, 1), 0.0).shape == (4, 4, 1)


@pytest.mark.parametrize("picture", [Image.new("L", (40, 30), 255), Image.new("RGB", (5, 5), (30, 60, 90)),
                                     Image.fromarray(np.random.default_rng(0).integers(118, 138, (50, 50),
                                                                                      dtype=np.uint8), "L")])
def test_blank_pictures_are_refused(picture: Image.Image) -> None:
    with pytest.raises(BlankImage) as error:
        preprocess_image(picture, (8, 8, 1), Preprocessing(crop="content"))
    assert error.value.status == 400 and error.value.code == "blank_image" and "blank" in str(error.value)


def test_position_and_size_on_the_canvas_no_longer_matter() -> None:
    p = Preprocessing(resize="pad", scale="unit", invert=True, crop="content", crop_margin=0.1)

    def seven(canvas: int, at: tuple[int, int], height: int) -> Image.Image:
        image = Image.new("L", (canvas, canvas), 255)
        x, y = at
        ImageDraw.Draw(image).line([(x, y), (x + height * 0.7, y), (x + height * 0.25, y + height)], fill=0,
                                   width=max(1, height // 8))
        return image

    big = preprocess_image(seven(100, (15, 10), 80), (8, 8, 1), p)
    small = preprocess_image(seven(800, (700, 20), 80), (8, 8, 1), p)  # same drawing, in a corner of a big canvas
    np.testing.assert_allclose(small, big, atol=1e-6)
    uncropped = preprocess_image(seven(800, (700, 20), 80), (8, 8, 1), Preprocessing(resize="pad", invert=True))
    assert np.abs(uncropped - big).max() > 0.5


def test_the_api_refuses_a_blank_drawing_for_the_default_model() -> None:
    from application import create_app
    from tests.conftest import ROOT
    app = create_app({"MODELS_DIR": str(ROOT / "saved_models"), "PRELOAD_MODELS": True})
    buffer = io.BytesIO()
    Image.new("RGB", (280, 280), "white").save(buffer, format="PNG")
    response = app.test_client().post("/digits/prediction", data={"image": (io.BytesIO(buffer.getvalue()), "b.png")})
    assert response.status_code == 400, response.get_json()
    body = response.get_json()
    assert body["error"] == "blank_image" and "nothing to classify" in body["message"]
