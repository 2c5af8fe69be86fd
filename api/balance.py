"""Connection balancing between gunicorn workers that share one listening socket.

Every worker's event loop is woken for each new connection and the first to call accept()
wins; an idle worker wins every time, so a client opening 16 keep-alive connections at once
could give one worker all of them while the other's inference lane stood idle. Here each
worker counts its open connections in memory shared by all workers (made in the master, like
util/serve/activity.py), and a worker that holds more than another live worker lets the
connection go to that one; it takes it anyway after MAX_DEFER_S (a peer may be stuck).
"""
from __future__ import annotations

import multiprocessing
from multiprocessing.sharedctypes import SynchronizedArray

SLOTS = 64  # worker slot = gunicorn's worker age modulo this
MAX_DEFER_S = 0.05
_open: SynchronizedArray = multiprocessing.Array("i", [-1] * SLOTS)  # -1: no live worker in the slot
_slot: int | None = None


def join(age: int) -> None:
    """This worker takes its slot (called in the worker, before it serves)."""
    global _slot
    _slot = age % SLOTS
    with _open.get_lock():
        _open[_slot] = 0


def leave(age: int | None = None) -> None:
    """A worker stops counting: when it starts draining, or when the master sees it exit."""
    slot = _slot if age is None else age % SLOTS
    if slot is not None:
        with _open.get_lock():
            _open[slot] = -1


def opened() -> None:
    if _slot is not None:
        with _open.get_lock():
            if _open[_slot] >= 0:
                _open[_slot] += 1


def closed() -> None:
    if _slot is not None:
        with _open.get_lock():
            if _open[_slot] > 0:
                _open[_slot] -= 1


def my_turn() -> bool:
    """True unless another live worker holds fewer open connections than this one."""
    if _slot is None:
        return True
    with _open.get_lock():
        counts = _open[:]
    mine = counts[_slot]
    others = [c for i, c in enumerate(counts) if i != _slot and c >= 0]
    return mine < 0 or not others or mine <= min(others)
