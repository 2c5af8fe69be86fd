"""util/serve/image.py on its own: decoding, transparency, bit depth, frames, resize, scales, limits."""
from __future__ import annotations

import io
import tracemalloc
from collections.abc import Iterator

import numpy as np
import pytest
from PIL import Image

from tests.support import images
from tests.support.images import ACCEPTED, APP_MAX_PIXELS, BAD, Accepted, Bad, by_id
from util import errors
from util.serve.image import (
    SCALES,
    Preprocessing,
    decode,
    input_range,
    preprocess,
    preprocess_image,
    resize,
    to_array,
    to_mode,
)

COLORS, SHADES = ("red", "green", "blue"), ("dark", "light")
COLORS_SHAPE, SHADES_SHAPE = (8, 8, 3), (8, 8, 1)
COLORS_P, SHADES_P = Preprocessing(), Preprocessing(resize="crop")  # as the test models declare
ERRORS = {400: errors.InvalidImage, 415: errors.UnsupportedMediaType, 422: errors.ImageTooLarge}


def colors_answer(x: np.ndarray) -> str | None:
    """What the `colors` model computes (dominant mean channel); None when all channels tie."""
    means = x.mean(axis=(0, 1))
    return None if np.ptp(means) < 1e-6 else COLORS[int(np.argmax(means))]


def shades_answer(x: np.ndarray) -> str:
    """What the `shades` model computes: light iff the mean level is above 0.5."""
    return SHADES[int(x.mean() > 0.5)]


def pixel(image: Image.Image, xy: tuple[int, int]) -> tuple[int, ...]:
    value = image.getpixel(xy)
    return value if isinstance(value, tuple) else (value,)


def is_red(rgb: tuple[int, ...]) -> bool:
    return rgb[0] > 200 and rgb[1] < 80 and rgb[2] < 80  # JPEG blurs colours a little


@pytest.mark.parametrize("case", ACCEPTED, ids=lambda c: c.id)
def test_accepted_preprocess_to_model_input(case: Accepted) -> None:
    rgb = preprocess(case.data, COLORS_SHAPE, COLORS_P, APP_MAX_PIXELS)
    grey = preprocess(case.data, SHADES_SHAPE, SHADES_P, APP_MAX_PIXELS)
    for x, shape in ((rgb, COLORS_SHAPE), (grey, SHADES_SHAPE)):
        assert x.shape == shape and x.dtype == np.float32
        assert np.isfinite(x).all() and x.min() >= 0.0 and x.max() <= 1.0
    # The labels in tests/support/images.py are reasoned from the pictures; the pixels must agree.
    assert colors_answer(rgb) == case.color
    assert shades_answer(grey) == case.shade


@pytest.mark.parametrize("scale", SCALES)
def test_every_scale_stays_in_its_documented_range(scale: str) -> None:
    for case in ACCEPTED:
        for shape in (COLORS_SHAPE, SHADES_SHAPE):
            p = Preprocessing(scale=scale, resize="pad")
            x = preprocess(case.data, shape, p, APP_MAX_PIXELS)
            low, high = input_range(p)
            assert low <= x.min() and x.max() <= high, (case.id, shape)


# Orientation 6 = rotate 90 degrees clockwise to display, 8 = counter-clockwise, 1 = as stored.
@pytest.mark.parametrize(("orientation", "size", "corner"), [
    (1, (48, 16), "top-left"), (6, (16, 48), "top-right"), (8, (16, 48), "bottom-left")])
def test_exif_orientation_is_applied(orientation: int, size: tuple[int, int], corner: str) -> None:
    image = decode(images.exif_jpeg(orientation), APP_MAX_PIXELS).convert("RGB")
    assert image.size == size
    w, h = size
    corners = {"top-left": (2, 2), "top-right": (w - 3, 2), "bottom-left": (2, h - 3), "bottom-right": (w - 3, h - 3)}
    for name, xy in corners.items():
        assert is_red(pixel(image, xy)) == (name == corner), name


