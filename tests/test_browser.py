"""Swagger UI in a real browser: Debian's Chromium, driven by Playwright, against the live server."""
from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from urllib.parse import urlsplit

import pytest

from tests.conftest import ROOT
from tests.support.browser import CHROMIUM, FLAGS

pytestmark = pytest.mark.slow
SCREENSHOT = ROOT / "test-output" / "swagger-ui.png"


def try_out(page, url: str, operation_id: str):
    """Open the Swagger UI at `url`, unfold the digits section and `operation_id`, press "Try it out"."""
    page.goto(f"{url}/")
    page.locator("#operations-tag-digits").click()
    operation = page.locator(f"#operations-digits-{operation_id}")
    operation.locator(".opblock-summary").click()
    operation.locator("button.try-out__btn").click()
    return operation


def test_swagger_ui_classifies_an_uploaded_digit(live_server: str, tmp_path: Path, digits_split) -> None:
    from playwright.sync_api import expect, sync_playwright

    from scripts.digits import render, to_png
    assert CHROMIUM.exists(), "Debian's chromium is missing: `make test` installs it (scripts/ensure_chromium.sh)"
    _, _, x_test, y_test = digits_split
    index = next(i for i, label in enumerate(y_test) if label == 7)
    upload = tmp_path / "seven.png"
    upload.write_bytes(to_png(render(x_test[index])))
    requested: list[str] = []
    with sync_playwright() as playwright:
        context = playwright.chromium.launch_persistent_context(
            str(tmp_path / "profile"), executable_path=str(CHROMIUM), headless=True, args=FLAGS)
        try:
            page = context.new_page()
            page.on("request", lambda request: requested.append(request.url))
            operation = try_out(page, live_server, "predict_digits")
            operation.locator("input[type=file]").set_input_files(str(upload))
            operation.locator("button.execute").click()
            answer = operation.locator(".live-responses-table .response-col_description pre").first
            expect(answer).to_contain_text('"label": "7"', timeout=20_000)
            status = operation.locator(".live-responses-table tr.response .response-col_status").first
            expect(status).to_contain_text("200")
            SCREENSHOT.parent.mkdir(exist_ok=True)
            page.screenshot(path=str(SCREENSHOT), full_page=True)
        finally:
            context.close()
    assert SCREENSHOT.stat().st_size > 10_000
    assert any(url.endswith("/swagger.json") for url in requested)
    outside = [url for url in requested if urlsplit(url).scheme in {"http", "https", "ws", "wss"}
               and urlsplit(url).hostname != "127.0.0.1"]
    assert not outside, f"the page loaded from outside 127.0.0.1: {outside}"


@pytest.fixture(scope="module")
def keyed_server(server_factory) -> Iterator[str]:
    with server_factory(API_KEYS="browser-key") as url:
        yield url


def test_swagger_ui_authorize_then_predict(keyed_server: str, tmp_path: Path) -> None:
    from playwright.sync_api import expect, sync_playwright

    from tests.support import builders
    upload = tmp_path / "stroke.png"
    upload.write_bytes(builders.encode(builders.stroke((32, 32))))
    with sync_playwright() as playwright:
        context = playwright.chromium.launch_persistent_context(
            str(tmp_path / "profile"), executable_path=str(CHROMIUM), headless=True, args=FLAGS)
        try:
            page = context.new_page()
            operation = try_out(page, keyed_server, "predict_digits")
            operation.locator("input[type=file]").set_input_files(str(upload))
            operation.locator("button.execute").click()  # no key yet: refused
            status = operation.locator(".live-responses-table tr.response .response-col_status").first
            expect(status).to_contain_text("401", timeout=20_000)
            page.locator(".auth-wrapper .btn.authorize").click()
            dialog = page.locator(".dialog-ux")
            dialog.locator(".auth-container").filter(has_text="X-API-Key").locator("input").fill("browser-key")
            dialog.locator(".auth-container").filter(has_text="X-API-Key").locator("button.authorize").click()
            dialog.locator("button.btn-done").first.click()
            operation.locator("button.execute").click()
            expect(status).to_contain_text("200", timeout=20_000)
            expect(operation.locator(".live-responses-table .response-col_description pre").first).to_contain_text(
                '"model": "digits"')
        finally:
            context.close()


def test_swagger_ui_sends_several_images_to_the_batch_route(live_server: str, tmp_path: Path,
                                                           digits_split) -> None:
    import json

    from playwright.sync_api import expect, sync_playwright

    from scripts.digits import render, to_png
    _, _, x_test, y_test = digits_split
    uploads = []
    for digit in (3, 8):
        index = next(i for i, label in enumerate(y_test) if label == digit)
        uploads.append(tmp_path / f"digit-{digit}.png")
        uploads[-1].write_bytes(to_png(render(x_test[index])))
    uploads.append(tmp_path / "notes.txt")
    uploads[-1].write_text("not an image")
    with sync_playwright() as playwright:
        context = playwright.chromium.launch_persistent_context(
            str(tmp_path / "profile"), executable_path=str(CHROMIUM), headless=True, args=FLAGS)
        try:
            operation = try_out(context.new_page(), live_server, "predict_many_digits")
            operation.locator("input[type=file][multiple]").set_input_files([str(p) for p in uploads])
            operation.locator("button.execute").click()
            status = operation.locator(".live-responses-table tr.response .response-col_status").first
            expect(status).to_contain_text("200", timeout=20_000)
            answer = json.loads(operation.locator(".live-responses-table .response-col_description pre")
                                .first.inner_text())
        finally:
            context.close()
    results = answer["results"]
    assert [r["filename"] for r in results] == ["digit-3.png", "digit-8.png", "notes.txt"]
    assert [r.get("label") for r in results[:2]] == ["3", "8"]
    assert results[2]["status"] == 400 and results[2]["error"] == "invalid_image", results[2]


def test_swagger_ui_shows_the_explanation_image(live_server: str, tmp_path: Path,
                                                digits_split) -> None:
    from playwright.sync_api import expect, sync_playwright

    from scripts.digits import render, to_png
    _, _, x_test, _ = digits_split
    upload = tmp_path / "digit.png"
    upload.write_bytes(to_png(render(x_test[0])))
    with sync_playwright() as playwright:
        context = playwright.chromium.launch_persistent_context(
            str(tmp_path / "profile"), executable_path=str(CHROMIUM), headless=True, args=FLAGS)
        try:
            operation = try_out(context.new_page(), live_server, "explain_digits")
            operation.locator("input[type=file]").set_input_files(str(upload))
            operation.locator("button.execute").click()
            status = operation.locator(".live-responses-table tr.response .response-col_status").first
            expect(status).to_contain_text("200", timeout=20_000)
            picture = operation.locator(".live-responses-table .response-col_description img").first
            expect(picture).to_be_visible()
            assert picture.evaluate("e => e.complete && e.naturalWidth") >= 256
        finally:
            context.close()
