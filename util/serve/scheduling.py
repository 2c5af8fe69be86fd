"""Who runs next: request priorities, deadlines, and the lanes that honour them.

A request says how urgent it is (`X-Priority: high|normal|low`, or V2's `parameters.priority`)
and how long its client waits (`X-Request-Timeout`, V2's `parameters.timeout`, or the server's
REQUEST_TIMEOUT). Both travel with the request in a context variable (`current`), set by the
HTTP layer, so the runtime can read them without knowing about HTTP.

The rule: a free lane goes to the waiting request with the best priority, oldest first. So
that low work still progresses under a stream of urgent work, a waiting request moves up one
level for every AGE_SECONDS it has waited: a low request waits at most 2 x AGE_SECONDS for a
lane behind work that keeps arriving. A request whose deadline passes before its inference
starts is never run (DeadlineExceeded: 504).
"""
from __future__ import annotations

import itertools
import threading
import time
from contextvars import ContextVar
from dataclasses import dataclass, field
from typing import Generic, TypeVar

from util import metrics
from util.errors import DeadlineExceeded, InvalidParameter

PRIORITIES = {"high": 0, "normal": 1, "low": 2}
RECEIVED = "keras_serve.received"  # WSGI environ key: time.monotonic() when the request began to arrive
NAMES = {level: name for name, level in PRIORITIES.items()}
AGE_SECONDS = 1.0
MAX_TIMEOUT = 86400  # a day: what the spec declares
T = TypeVar("T")


@dataclass(frozen=True)
class Ticket:
    """A request's place in line: priority level (0 = high) and deadline (time.monotonic(), or None)."""

    priority: int = PRIORITIES["normal"]
    deadline: float | None = None

    def check(self, stage: str) -> None:
        """Raise DeadlineExceeded if the deadline has passed (`stage` says where, for the message)."""
        if self.deadline is not None and time.monotonic() >= self.deadline:
            metrics.SHED.labels("deadline_exceeded", "lane").inc()
            raise DeadlineExceeded(f"the request's deadline passed {stage}; it was not run")


current: ContextVar[Ticket | None] = ContextVar("ticket", default=None)


def ticket() -> Ticket:
    """This request's ticket (normal priority, no deadline when the HTTP layer set none)."""
    return current.get() or Ticket()


def parse_priority(text: str) -> int:
    """`high`, `normal` or `low` (any case) as a level; a clear 400 otherwise."""
    level = PRIORITIES.get(text.strip().lower())
    if level is None:
        raise InvalidParameter(f"X-Priority must be one of high, normal, low, not {text[:40]!r}")
    return level


def parse_timeout(text: str) -> float:
    """Seconds, a positive number (`0.25`); a clear 400 otherwise."""
    try:
        seconds = float(text)
    except ValueError:
        seconds = -1.0
    if not 0 < seconds <= MAX_TIMEOUT:  # also refuses nan and inf
        raise InvalidParameter(f"X-Request-Timeout must be a number of seconds above 0 and at most {MAX_TIMEOUT}, "
                               f"not {text[:40]!r}")
    return seconds


def v2_priority(value: int) -> int:
    """Triton's priority (1 = highest) as a level: 1 high, 2 normal, 3 and above low (0, the default: normal)."""
    return PRIORITIES["high"] if value == 1 else PRIORITIES["normal"] if value in (0, 2) else PRIORITIES["low"]


def sooner(deadline: float | None, other: float | None) -> float | None:
    """The earlier of two optional deadlines."""
    return other if deadline is None else deadline if other is None else min(deadline, other)


def rank(priority: int, since: float, seq: int, now: float) -> tuple[int, int]:
    """A waiting request's place in line (lowest first): its priority, moved up one level per AGE_SECONDS
    waited, then its arrival order."""
    return priority - int((now - since) / AGE_SECONDS), seq


@dataclass
class _Waiter:
    priority: int
    seq: int
    since: float = field(compare=False)
    deadline: float | None = field(compare=False)

    def rank(self, now: float) -> tuple[int, int]:
        return rank(self.priority, self.since, self.seq, now)


class Lanes(Generic[T]):
    """A fixed set of lanes (interpreters) handed out by priority, oldest first, with aging and deadlines."""

    def __init__(self, lanes: list[T]) -> None:
        self.idle = list(lanes)
        self.waiting: list[_Waiter] = []
        self.changed = threading.Condition()
        self.seq = itertools.count()

    def acquire(self, ticket: Ticket) -> T:
        """The next free lane for `ticket`'s request; DeadlineExceeded if its deadline passes while it waits
        (the runtime checks it once just before: util/serve/runtimes.py)."""
        with self.changed:
            if self.idle and not self.waiting:
                return self.idle.pop()
            me = _Waiter(ticket.priority, next(self.seq), time.monotonic(), ticket.deadline)
            self.waiting.append(me)
            try:
                while True:
                    now = time.monotonic()
                    if self.idle and min(self.waiting, key=lambda w: w.rank(now)) is me:
                        return self.idle.pop()
                    if me.deadline is not None and now >= me.deadline:
                        metrics.SHED.labels("deadline_exceeded", "lane").inc()
                        raise DeadlineExceeded("the request's deadline passed while it waited for an inference "
                                               "lane; it was not run")
                    # Wake for a freed lane, at the deadline, or when aging may have changed the order.
                    wait = AGE_SECONDS if me.deadline is None else min(AGE_SECONDS, me.deadline - now)
                    self.changed.wait(max(wait, 0.0))
            finally:
                self.waiting.remove(me)
                self.changed.notify_all()  # the next in line may be free to go now

    def release(self, lane: T) -> None:
        """Give a lane back; the best waiting request takes it."""
        with self.changed:
            self.idle.append(lane)
            self.changed.notify_all()  # all: each waiter checks whether it is first in line
