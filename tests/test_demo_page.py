"""The demo page in Debian's Chromium against the live server: bars equal the API's answer, the
explanation is drawn, errors are readable, keyboard and camera work, desktop and phone widths."""
from __future__ import annotations

import io
from collections.abc import Iterator
from pathlib import Path
from urllib.parse import urlsplit

import numpy as np
import pytest
import requests
from PIL import Image

from tests.conftest import ROOT
from tests.support.browser import CHROMIUM, FLAGS
from tests.support.pad import bars, shows

pytestmark = pytest.mark.slow
OUTPUT = ROOT / "test-output"
# A fake camera (Chromium's test pattern) that needs no permission prompt.
CAMERA = ["--use-fake-device-for-media-stream", "--use-fake-ui-for-media-stream"]
DESKTOP, PHONE = {"width": 1280, "height": 900}, {"width": 390, "height": 844}


@pytest.fixture(scope="module")
def digit(digits_split, tmp_path_factory: pytest.TempPathFactory) -> Path:
    from scripts.digits import render, to_png
    _, _, x_test, y_test = digits_split
    path = tmp_path_factory.mktemp("demo") / "five.png"
    path.write_bytes(to_png(render(x_test[int(np.flatnonzero(y_test == 5)[0])])))
    return path


@pytest.fixture(scope="module")
def browser_context(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple]:
    from playwright.sync_api import sync_playwright
    assert CHROMIUM.exists(), "Debian's chromium is missing: `make test` installs it (scripts/ensure_chromium.sh)"
    requested: list[str] = []
    with sync_playwright() as playwright:
        context = playwright.chromium.launch_persistent_context(
            str(tmp_path_factory.mktemp("profile")), executable_path=str(CHROMIUM), headless=True,
            args=FLAGS + CAMERA, viewport=DESKTOP)
        context.on("request", lambda request: requested.append(request.url))
        try:
            yield context, requested
        finally:
            context.close()
    outside = [url for url in requested if urlsplit(url).scheme in {"http", "https", "ws", "wss"}
               and urlsplit(url).hostname != "127.0.0.1"]
    assert not outside, f"the page loaded from outside 127.0.0.1: {outside}"


def picture(page) -> np.ndarray:
    return np.asarray(Image.open(io.BytesIO(page.locator(".stack").screenshot())).convert("RGB")).astype(int)


def test_demo_classifies_explains_and_reports_errors(live_server: str, browser_context, digit: Path,
                                                     tmp_path: Path) -> None:
    from playwright.sync_api import expect
    context, requested = browser_context
    page = context.new_page()
    page.goto(f"{live_server}/demo")
    expect(page.get_by_role("link", name="API documentation (Swagger UI)")).to_have_attribute("href", "/")
    expect(page.get_by_label("Model")).to_have_value("digits")

    page.locator("#file").set_input_files(str(digit))
    expect(page.locator("#bars li").first).to_be_visible(timeout=20_000)
    api = requests.post(f"{live_server}/digits/prediction", files={"image": digit.read_bytes()}, timeout=10).json()
    shown = shows(page, api)
    assert shown[0][0] == "5"
    expect(page.locator("#top-label")).to_have_text(api["label"])
    expect(page.locator("#timing")).to_contain_text("Answered in")
    width = page.locator("#bars li .bar").first.evaluate("e => e.style.width")
    assert float(width.rstrip("%")) == pytest.approx(100 * api["confidence"], abs=0.01)

    before = picture(page)
    page.get_by_label("Show the explanation").check()
    overlay = page.locator("#overlay")
    expect(overlay).to_be_visible(timeout=20_000)
    assert overlay.evaluate("e => e.complete && e.naturalWidth") >= 256
    expect(overlay).to_have_attribute("alt", "Heat map over the image: the regions that support the label 5")
    after = picture(page)
    assert np.abs(after - before).mean() > 5, "the overlay changed nothing on screen"
    assert any(url.endswith("/digits/explanation") for url in requested)
    OUTPUT.mkdir(exist_ok=True)
    page.screenshot(path=str(OUTPUT / "demo-desktop.png"), full_page=True)
    page.get_by_label("Show the explanation").uncheck()
    expect(overlay).to_be_hidden()

    text = tmp_path / "notes.txt"
    text.write_text("this is not an image")
    page.locator("#file").set_input_files(str(text))
    expect(page.get_by_role("alert")).to_contain_text("not a readable image", timeout=20_000)
    big = tmp_path / "huge.png"
    big.write_bytes(b"\0" * (10 * 1024 * 1024 + 1))
    page.locator("#file").set_input_files(str(big))
    expect(page.get_by_role("alert")).to_contain_text("this server accepts images up to 10.0 MB")
    page.close()


