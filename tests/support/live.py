"""Live servers: waiting until ready, checking digits are read, 16 client threads posting under load."""
from __future__ import annotations

import subprocess
import time
from collections.abc import Callable

import requests

from tests.support.clients import Clients


def wait_ready(url: str, proc: subprocess.Popen, output: Callable[[], str], seconds: float = 120) -> None:
    """Until `url`/health/ready answers 200; fails with the process's output if it exits or never does."""
    deadline = time.monotonic() + seconds
    while True:
        assert proc.poll() is None, output()
        try:
            if requests.get(f"{url}/health/ready", timeout=2).status_code == 200:
                return
        except requests.RequestException:  # not listening yet
            pass
        assert time.monotonic() < deadline, "never ready:\n" + output()
        time.sleep(0.1)


def assert_reads_digits(url: str, count: int = 5) -> None:
    """The default model answers held-out digits right."""
    from scripts.digits import load_split, render, to_png
    _, _, x_test, y_test = load_split()
    for digit, label in list(zip(x_test, y_test, strict=True))[:count]:
        answer = requests.post(f"{url}/digits/prediction", files={"image": ("d.png", to_png(render(digit)))},
                               timeout=30).json()
        assert answer["label"] == str(label), answer


def digit_pngs(count: int = 10) -> list[bytes]:
    from scripts.digits import load_split, render, to_png
    _, _, x_test, _ = load_split()
    return [to_png(render(x)) for x in x_test[:count]]


class Load(Clients):
    """16 threads posting digits back to back; records (sent, status, version, label, image index)."""

    def __init__(self, url: str, images: list[bytes], clients: int = 16) -> None:
        self.images = images
        super().__init__(url, clients)

    def run(self, index: int) -> None:
        session, i = requests.Session(), index
        while not self.stop.is_set():
            image, sent = i % len(self.images), time.monotonic()
            try:
                answer = session.post(self.url, files={"image": ("d.png", self.images[image])}, timeout=30)
                body = answer.json() if answer.status_code == 200 else {}
                self.records.append((sent, answer.status_code, body.get("version"), body.get("label"), image))
            except requests.RequestException as exc:
                self.records.append((sent, 0, None, type(exc).__name__, image))
            i += 1

    def versions_after(self, start: float, end: float) -> set[int | None]:
        return {r[2] for r in self.records if start <= r[0] < end}
