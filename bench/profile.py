"""Where a served request's CPU goes: `python -m bench.profile` starts the Procfile server on the
bench's MobileNetV2, drives it at concurrency 16, samples every worker with py-spy (only the
thread holding the GIL: Python's own work; LiteRT's invoke releases it) and prints the share of
each stage, next to the server's CPU time per request and the in-process cost per image.
"""
from __future__ import annotations

import argparse
import collections
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from bench import run as bench
from bench.servers import ROOT, serve

# Stage -> frames (function (file)) whose inclusive samples count for it; first match wins,
# innermost first, so "decode + preprocess" inside the view is not counted as the view.
STAGES = [
    ("image decode + preprocessing (also in the in-process limit)", ("preprocess (image.py)",)),
    ("LiteRT call: input copy, lane hand-over, invoke glue", ("LiteRTRuntime.predict (runtimes.py)",)),
    ("top-k answer", ("ServedModel.answer (registry.py)",)),
    ("multipart + argument parsing (Werkzeug, reqparse)", ("parse (models.py)",)),
    ("view, marshalling (flask-restx)", ("marshal_with.__call__.<locals>.wrapper (marshalling.py)",)),
    ("Flask dispatch, hooks (request id, access log, auth, metrics), response",
     ("Flask.__call__ (app.py)",)),
    ("WSGI thread hand-over (environ, thread pool)", ("_worker (thread.py)",)),
    ("event loop: HTTP parsing, body buffering, socket writes", ("BaseEventLoop._run_once (base_events.py)",)),
]


def frame_key(frame: str) -> str:
    name, _, where = frame.partition(" (")
    return f"{name} ({where.split(':')[0].split('/')[-1]})" if where else name


def stage_of(frames: list[str]) -> str:
    keys = [frame_key(f) for f in frames]
    for stage, markers in STAGES:
        if any(m in keys for m in markers):
            return stage
    return "other"


def workers(shell: int) -> list[int]:
    """gunicorn's workers under the `sh -c` of the Procfile line."""
    def children(pid: int) -> list[int]:
        out = subprocess.run(["pgrep", "-P", str(pid)], capture_output=True, text=True).stdout.split()
        return [int(p) for p in out]
    level = children(shell)
    masters = [p for p in level if children(p)] or [shell]
    return [w for m in masters for w in children(m)]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--seconds", type=float, default=10.0)
    parser.add_argument("--quantize", choices=("none", "int8"), default="none")
    args = parser.parse_args()
    spy = Path(sys.executable).parent / "py-spy"
    with tempfile.TemporaryDirectory(prefix="profile-") as tmp:
        work = Path(tmp)
        cfg = dict(bench.FULL)
        fp32, int8, _ = bench.build_models(work, cfg)
        model = int8 if args.quantize == "int8" else fp32
        photos = bench.assets.write_photos(work / "p224", 224, 224, 16)
        per_image = bench.in_process(model, photos, 2, 1, 1, 5.0)
        with serve({"MODELS_DIR": str(model.parent)}) as server:
            url = server.url + "/mobilenet/prediction"
            bench.load(url, photos, 16, {**cfg, "duration": 3.0, "warmup": 0.5})  # warm both workers
            pids = workers(server.proc.pid)
            loadgen = subprocess.Popen([sys.executable, "-m", "bench.loadgen", url, *map(str, photos), "--concurrency",
                                        "16", "--duration", str(args.seconds + 2), "--warmup", "1"], cwd=ROOT,
                                       stdout=subprocess.PIPE, text=True)
            time.sleep(1)
            outputs = [work / f"spy-{pid}.txt" for pid in pids]
            cpu_before = sum(cpu_seconds(p) for p in pids)
            spies = [subprocess.Popen([str(spy), "record", "-p", str(pid), "-d", str(int(args.seconds)), "-r", "200",
                                       "-f", "raw", "-o", str(out), "--gil", "--nonblocking"],
                                      stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
                     for pid, out in zip(pids, outputs, strict=True)]
            for s in spies:
                s.wait()
            cpu = sum(cpu_seconds(p) for p in pids) - cpu_before
            result = json.loads(loadgen.communicate()[0])
        samples: collections.Counter = collections.Counter()
        for out in outputs:
            for line in out.read_text().splitlines():
                stack, _, count = line.rpartition(" ")
                samples[stage_of(stack.split(";")[1:])] += int(count)
    requests = result["throughput"] * args.seconds
    gil_ms = 1000 * sum(samples.values()) / 200 / requests
    print(f"MobileNetV2 {args.quantize}, concurrency 16: {result['throughput']:.1f} req/s; workers' CPU per request "
          f"{1000 * cpu / requests:.2f} ms (py-spy's sampling included); in-process, 2 processes: "
          f"{2000 / per_image['images_per_s']:.2f} ms per image")
    print(f"Python holding the GIL: {gil_ms:.2f} ms per request\n")
    print("| stage | share of GIL time | ms per request |\n|---|---|---|")
    total = sum(samples.values())
    for stage, n in samples.most_common():
        print(f"| {stage} | {n / total:.1%} | {gil_ms * n / total:.2f} |")


def cpu_seconds(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


if __name__ == "__main__":
    main()