def test_exif_rotation_reaches_the_model_input() -> None:
    x = preprocess(by_id("exif-rotate-6-jpeg").data, (48, 16, 3), Preprocessing(scale="raw"), APP_MAX_PIXELS)
    assert is_red(tuple(x[2, 13].astype(int))) and not is_red(tuple(x[2, 2].astype(int)))


# (case, a pixel in the opaque quarter, its colour, a pixel in the transparent area)
@pytest.mark.parametrize(("case_id", "opaque"), [
    ("rgba-png-transparent", (0, 0, 255)), ("la-png-transparent", (40, 40, 40)),
    ("palette-png-transparent", (255, 0, 0)), ("rgb-png-colour-key", (0, 0, 255))])
def test_transparency_is_composited_on_white(case_id: str, opaque: tuple[int, int, int]) -> None:
    image = decode(by_id(case_id).data, APP_MAX_PIXELS)
    rgb, grey = to_mode(image, 3), to_mode(image, 1)
    assert rgb.mode == "RGB" and grey.mode == "L"
    assert pixel(rgb, (20, 5)) == (255, 255, 255) and pixel(grey, (20, 5)) == (255,)
    assert pixel(rgb, (2, 5)) == opaque


def test_16_bit_grey_is_scaled_not_clipped() -> None:
    image = decode(by_id("16bit-grey-png").data, APP_MAX_PIXELS)
    assert image.mode.startswith("I")  # really decoded as more than 8 bits
    level = pixel(to_mode(image, 1), (3, 3))[0]
    assert abs(level - images.LEVEL_16 / 65535 * 255) <= 0.5
    assert pixel(to_mode(image, 3), (3, 3)) == (level,) * 3


def test_animated_gif_uses_the_first_frame() -> None:
    data = by_id("animated-gif").data
    assert Image.open(io.BytesIO(data)).n_frames == len(images.GIF_FRAMES)
    assert pixel(to_mode(decode(data, APP_MAX_PIXELS), 3), (5, 5)) == images.GIF_FRAMES[0]


@pytest.mark.parametrize("case", BAD, ids=lambda c: c.id)
def test_bad_input_raises_its_error(case: Bad) -> None:
    with pytest.raises(ERRORS[case.status]) as info:
        preprocess(case.data, COLORS_SHAPE, COLORS_P, APP_MAX_PIXELS)
    assert info.value.status == case.status and info.value.code == case.error
    assert info.value.message


@pytest.fixture
def decoder_calls(monkeypatch: pytest.MonkeyPatch) -> Iterator[list[str]]:
    """Records every pixel decoder Pillow creates (all decoding goes through Image._getdecoder)."""
    calls: list[str] = []
    real = Image._getdecoder

    def spy(mode: str, decoder_name: str, *args: object, **kwargs: object) -> object:
        calls.append(decoder_name)
        return real(mode, decoder_name, *args, **kwargs)
    monkeypatch.setattr(Image, "_getdecoder", spy)
    yield calls


@pytest.mark.parametrize("case_id", ["bomb-30000x30000-png", "over-4mp-png"])
def test_oversized_images_fail_before_decoding(case_id: str, decoder_calls: list[str]) -> None:
    data = by_id(case_id).data
    assert len(data) < 100_000
    # tracemalloc sees Python and numpy memory (not Pillow's C buffers: the spy covers those).
    tracemalloc.start()
    try:
        with pytest.raises(errors.ImageTooLarge):
            preprocess(data, COLORS_SHAPE, COLORS_P, APP_MAX_PIXELS)
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert decoder_calls == []
    assert peak < 1_000_000


def test_decoder_spy_sees_real_decoding(decoder_calls: list[str]) -> None:
    # Control for the test above: an accepted image does go through the spied decoder.
    preprocess(by_id("rgb-png").data, COLORS_SHAPE, COLORS_P, APP_MAX_PIXELS)
    assert decoder_calls


