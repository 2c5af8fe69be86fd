"""HEIC/HEIF and AVIF uploads (issue 23): read on every route that takes an image, upright, size-checked
from the header, and a JSON 4xx when broken. Files are made here: HEIC with pillow-heif's own encoder
(not the registered plugin), AVIF with Pillow's."""
from __future__ import annotations

import base64
import io
from collections.abc import Callable, Iterator

import numpy as np
import pillow_heif
import pytest
import requests
from PIL import AvifImagePlugin, Image

from client import is_image_key
from client.api import guess_content_type
from tests.support.images import APP_MAX_PIXELS, avif, encode, heic, solid
from util import errors
from util.serve.image import FORMAT_NAMES, Preprocessing, decode, preprocess

ORIENTATION = 0x0112  # EXIF tag; 6 = turn the stored picture 90 degrees clockwise to show it
FAST = {"preset": "ultrafast"}  # x265: big flat test pictures in a fraction of a second


ENCODERS: dict[str, Callable[..., bytes]] = {"heic": heic, "avif": avif}


def exif_6() -> bytes:
    exif = Image.Exif()
    exif[ORIENTATION] = 6
    return exif.tobytes()


def as_phone_stores(upright: Image.Image, fmt: str) -> bytes:
    """`upright` stored turned a quarter left with EXIF orientation 6, as a phone held upright stores it.
    pillow-heif keeps the EXIF tag and adds the container's rotation (`irot`), both, as iPhones do;
    Pillow's AVIF encoder moves the tag into `irot`."""
    return ENCODERS[fmt](upright.transpose(Image.Transpose.ROTATE_90), exif=exif_6())


def upright_digit(digits_split: tuple) -> Image.Image:
    """A 7 (wrong when turned), top-aligned on a taller white page (a turned reading has another size)."""
    from scripts.digits import render
    _, _, x_test, y_test = digits_split
    page = Image.new("L", (128, 176), 255)
    page.paste(render(x_test[list(y_test).index(7)]), (0, 0))
    return page


@pytest.mark.parametrize("fmt", ENCODERS)
def test_exif_orientation_is_applied_once(fmt: str, digits_split: tuple) -> None:
    upright = upright_digit(digits_split)
    data = as_phone_stores(upright, fmt)
    assert b"irot" in data  # the rotation is in the container...
    if fmt == "heic":  # ...and, in HEIC, also in the EXIF tag: applying both would turn it twice
        stored = pillow_heif.open_heif(io.BytesIO(data))
        exif = Image.Exif()
        exif.load(stored.info["exif"])
        assert exif[ORIENTATION] == 6
    decoded = np.asarray(decode(data, APP_MAX_PIXELS).convert("L"), dtype=np.float32)
    assert decoded.shape == (176, 128)
    want = np.asarray(upright, dtype=np.float32)
    error = np.abs(decoded - want).mean()
    assert error < 4.0, error
    assert np.abs(decoded - want[::-1, ::-1]).mean() > 5 * error  # the picture turned twice is far off


@pytest.fixture
def decoder_calls(monkeypatch: pytest.MonkeyPatch) -> Iterator[list[str]]:
    """Records every HEIF / AVIF pixel decode (the plugins decode in their public `load`)."""
    calls: list[str] = []
    for cls in (pillow_heif.HeifImageFile, AvifImagePlugin.AvifImageFile):
        real = cls.load

        def spy(self: Image.Image, real: Callable = real) -> object:
            calls.append(str(self.format))
            return real(self)
        monkeypatch.setattr(cls, "load", spy)
    yield calls


@pytest.mark.parametrize("fmt", ENCODERS)
def test_too_many_pixels_fail_before_decoding(fmt: str, decoder_calls: list[str]) -> None:
    over = Image.new("L", (2001, 2000), 128)  # 4,002,000 pixels, as tests/support/images.py's PNG
    data = heic(over, enc_params=FAST) if fmt == "heic" else avif(over, speed=10)
    with pytest.raises(errors.ImageTooLarge):
        preprocess(data, (8, 8, 1), Preprocessing(), APP_MAX_PIXELS)
    assert decoder_calls == []
    # Control: the spies do see a decode below the limit.
    preprocess(ENCODERS[fmt](solid((200, 30, 30))), (8, 8, 3), Preprocessing(), APP_MAX_PIXELS)
    assert decoder_calls and set(decoder_calls) == {"HEIF" if fmt == "heic" else "AVIF"}


