"""`python -m bench.capacity` against a live server: its steps and recommendation agree with each other,
an impossible goal falls back to concurrency 1, and an unreachable URL is a message, not a traceback."""
from __future__ import annotations

import json
import math
import subprocess
import sys
from pathlib import Path

import pytest

from tests.conftest import ROOT, free_port

SHORT = ["--steps", "1,4", "--duration", "2", "--warmup", "0.5"]


def capacity(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "bench.capacity", *args], cwd=ROOT, capture_output=True,
                          text=True, timeout=240)


def report(*args: str) -> dict:
    done = capacity(*args, "--json")
    assert done.returncode == 0, done.stderr
    return json.loads(done.stdout)


def check_steps(result: dict, levels: list[int]) -> None:
    assert [s["concurrency"] for s in result["steps"]] == levels
    for s in result["steps"]:
        assert s["images_per_s"] > 0 and s["requests"] > 0, s
        assert s["p50_ms"] <= s["p95_ms"], s
        assert s["errors"] == 0 and s["statuses"] == {}, s


@pytest.mark.slow
def test_recommendation_is_consistent_with_the_steps(live_server: str) -> None:
    result = report(live_server, *SHORT, "--peak-rps", "100000")
    assert result["model"] == "digits" and result["route"] == "/digits/prediction"
    check_steps(result, [1, 4])
    rec = result["recommendation"]
    meeting = [s for s in result["steps"] if s["meets_goal"]]
    assert all((s["p95_ms"] <= result["p95_goal_ms"]) == s["meets_goal"] for s in result["steps"])
    assert rec["meets_goal"] == bool(meeting)
    if meeting:  # a slow machine could miss 200 ms; the fallback is the next test's subject
        best = max(meeting, key=lambda s: s["concurrency"])
        assert rec["concurrency"] == best["concurrency"] and rec["images_per_s"] == best["images_per_s"]
    assert rec["headroom"] == 0.7 and rec["peak_rps"] == 100000
    assert rec["replicas"] == math.ceil(100000 / (rec["images_per_s"] * rec["headroom"])) > 1


@pytest.mark.slow
def test_impossible_goal_recommends_concurrency_one(live_server: str) -> None:
    goal = ["--p95-goal-ms", "0.001", "--steps", "2,1", "--duration", "1", "--warmup", "0.5"]
    result = report(live_server, *goal)
    check_steps(result, [2, 1])
    assert not any(s["meets_goal"] for s in result["steps"])
    rec = result["recommendation"]
    one = result["steps"][1]
    assert (rec["meets_goal"], rec["concurrency"], rec["images_per_s"]) == (False, 1, one["images_per_s"])
    assert rec["replicas"] is None  # no --peak-rps
    text = capacity(live_server, *goal, "--peak-rps", "0.01", "--model", "digits")
    assert text.returncode == 0, text.stderr
    assert "No step meets p95 <= 0.001 ms" in text.stdout
    assert "scaleTarget: 1\n" in text.stdout and "scaleMetric: concurrency" in text.stdout
    assert "heroku ps:scale web=1\n" in text.stdout


@pytest.mark.slow
def test_wrong_route_is_reported_as_errors(live_server: str) -> None:
    done = capacity(live_server, "--route", "/nothing/here", "--steps", "1", "--duration", "0.5", "--warmup", "0")
    assert done.returncode == 1 and "Traceback" not in done.stderr
    assert "every request at concurrency 1 failed (HTTP 404 x" in done.stderr


def test_nothing_listening_is_a_clear_error() -> None:
    url = f"http://127.0.0.1:{free_port()}"
    done = capacity(url, "--steps", "1", "--duration", "0.5")
    assert done.returncode == 2 and "Traceback" not in done.stderr
    assert done.stderr.startswith(f"capacity: cannot reach {url}: ")


def test_load_generator_child_reports_a_refused_connection(tmp_path: Path) -> None:
    """The child process's answer when the server goes away between the health check and a step."""
    (tmp_path / "a.png").write_bytes(b"never sent")
    spec = {"url": f"http://127.0.0.1:{free_port()}/digits/prediction", "images": [str(tmp_path / "a.png")],
            "headers": {"X-API-Key": "k"}, "concurrency": 2, "duration": 0.5, "warmup": 0}
    done = subprocess.run([sys.executable, "-c", "import sys; from bench.capacity import drive; drive(sys.argv[1])",
                           json.dumps(spec)], cwd=ROOT, capture_output=True, text=True, timeout=60)
    assert done.returncode == 0 and "Traceback" not in done.stderr, done.stderr
    assert json.loads(done.stdout)["error"].startswith("ConnectionRefusedError")
