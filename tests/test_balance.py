"""api/front/balance.py: a worker accepts only when no live peer holds fewer open connections."""
from __future__ import annotations

from collections.abc import Iterator

import pytest

from api.front import balance


@pytest.fixture
def slots() -> Iterator[None]:
    saved, slot, started, expected = balance._open[:], balance._slot, balance._started.value, balance._expected
    yield
    balance._open[:] = saved
    balance._slot, balance._started.value, balance._expected = slot, started, expected


def test_turns_follow_open_connection_counts(slots: None) -> None:
    balance._open[:] = [-1] * balance.SLOTS
    balance.join(65, 2)  # slot 1
    assert balance.my_turn()  # alone
    balance._open[2] = 0  # a peer joins, idle
    assert balance.my_turn()  # equal counts: either may take it
    balance.opened()
    assert not balance.my_turn()  # 1 against 0: the peer's turn
    balance._open[2] = 3
    assert balance.my_turn()
    balance.leave(age=2)  # the master saw the peer exit
    balance.opened(), balance.opened(), balance.opened()
    assert balance.my_turn() and balance._open[1] == 4
    balance.closed()
    assert balance._open[1] == 3
    balance.leave()  # draining: counts no more
    assert balance._open[1] == -1 and balance.my_turn()


def test_a_worker_over_its_share_closes_the_excess(slots: None) -> None:
    balance._open[:] = [-1] * balance.SLOTS
    balance.join(1, 2)
    for _ in range(3):
        balance.opened()
    assert not balance.over_share()  # alone: nobody to hand connections to
    balance._open[2] = 1  # a peer with one connection
    assert balance.over_share()  # 3 against 1
    balance.closed()
    assert not balance.over_share()  # 2 against 1: within one, stays
    balance._open[2] = -1  # the peer left
    assert not balance.over_share()


def test_ready_waits_until_every_worker_has_joined(slots: None) -> None:
    balance._open[:] = [-1] * balance.SLOTS
    balance._started.value = 0
    balance.join(1, 2)
    assert balance.all_started() == (1, 2)
    balance.join(2, 2)  # the second worker (same process here: the count is shared)
    assert balance.all_started() is None
