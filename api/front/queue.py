"""Complete requests waiting for one of the worker's threads, taken by priority (util/serve/scheduling.py).

`low` requests and the others have `threads` threads each (the low ones at a lower CPU priority,
api/front/worker.py), so batch work holding every thread never makes a person wait for one. Within
each, at most `threads` run at once, so the thread pools never queue: waiting happens here, where
the order is ours. A free thread goes to the best waiting request of its kind (reads first, then
high, normal, low; oldest first; a request moves up one level per AGE_SECONDS waited). A prediction that
finds `max_queue` others waiting is refused (503 queue_full, Retry-After) instead of letting
latency grow without limit; one whose deadline passes while it waits is answered 504 at once and
never run. Reads (GET, HEAD) are never refused here: health checks must get through under load.
"""
from __future__ import annotations

import asyncio
import itertools
import time
from collections.abc import Callable
from dataclasses import dataclass, field

from api.front.wsgi import Request
from util import metrics
from util.errors import DeadlineExceeded, QueueFull, ServiceError
from util.serve.scheduling import MAX_TIMEOUT, PRIORITIES, rank

READS = -1  # priority of GET / HEAD / OPTIONS: before any prediction


@dataclass(eq=False)  # compared by identity: a job is one request
class Job:
    """A request waiting for a thread: `start` runs it, `shed` answers it without running it."""

    priority: int
    deadline: float | None  # time.monotonic()
    start: Callable[[], None]
    shed: Callable[[ServiceError], None]
    low: bool = False  # runs in the low-priority threads
    seq: int = 0
    since: float = 0.0
    timer: asyncio.TimerHandle | None = field(default=None, repr=False)

    def rank(self, now: float) -> tuple[int, int]:
        return (READS, self.seq) if self.priority == READS else rank(self.priority, self.since, self.seq, now)


class Dispatcher:
    """Hands requests to at most `threads` threads, in priority order, within a bounded queue."""

    def __init__(self, threads: int, max_queue: int) -> None:
        self.threads, self.max_queue = threads, max_queue
        self.running = {False: 0, True: 0}  # by `low`
        self.waiting: list[Job] = []
        self.seq = itertools.count()

    def submit(self, job: Job) -> None:
        """Start `job` now if a thread of its kind is free, else queue it (or refuse it when the queue is full)."""
        if self.running[job.low] < self.threads and not any(w.low == job.low for w in self.waiting):
            self.running[job.low] += 1
            return job.start()
        if job.priority != READS and sum(w.priority != READS for w in self.waiting) >= self.max_queue:
            metrics.SHED.labels("queue_full", "front").inc()
            return job.shed(QueueFull(f"the queue is full: {self.max_queue} predictions already wait in this worker "
                                      "(MAX_QUEUE); retry after the Retry-After seconds"))
        job.seq, job.since = next(self.seq), time.monotonic()
        if job.deadline is not None:
            loop = asyncio.get_running_loop()
            job.timer = loop.call_later(max(job.deadline - job.since, 0.0), self.expire, job)
        self.waiting.append(job)
        if job.priority != READS:
            metrics.QUEUED.inc()
        self.pump()

    def done(self, low: bool) -> None:
        """A thread (of the low kind or not) is free again."""
        self.running[low] -= 1
        self.pump()

    def pump(self) -> None:
        now = time.monotonic()
        for low in (False, True):
            while self.running[low] < self.threads and (mine := [w for w in self.waiting if w.low == low]):
                job = min(mine, key=lambda w: w.rank(now))
                self.waiting.remove(job)
                if job.priority != READS:
                    metrics.QUEUED.dec()
                if job.timer is not None:
                    job.timer.cancel()
                self.running[low] += 1
                job.start()

    def expire(self, job: Job) -> None:
        if job in self.waiting:
            self.waiting.remove(job)
            metrics.QUEUED.dec()  # only predictions have deadlines
            metrics.SHED.labels("deadline_exceeded", "front").inc()
            job.shed(DeadlineExceeded("the request's deadline passed while it waited for a thread; it was not run"))


def ticket(request: Request, default_timeout: float) -> tuple[int, float | None]:
    """(priority, deadline) for the queue, read leniently: the app answers a bad header with a 400 itself."""
    if request.method in ("GET", "HEAD", "OPTIONS"):
        return READS, None
    priority = PRIORITIES.get(request.header(b"x-priority").decode("latin-1").strip().lower(), PRIORITIES["normal"])
    try:
        timeout = float(request.header(b"x-request-timeout") or default_timeout)
    except ValueError:
        timeout = default_timeout
    return priority, request.received + timeout if 0 < timeout <= MAX_TIMEOUT else None
