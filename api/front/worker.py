"""The gunicorn worker (gunicorn's documented custom-worker API): one asyncio loop per process.

It accepts connections on gunicorn's listening sockets itself, one per wake-up and only when
it is this worker's turn (api/front/balance.py), reads requests with api/front/http.py and runs
the Flask app in `threads` threads. SIGTERM (shutdown, or gunicorn's HUP replacing workers)
stops accepting, keeps reading for DRAIN_SECONDS so that a request already on its way over a
kept-alive connection is answered (with `connection: close`) instead of finding its connection
shut under it, then waits for the answers under way. SIGINT / SIGQUIT stop at once.
"""
from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import signal
import threading
from concurrent.futures import ThreadPoolExecutor
from typing import Any

from gunicorn.workers.base import Worker as BaseWorker

from api.front import balance
from api.front.http import Front
from api.front.queue import Dispatcher
from util.config import load_settings

log = logging.getLogger(__name__)
DRAIN_SECONDS = 1.0  # well inside gunicorn's graceful_timeout (20 s)
LOW_NICE = 10  # CFS weight 110 against 1024: about a tenth of a core's share when both want it
HEARTBEAT_SECONDS = 1.0  # gunicorn's master kills a worker silent for `timeout` seconds


class Worker(BaseWorker):
    """gunicorn worker: an asyncio HTTP/1.1 front (api/front/http.py) before the Flask app gunicorn loads."""

    def init_signals(self) -> None:
        """Signals are the event loop's (see `serve`); only SIGUSR1 (reopen log files) stays gunicorn's."""
        for sig in self.SIGNALS:
            signal.signal(sig, signal.SIG_DFL)
        signal.signal(signal.SIGUSR1, self.handle_usr1)
        signal.siginterrupt(signal.SIGUSR1, False)

    def run(self) -> None:
        """Serve until told to stop (gunicorn calls this once the app is loaded)."""
        if self.cfg.is_ssl:
            raise RuntimeError("TLS is not served by api.front.Worker: terminate it at the platform's router "
                               "or a proxy in front (Heroku, an ingress, nginx)")
        balance.join(self.age, self.cfg.workers)
        asyncio.run(self.serve())

    async def serve(self) -> None:
        loop = asyncio.get_running_loop()
        stop, now = asyncio.Event(), asyncio.Event()
        loop.add_signal_handler(signal.SIGTERM, stop.set)

        def quit_now() -> None:
            now.set()
            stop.set()
        for sig in (signal.SIGINT, signal.SIGQUIT):
            loop.add_signal_handler(sig, quit_now)
        settings = getattr(self.wsgi, "config", None) or {}  # the Flask app's config holds the limits
        defaults = load_settings()  # for an app without them (bench/'s plain Flask servers)

        def setting(name: str) -> Any:
            return settings.get(name) or defaults[name]
        executor = ThreadPoolExecutor(max_workers=self.cfg.threads, thread_name_prefix="wsgi")
        # `low` work runs in threads the kernel schedules after the others (nice +LOW_NICE): on a busy
        # server an interactive request's decoding and inference get the cores first.
        low_executor = ThreadPoolExecutor(max_workers=self.cfg.threads, thread_name_prefix="wsgi-low",
                                          initializer=lower_priority)
        front = Front(self.wsgi, executor, low_executor,
                      int(setting("MAX_CONTENT_LENGTH")), float(setting("BODY_TIMEOUT")), float(self.cfg.keepalive),
                      Dispatcher(self.cfg.threads, int(setting("MAX_QUEUE"))), float(setting("REQUEST_TIMEOUT")))
        acceptors = [loop.create_task(accept(listener, front)) for listener in self.sockets]
        while not stop.is_set():
            self.notify()
            if os.getppid() != self.ppid:
                self.log.info("worker %s: the master %s is gone, exiting", self.pid, self.ppid)
                break
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(stop.wait(), HEARTBEAT_SECONDS)
        for task in acceptors:
            task.cancel()
        balance.leave()  # no new connections here: the other workers must not wait for this one
        if not now.is_set():
            await drain(front, self.cfg.graceful_timeout - DRAIN_SECONDS, self.notify)
        for connection in list(front.connections):
            connection.close()
        for pool in (executor, low_executor):
            pool.shutdown(wait=not now.is_set(), cancel_futures=now.is_set())


def lower_priority() -> None:
    """Give the calling thread a lower CPU priority (Linux: the nice value is per thread, setpriority(2))."""
    try:
        os.setpriority(os.PRIO_PROCESS, threading.get_native_id(), LOW_NICE)
    except (OSError, AttributeError) as exc:  # not Linux, or not allowed: low work simply runs at normal priority
        log.info("low-priority threads run at normal CPU priority: %s", exc)


async def drain(front: Front, limit: float, notify: Any) -> None:
    """Answer what is under way and what arrives within DRAIN_SECONDS, each with `connection: close`."""
    loop = asyncio.get_running_loop()
    front.draining = True
    await asyncio.sleep(DRAIN_SECONDS)
    for connection in list(front.connections):
        if not connection.busy:
            connection.close()  # idle all along: nothing was on its way
    deadline = loop.time() + max(limit, 0.0)
    while any(connection.busy for connection in front.connections) and loop.time() < deadline:
        notify()
        await asyncio.sleep(0.05)


async def accept(listener: Any, front: Front) -> None:
    """Accept connections on `listener` (gunicorn's listening socket), one per wake-up, when it is this worker's turn.

    Every worker's loop wakes for each new connection and the first to accept wins; an idle
    worker would win every time. A worker holding more connections than a live peer waits up to
    balance.MAX_DEFER_S for that peer to take it, then takes it anyway (the peer may be stuck).
    """
    loop = asyncio.get_running_loop()
    listener.setblocking(False)
    while True:
        await readable(loop, listener.fileno())
        waited = loop.time()
        while not balance.my_turn() and loop.time() - waited < balance.MAX_DEFER_S:
            await asyncio.sleep(0.001)
        try:
            conn, _ = listener.accept()
        except (BlockingIOError, InterruptedError):
            continue  # another worker took it
        except OSError as exc:  # out of file descriptors, ...: do not spin on a socket that stays readable
            log.warning("accept failed: %s", exc)
            await asyncio.sleep(0.1)
            continue
        conn.setblocking(False)  # asyncio's transport sets TCP_NODELAY itself
        await loop.connect_accepted_socket(front.connection, conn)


def readable(loop: asyncio.AbstractEventLoop, fd: int) -> asyncio.Future[None]:
    """A future done when `fd` is readable (the reader is removed at once: accept decides what to do)."""
    done: asyncio.Future[None] = loop.create_future()

    def ready() -> None:
        loop.remove_reader(fd)
        if not done.done():
            done.set_result(None)
    loop.add_reader(fd, ready)
    done.add_done_callback(lambda _: loop.remove_reader(fd))  # also when cancelled
    return done
