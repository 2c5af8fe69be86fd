"""Cost of POST /<model>/explanation against one prediction, on the Procfile server (bench section (h)).

Each photo is sent one at a time (concurrency 1: the latency a person at the demo page waits),
first to /prediction, then to /explanation at each grid, in alternating order per photo so a
slow moment hits every row alike.
"""
from __future__ import annotations

import statistics
import time
from pathlib import Path

import requests

GRIDS = (4, 8, 16)  # 8 is the default (EXPLANATION_GRID); 16 is the largest EXPLANATION_MAX_PASSES=256 allows


def timed(session: requests.Session, url: str, data: bytes, fields: dict[str, str], accept: str) -> float:
    started = time.perf_counter()
    answer = session.post(url, files={"image": ("photo.jpg", data)}, data=fields, headers={"Accept": accept},
                          timeout=120)
    elapsed = time.perf_counter() - started
    answer.raise_for_status()
    return elapsed * 1000


def measure(url: str, model: str, photos: list[Path], rounds: int) -> dict:
    """ms per request (p50, p95) for a prediction and each grid's explanation, as JSON and as PNG."""
    rows: dict[str, list[float]] = {"prediction": []}
    for grid in GRIDS:
        rows[f"explanation grid {grid}, JSON"] = []
        rows[f"explanation grid {grid}, PNG overlay"] = []
    passes = {f"explanation grid {g}, {kind}": g * g + 1 for g in GRIDS for kind in ("JSON", "PNG overlay")}
    with requests.Session() as session:
        for data in [p.read_bytes() for p in photos[:1]]:  # warm-up: first interpreter resizes
            for grid in GRIDS:
                timed(session, f"{url}/{model}/explanation", data, {"grid": str(grid)}, "application/json")
        for _ in range(rounds):
            for data in [p.read_bytes() for p in photos]:
                rows["prediction"].append(timed(session, f"{url}/{model}/prediction", data, {}, "application/json"))
                for grid in GRIDS:
                    fields = {"grid": str(grid)}
                    rows[f"explanation grid {grid}, JSON"].append(
                        timed(session, f"{url}/{model}/explanation", data, fields, "application/json"))
                    rows[f"explanation grid {grid}, PNG overlay"].append(
                        timed(session, f"{url}/{model}/explanation", data, fields, "image/png"))
    base = statistics.median(rows["prediction"])
    return {label: {"requests": len(ms), "p50_ms": statistics.median(ms),
                    "p95_ms": statistics.quantiles(ms, n=20)[-1] if len(ms) > 1 else ms[0],
                    "passes": passes.get(label, 1), "vs_prediction": statistics.median(ms) / base}
            for label, ms in rows.items()}
