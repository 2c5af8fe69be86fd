"""The benchmark runs end to end with tiny sizes (figures not checked: timing belongs in bench/)."""
from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from bench.priority import statuses
from tests.conftest import ROOT

pytestmark = pytest.mark.slow


def test_bench_smoke_run_writes_every_section(tmp_path: Path) -> None:
    output = tmp_path / "RESULTS.md"
    # Peers need their own venv (make bench makes it); here the section must say it did not run.
    run = subprocess.run([sys.executable, "-m", "bench.run", "--smoke", "--output", str(output),
                          "--peers-python", str(tmp_path / "no-peers")], cwd=ROOT,
                         capture_output=True, text=True, timeout=900)
    assert run.returncode == 0, run.stdout[-2000:] + run.stderr[-3000:]
    text = output.read_text()
    for heading in ("## Targets", "(a) in-process limit", "(b) this server", "(c) naive baseline",
                    "(d) HTTP floor", "(f) peers", "(g) other routes", "Open Inference V2",
                    "(h) explanations", "Not run: no peers venv", "## int8 artifact",
                    "MobileNetV2 int8, 224x224 JPEG", "Process-model variants", "HTTP front ends", "## Soak",
                    "digits, PNG", "1024x768 JPEG", "(i) priorities and deadlines", "(e) Under the same",
                    "(f) First", "Decoding phone photos"):
        assert heading in text, heading
    results = json.loads(output.with_suffix(".json").read_text())
    for entry in results["sets"].values():
        for run_ in entry["server"]["runs"]:
            assert run_["requests"] > 0 and run_["errors"] == 0 and run_["peak_rss_mb"] > 0
    assert results["sets"]["MobileNetV2, 224x224 JPEG"]["naive"]["runs"][0]["errors"] == 0
    assert results["int8"]["served"] and results["int8"]["bytes"] > 0
    for entry in results["protocols"].values():
        assert all(r["requests"] > 0 and r["errors"] == 0 for r in entry["runs"])
    explained = results["explanations"]
    assert explained["explanation grid 8, PNG overlay"]["requests"] > 0 and explained["prediction"]["passes"] == 1
    assert explained["explanation grid 16, JSON"]["passes"] == 257
    assert output.with_suffix(".png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    default = next(iter(results["fronts"].values()))
    assert default["slow_clients"]["failed"] == 0 and default["rounds"][0]["runs"][0]["errors"] == 0
    soak = results["soak"]
    assert soak["requests"] > 0 and soak["server_errors"] == 0 and not soak["unexpected"]
    assert {"200", "400", "415", "422"} <= set(soak["statuses"])
    priority = results["priority"]
    for one in priority["rounds"]:
        assert one["idle"]["requests"] > 0 and one["capacity"]["requests"] > 0
        assert one["priority"]["interactive"]["requests"] > 0 and one["no_priority"]["low"]["requests"] > 0
        deadlines = one["deadlines"]
        assert deadlines["client"]["requests"] > 0
        counted = deadlines["metrics"]  # /metrics deltas: every runtime call answered 200, every 504 shed
        assert counted["runtime_calls"] == counted["answered_200"] > 0
        assert counted["shed_deadline_front"] + counted["shed_deadline_lane"] == \
            deadlines["client"]["statuses"].get("504", 0)
    assert priority["versions"] and all(v["first_ms"] and v["steady_ms"] for v in priority["versions"])
    for block in results["decode"]["sizes"].values():  # every format decoded in every round
        assert all(len(row["rounds"]) == 2 and row["bytes"] > 0 for row in block["rows"].values())
    assert set(statuses(priority)) <= {"503", "504"}, statuses(priority)  # shed load only: no other error