def test_large_jpeg_is_draft_decoded_with_the_same_answer() -> None:
    case = by_id("wide-1500x400-jpeg")
    full = decode(case.data, APP_MAX_PIXELS)
    draft = decode(case.data, APP_MAX_PIXELS, target=(8, 8))
    assert full.size == (1500, 400)
    assert draft.height >= 8 and draft.width <= full.width // 4  # DCT scaling, still above target
    for shape, p, answer in ((COLORS_SHAPE, COLORS_P, colors_answer), (SHADES_SHAPE, SHADES_P, shades_answer)):
        fast, slow = preprocess(case.data, shape, p, APP_MAX_PIXELS), preprocess_image(full, shape, p)
        assert np.abs(fast - slow).max() < 0.08
        assert answer(fast) == answer(slow) == (case.color if shape == COLORS_SHAPE else case.shade)


def test_preprocessing_defaults_and_round_trip() -> None:
    assert Preprocessing.from_dict(None) == Preprocessing.from_dict({}) == Preprocessing()
    p = Preprocessing.from_dict({"resize": "pad", "scale": "tf", "resample": "nearest", "invert": True})
    assert (p.resize, p.scale, p.resample, p.invert, p.autocontrast) == ("pad", "tf", "nearest", True, False)
    assert Preprocessing.from_dict(p.to_dict()) == p


@pytest.mark.parametrize(("raw", "mentions"), [
    ({"colour": "rgb"}, "colour"), ({"resize": "zoom"}, "zoom"), ({"scale": "imagenet"}, "imagenet"),
    ({"resample": "cubic"}, "cubic"), ({"invert": "yes"}, "invert"), ({"autocontrast": 1}, "autocontrast"),
    ({"resize": None}, "resize")])
def test_preprocessing_rejects_bad_settings(raw: dict, mentions: str) -> None:
    with pytest.raises(ValueError, match=mentions):
        Preprocessing.from_dict(raw)


def ramp(width: int = 4, height: int = 2, step: int = 40) -> Image.Image:
    """Greyscale columns 0, step, 2*step, ... (every row the same)."""
    row = np.arange(width, dtype=np.uint8) * step
    return Image.fromarray(np.tile(row, (height, 1)), "L")


def test_resize_stretch_averages_the_whole_image() -> None:
    out = np.asarray(resize(ramp(), (2, 2), "stretch", "box"))
    assert out.tolist() == [[20, 100], [20, 100]]


def test_resize_crop_keeps_the_centre() -> None:
    assert np.asarray(resize(ramp(), (2, 2), "crop", "nearest")).tolist() == [[40, 80], [40, 80]]
    tall = ramp().transpose(Image.Transpose.TRANSPOSE)  # 2 wide, 4 tall: rows 0, 40, 80, 120
    assert np.asarray(resize(tall, (2, 2), "crop", "nearest")).tolist() == [[40, 40], [80, 80]]


def test_resize_pad_letterboxes_on_white() -> None:
    row = [0, 40, 80, 120]
    assert np.asarray(resize(ramp(), (4, 4), "pad", "nearest")).tolist() == [[255] * 4, row, row, [255] * 4]
    rgb = np.asarray(resize(ramp().convert("RGB"), (4, 4), "pad", "nearest"))
    assert (rgb[0] == 255).all() and (rgb[1, :, 0] == row).all()


def test_target_shape_is_height_width_channels() -> None:
    x = preprocess_image(ramp(), (1, 2, 1), Preprocessing(resample="box", scale="raw"))
    assert x.shape == (1, 2, 1) and x[..., 0].tolist() == [[20, 100]]


RGB_PIXEL = (0, 128, 255)


@pytest.mark.parametrize(("scale", "expected"), [
    ("unit", [0 / 255, 128 / 255, 255 / 255]),
    ("tf", [-1.0, 128 / 127.5 - 1, 1.0]),
    ("torch", [(0 - 0.485) / 0.229, (128 / 255 - 0.456) / 0.224, (1 - 0.406) / 0.225]),
    ("caffe", [255 - 103.939, 128 - 116.779, 0 - 123.68]),  # BGR order, mean subtracted
    ("raw", [0.0, 128.0, 255.0])])
def test_scales(scale: str, expected: list[float]) -> None:
    x = to_array(Image.new("RGB", (1, 1), RGB_PIXEL), Preprocessing(scale=scale))
    assert x.dtype == np.float32 and x.shape == (1, 1, 3)
    np.testing.assert_allclose(x[0, 0], expected, rtol=1e-5, atol=1e-5)


