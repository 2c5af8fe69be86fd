"""Image bytes -> model input array, following a model's `preprocessing` settings.

Pure functions, no Flask: decoding is defensive (size checked from the header before any
pixel is decoded) because every byte here comes from the network.
"""
from __future__ import annotations

import io
import warnings
from functools import lru_cache
from typing import Annotated, Any, Literal, get_args

import numpy as np
import PIL.AvifImagePlugin  # noqa: F401 - registers Pillow's AVIF plugin before HEIF's (see below)
import pillow_heif
from msgspec import Meta, Struct, structs
from PIL import Image, ImageOps, UnidentifiedImageError, features

from util.errors import ImageTooLarge, InvalidImage, UnsupportedMediaType
from util.schemas import convert, rule
from util.serve.crop import crop_to_content

# Pillow identifies more formats than we want to parse from strangers (EPS runs Ghostscript).
ACCEPTED_FORMATS = frozenset({"PNG", "JPEG", "MPO", "GIF", "WEBP", "BMP", "TIFF", "DIB", "HEIF", "AVIF"})
FORMAT_NAMES = "PNG, JPEG, GIF, WebP, BMP, TIFF, HEIC/HEIF or AVIF"  # for people: messages and docs
# Formats whose decoder can skip work when a smaller picture will do (see `decode`).
DRAFT_FORMATS = frozenset({"JPEG", "HEIF"})
# Pillow reads AVIF itself (libavif); pillow-heif adds HEIC/HEIF (libheif + libde265) and has no AV1
# decoder any more (libheif_info()["AVIF"] is empty). Both claim files branded `mif1`: Pillow tries
# plugins in the order they were registered and moves on when one refuses a file, so AVIF
# (registered by the import above) goes first, or an AV1 picture branded `mif1` would reach libheif.
if not features.check_module("avif"):
    raise ImportError("this Pillow was built without AVIF support: install the Pillow wheel requirements.txt pins")
pillow_heif.register_heif_opener()
Resize = Literal["stretch", "pad", "crop"]
Scale = Literal["unit", "tf", "torch", "caffe", "raw"]
Resample = Literal["nearest", "bilinear", "bicubic", "lanczos", "box"]  # the keys of RESAMPLING
RESIZE_MODES: tuple[str, ...] = get_args(Resize)
SCALES: tuple[str, ...] = get_args(Scale)
Side = Annotated[int, Meta(ge=1, le=4096)]
RESAMPLING = {"nearest": Image.Resampling.NEAREST, "bilinear": Image.Resampling.BILINEAR,
              "bicubic": Image.Resampling.BICUBIC, "lanczos": Image.Resampling.LANCZOS,
              "box": Image.Resampling.BOX}
IMAGENET_MEAN = np.array([0.485, 0.456, 0.406], dtype=np.float32)
IMAGENET_STD = np.array([0.229, 0.224, 0.225], dtype=np.float32)
CAFFE_MEAN_BGR = np.array([103.939, 116.779, 123.68], dtype=np.float32)
WHITE = 255
CROP_HEADROOM = 4
INPUT_RANGES = {"unit": (0.0, 1.0), "tf": (-1.0, 1.0), "raw": (0.0, 255.0),
                "torch": (-2.2, 2.7), "caffe": (-124.0, 152.0)}


class Preprocessing(Struct, frozen=True, forbid_unknown_fields=True):
    """How a model wants its pixels, as model.yaml `preprocessing` declares it: see README "model.yaml"."""

    resize: Resize = "stretch"
    resample: Resample = "bilinear"
    scale: Scale = "unit"
    invert: bool = False
    autocontrast: bool = False
    # "content": cut to what is drawn, padded to the input's aspect (util/serve/crop.py); None: the whole picture
    crop: Literal["content"] | None = None
    crop_margin: Annotated[float, Meta(ge=0.0, le=1.0)] = 0.1  # of the content's longer side, on every side
    # (height, width) for models whose input size is unknown
    size: Annotated[tuple[Side, Side] | None,
                    rule("preprocessing.size must be [height, width] in pixels (1..4096)")] = None

    @classmethod
    def from_dict(cls, raw: dict[str, Any] | None) -> Preprocessing:
        """model.yaml's `preprocessing` mapping, validated (ValueError naming the key and the rule)."""
        return convert(raw or {}, cls, root="preprocessing")

    def to_dict(self) -> dict[str, Any]:
        d = structs.asdict(self)
        d["size"] = list(self.size) if self.size else None
        if self.crop is None:
            del d["crop_margin"]  # means nothing without a crop: listed only with one
        return d


