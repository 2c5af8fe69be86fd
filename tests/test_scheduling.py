"""Priorities, deadlines and the bounded queue: the lanes and the front end's queue on their own, then
a live server under load (504 never run, 503 with Retry-After, the client's retry)."""
from __future__ import annotations

import asyncio
import base64
import io
import re
import threading
import time
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import requests
from PIL import Image

from api.front.queue import READS, Dispatcher, Job
from tests.support import builders
from tests.support.clients import Clients
from util.errors import DeadlineExceeded, InvalidParameter, QueueFull, ServiceError
from util.serve import scheduling
from util.serve.scheduling import Lanes, Ticket, parse_priority, parse_timeout, v2_priority

HIGH, NORMAL, LOW = (scheduling.PRIORITIES[n] for n in ("high", "normal", "low"))
PHOTO = builders.encode(Image.fromarray(np.random.default_rng(0).integers(0, 256, (600, 600, 3), np.uint8)))
DIGIT = builders.encode(builders.stroke())
# 27 MB of noise: about 170 ms to decode, so a few of them keep one thread busy for a while.
BIG = builders.encode(Image.fromarray(np.random.default_rng(1).integers(0, 256, (3000, 3000, 3), np.uint8)))


def waiters(lanes: Lanes[str], tickets: list[Ticket], gap: float = 0.05) -> tuple[list[int], list[threading.Thread]]:
    """One thread per ticket, started `gap` apart, each taking a lane, noting its index and giving it back."""
    order: list[int] = []

    def take(index: int, ticket: Ticket) -> None:
        lane = lanes.acquire(ticket)
        order.append(index)
        lanes.release(lane)
    threads = [threading.Thread(target=take, args=(i, t)) for i, t in enumerate(tickets)]
    for thread in threads:
        thread.start()
        time.sleep(gap)
    return order, threads


def test_a_free_lane_goes_to_the_highest_priority_then_the_oldest() -> None:
    lanes = Lanes(["lane"])
    held = lanes.acquire(Ticket())
    order, threads = waiters(lanes, [Ticket(LOW), Ticket(NORMAL), Ticket(HIGH), Ticket(NORMAL), Ticket(LOW)])
    lanes.release(held)
    for thread in threads:
        thread.join(5)
    assert order == [2, 1, 3, 0, 4]