def grey_row(*levels: int) -> Image.Image:
    return Image.fromarray(np.array([levels], dtype=np.uint8), "L")


@pytest.mark.parametrize(("invert", "autocontrast", "expected"), [
    (False, False, [50, 100, 150]), (True, False, [205, 155, 105]),
    (False, True, [0, 127.5, 255]), (True, True, [255, 127.5, 0])])  # invert first, then stretch
def test_invert_and_autocontrast(invert: bool, autocontrast: bool, expected: list[float]) -> None:
    p = Preprocessing(scale="raw", invert=invert, autocontrast=autocontrast)
    np.testing.assert_allclose(to_array(grey_row(50, 100, 150), p)[0, :, 0], expected, atol=1e-4)


def test_autocontrast_of_a_flat_image_does_not_divide_by_zero() -> None:
    with np.errstate(all="raise"):
        x = to_array(grey_row(90, 90, 90), Preprocessing(autocontrast=True))
    assert np.isfinite(x).all() and 0 <= x.min() <= x.max() <= 1


@pytest.mark.parametrize("values, level", [(0.3, 76), (200.0, 200), (20000.0, 78)])
def test_float_images_are_scaled_by_their_range(values: float, level: int) -> None:
    # 0..1 floats, 8-bit-range floats and 16-bit-range floats all land on the same 0..255 scale.
    buf = io.BytesIO()
    Image.fromarray(np.full((4, 4), values, np.float32), "F").save(buf, "TIFF")
    x = preprocess(buf.getvalue(), (4, 4, 1), Preprocessing(scale="raw"), APP_MAX_PIXELS)
    assert np.all(np.abs(x - level) <= 1)


def test_autocontrast_leaves_a_flat_image_unchanged() -> None:
    x = preprocess_image(Image.new("L", (4, 4), 200), (4, 4, 1), Preprocessing(scale="raw", autocontrast=True))
    assert np.all(x == 200)


def per_pixel(image: Image.Image, p: Preprocessing) -> np.ndarray:
    """The straightforward float pipeline that to_array's lookup table must reproduce exactly."""
    x = np.asarray(image, dtype=np.float32)
    x = x[:, :, None] if x.ndim == 2 else x
    if p.invert:
        x = 255.0 - x
    if p.autocontrast:
        low, high = float(x.min()), float(x.max())
        if high > low:
            x = (x - low) * (255.0 / (high - low))
    if p.scale == "unit":
        return x / 255.0
    if p.scale == "tf":
        return x / 127.5 - 1.0
    if p.scale == "torch":
        return (x / 255.0 - np.array([0.485, 0.456, 0.406], np.float32)[: x.shape[2]]) \
            / np.array([0.229, 0.224, 0.225], np.float32)[: x.shape[2]]
    if p.scale == "caffe":
        mean = np.array([103.939, 116.779, 123.68], np.float32)
        return x[:, :, ::-1] - mean if x.shape[2] == 3 else x - mean.mean()
    return x


@pytest.mark.parametrize("mode", ["L", "RGB"])
@pytest.mark.parametrize("scale", SCALES)
@pytest.mark.parametrize("invert", [False, True])
@pytest.mark.parametrize("autocontrast", [False, True])
def test_lookup_table_equals_per_pixel_arithmetic(mode: str, scale: str, invert: bool, autocontrast: bool) -> None:
    rng = np.random.default_rng(len(mode) * 7 + invert * 3 + autocontrast)
    pixels = rng.integers(20, 230, (9, 11, 3), dtype=np.uint8)
    pixels[0, 0] = (20, 140, 229)  # distinct channels, so a swapped channel order shows
    image = Image.fromarray(pixels if mode == "RGB" else pixels[:, :, 0], mode)
    p = Preprocessing(scale=scale, invert=invert, autocontrast=autocontrast)
    got, want = to_array(image, p), per_pixel(image, p)
    assert got.dtype == np.float32 and got.shape == want.shape and got.flags.writeable
    np.testing.assert_array_equal(got, want)