def test_demo_by_keyboard_at_phone_width(live_server: str, browser_context, digit: Path) -> None:
    from playwright.sync_api import expect
    context, _ = browser_context
    page = context.new_page()
    page.set_viewport_size(PHONE)
    page.goto(f"{live_server}/demo")
    for _ in range(10):  # Tab through the page to the drop zone, as a keyboard user would
        page.keyboard.press("Tab")
        if page.evaluate("document.activeElement.id") == "drop":
            break
    assert page.evaluate("document.activeElement.id") == "drop"
    # Enter opens the file chooser (a click on the file input). Whether headless Chromium reports the
    # chooser depends on which tab has focus, so the click itself is what is checked.
    page.evaluate("document.getElementById('file').addEventListener('click', () => { window.chooserOpened = true })")
    page.keyboard.press("Enter")
    assert page.evaluate("window.chooserOpened === true"), "Enter on the drop zone did not open the file chooser"
    page.locator("#file").set_input_files(str(digit))
    expect(page.locator("#top-label")).to_have_text("5", timeout=20_000)
    page.get_by_label("Show the explanation").focus()
    page.keyboard.press("Space")
    expect(page.locator("#overlay")).to_be_visible(timeout=20_000)
    assert page.evaluate("document.documentElement.scrollWidth") <= PHONE["width"], "the page scrolls sideways"
    OUTPUT.mkdir(exist_ok=True)
    page.screenshot(path=str(OUTPUT / "demo-phone.png"), full_page=True)
    page.close()


def test_demo_takes_a_photo_with_the_camera(live_server: str, browser_context) -> None:
    from playwright.sync_api import expect
    context, _requested = browser_context
    page = context.new_page()
    page.goto(f"{live_server}/demo")
    page.get_by_role("button", name="Use the camera").click()
    expect(page.locator("#video")).to_be_visible()
    page.wait_for_function("document.getElementById('video').videoWidth > 0", timeout=20_000)
    page.get_by_role("button", name="Take the photo").click()
    expect(page.locator("#bars li").first).to_be_visible(timeout=20_000)
    assert page.locator("#preview").evaluate("e => e.alt") == "The image you chose: camera.png"
    assert len(bars(page)) == 5
    page.close()


def test_swagger_links_the_page_and_demo_page_false_removes_both(models_dir: Path) -> None:
    from application import create_app
    client = create_app({"MODELS_DIR": str(models_dir)}).test_client()
    assert "](/demo)" in client.get("/swagger.json").get_json()["info"]["description"]
    page = client.get("/demo")
    assert page.status_code == 200 and b'<option value="colors"' in page.data and b'href="/"' in page.data
    assert b"PNG, JPEG, GIF, WebP, BMP, TIFF, HEIC or AVIF" in page.data
    off = create_app({"MODELS_DIR": str(models_dir), "DEMO_PAGE": False}).test_client()
    assert off.get("/demo").status_code == 404 and off.get("/demo").get_json()["error"] == "not_found"
    assert "/demo" not in off.get("/swagger.json").get_json()["info"]["description"]


def test_with_api_keys_the_page_stays_open_and_asks_for_a_key(models_dir: Path) -> None:
    from application import create_app
    client = create_app({"MODELS_DIR": str(models_dir), "API_KEYS": "k"}).test_client()
    page = client.get("/demo")
    assert page.status_code == 200 and b'id="key"' in page.data
    assert all(client.get(f"/ui/{name}.js").status_code == 200 for name in ("demo", "upload", "draw"))
    # Open paths are exact: a model route that merely starts like one still needs the key.
    for path in ("/demo-model/prediction", "/demo/x", "/metrics2/", "/swagger.jsonx"):
        assert client.get(path).status_code == 401, path
    closed = create_app({"MODELS_DIR": str(models_dir), "API_KEYS": "k", "API_KEYS_OPEN": ""}).test_client()
    assert closed.get("/demo").status_code == 401


def test_demo_takes_a_heic_the_browser_cannot_show(live_server: str, browser_context, digits_split,
                                                   tmp_path: Path) -> None:
    """Chromium shows no HEIC: the answer is the server's, and the picture is shown as the server read it."""
    from playwright.sync_api import expect

    from scripts.digits import render
    from tests.support.images import heic
    _, _, x_test, _ = digits_split
    photo = tmp_path / "photo.heic"
    photo.write_bytes(heic(render(x_test[0], 256).convert("RGB")))
    context, _ = browser_context
    page = context.new_page()
    page.goto(f"{live_server}/demo")
    page.locator("#file").set_input_files(str(photo))
    expect(page.locator("#bars li").first).to_be_visible(timeout=20_000)
    api = requests.post(f"{live_server}/digits/prediction", files={"image": photo.read_bytes()}, timeout=10).json()
    shows(page, api)
    expect(page.locator("#overlay")).to_be_visible(timeout=20_000)
    expect(page.locator("#preview")).to_be_hidden()
    expect(page.locator("#explain-note")).to_contain_text("cannot show this picture")
    assert page.locator("#overlay").evaluate("e => e.complete && e.naturalWidth") >= 256
    page.close()