def test_a_low_request_moves_up_a_level_per_second_waited(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(scheduling, "AGE_SECONDS", 0.2)
    lanes = Lanes(["lane"])
    held = lanes.acquire(Ticket())
    order: list[str] = []

    def take(name: str, ticket: Ticket) -> None:
        lane = lanes.acquire(ticket)
        order.append(name)
        lanes.release(lane)
    low = threading.Thread(target=take, args=("low", Ticket(LOW)))
    low.start()
    time.sleep(0.55)  # two levels' worth of waiting at 0.2 s a level: now level with a fresh high
    high = threading.Thread(target=take, args=("high", Ticket(HIGH)))
    high.start()
    time.sleep(0.05)
    lanes.release(held)
    low.join(5), high.join(5)
    assert order == ["low", "high"]  # equal levels: the older goes first


def test_a_waiting_request_whose_deadline_passes_is_refused_and_never_gets_a_lane() -> None:
    lanes = Lanes(["lane"])
    held = lanes.acquire(Ticket())
    started = time.monotonic()
    with pytest.raises(DeadlineExceeded, match="was not run"):
        lanes.acquire(Ticket(HIGH, deadline=started + 0.1))
    assert 0.09 < time.monotonic() - started < 1.0
    assert not lanes.waiting
    lanes.release(held)
    assert lanes.acquire(Ticket()) == "lane"  # nothing left behind by the refused one
    with pytest.raises(DeadlineExceeded):
        Ticket(deadline=time.monotonic() - 1).check("before its inference started")


def test_headers_and_v2_values_are_read_strictly() -> None:
    assert parse_priority(" LOW ") == LOW and parse_timeout("0.25") == 0.25
    for bad in ("urgent", ""):
        with pytest.raises(InvalidParameter, match="X-Priority must be one of high, normal, low"):
            parse_priority(bad)
    for bad in ("0", "-1", "abc", "nan", "inf", "86401"):
        with pytest.raises(InvalidParameter, match="X-Request-Timeout must be a number of seconds above 0"):
            parse_timeout(bad)
    assert [v2_priority(v) for v in (0, 1, 2, 3)] == [NORMAL, HIGH, NORMAL, LOW]


def run_dispatcher(threads: int, max_queue: int, jobs: list[tuple[int, float | None]],
                   hold: float = 0.05) -> tuple[list[int], list[tuple[int, str]]]:
    """Submit jobs (priority, seconds to deadline) at once to a Dispatcher whose 'threads' each take `hold`
    seconds; the order they started in and what was shed."""
    started: list[int] = []
    shed: list[tuple[int, str]] = []

    async def main() -> None:
        loop = asyncio.get_running_loop()
        dispatcher = Dispatcher(threads, max_queue)
        for index, (priority, within) in enumerate(jobs):
            low = priority == LOW

            def start(index: int = index, low: bool = low) -> None:
                started.append(index)
                loop.call_later(hold, dispatcher.done, low)

            def refuse(error: ServiceError, index: int = index) -> None:
                shed.append((index, error.code))
            deadline = None if within is None else time.monotonic() + within
            dispatcher.submit(Job(priority, deadline, start, refuse, low))
        await asyncio.sleep(hold * (len(jobs) + 2))
    asyncio.run(main())
    return started, shed


def test_the_front_queue_orders_by_priority_bounds_predictions_and_sheds_late_ones() -> None:
    started, shed = run_dispatcher(1, 4, [(NORMAL, None), (LOW, None), (LOW, None), (NORMAL, None), (HIGH, 0.01),
                                          (READS, None), (LOW, None), (HIGH, None)])
    # One thread for low work and one for the rest: 0 and 1 run at once. 2, 3, 4 wait; 5 is a read (not
    # counted against MAX_QUEUE); 6 is the fourth prediction waiting; 7 finds four: 503. 4 would run next,
    # but its deadline passes while 0 still runs: 504, never started. Then the read, and the rest by priority,
    # low work in its own thread meanwhile.
    assert started == [0, 1, 5, 2, 3, 6]
    assert shed == [(7, QueueFull.code), (4, DeadlineExceeded.code)]


def metric(url: str, name: str, **labels: str) -> float:
    """Sum of a series over both workers (the multiprocess collector already sums them)."""
    text = requests.get(f"{url}/metrics", timeout=10).text
    total = 0.0
    for line in text.splitlines():
        series = line.startswith(name + "{") or line.startswith(name + " ")
        if series and all(f'{k}="{v}"' in line for k, v in labels.items()):
            total += float(line.rsplit(" ", 1)[1])
    return total


class Load(Clients):
    """Clients posting a slow-to-decode photo non-stop with `X-Priority: low`; status codes recorded. A
    refused one waits the Retry-After seconds, as the client library does."""

    def run(self, index: int) -> None:
        with requests.Session() as session:
            while not self.stop.is_set():
                answer = session.post(self.url, files={"image": ("p.png", PHOTO)}, headers={"X-Priority": "low"},
                                      timeout=30)
                self.records.append(answer.status_code)
                if answer.status_code == 503:
                    self.stop.wait(float(answer.headers.get("Retry-After", "1")))


@contextmanager
def loaded(url: str, clients: int) -> Iterator[Load]:
    with Load(url, clients=clients) as load:
        time.sleep(1.0)
        yield load


@pytest.mark.slow
def test_past_deadline_requests_get_504_at_once_and_are_never_run(
        server_factory: Callable[..., contextmanager[str]]) -> None:
    with server_factory() as url:
        inferred = metric(url, "keras_serve_inference_seconds_count", model="digits")
        shed_before = metric(url, "keras_serve_shed_total", reason="deadline_exceeded")
        timings, statuses = [], []
        with loaded(url, 12) as load, requests.Session() as session:
            for _ in range(20):
                started = time.monotonic()
                answer = session.post(f"{url}/digits/prediction", files={"image": ("d.png", DIGIT)},
                                      headers={"X-Priority": "low", "X-Request-Timeout": "0.005"}, timeout=10)
                timings.append(time.monotonic() - started)
                statuses.append(answer.status_code)
                if answer.status_code == 504:
                    assert answer.json()["error"] == "deadline_exceeded"
        time.sleep(0.5)  # the last load requests are answered and counted
        ran = metric(url, "keras_serve_inference_seconds_count", model="digits") - inferred
        shed = metric(url, "keras_serve_shed_total", reason="deadline_exceeded") - shed_before
    late = statuses.count(504)
    print(f"5 ms deadline under 12 low clients: {late} of 20 answered 504, worst {max(timings) * 1000:.0f} ms; "
          f"inferences {ran:.0f} for {load.records.count(200)} load answers + {statuses.count(200)} in time")
    assert late >= 15 and set(statuses) <= {200, 504}
    assert max(timings) < 1.0
    assert shed == late
    assert ran == load.records.count(200) + statuses.count(200)  # no 504 ran an inference


@pytest.mark.slow
def test_a_full_queue_answers_503_with_retry_after_and_the_client_retries(
        server_factory: Callable[..., contextmanager[str]], caplog: pytest.LogCaptureFixture, tmp_path: Path) -> None:
    from prometheus_client import CollectorRegistry, multiprocess

    from client.api import PredictionClient

    def queued() -> float:
        """Read from the metric files: asking /metrics would take the one thread and free a place."""
        registry = CollectorRegistry()
        multiprocess.MultiProcessCollector(registry, path=str(tmp_path))
        return registry.get_sample_value("keras_serve_queued_requests") or 0.0
    with server_factory(WEB_CONCURRENCY="1", GUNICORN_THREADS="1", MAX_QUEUE="3",
                        PROMETHEUS_MULTIPROC_DIR=str(tmp_path), MAX_CONTENT_LENGTH=str(64 * 1024 * 1024)) as url:
        with ThreadPoolExecutor(24) as pool:
            answers = list(pool.map(lambda _: requests.post(f"{url}/digits/prediction",
                                                            files={"image": ("p.png", PHOTO)}, timeout=30), range(72)))
        refused = [a for a in answers if a.status_code == 503]
        assert refused and {a.status_code for a in answers} == {200, 503}
        assert all(a.json()["error"] == "queue_full" and a.headers["Retry-After"] == "1" for a in refused)
        assert metric(url, "keras_serve_shed_total", reason="queue_full") == len(refused)
        assert requests.get(f"{url}/health/ready", timeout=5).status_code == 200  # reads are never refused
        # One running and three waiting for about 4 x 170 ms: the client's first attempt finds the queue full.
        with ThreadPoolExecutor(4) as pool:
            burst = [pool.submit(requests.post, f"{url}/digits/prediction", files={"image": ("big.png", BIG)},
                                 timeout=30) for _ in range(4)]
            deadline = time.monotonic() + 10
            while queued() < 3 and time.monotonic() < deadline:
                time.sleep(0.01)  # all four uploaded: one runs, three wait
            client = PredictionClient(url, "digits", retries=4, backoff=0.05)
            started = time.monotonic()
            result = client.predict(DIGIT, "d.png")
            waited = time.monotonic() - started
        assert [f.result().status_code for f in burst] == [200] * 4
    retried = retries(caplog)
    print(f"queue of 3, 1 thread: {len(refused)} of 72 refused; the client retried {len(retried)} time(s) and "
          f"was answered after {waited:.2f} s")
    assert result.model == "digits"
    assert retried, "the client never met a full queue: the test proved nothing"
    # Retry-After (1 s) wins over the client's own 0.05 s backoff.
    assert all(float(re.search(r"retrying in ([0-9.]+)s", m)[1]) >= 1.0 for m in retried) and waited >= 1.0


def retries(caplog: pytest.LogCaptureFixture) -> list[str]:
    """The client's warnings about a 503 it retried."""
    return [r.getMessage() for r in caplog.records if "HTTP 503" in r.getMessage()]


RED = builders.encode(builders.solid((230, 20, 20)))


def v2(parameters: dict) -> dict:
    image = {"name": "image", "datatype": "BYTES", "shape": [1], "data": [base64.b64encode(RED).decode()]}
    return {"inputs": [image], "parameters": parameters}


def test_priority_and_deadline_headers_on_the_native_route(client: Any) -> None:
    def post(**headers: str) -> Any:
        return client.post("/colors/prediction", data={"image": (io.BytesIO(RED), "r.png")}, headers=headers)
    assert post(**{"X-Priority": "high", "X-Request-Timeout": "30"}).status_code == 200
    bad = post(**{"X-Priority": "urgent"})
    assert bad.status_code == 400 and "X-Priority must be one of high, normal, low" in bad.json["message"]
    bad = post(**{"X-Request-Timeout": "-2"})
    assert bad.status_code == 400 and bad.json["error"] == "invalid_parameter"
    late = post(**{"X-Request-Timeout": "0.000001"})  # decoding alone takes longer: the runtime never starts it
    assert late.status_code == 504 and late.json["error"] == "deadline_exceeded"


def test_v2_priority_and_timeout_parameters(client: Any) -> None:
    assert client.post("/v2/models/colors/infer", json=v2({"priority": 1, "timeout": 30_000_000})).status_code == 200
    late = client.post("/v2/models/colors/infer", json=v2({"timeout": 1}))  # one microsecond
    assert late.status_code == 504 and "deadline passed" in late.json["error"]
    for bad in ({"priority": 7}, {"priority": "high"}, {"timeout": 0}):
        answer = client.post("/v2/models/colors/infer", json=v2(bad))
        assert answer.status_code == 400, (bad, answer.json)
    # The header counts for V2 too, and the earlier of the two deadlines wins.
    late = client.post("/v2/models/colors/infer", json=v2({"timeout": 30_000_000}),
                       headers={"X-Request-Timeout": "0.000001"})
    assert late.status_code == 504
