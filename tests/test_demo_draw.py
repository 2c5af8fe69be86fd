"""The demo page's drawing pad in Debian's Chromium against a live server: drawn with the mouse and by
touch, the PNG the page sent answers the same through the API as on the page; no scrolling while
drawing; Clear and Undo; one request in flight and the last drawing wins; the explanation; the
version and top-k pickers."""
from __future__ import annotations

import shutil
from collections.abc import Callable, Iterator
from contextlib import AbstractContextManager
from pathlib import Path
from urllib.parse import urlsplit

import numpy as np
import pytest
import requests

from tests.conftest import ROOT
from tests.support.browser import CHROMIUM, FLAGS
from tests.support.pad import COUNT_FETCHES, Sent, bars, canvas, draw, pixels, settled, shows, touch

pytestmark = pytest.mark.slow
OUTPUT = ROOT / "test-output"
DESKTOP, PHONE = {"width": 1280, "height": 900}, {"width": 390, "height": 844}
# Strokes in the pad's unit square (y down): a 7 as one stroke, and a few short ones.
SEVEN = [(0.3, 0.25), (0.45, 0.25), (0.7, 0.25), (0.6, 0.5), (0.45, 0.8)]
ONE = [(0.5, 0.2), (0.5, 0.5), (0.5, 0.8)]
BAR = [(0.4, 0.5), (0.65, 0.5)]
TICK = [(0.3, 0.75), (0.4, 0.8)]
@pytest.fixture(scope="module")
def browser() -> Iterator[Callable[..., object]]:
    """New pages in Debian's Chromium: `page(phone=False)`; nothing may be loaded from outside 127.0.0.1."""
    from playwright.sync_api import sync_playwright
    assert CHROMIUM.exists(), "Debian's chromium is missing: `make test` installs it (scripts/ensure_chromium.sh)"
    requested: list[str] = []
    with sync_playwright() as playwright:
        chromium = playwright.chromium.launch(executable_path=str(CHROMIUM), headless=True, args=FLAGS)

        def page(phone: bool = False):
            # A phone: touch, its layout viewport, and 3 device pixels per CSS pixel.
            context = chromium.new_context(viewport=PHONE if phone else DESKTOP, has_touch=phone, is_mobile=phone,
                                           device_scale_factor=3 if phone else 1)
            context.add_init_script(COUNT_FETCHES)
            context.on("request", lambda request: requested.append(request.url))
            opened = context.new_page()
            opened.on("close", lambda _: context.close())
            return opened
        try:
            yield page
        finally:
            chromium.close()
    outside = [url for url in requested if urlsplit(url).scheme in {"http", "https", "ws", "wss"}
               and urlsplit(url).hostname != "127.0.0.1"]
    assert not outside, f"the page loaded from outside 127.0.0.1: {outside}"


def answers_as_the_api(page, sent: Sent, base: str) -> dict:
    """The page's bars and link are the API's answer to the PNG it sent last, POSTed again here."""
    from playwright.sync_api import expect
    path, form, png = sent.form()
    assert png.startswith(b"\x89PNG\r\n\x1a\n"), "the drawing was not sent as a PNG"
    np.testing.assert_array_equal(pixels(png), canvas(page), "the last PNG sent is not the drawing on screen")
    api = requests.post(base + path, files={"image": ("drawing.png", png, "image/png")}, data=form, timeout=10)
    assert api.status_code == 200, api.text
    answer = api.json()
    shows(page, answer)
    expect(page.locator("#top-label")).to_have_text(answer["label"])
    link = page.get_by_role("link", name=f"{answer['model']} v{answer['version']}")
    expect(link).to_have_attribute("href", f"/{answer['model']}/versions/{answer['version']}/")
    expect(page.locator("#timing code")).to_have_text(f"POST {path}")
    print(f"{path} {form}: {answer['label']} {answer['confidence']:.4f} ({len(png)} byte PNG)")
    return answer


