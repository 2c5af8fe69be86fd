"""Test images generated in code (Pillow + numpy), with the answers the test models must give.

`ACCEPTED` cases carry the label of the `colors` model (dominant mean RGB channel, stretch resize)
and of the `shades` model (light iff mean grey level > 0.5, centre-crop resize); see
tests/support/builders.py. `color` is None for greyscale sources: their three colour scores are equal, so
no colour may win on merit (check that the confidences are equal instead of a label).
`BAD` cases carry the HTTP status and `error` code the API must answer with. The same bytes are
meant to be posted by in-process and live-server tests alike.

Many cases are chosen so that a plausible decoding mistake flips an answer: transparent pixels
are black underneath (dropping alpha or compositing on black turns `light` into `dark`), the
16-bit level is dark only when scaled (clipping makes it white), the GIF's later frames have the
opposite answers to its first frame, and the wide JPEG is light only in its centre crop.
"""
from __future__ import annotations

import io
import struct
import zlib
from typing import NamedTuple

import numpy as np
import pillow_heif
from PIL import Image

APP_MAX_PIXELS = 4_000_000  # mirrors MAX_IMAGE_PIXELS in tests/conftest.py's `app`
ORIENTATION = 0x0112  # EXIF tag
PHONE_QUALITY = 90  # HEIC and AVIF test pictures
PATCH = (255, 0, 0)  # the marker patch in the EXIF-rotated JPEGs
EXIF_SIZE = (48, 16)  # stored (width, height); displayed 16x48 after a 90-degree rotation
LEVEL_16 = 20000  # of 65535: 78/255 when scaled (dark), 255 when clipped (light)
GIF_FRAMES = ((200, 0, 0), (150, 150, 255), (170, 170, 255))  # red+dark first, then blue+light


class Accepted(NamedTuple):
    id: str
    data: bytes
    color: str | None  # `colors` label; None = greyscale, all three scores equal
    shade: str  # `shades` label


class Bad(NamedTuple):
    id: str
    data: bytes
    status: int
    error: str


def encode(image: Image.Image, fmt: str, **params: object) -> bytes:
    buf = io.BytesIO()
    image.save(buf, fmt, **params)
    return buf.getvalue()


def heic(image: Image.Image, **params: object) -> bytes:
    """`image` as a phone's HEIC (pillow-heif's encoder; Pillow has none)."""
    buf = io.BytesIO()
    pillow_heif.from_pillow(image).save(buf, **{"quality": PHONE_QUALITY, **params})
    return buf.getvalue()


def avif(image: Image.Image, **params: object) -> bytes:
    """`image` as AVIF (Pillow's own encoder)."""
    return encode(image, "AVIF", **{"quality": PHONE_QUALITY, **params})


def solid(color: tuple[int, ...] | int, size: tuple[int, int] = (32, 24), mode: str = "RGB") -> Image.Image:
    return Image.new(mode, size, color)


def exif_jpeg(orientation: int) -> bytes:
    """Green JPEG with a red patch at the stored top-left corner and an EXIF orientation tag."""
    image = solid((0, 160, 0), EXIF_SIZE)
    image.paste(PATCH, (0, 0, 8, 8))
    exif = image.getexif()
    exif[ORIENTATION] = orientation
    return encode(image, "JPEG", quality=95, exif=exif.tobytes())


