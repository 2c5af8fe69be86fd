"""bench/RESULTS.png: throughput and median latency against concurrency for this server (float32
and int8), the peers and the naive server, from one run's RESULTS.json."""
from __future__ import annotations

from pathlib import Path

import matplotlib
import matplotlib.ticker

matplotlib.use("Agg")  # no display: draw to a file
import json
import sys

import matplotlib.pyplot as plt

from bench.report import MOBILENET, MOBILENET_INT8


def series(results: dict) -> dict[str, list[dict]]:
    """Label -> runs, for every server measured on MobileNetV2 224x224."""
    sets = results["sets"]
    found = {"this server, float32": sets[MOBILENET]["server"]["runs"]}
    if MOBILENET_INT8 in sets:
        found["this server, int8"] = sets[MOBILENET_INT8]["server"]["runs"]
    for name, entry in (results.get("peers") or {}).items():
        if isinstance(entry, dict) and "runs" in entry:
            found[f"{name}, float32"] = entry["runs"]
    if "naive" in sets[MOBILENET]:
        found["naive Flask + Keras"] = sets[MOBILENET]["naive"]["runs"]
    return found


def draw(results: dict, path: Path) -> None:
    figure, (left, right) = plt.subplots(1, 2, figsize=(11, 4.2))
    for label, runs in series(results).items():
        levels = [r["concurrency"] for r in runs]
        style = "-" if label.startswith("this server") else "--"
        left.plot(levels, [r["throughput"] for r in runs], style, marker="o", label=label)
        right.plot(levels, [r["p50_ms"] for r in runs], style, marker="o", label=label)
    for axis, title, unit in ((left, "Throughput", "requests / s"), (right, "Median latency", "ms (log scale)")):
        axis.set_xscale("log", base=2)
        axis.set_xticks(levels, [str(v) for v in levels])
        axis.set_xlabel("concurrent clients")
        axis.set_ylabel(unit)
        axis.set_title(title)
        axis.grid(alpha=0.3)
    right.set_yscale("log")
    right.yaxis.set_major_formatter(matplotlib.ticker.ScalarFormatter())
    left.set_ylim(bottom=0)
    handles, labels = left.get_legend_handles_labels()
    figure.legend(handles, labels, loc="lower center", ncol=len(labels), fontsize=8, frameon=False)
    figure.suptitle(f"MobileNetV2 224x224 JPEG uploads, {results['machine']}"
                    + (" (SMOKE RUN: meaningless)" if results.get("smoke") else ""), fontsize=10)
    figure.tight_layout(rect=(0, 0.07, 1, 1))
    figure.savefig(path, dpi=110)
    plt.close(figure)


if __name__ == "__main__":  # redraw from a RESULTS.json: python -m bench.chart bench/RESULTS.json
    source = Path(sys.argv[1])
    draw(json.loads(source.read_text()), source.with_suffix(".png"))
