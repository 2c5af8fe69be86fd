"""Threads that keep posting to a live server until stopped (a context manager); subclasses post."""
from __future__ import annotations

import threading
from typing import Any


class Clients:
    """`clients` threads running `self.run(i)` until `self.stop` is set; `records` collects outcomes."""

    def __init__(self, url: str, clients: int = 16) -> None:
        self.url, self.stop = f"{url}/digits/prediction", threading.Event()
        self.records: list[Any] = []
        self.threads = [threading.Thread(target=self.run, args=(i,), daemon=True) for i in range(clients)]

    def run(self, index: int) -> None:
        raise NotImplementedError

    def __enter__(self) -> Clients:
        for thread in self.threads:
            thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop.set()
        for thread in self.threads:
            thread.join(timeout=35)
