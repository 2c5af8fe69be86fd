"""HTTP front ends compared (`python -m bench.run --only fronts`): this server, optionally an earlier
commit of it (`--front-before REV`, run from a git worktree with the same venv), LitServe and
BentoML on the same MobileNetV2, each in turn in every round (A B C D, A B C D, ...: a slow minute
of the VM hits every server alike), at 1, 16 and 64 clients, then 64 slow uploads against each.
"""
from __future__ import annotations

import contextlib
import json
import statistics
import subprocess
import sys
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from bench.servers import ROOT, serve

THIS = "this server (api/front/, default)"
GOALS = "c16 img/s >= the earlier front end's and the best peer's; p50 at 1 client <= 0.8x the best peer's; " \
        "peak RSS at 64 clients <= 300 MB"


@contextlib.contextmanager
def worktree(rev: str) -> Iterator[Path]:
    """A detached checkout of `rev` (its compiled models come from the bench's own MODELS_DIR)."""
    with tempfile.TemporaryDirectory(prefix="bench-before-") as tmp:
        path = Path(tmp) / "tree"
        subprocess.run(["git", "worktree", "add", "--detach", "-q", str(path), rev], cwd=ROOT, check=True)
        try:
            yield path
        finally:
            subprocess.run(["git", "worktree", "remove", "--force", str(path)], cwd=ROOT, check=False)


def contenders(models: Path, fp32: Path, peers_python: Path | None, before: Path | None,
               rev: str | None, peers: dict) -> dict[str, dict[str, Any]]:
    """label -> how to start it: env, command (None: the Procfile), ready path, route, checkout."""
    found: dict[str, dict[str, Any]] = {THIS: {"env": {"MODELS_DIR": str(models)}, "route": "/mobilenet/prediction"}}
    if before is not None:
        found[f"earlier front end ({rev})"] = {"env": {"MODELS_DIR": str(models)}, "route": "/mobilenet/prediction",
                                                "root": before}
    if peers_python is not None and peers_python.exists():
        for name, (command, ready) in peers.items():
            found[name] = {"env": {"PEER_MODEL_DIR": str(fp32), "BENTOML_DO_NOT_TRACK": "True"}, "route": "/prediction",
                           "command": [part.replace("{python}", str(peers_python)) for part in command],
                           "ready": ready}
    return found


def slow_uploads(url: str, image: Path, slow: int) -> dict:
    command = [sys.executable, "-m", "bench.slowclients", url, str(image), "--slow", str(slow), "--requests", "5"]
    return json.loads(subprocess.run(command, cwd=ROOT, capture_output=True, text=True, check=True).stdout)


def run(drive: Any, models: Path, fp32: Path, images: list[Path], cfg: dict, peers_python: Path | None,
        rev: str | None, peers: dict) -> dict:
    """Every contender under load in interleaved rounds, then among slow uploads; rounds kept apart."""
    with contextlib.ExitStack() as stack:
        before = stack.enter_context(worktree(rev)) if rev else None
        found = contenders(models, fp32, peers_python, before, rev, peers)
        results: dict = {label: {"rounds": []} for label in found}
        for round_ in range(cfg["front_rounds"]):
            for label, how in found.items():
                print(f"[bench] front end, round {round_ + 1}: {label}", flush=True)
                results[label]["rounds"].append(drive(
                    {**how["env"], "BODY_TIMEOUT": "30"}, how["route"], images, cfg["front_concurrency"], cfg,
                    command=how.get("command"), ready=how.get("ready", "/health/ready"), root=how.get("root", ROOT)))
        for label, how in found.items():
            print(f"[bench] front end, slow uploads: {label}", flush=True)
            with serve({**how["env"], "BODY_TIMEOUT": "30"}, command=how.get("command"),
                       ready=how.get("ready", "/health/ready"), root=how.get("root", ROOT)) as server:
                results[label]["slow_clients"] = slow_uploads(server.url + how["route"], images[0], cfg["slow"])
    return results


def level(entry: dict, concurrency: int, key: str) -> list[float]:
    """`key` at `concurrency` in each round (the nearest level measured in a smoke run)."""
    values = []
    for one in entry["rounds"]:
        runs = {r["concurrency"]: r for r in one["runs"]}
        values.append(runs[concurrency if concurrency in runs else min(runs, key=lambda c: abs(c - concurrency))][key])
    return values


def section(entries: dict, when: str | None = None) -> list[str]:
    """The table: every round's figure, the median, and the goals checked on the medians."""
    if not entries:
        return []
    lines = ["## HTTP front ends (MobileNetV2, 224x224 JPEG), interleaved rounds", ""]
    if when:
        lines += [f"This section was run again on its own at {when}.", ""]
    lines += ["| server | img/s at 16 clients, each round | median | p50 ms at 1 client, each round | median | "
              "peak RSS MB at 64 clients, each round | median | 64 slow uploads: normal requests failed, worst ms |",
              "|---|---|---|---|---|---|---|---|"]
    medians = {}
    for label, entry in entries.items():
        rate, p50, rss = level(entry, 16, "throughput"), level(entry, 1, "p50_ms"), level(entry, 64, "peak_rss_mb")
        medians[label] = (statistics.median(rate), statistics.median(p50), statistics.median(rss))
        slow = entry.get("slow_clients") or {}
        lines.append(f"| {label} | {', '.join(f'{v:.1f}' for v in rate)} | {medians[label][0]:.1f} | "
                     f"{', '.join(f'{v:.1f}' for v in p50)} | {medians[label][1]:.1f} | "
                     f"{', '.join(f'{v:.0f}' for v in rss)} | {medians[label][2]:.0f} | "
                     f"{slow.get('failed', '-')} of {slow.get('requests', '-')}, {slow.get('worst_ms', 0):.0f} |")
    lines.append("")
    peers = {label: m for label, m in medians.items() if label != THIS and not label.startswith("earlier")}
    if THIS in medians and peers:
        mine = medians[THIS]
        best_rate = max(m[0] for m in peers.values())
        best_p50 = min(m[1] for m in peers.values())
        earlier = [m for label, m in medians.items() if label.startswith("earlier")]
        lines += [f"Goals ({GOALS}), on the medians: c16 {mine[0]:.1f} img/s = {mine[0] / best_rate:.2f}x the best "
                  f"peer's" + (f", {mine[0] / earlier[0][0]:.2f}x the earlier front end's" if earlier else "") +
                  f"; p50 at 1 client {mine[1]:.1f} ms = {mine[1] / best_p50:.2f}x the best peer's; "
                  f"peak RSS at 64 clients {mine[2]:.0f} MB.", ""]
    return lines
