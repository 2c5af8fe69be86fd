"""Connection balancing between gunicorn workers that share one listening socket.

Every worker's event loop is woken for each new connection and the first to call accept()
wins; an idle worker wins every time, so a client opening 16 keep-alive connections at once
could give one worker all of them while the other's inference lane stood idle. Here each
worker counts its open connections in memory shared by all workers (made in the master, like
util/serve/activity.py), and a worker that holds more than another live worker lets the
connection go to that one; it takes it anyway after MAX_DEFER_S (a peer may be stuck).

Connections already open stay where they are, so a worker that joins late (the second worker
still loading its models when a client opened 16 connections; a worker restarted) would stay
idle: a worker holding more than one connection above the least-loaded one closes the excess
after their next answer (`connection: close`), and the clients' reconnects are balanced. And
readiness waits until every worker has joined once (`all_started`).
"""
from __future__ import annotations

import multiprocessing
from multiprocessing.sharedctypes import SynchronizedArray

SLOTS = 64  # worker slot = gunicorn's worker age modulo this
MAX_DEFER_S = 0.05
_open: SynchronizedArray = multiprocessing.Array("i", [-1] * SLOTS)  # -1: no live worker in the slot
_started = multiprocessing.Value("i", 0)  # workers that have joined since the master started
_slot: int | None = None
_expected = 0  # workers gunicorn runs (set at join)


def join(age: int, workers: int) -> None:
    """This worker takes its slot (called in the worker, before it serves)."""
    global _slot, _expected
    _slot, _expected = age % SLOTS, workers
    with _open.get_lock():
        _open[_slot] = 0
    with _started.get_lock():
        _started.value += 1


def all_started() -> tuple[int, int] | None:
    """(workers that have joined, workers expected) while some have not, else None (also when
    this process does not balance, e.g. under gthread)."""
    if _slot is None or _started.value >= _expected:
        return None
    return _started.value, _expected


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


def over_share() -> bool:
    """True if this worker holds more than one connection above another live worker's count."""
    if _slot is None:
        return False
    with _open.get_lock():
        counts = _open[:]
    others = [c for i, c in enumerate(counts) if i != _slot and c >= 0]
    return bool(others) and counts[_slot] > min(others) + 1


def my_turn() -> bool:
    """True unless another live worker holds fewer open connections than this one."""
    if _slot is None:
        return True
    with _open.get_lock():
        counts = _open[:]
    mine = counts[_slot]
    others = [c for i, c in enumerate(counts) if i != _slot and c >= 0]
    return mine < 0 or not others or mine <= min(others)
