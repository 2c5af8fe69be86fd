"""api/balance.py: a worker accepts only when no live peer holds fewer open connections."""
from __future__ import annotations

from collections.abc import Iterator

import pytest

from api import balance


@pytest.fixture
def slots() -> Iterator[None]:
    saved, slot = balance._open[:], balance._slot
    yield
    balance._open[:] = saved
    balance._slot = slot


def test_turns_follow_open_connection_counts(slots: None) -> None:
    balance._open[:] = [-1] * balance.SLOTS
    balance.join(65)  # slot 1
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