def open_image(data: bytes, max_pixels: int) -> Image.Image:
    """Identify `data` and check its size from the header, no pixel decoded yet, or raise a 4xx error."""
    if not data:
        raise InvalidImage("the uploaded file is empty")
    try:
        with warnings.catch_warnings():
            # Our own pixel limit (below) is stricter; Pillow's warning would only be noise.
            warnings.simplefilter("ignore", Image.DecompressionBombWarning)
            image = Image.open(io.BytesIO(data))
    except Image.DecompressionBombError as exc:
        raise ImageTooLarge(f"image is too large in pixels: {exc}") from None
    except (UnidentifiedImageError, OSError, ValueError, SyntaxError) as exc:
        raise InvalidImage(f"the uploaded file is not a readable image ({exc.__class__.__name__})") from None
    if image.format not in ACCEPTED_FORMATS:
        raise UnsupportedMediaType(f"image format {image.format} is not accepted; send {FORMAT_NAMES}")
    width, height = image.size
    if width < 1 or height < 1:
        raise InvalidImage("the image has no pixels")
    if width * height > max_pixels:
        raise ImageTooLarge(f"image is {width}x{height} = {width * height} pixels; the limit is {max_pixels}")
    return image


def decode(data: bytes, max_pixels: int, target: tuple[int, int] | None = None) -> Image.Image:
    """Decode to a loaded, upright first frame; JPEG and HEIF decode less when `target` is small."""
    image = open_image(data, max_pixels)
    try:
        if target and image.format in DRAFT_FORMATS:
            # Still at least the target size, for much less work: JPEG decodes at 1/2..1/8 scale (DCT
            # scaling); HEIF decodes an embedded thumbnail instead of the picture when pillow-heif finds
            # one that is a scaled copy at least this large (phones store one, e.g. 320x240 beside 12 MP).
            side = max(target)
            image.draft(image.mode, (side, side))
        if image.format != "HEIF":  # a HEIF file opens on its primary image, which need not be the first
            image.seek(0)  # animated GIF / WebP / AVIF, multi-page TIFF: the first frame
        image.load()
        ImageOps.exif_transpose(image, in_place=True)  # in place: no copy of an upright image
    except Image.DecompressionBombError as exc:
        raise ImageTooLarge(f"image is too large in pixels: {exc}") from None
    except (OSError, ValueError, SyntaxError, EOFError, IndexError) as exc:
        raise InvalidImage(f"the image data is corrupt or truncated ({exc})") from None
    except RuntimeError as exc:  # libheif's other failures, e.g. a HEIF holding a codec it was built without
        raise InvalidImage(f"the image could not be decoded ({exc})") from None
    return image


def to_mode(image: Image.Image, channels: int) -> Image.Image:
    """Greyscale (1 channel) or RGB (3), with any transparency composited on white."""
    if image.mode in {"I;16", "I;16B", "I;16L", "I;16N", "I", "F"}:
        image = _high_depth_to_l(image)
    if image.mode == "P":
        image = image.convert("RGBA" if "transparency" in image.info else "RGB")
    if image.mode in {"RGBA", "LA", "PA", "RGBa", "La"} or "transparency" in image.info:
        rgba = image.convert("RGBA")
        background = Image.new("RGBA", rgba.size, (WHITE, WHITE, WHITE, 255))
        image = Image.alpha_composite(background, rgba)
    return image.convert("L" if channels == 1 else "RGB")


def _high_depth_to_l(image: Image.Image) -> Image.Image:
    """16-bit, 32-bit and float images: scale to 8 bits instead of Pillow's clipping.

    The range is read off the data where the mode does not fix it: floats up to 1.0 are
    0..1, values up to 255 are already 8-bit, anything larger is 16-bit.
    """
    arr = np.asarray(image, dtype=np.float64)
    peak = float(arr.max(initial=0))
    if image.mode.startswith("I;16") or peak > 255:
        arr = arr / 257.0
    elif image.mode == "F" and peak <= 1.0:
        arr = arr * 255.0
    return Image.fromarray(np.clip(np.rint(arr), 0, 255).astype(np.uint8), "L")