def broken() -> dict[str, bytes]:
    """Corrupt and truncated files of both formats, and a HEIC container holding AV1 (libheif has no decoder)."""
    rng = np.random.default_rng(0)
    picture = Image.fromarray(rng.integers(0, 256, (64, 64, 3), dtype=np.uint8))
    cases = {}
    for fmt, encoder in ENCODERS.items():
        data = encoder(picture)
        cases |= {f"{fmt}-half": data[: len(data) // 2], f"{fmt}-last-byte-cut": data[:-1],
                  f"{fmt}-header-only": data[:32], f"{fmt}-garbage-after-ftyp": data[:12] + rng.bytes(300)}
    av1 = avif(picture)
    cases["av1-branded-heic"] = av1[:8] + b"heic" + av1[12:]
    return cases


BROKEN = broken()


@pytest.mark.parametrize("name", BROKEN)
def test_broken_files_are_a_400(name: str) -> None:
    with pytest.raises(errors.InvalidImage) as caught:
        preprocess(BROKEN[name], (8, 8, 3), Preprocessing(), APP_MAX_PIXELS)
    assert caught.value.status == 400 and caught.value.message


@pytest.mark.parametrize("fmt", ENCODERS)
def test_files_branded_mif1_reach_the_right_decoder(fmt: str) -> None:
    # `mif1` (any HEIF-family file) is the major brand some writers use for HEIC and AVIF alike.
    data = ENCODERS[fmt](solid((200, 30, 30)))
    data = data[:8] + b"mif1" + data[12:]
    image = decode(data, APP_MAX_PIXELS)
    assert image.format == ("HEIF" if fmt == "heic" else "AVIF")
    assert image.convert("RGB").getpixel((5, 5))[0] > 180


def test_heif_primary_image_is_read_even_when_not_the_first() -> None:
    collection = pillow_heif.from_pillow(solid((220, 20, 20)))
    collection.add_from_pillow(solid((20, 20, 220)))
    buf = io.BytesIO()
    collection.save(buf, primary_index=1)
    assert decode(buf.getvalue(), APP_MAX_PIXELS).convert("RGB").getpixel((3, 3))[2] > 180  # blue, the primary


def test_unsupported_format_message_names_the_new_formats() -> None:
    with pytest.raises(errors.UnsupportedMediaType) as caught:
        decode(encode(solid((255, 0, 0)), "PPM"), APP_MAX_PIXELS)
    assert FORMAT_NAMES in caught.value.message and "HEIC" in FORMAT_NAMES and "AVIF" in FORMAT_NAMES


def test_heic_thumbnail_is_decoded_for_a_small_target() -> None:
    """Phones store a small copy beside the picture; a small model input decodes it instead of every pixel."""
    picture = solid((40, 200, 60), (640, 480))
    picture.paste((230, 40, 40), (0, 0, 320, 480))  # left half red
    data = heic(picture, thumbnails=[160])
    assert decode(data, APP_MAX_PIXELS).size == (640, 480)
    small = decode(data, APP_MAX_PIXELS, target=(8, 8))
    assert small.size == (160, 120)
    full = preprocess(heic(picture), (8, 8, 3), Preprocessing(), APP_MAX_PIXELS)  # no thumbnail to use
    assert np.abs(preprocess(data, (8, 8, 3), Preprocessing(), APP_MAX_PIXELS) - full).max() < 0.05


def test_client_sends_the_right_content_type() -> None:
    picture = solid((200, 30, 30))
    assert guess_content_type("photo", heic(picture)) == "image/heic"
    assert guess_content_type("photo", avif(picture)) == "image/avif"
    for name, kind in (("a.heic", "image/heic"), ("a.HEIF", "image/heif"), ("a.avif", "image/avif")):
        assert guess_content_type(name, b"") == kind
        assert is_image_key(f"photos/{name}")


# The live server (one, shared with other modules): every route, each picture as PNG, HEIC and AVIF.

@pytest.fixture(scope="module")
def uploads(digits_split: tuple) -> list[dict[str, bytes]]:
    """Three held-out digits as PNG, HEIC, AVIF; the first also stored turned with EXIF orientation 6."""
    from scripts.digits import render, to_png
    _, _, x_test, _ = digits_split
    pictures = []
    for digit in x_test[:3]:
        image = render(digit)
        pictures.append({"png": to_png(image), "heic": heic(image), "avif": avif(image)})
    upright = upright_digit(digits_split)
    pictures.append({"png": to_png(upright), "heic": as_phone_stores(upright, "heic"),
                     "avif": as_phone_stores(upright, "avif")})
    return pictures


def flat(uploads: list[dict[str, bytes]]) -> list[tuple[str, bytes]]:
    return [(f"{i}.{fmt}", data) for i, picture in enumerate(uploads) for fmt, data in picture.items()]


def png_label(labels: dict[str, str], name: str) -> str:
    return labels[name.split(".")[0] + ".png"]


@pytest.mark.slow
def test_native_and_batch_routes(live_server: str, uploads: list[dict[str, bytes]]) -> None:
    labels = {}
    for name, data in flat(uploads):
        answer = requests.post(f"{live_server}/digits/prediction", files={"image": (name, data)}, timeout=30)
        assert answer.status_code == 200, answer.text
        labels[name] = answer.json()["label"]
    assert labels == {name: png_label(labels, name) for name in labels}
    assert labels["3.png"] == "7"  # the upright page reads as the digit it holds
    batch = requests.post(f"{live_server}/digits/predictions", timeout=30,
                          files=[("images", item) for item in flat(uploads)])
    assert batch.status_code == 200, batch.text
    assert {r["filename"]: r["label"] for r in batch.json()["results"]} == labels


@pytest.mark.slow
def test_tf_serving_and_v2_bodies(live_server: str, uploads: list[dict[str, bytes]]) -> None:
    names, texts = zip(*[(name, base64.b64encode(data).decode()) for name, data in flat(uploads)], strict=True)
    tfs = requests.post(f"{live_server}/v1/models/digits:predict", timeout=30,
                        json={"instances": [{"b64": text} for text in texts]})
    assert tfs.status_code == 200, tfs.text
    best = dict(zip(names, np.argmax(tfs.json()["predictions"], axis=1).tolist(), strict=True))
    assert best == {name: best[name.split(".")[0] + ".png"] for name in names}
    v2 = requests.post(f"{live_server}/v2/models/digits/infer", timeout=30, json={
        "inputs": [{"name": "image", "datatype": "BYTES", "shape": [len(texts)], "data": list(texts)}],
        "outputs": [{"name": "scores", "parameters": {"classification": 1}}]})
    assert v2.status_code == 200, v2.text
    top = dict(zip(names, (int(row.split(":")[1]) for row in v2.json()["outputs"][0]["data"]), strict=True))
    assert top == best


@pytest.mark.slow
def test_explanation_route(live_server: str, uploads: list[dict[str, bytes]]) -> None:
    labels = {}
    for fmt, data in uploads[3].items():  # the digit stored turned: the map must be of the upright picture
        answer = requests.post(f"{live_server}/digits/explanation", files={"image": (f"p.{fmt}", data)},
                               data={"grid": "2"}, headers={"Accept": "application/json"}, timeout=30)
        assert answer.status_code == 200, answer.text
        labels[fmt] = answer.json()["label"]
    assert labels == {"png": "7", "heic": "7", "avif": "7"}


@pytest.mark.slow
def test_errors_over_http(live_server: str) -> None:
    over = Image.new("L", (8000, 5001), 128)  # 40,008,000 pixels: over the default MAX_IMAGE_PIXELS
    for name, data in (("big.heic", heic(over, quality=10, enc_params=FAST)),
                       ("big.avif", avif(over, quality=10, speed=10)),
                       ("cut.heic", BROKEN["heic-half"]), ("cut.avif", BROKEN["avif-last-byte-cut"]),
                       ("av1.heic", BROKEN["av1-branded-heic"]), ("p.ppm", encode(solid((255, 0, 0)), "PPM"))):
        answer = requests.post(f"{live_server}/digits/prediction", files={"image": (name, data)}, timeout=30)
        want = {"big": (422, "image_too_large"), "p": (415, "unsupported_media_type")}.get(
            name.split(".")[0], (400, "invalid_image"))
        assert (answer.status_code, answer.json()["error"]) == want, (name, answer.text)
    assert FORMAT_NAMES in answer.json()["message"]
    spec = requests.get(f"{live_server}/swagger.json", timeout=10).text
    assert spec.count(FORMAT_NAMES) >= 3  # prediction, batch and explanation image fields