def test_draw_with_the_mouse_explain_clear_and_undo(live_server: str, browser) -> None:
    from playwright.sync_api import expect
    page = browser()
    sent = Sent(page)
    page.goto(f"{live_server}/demo")
    pad = page.get_by_role("img", name="Drawing pad for Handwritten digits")
    expect(pad).to_have_css("touch-action", "none")
    expect(page.locator("#prompt")).to_be_visible()
    expect(page.locator(".hint").first).to_contain_text("PNG, JPEG, GIF, WebP, BMP, TIFF, HEIC or AVIF")
    assert (canvas(page) == 255).all(), "the pad does not start white"

    draw(page, [SEVEN])
    settled(page, sent)
    assert answers_as_the_api(page, sent, live_server)["label"] == "7", "the default model misread a drawn 7"
    expect(page.locator("#preview")).to_have_attribute("alt", "Your drawing")
    ink = canvas(page)
    assert (ink < 64).all(axis=2).any() and (ink == 255).all(axis=2).mean() > 0.5, "no dark stroke on white"

    page.get_by_label("Show the explanation").check()
    overlay = page.locator("#overlay")
    expect(overlay).to_be_visible(timeout=20_000)
    expect(overlay).to_have_attribute("alt", f"Heat map over the image: the regions that support the label "
                                             f"{page.locator('#top-label').text_content()}")
    assert overlay.bounding_box() == page.locator("#preview").bounding_box(), "the overlay is not over the drawing"
    OUTPUT.mkdir(exist_ok=True)
    page.screenshot(path=str(OUTPUT / "demo-draw-desktop.png"), full_page=True)
    page.get_by_label("Show the explanation").uncheck()

    before = len(sent.requests)
    page.get_by_role("button", name="Clear the drawing").click()
    page.wait_for_timeout(600)
    assert (canvas(page) == 255).all(), "Clear left ink on the pad"
    assert len(sent.requests) == before, "Clear sent a request"
    expect(page.locator("#result")).to_be_hidden()
    expect(page.locator("#prompt")).to_be_visible()
    expect(page.get_by_role("status")).to_have_text("The drawing is cleared.")

    draw(page, [ONE])
    settled(page, sent)
    one = canvas(page)
    draw(page, [BAR])
    settled(page, sent)
    assert not np.array_equal(canvas(page), one)
    page.get_by_role("button", name="Undo the last stroke").click()
    np.testing.assert_array_equal(canvas(page), one, "Undo did not give the drawing before the last stroke")
    settled(page, sent)
    # The answer is the one for the stroke left, and it reads as what it is.
    assert answers_as_the_api(page, sent, live_server)["label"] == "1", "the default model misread a drawn 1"
    before = len(sent.requests)
    page.get_by_role("button", name="Undo the last stroke").click()
    page.wait_for_timeout(600)
    assert (canvas(page) == 255).all() and len(sent.requests) == before, "an empty pad was sent"
    expect(page.locator("#prompt")).to_be_visible()
    page.close()


def test_draw_by_touch_at_phone_width_without_scrolling(live_server: str, browser) -> None:
    from playwright.sync_api import expect
    page = browser(phone=True)
    sent = Sent(page)
    page.goto(f"{live_server}/demo")
    page.locator("#pad").scroll_into_view_if_needed()
    page.evaluate("window.kinds = []; document.getElementById('pad')"
                  ".addEventListener('pointerdown', (e) => window.kinds.push(e.pointerType))")
    scroll = "[window.scrollY, document.scrollingElement.scrollTop, window.scrollX]"
    before = page.evaluate(scroll)
    assert page.evaluate("document.documentElement.scrollHeight > innerHeight"), "the page cannot scroll at all"
    touch(page, SEVEN)
    touch(page, TICK)
    settled(page, sent)
    assert page.evaluate("window.kinds") == ["touch", "touch"]
    assert page.evaluate(scroll) == before, "drawing scrolled the page"
    answers_as_the_api(page, sent, live_server)
    assert page.evaluate("document.documentElement.scrollWidth") <= PHONE["width"], "the page scrolls sideways"
    OUTPUT.mkdir(exist_ok=True)
    page.screenshot(path=str(OUTPUT / "demo-draw-phone.png"), full_page=True)
    # The same finger on the heading does scroll: the check above could have failed.
    touch(page, [(0.5, 0.9), (0.5, 0.1)], page.locator("h1").bounding_box() | {"height": 400})
    page.wait_for_timeout(300)
    assert page.evaluate(scroll) != before, "a drag off the pad did not scroll either: the check proves nothing"
    expect(page.locator("#bars li").first).to_be_visible()
    page.close()


