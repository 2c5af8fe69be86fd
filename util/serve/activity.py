"""How many inferences are running in the whole server, across gunicorn's worker processes.

A runtime uses all the cores for a request only when nothing else runs anywhere. The count
is a multiprocessing.Value made when this module is imported: gunicorn.conf.py imports it
in the master, so every worker forked afterwards shares it. Elsewhere (tests, the Flask dev
server) it simply counts within the process.
"""
from __future__ import annotations

import multiprocessing
from multiprocessing.sharedctypes import Synchronized

_running: Synchronized = multiprocessing.Value("i", 0)


def start(solo_possible: bool) -> bool:
    """Count one more inference; True if it is the only one running in the server."""
    with _running.get_lock():
        _running.value += 1
        return solo_possible and _running.value == 1


def finish() -> None:
    """Count one inference less."""
    with _running.get_lock():
        _running.value -= 1


def alone():
    """Hold every other start() and finish() back: for timing the interpreters at load."""
    return _running.get_lock()


def running() -> int:
    """Inferences running now (for tests and diagnostics)."""
    return int(_running.value)
