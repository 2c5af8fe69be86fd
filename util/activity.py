"""How many inferences are running in the whole server, across gunicorn's worker processes.

A runtime uses all the cores for a request only when nothing else runs anywhere; the count
lives in shared memory created by gunicorn's master (`share()` in gunicorn.conf.py) before
it forks the workers. Without it (tests, the Flask dev server) the count is per process.
"""
from __future__ import annotations

import multiprocessing
from multiprocessing.sharedctypes import Synchronized


class _Local:
    """The in-process stand-in for multiprocessing.Value: same interface, no fork needed."""

    def __init__(self) -> None:
        import threading

        self.value = 0
        self._lock = threading.Lock()

    def get_lock(self):  # noqa: ANN201 - mirrors multiprocessing.Value
        return self._lock


_running: Synchronized | _Local = _Local()


def share() -> None:
    """Move the count into shared memory; call in the parent before forking workers."""
    global _running
    _running = multiprocessing.Value("i", 0)


def start(solo_possible: bool) -> bool:
    """Count one more inference; True if it is the only one running in the server."""
    with _running.get_lock():
        _running.value += 1
        return solo_possible and _running.value == 1


def finish() -> None:
    """Count one inference less."""
    with _running.get_lock():
        _running.value -= 1


def alone():  # noqa: ANN201 - a lock, usable as a context manager
    """Hold every other start() and finish() back: for timing the interpreters at load."""
    return _running.get_lock()


def running() -> int:
    """Inferences running now (for tests and diagnostics)."""
    return int(_running.value)
