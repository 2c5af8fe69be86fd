"""The in-process limit: decode + preprocess + LiteRT invoke in a loop, no HTTP.

Run as `python -m bench.inprocess MODEL_DIR THREADS BATCH SECONDS IMAGE...`; prints JSON with
images/s and the median single-batch latency. bench/run.py starts one or two of these.
"""
from __future__ import annotations

import json
import statistics
import sys
import time
from pathlib import Path

import numpy as np

from util.serve.image import preprocess
from util.serve.runtimes import LiteRTRuntime
from util.serve.spec import read_spec


def main() -> None:
    model_dir, threads, batch, seconds = Path(sys.argv[1]), int(sys.argv[2]), int(sys.argv[3]), float(sys.argv[4])
    uploads = [Path(p).read_bytes() for p in sys.argv[5:]]
    spec = read_spec(model_dir)
    runtime = LiteRTRuntime(spec.artifact, threads)

    def step(i: int) -> None:
        x = np.stack([preprocess(uploads[(i + j) % len(uploads)], runtime.input_shape, spec.preprocessing,
                                 40_000_000) for j in range(batch)])
        runtime.predict(x)
    for i in range(3):
        step(i)  # warm the interpreter at this batch size
    latencies, done, start = [], 0, time.perf_counter()
    while time.perf_counter() - start < seconds:
        t = time.perf_counter()
        step(done)
        latencies.append(time.perf_counter() - t)
        done += batch
    elapsed = time.perf_counter() - start
    print(json.dumps({"threads": threads, "batch": batch, "images_per_s": done / elapsed,
                      "median_batch_ms": 1000 * statistics.median(latencies)}))


if __name__ == "__main__":
    main()