def quarter_opaque(mode: str, opaque: tuple[int, ...], clear: tuple[int, ...], size: int = 32) -> Image.Image:
    """Square image: left quarter `opaque`, the rest `clear` (fully transparent, black underneath)."""
    image = Image.new(mode, (size, size), clear)
    image.paste(opaque, (0, 0, size // 4, size))
    return image


def palette_png() -> bytes:
    """Palette PNG: index 1 = red (left quarter), index 0 = black and marked transparent."""
    image = Image.new("P", (32, 32), 0)
    image.putpalette([0, 0, 0, 255, 0, 0] + [0, 0, 0] * 254)
    image.paste(1, (0, 0, 8, 32))
    return encode(image, "PNG", transparency=0)


def sixteen_bit_png() -> bytes:
    image = Image.fromarray(np.full((24, 32), LEVEL_16, dtype=np.uint16))  # mode I;16
    return encode(image, "PNG")


def animated_gif() -> bytes:
    frames = [solid(color) for color in GIF_FRAMES]
    return encode(frames[0], "GIF", save_all=True, append_images=frames[1:], duration=100, loop=0)


def wide_jpeg(size: tuple[int, int] = (1500, 400)) -> bytes:
    """Red sides, light-grey square centre: colours says red, the centre crop says light,
    while a stretched (uncropped) grey image would be dark."""
    width, height = size
    image = solid((200, 0, 0), size)
    left = (width - height) // 2
    image.paste((230, 230, 230), (left, 0, left + height, height))
    return encode(image, "JPEG", quality=90)


def noise(size: tuple[int, int] = (96, 96), seed: int = 0) -> Image.Image:
    """Random pixels: incompressible, so half of the encoded file is half of the pixel data."""
    rng = np.random.default_rng(seed)
    return Image.fromarray(rng.integers(0, 256, (size[1], size[0], 3), dtype=np.uint8), "RGB")


def png_chunk(kind: bytes, payload: bytes) -> bytes:
    return struct.pack(">I", len(payload)) + kind + payload + struct.pack(">I", zlib.crc32(kind + payload))


def bomb_png(width: int = 30000, height: int = 30000) -> bytes:
    """A PNG header declaring width x height greyscale pixels, with only 16 rows of pixel data."""
    header = struct.pack(">IIBBBBB", width, height, 8, 0, 0, 0, 0)  # 8-bit greyscale, no interlace
    rows = zlib.compress(b"\x00" * ((width + 1) * 16), 9)  # filter byte + zero pixels per row
    return (b"\x89PNG\r\n\x1a\n" + png_chunk(b"IHDR", header) + png_chunk(b"IDAT", rows)
            + png_chunk(b"IEND", b""))


def half(data: bytes) -> bytes:
    return data[: len(data) // 2]


def build_accepted() -> list[Accepted]:
    rgba = quarter_opaque("RGBA", (0, 0, 255, 255), (0, 0, 0, 0))  # white+blue: blue, light
    la = quarter_opaque("LA", (40, 255), (0, 0))
    rgb_key = quarter_opaque("RGB", (0, 0, 255), (0, 0, 0))  # tRNS chunk: black is transparent
    bilevel = Image.new("1", (16, 16), 1)
    bilevel.paste(0, (0, 0, 16, 4))  # top quarter black: still light
    return [
        Accepted("exif-rotate-6-jpeg", exif_jpeg(6), "green", "dark"),
        Accepted("exif-rotate-8-jpeg", exif_jpeg(8), "green", "dark"),
        Accepted("rgba-png-transparent", encode(rgba, "PNG"), "blue", "light"),
        Accepted("la-png-transparent", encode(la, "PNG"), None, "light"),
        Accepted("palette-png-transparent", palette_png(), "red", "light"),
        Accepted("rgb-png-colour-key", encode(rgb_key, "PNG", transparency=(0, 0, 0)), "blue", "light"),
        Accepted("cmyk-jpeg", encode(solid((200, 0, 200, 0), mode="CMYK"), "JPEG", quality=95), "green", "light"),
        Accepted("16bit-grey-png", sixteen_bit_png(), None, "dark"),
        Accepted("animated-gif", animated_gif(), "red", "dark"),
        Accepted("webp", encode(solid((180, 180, 255)), "WEBP", lossless=True), "blue", "light"),
        Accepted("bmp", encode(solid((255, 200, 200)), "BMP"), "red", "light"),
        Accepted("tiff", encode(solid((20, 150, 20)), "TIFF"), "green", "dark"),
        Accepted("rgb-png", encode(solid((220, 20, 20)), "PNG"), "red", "dark"),
        Accepted("rgb-jpeg", encode(solid((60, 230, 60)), "JPEG", quality=95), "green", "light"),
        Accepted("grey-l-png", encode(solid(210, mode="L"), "PNG"), None, "light"),
        Accepted("bilevel-png", encode(bilevel, "PNG"), None, "light"),
        Accepted("tiny-1x1-png", encode(solid((10, 10, 240), (1, 1)), "PNG"), "blue", "dark"),
        Accepted("wide-1500x400-jpeg", wide_jpeg(), "red", "light"),
    ]


def build_bad() -> list[Bad]:
    over_limit = Image.new("L", (2001, 2000), 128)  # 4,002,000 pixels, a few KB as PNG
    assert over_limit.width * over_limit.height > APP_MAX_PIXELS
    return [
        Bad("empty", b"", 400, "invalid_image"),
        Bad("not-an-image", b"hello, this is plain text and not a picture\n" * 20, 400, "invalid_image"),
        Bad("truncated-jpeg", half(encode(noise(), "JPEG", quality=90)), 400, "invalid_image"),
        Bad("truncated-png", half(encode(noise(), "PNG")), 400, "invalid_image"),
        Bad("bomb-30000x30000-png", bomb_png(), 422, "image_too_large"),
        Bad("over-4mp-png", encode(over_limit, "PNG"), 422, "image_too_large"),
        Bad("ppm", encode(solid((255, 0, 0)), "PPM"), 415, "unsupported_media_type"),
        Bad("pcx", encode(solid((255, 0, 0)), "PCX"), 415, "unsupported_media_type"),
        Bad("ico", encode(solid((255, 0, 0), (32, 32)), "ICO"), 415, "unsupported_media_type"),
    ]


ACCEPTED: list[Accepted] = build_accepted()
BAD: list[Bad] = build_bad()


def by_id(case_id: str) -> Accepted | Bad:
    for case in [*ACCEPTED, *BAD]:
        if case.id == case_id:
            return case
    raise KeyError(case_id)
