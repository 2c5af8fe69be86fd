"""Driving the demo page's drawing pad from a test: strokes by mouse and by touch, the requests the page
sends with the PNG in each, the pad's pixels, and waiting until the drawing on the pad is answered."""
from __future__ import annotations

import base64
import io
import itertools
from urllib.parse import urlsplit

import numpy as np
from PIL import Image
from werkzeug.formparser import parse_form_data

# Counts the page's prediction fetches in flight, the way the page itself sees them.
COUNT_FETCHES = """(() => {
  const original = window.fetch;
  window.inflight = 0; window.maxInflight = 0;
  window.fetch = function (input) {
    if (!String(input).endsWith("/prediction")) return original.apply(this, arguments);
    window.maxInflight = Math.max(window.maxInflight, ++window.inflight);
    return original.apply(this, arguments).finally(() => { window.inflight--; });
  };
})();"""


class Sent:
    """The page's prediction requests, with the multipart body each carried. Chromium hands over a body
    with a file part only to an intercepting route, so every request passes through one; `hold` keeps
    them waiting (a slow server) until `release`."""

    def __init__(self, page, hold: bool = False) -> None:
        self.requests: list = []
        self.held: list = []
        self.hold = hold
        page.route("**/prediction", self.route)

    def route(self, route) -> None:
        self.requests.append(route.request)
        if self.hold:
            self.held.append(route)
        else:
            route.continue_()

    def release(self) -> None:
        while self.held:
            self.held.pop(0).continue_()

    def form(self, index: int = -1) -> tuple[str, dict[str, str], bytes]:
        """(path, form fields, image bytes) of one request."""
        request = self.requests[index]
        body = request.post_data_buffer
        environ = {"wsgi.input": io.BytesIO(body), "CONTENT_LENGTH": str(len(body)), "REQUEST_METHOD": "POST",
                   "CONTENT_TYPE": request.headers["content-type"]}
        _, form, files = parse_form_data(environ)
        return urlsplit(request.url).path, dict(form), files["image"].read()


def draw(page, strokes: list[list[tuple[float, float]]]) -> None:
    """Each stroke with the mouse: down, through its points, up."""
    box = page.locator("#pad").bounding_box()
    for stroke in strokes:
        xy = [(box["x"] + x * box["width"], box["y"] + y * box["height"]) for x, y in stroke]
        page.mouse.move(*xy[0])
        page.mouse.down()
        for point in xy[1:]:
            page.mouse.move(*point, steps=4)
        page.mouse.up()


def touch(page, stroke: list[tuple[float, float]], box: dict | None = None) -> None:
    """One stroke with a finger: Playwright has no touch drag, so CDP's touch events (Chromium makes them
    pointer events of pointerType 'touch', and scrolls the page for them where it may)."""
    box = box or page.locator("#pad").bounding_box()
    cdp = page.context.new_cdp_session(page)
    xy = [(box["x"] + x * box["width"], box["y"] + y * box["height"]) for x, y in stroke]
    cdp.send("Input.dispatchTouchEvent", {"type": "touchStart", "touchPoints": [{"x": xy[0][0], "y": xy[0][1]}]})
    for (x0, y0), (x1, y1) in itertools.pairwise(xy):
        for t in np.linspace(0.2, 1, 5):
            cdp.send("Input.dispatchTouchEvent", {"type": "touchMove",
                                                  "touchPoints": [{"x": x0 + t * (x1 - x0), "y": y0 + t * (y1 - y0)}]})
    cdp.send("Input.dispatchTouchEvent", {"type": "touchEnd", "touchPoints": []})
    cdp.detach()


def pixels(png: bytes) -> np.ndarray:
    return np.asarray(Image.open(io.BytesIO(png)).convert("RGB")).astype(int)


def canvas(page) -> np.ndarray:
    url = page.evaluate("document.getElementById('pad').toDataURL('image/png')")
    return pixels(base64.b64decode(url.split(",", 1)[1]))


def bars(page) -> list[tuple[str, float]]:
    items = page.locator("#bars li")
    return [(items.nth(i).get_attribute("data-label"), float(items.nth(i).get_attribute("data-confidence")))
            for i in range(items.count())]


def shows(page, answer: dict) -> list[tuple[str, float]]:
    """Assert the page's bars are `answer`'s predictions, labels and confidences; the bars."""
    shown = bars(page)
    assert [label for label, _ in shown] == [p["label"] for p in answer["predictions"]]
    np.testing.assert_allclose([c for _, c in shown], [p["confidence"] for p in answer["predictions"]], rtol=1e-9)
    return shown


def settled(page, sent: Sent, path: str = "") -> None:
    """Wait until the drawing on the pad has been sent (to `path`, if given) and its answer has come back;
    not for a pause in the traffic: on a busy machine the page may take a while to send."""
    from playwright.sync_api import expect
    expect(page.locator("#bars li").first).to_be_visible(timeout=20_000)
    for _ in range(200):
        idle = page.evaluate("window.inflight === 0 && !document.getElementById('status').textContent"
                             ".startsWith('Classifying')")
        last = sent.form() if sent.requests else ("", {}, b"")
        if idle and last[0].endswith(path) and last[2] and np.array_equal(pixels(last[2]), canvas(page)):
            page.wait_for_timeout(100)  # the answer's body read and shown
            return
        page.wait_for_timeout(100)
    raise AssertionError("the page did not send the drawing on the pad, or its answer did not come back")
