"""(f) of the priority section: the first requests to a newly loaded version are as fast as steady ones.

On a second server polling a versioned copy of the bench model (`mobilenet/1`, and `versions: all`,
`default_version: 1`, so version 2 is a canary served at `/mobilenet/versions/2/` only) every
MODEL_POLL_SECONDS, once per round: version 2 copied in (aside, then renamed), the first requests to
`POST /mobilenet/versions/2/prediction` as soon as it answers, then a few to settle, then steady ones;
one at a time, a fresh connection each (either worker may take it); then version 2 removed again.
"""
from __future__ import annotations

import http.client
import shutil
import statistics
import time
from collections import Counter
from pathlib import Path
from urllib.parse import urlsplit

import requests

from bench import loadgen
from bench.servers import serve

PREVIOUS = (16.8, 14.7)  # ms, first vs steady requests to a newly loaded version, measured before issue 22


def post(url: str, body: bytes) -> tuple[int, float]:
    """One prediction on a fresh connection (either worker may take it): status, seconds."""
    parts = urlsplit(url)
    start = time.perf_counter()
    conn = http.client.HTTPConnection(parts.hostname or "127.0.0.1", parts.port, timeout=60)
    try:
        conn.request("POST", parts.path, body, {"Content-Type": f"multipart/form-data; boundary={loadgen.BOUNDARY}"})
        response = conn.getresponse()
        response.read()
    finally:
        conn.close()
    return response.status, time.perf_counter() - start


def timed(url: str, bodies: list[bytes], count: int) -> tuple[list[float], int, Counter]:
    """`count` answers one at a time: ms of each 200; 404s (a worker not serving it yet) are retried."""
    ms, not_yet, other = [], 0, Counter()
    while len(ms) + sum(other.values()) < count:
        status, seconds = post(url, bodies[(len(ms) + not_yet) % len(bodies)])
        if status == 404:
            not_yet += 1
            time.sleep(0.02)
        elif status == 200:
            ms.append(1000 * seconds)
        else:
            other[str(status)] += 1
    return ms, not_yet, other


def wait_for(url: str, status: int, times: int) -> float:
    """Seconds until `url` answered `status` on `times` fresh connections in a row."""
    start, streak = time.perf_counter(), 0
    while streak < times:
        if time.perf_counter() - start > 300:
            raise RuntimeError(f"{url} did not answer {status} within 300 s")
        streak = streak + 1 if requests.get(url, timeout=10).status_code == status else 0
        time.sleep(0.02)
    return time.perf_counter() - start


def run(models: Path, images: list[Path], cfg: dict) -> list[dict]:
    """(f) version 2 copied next to 1 (served at /versions/2/ only), its first requests against steady ones."""
    root = models.parent / "models_versions"
    model = root / "mobilenet"
    shutil.copytree(models / "mobilenet", model / "1")
    (model / "model.yaml").write_text("versions: all\ndefault_version: 1\n")  # v2 as a canary: v1 stays
    bodies = [loadgen.multipart(p.read_bytes(), p.name) for p in images]
    first, settle, steady = cfg["version_requests"]
    rows = []
    with serve({"MODELS_DIR": str(root), "MODEL_POLL_SECONDS": str(cfg["model_poll"])}) as server:
        base = server.url + "/mobilenet/versions/2"
        for index in range(cfg["priority_rounds"]):
            print(f"[bench] priority, round {index + 1}: first requests to a new version", flush=True)
            aside = model / ".incoming-2"
            shutil.copytree(model / "1", aside)
            aside.rename(model / "2")  # never seen half-copied
            served_s = wait_for(base + "/", 200, 1)
            first_ms, not_yet, errors = timed(base + "/prediction", bodies, first)
            timed(base + "/prediction", bodies, settle)
            steady_ms, late, more = timed(base + "/prediction", bodies, steady)
            hidden = model / ".removed-2"
            (model / "2").rename(hidden)
            shutil.rmtree(hidden)
            wait_for(base + "/", 404, 8)
            time.sleep(cfg["model_poll"])  # both workers have dropped it
            rows.append({"served_after_s": served_s, "first_ms": first_ms, "steady_ms": steady_ms,
                         "not_yet_served": not_yet + late, "statuses": dict(errors + more),
                         "model_poll_s": cfg["model_poll"]})
    return rows


def median(values: list[float]) -> float:
    return statistics.median(values) if values else float("nan")


def row(label: str, values: list[float], digits: int = 1) -> str:
    cells = [f"{v:.{digits}f}" for v in values]
    return f"| {label} | {' | '.join(cells)} | {median(values):.{digits}f} |"


def section(versions: list[dict]) -> list[str]:
    """Per round: seconds to served, medians of the first and the steady requests, their ratio."""
    if not versions:
        return []
    first = [median(v["first_ms"]) for v in versions]
    steady = [median(v["steady_ms"]) for v in versions]
    return [f"(f) First {len(versions[0]['first_ms'])} requests to `POST /mobilenet/versions/2/prediction` "
              f"once version 2 serves (copied in next to 1, MODEL_POLL_SECONDS={versions[0]['model_poll_s']:g}), "
              "against "
              f"{len(versions[0]['steady_ms'])} steady ones after them; one at a time, a fresh connection each; "
              f"medians per round. Previously measured: {PREVIOUS[0]} vs {PREVIOUS[1]} ms.", "",
              f"| figure | {' | '.join(f'round {i + 1}' for i in range(len(versions)))} | median |",
              "|---|" + "---|" * (len(versions) + 1),
              row("seconds from the rename to served (poll + load)", [v["served_after_s"] for v in versions]),
              row("first requests, median ms", first), row("steady requests, median ms", steady),
              row("first / steady", [f / s for f, s in zip(first, steady, strict=True)], 2),
              row("404 before both workers served it (retried)", [v["not_yet_served"] for v in versions], 0), ""]
