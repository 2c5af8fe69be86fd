"""util/serve/runtimes.py's interpreter lanes and solo interpreter, and util/serve/activity.py's shared count."""
from __future__ import annotations

import multiprocessing
import threading
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np
import pytest

from util.config import interpreter_plan, load_settings, usable_cores
from util.serve import activity
from util.serve.runtimes import LiteRTRuntime
from util.serve.spec import read_spec


@pytest.fixture(scope="module")
def artifact(models_dir: Path) -> Path:
    return read_spec(models_dir / "colors").artifact


def inputs(n: int, seed: int = 0) -> np.ndarray:
    return np.random.default_rng(seed).uniform(0, 1, (n, 8, 8, 3)).astype(np.float32)


def test_parallel_lanes_give_each_request_its_own_result(artifact: Path) -> None:
    reference = LiteRTRuntime(artifact)
    x = inputs(64)
    expected = np.concatenate([reference.predict(x[i:i + 1]) for i in range(len(x))])
    pooled = LiteRTRuntime(artifact, lanes=3)
    with ThreadPoolExecutor(8) as pool:
        got = np.concatenate(list(pool.map(lambda i: pooled.predict(x[i:i + 1]), range(len(x)))))
    np.testing.assert_allclose(got, expected, atol=1e-6)
    assert pooled.runs["lane"] == len(x) and pooled.plan["lanes"] == 3
    assert activity.running() == 0  # every start() was matched by a finish()


def test_solo_serves_only_a_lone_request(artifact: Path) -> None:
    runtime = LiteRTRuntime(artifact, lane_threads=1, lanes=1, solo_threads=2, solo_min_speedup=0)
    x = inputs(1)
    alone = runtime.predict(x)
    assert runtime.runs == {"solo": 1, "lane": 0}
    activity.start(solo_possible=False)  # another inference is running somewhere in the server
    try:
        busy = runtime.predict(x)
    finally:
        activity.finish()
    assert runtime.runs == {"solo": 1, "lane": 1}
    np.testing.assert_allclose(busy, alone, atol=1e-6)


def test_a_high_priority_request_takes_the_solo_interpreter_on_a_busy_server(artifact: Path) -> None:
    from util.serve import scheduling
    runtime = LiteRTRuntime(artifact, lane_threads=1, lanes=1, solo_threads=2, solo_min_speedup=0)
    x = inputs(1)
    activity.start(solo_possible=False)  # another inference is running somewhere in the server
    try:
        for level in ("low", "normal", "high", "high"):
            token = scheduling.current.set(scheduling.Ticket(scheduling.PRIORITIES[level]))
            try:
                runtime.predict(x)
            finally:
                scheduling.current.reset(token)
    finally:
        activity.finish()
    assert runtime.runs == {"solo": 2, "lane": 2}  # a person does not wait behind the lanes' batch work
    assert activity.running() == 0


def test_solo_is_dropped_unless_measurably_faster(artifact: Path) -> None:
    # An 8x8 model cannot run 1000x faster on 2 threads: the solo interpreter is not kept.
    runtime = LiteRTRuntime(artifact, lane_threads=1, lanes=1, solo_threads=2, solo_min_speedup=1000)
    assert runtime.plan["solo_threads"] is None and runtime.solo_speedup is not None
    runtime.predict(inputs(1))
    assert runtime.runs == {"solo": 0, "lane": 1}


def test_a_request_waits_for_a_free_lane(artifact: Path) -> None:
    runtime = LiteRTRuntime(artifact, lanes=1)
    lane = runtime._acquire()  # hold the only lane
    done = threading.Event()
    worker = threading.Thread(target=lambda: (runtime.predict(inputs(1)), done.set()))
    worker.start()
    assert not done.wait(0.3)
    runtime._release(lane)
    assert done.wait(10)
    worker.join()


def _count_from_child(ready: multiprocessing.synchronize.Event, release: multiprocessing.synchronize.Event) -> None:
    activity.start(solo_possible=False)
    ready.set()
    release.wait(10)
    activity.finish()


def test_the_count_is_shared_with_forked_workers() -> None:
    # Like gunicorn's workers: forked after util.activity was imported.
    context = multiprocessing.get_context("fork")
    ready, release = context.Event(), context.Event()
    child = context.Process(target=_count_from_child, args=(ready, release))
    child.start()
    try:
        assert ready.wait(10)
        assert activity.running() == 1
        assert not activity.start(solo_possible=True)  # the child's inference makes this one not alone
        activity.finish()
    finally:
        release.set()
        child.join(10)
    assert child.exitcode == 0 and activity.running() == 0
    assert activity.start(solo_possible=True)
    activity.finish()


@pytest.mark.parametrize("env, expected", [
    ({"WEB_CONCURRENCY": "1"}, lambda c: (1, c, c)),
    ({"WEB_CONCURRENCY": str(10_000)}, lambda c: (1, 1, c)),
    ({"WEB_CONCURRENCY": "1", "INFERENCE_LANES": "1"}, lambda c: (c, 1, c)),
    ({"INTERPRETER_THREADS": "3", "INFERENCE_LANES": "2", "SOLO_THREADS": "1"}, lambda c: (3, 2, 1)),
])
def test_interpreter_plan(monkeypatch: pytest.MonkeyPatch, env: dict, expected) -> None:
    for name in ("WEB_CONCURRENCY", "INFERENCE_LANES", "INTERPRETER_THREADS", "SOLO_THREADS"):
        monkeypatch.delenv(name, raising=False)
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    assert interpreter_plan(load_settings()) == expected(usable_cores())