def resize(image: Image.Image, size: tuple[int, int], mode: str, resample: str) -> Image.Image:
    """Resize to (width, height) by stretching, letterboxing on white, or centre-cropping."""
    method = RESAMPLING[resample]
    if mode == "stretch" or image.size == size:
        return image.resize(size, method)
    if mode == "crop":
        return ImageOps.fit(image, size, method)
    fill = WHITE if image.mode == "L" else (WHITE, WHITE, WHITE)
    return ImageOps.pad(image, size, method, color=fill)


def to_array(image: Image.Image, p: Preprocessing) -> np.ndarray:
    """Pixels (H, W, C) as float32, inverted / contrast-stretched / scaled as configured.

    Every step maps one 8-bit value to one float, so the steps run once over the 256
    levels and the pixels are looked up: the same floats as running them per pixel, in a
    fraction of the time (this is on every request's path).
    """
    pixels = np.asarray(image)
    if pixels.ndim == 2:
        pixels = pixels[:, :, None]
    channels = pixels.shape[2]
    low = high = 0.0
    if p.autocontrast:
        low, high = float(pixels.min()), float(pixels.max())
        if p.invert:
            low, high = 255.0 - high, 255.0 - low
    if p.scale == "caffe" and channels == 3:
        pixels = pixels[:, :, ::-1]  # BGR: output channel c reads input channel 2 - c
    table = _table(p, channels, low, high)
    if channels == 1 or p.scale not in {"torch", "caffe"}:
        return np.take(table[:, 0], pixels)  # same floats as table[:, 0][pixels], 2.5x faster
    return table[pixels, np.arange(channels)]


@lru_cache(maxsize=256)
def _table(p: Preprocessing, channels: int, low: float, high: float) -> np.ndarray:
    """The float for each of the 256 levels, per channel (256, C); read-only, as it is shared."""
    table = _levels(np.repeat(np.arange(256, dtype=np.float32)[:, None], channels, axis=1), p, low, high)
    table.flags.writeable = False
    return table


def _levels(x: np.ndarray, p: Preprocessing, low: float, high: float) -> np.ndarray:
    """The per-value steps on float32 levels (..., C); `low`/`high` bound the autocontrast stretch."""
    if p.invert:
        x = 255.0 - x
    if p.autocontrast and high > low:  # a flat image has no contrast to stretch and stays as it is
        x = (x - low) * (255.0 / (high - low))
    if p.scale == "unit":
        return x / 255.0
    if p.scale == "tf":
        return x / 127.5 - 1.0
    if p.scale == "torch":
        return (x / 255.0 - IMAGENET_MEAN[: x.shape[-1]]) / IMAGENET_STD[: x.shape[-1]]
    if p.scale == "caffe":  # BGR order (see to_array), ImageNet mean subtracted, no scaling
        return x - CAFFE_MEAN_BGR if x.shape[-1] == 3 else x - CAFFE_MEAN_BGR.mean()
    return x


def preprocess_image(image: Image.Image, shape: tuple[int, int, int], p: Preprocessing) -> np.ndarray:
    """A decoded image -> model input of `shape` (height, width, channels)."""
    height, width, channels = shape
    image = to_mode(image, channels)
    if p.crop == "content":
        image = crop_to_content(image, (width, height), p.crop_margin)
    image = resize(image, (width, height), p.resize, p.resample)
    return to_array(image, p)


def preprocess(data: bytes, shape: tuple[int, int, int], p: Preprocessing, max_pixels: int) -> np.ndarray:
    """Uploaded bytes -> model input of `shape`; raises util.errors on bad input."""
    # A reduced decode (JPEG's DCT scaling, a HEIC's thumbnail) keeps at least the input size. With a crop
    # to the content, keep CROP_HEADROOM times that, so content a quarter of the picture's side is still cut
    # from full detail rather than enlarged from a few pixels.
    headroom = CROP_HEADROOM if p.crop else 1
    image = decode(data, max_pixels, target=(shape[1] * headroom, shape[0] * headroom))
    return preprocess_image(image, shape, p)


def input_range(p: Preprocessing) -> tuple[float, float]:
    """The range of values `to_array` produces, for sampling verification inputs."""
    return INPUT_RANGES[p.scale]