def test_one_request_in_flight_and_the_last_drawing_wins(live_server: str, browser) -> None:
    page = browser()
    sent = Sent(page, hold=True)
    page.goto(f"{live_server}/demo")
    # Every answer shown sets the picture next to the bars once.
    page.evaluate("window.shown = 0; new MutationObserver((records) => { window.shown += records.length; })"
                  ".observe(document.getElementById('preview'), {attributeFilter: ['src']})")

    def wait_for(count: int) -> None:
        for _ in range(100):
            if len(sent.requests) >= count:
                break
            page.wait_for_timeout(50)
        page.wait_for_timeout(500)  # anything else the page would send by now
        assert len(sent.requests) == count, f"{len(sent.requests)} requests, expected {count}"

    draw(page, [ONE])
    wait_for(1)
    draw(page, [BAR, TICK])  # changes while the first request is out: nothing more is sent
    wait_for(1)
    sent.release()  # the answer for the first drawing arrives after the drawing changed: dropped, sent again
    wait_for(2)
    draw(page, [[(0.35, 0.3), (0.45, 0.35)]])
    wait_for(2)
    sent.hold = False
    sent.release()
    wait_for(3)
    settled(page, sent)
    assert page.evaluate("window.maxInflight") == 1
    assert page.evaluate("window.shown") == 1, "an answer for an older drawing was shown"
    assert len(sent.requests) == 3
    answers_as_the_api(page, sent, live_server)  # ... for the final drawing, whose PNG was sent last
    page.close()


def test_a_server_error_for_a_drawing_is_shown_as_errors_are(live_server: str, browser) -> None:
    from playwright.sync_api import expect
    page = browser()
    message = "the image is blank: there is nothing drawn on it to classify"
    page.route("**/prediction", lambda route: route.fulfill(
        status=400, json={"message": message, "error": "blank_image"}))
    page.goto(f"{live_server}/demo")
    draw(page, [ONE])
    expect(page.get_by_role("alert")).to_have_text(message, timeout=20_000)
    expect(page.locator("#result")).to_be_hidden()
    page.close()


@pytest.fixture(scope="module")
def two_versions(tmp_path_factory: pytest.TempPathFactory, models_dir: Path,
                 server_factory: Callable[..., AbstractContextManager[str]]) -> Iterator[str]:
    """digits v1 (default) and v2 (its labels reversed, so an answer tells which answered), and colors."""
    from tests.support.versions import add_version
    root = tmp_path_factory.mktemp("draw-versions")
    (root / "digits").mkdir()
    add_version(root / "digits", 1)
    add_version(root / "digits", 2, reversed_labels=True)
    (root / "digits" / "model.yaml").write_text("versions: all\ndefault_version: 1\n")
    shutil.copytree(models_dir / "colors", root / "colors")
    with server_factory(MODELS_DIR=str(root)) as url:
        yield url


def test_version_and_top_k_pickers(two_versions: str, browser) -> None:
    from playwright.sync_api import expect
    page = browser()
    sent = Sent(page)
    page.goto(f"{two_versions}/demo")
    version, top_k = page.get_by_label("Version"), page.get_by_label("Labels shown")
    page.get_by_label("Model").select_option("colors")  # the pickers follow the model
    assert version.locator("option").all_text_contents() == ["v1 (default)"]
    expect(top_k).to_have_attribute("max", "3")
    expect(top_k).to_have_value("3")
    expect(page.locator("#pad")).to_have_attribute("aria-label", "Drawing pad for " + page.evaluate(
        "JSON.parse(document.getElementById('settings').textContent).models.colors.title"))
    page.get_by_label("Model").select_option("digits")
    assert version.locator("option").all_text_contents() == ["v1 (default)", "v2"]
    expect(version).to_have_value("1")
    expect(top_k).to_have_attribute("max", "10")

    version.select_option("2")
    top_k.fill("3")
    top_k.press("Tab")  # a change event, as on leaving the field
    draw(page, [SEVEN])
    settled(page, sent)
    path, form, _ = sent.form()
    assert path == "/digits/versions/2/prediction" and form == {"top_k": "3"}
    assert len(bars(page)) == 3
    answer = answers_as_the_api(page, sent, two_versions)
    assert answer["version"] == 2
    expect(page.get_by_role("link", name="digits v2")).to_have_attribute("href", "/digits/versions/2/")

    with page.expect_request("**/explanation") as explained:
        page.get_by_label("Show the explanation").check()
    assert urlsplit(explained.value.url).path == "/digits/versions/2/explanation"
    expect(page.locator("#overlay")).to_be_visible(timeout=20_000)

    version.select_option("1")  # the default answers on the model's own route, for the same drawing
    settled(page, sent, "/digits/prediction")
    expect(page.get_by_role("link", name="digits v1")).to_have_attribute("href", "/digits/versions/1/")
    page.close()
