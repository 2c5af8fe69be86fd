"""Memory of the Procfile server with MobileNetV2 from S3 against from disk.

`python -m bench.store_rss` publishes the bench MobileNetV2 (float32) to moto's S3 server with
`flask models publish`, then serves it in alternating rounds, A: MODELS_DIR=<local dir> and
B: MODELS_DIR=s3://... (A B A B A B: on a shared 2-core machine a slow minute then hits both
alike), 16 clients for 20 s each, and prints every round, the medians, B - A, and whether B's
peak RSS of all serving processes (master + 2 workers) stays <= 320 MB. Results also go to
bench/store_rss.json. MODEL_POLL_SECONDS keeps its default (5 s), so the store is polled during
the load; moto's request log shows how often.
"""
from __future__ import annotations

import argparse
import json
import math
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import requests

from bench import assets
from bench.servers import ROOT, S3Server, group_rss_mb, serve

LIMIT_MB, DYNO_MB = 320.0, 512.0
BUCKET, PREFIX = "bench-models", "models"
# Fake credentials and no profile files: nothing may reach AWS (as tests/conftest.py).
FAKE = {"AWS_ACCESS_KEY_ID": "testing", "AWS_SECRET_ACCESS_KEY": "testing", "AWS_DEFAULT_REGION": "us-east-1",
        "AWS_CONFIG_FILE": "/nonexistent", "AWS_SHARED_CREDENTIALS_FILE": "/nonexistent"}
# The S3 client library alone in a bare interpreter: what each worker pays on top of the rest.
CLIENT_COST = """import sys
def rss(): return next(int(l.split()[1]) for l in open('/proc/self/status') if l.startswith('VmRSS:')) / 1024
before = rss()
import obstore
from obstore.store import S3Store
for _ in obstore.list(S3Store.from_url(f"s3://{sys.argv[2]}", client_options={"allow_http": True}), prefix="models/"):
    pass
print(rss() - before)"""


def build(cache: Path, rebuild: bool) -> tuple[Path, list[Path]]:
    """The bench MobileNetV2 (as bench/run.py builds it, compiled float32) and 16 224x224 photos.
    bench/run.py keeps no cache (a temporary directory per run), so this one keeps its own: the
    build takes about a minute and the model is the same every time (seed 0)."""
    models, photos = cache / "models", cache / "p224"
    if rebuild or not (models / "mobilenet" / "model.tflite").is_file():
        shutil.rmtree(cache, ignore_errors=True)
        staging = Path(tempfile.mkdtemp(prefix="store-rss-"))
        train = assets.write_photos(staging / "train", 224, 224, 200, seed=10)
        samples = assets.write_photos(staging / "samples", 224, 224, 30, seed=11)
        print("[store_rss] building MobileNetV2 (once; cached in", cache, ")", flush=True)
        start = time.perf_counter()
        assets.make_mobilenet(staging / "models", train[0].parent, samples, 224)
        assets.write_photos(staging / "p224", 224, 224, 16)
        shutil.rmtree(staging / "train")
        shutil.move(staging, cache)  # only a complete build is ever reused
        print(f"[store_rss] built in {time.perf_counter() - start:.0f} s", flush=True)
    return models, sorted(photos.iterdir())


def worker_rss(pgid: int) -> list[float]:
    """Idle RSS of each gunicorn worker (the group's processes whose parent is the master), MB: a
    worker that kept the solo interpreter stands out."""
    stats = {}
    for entry in Path("/proc").iterdir():
        try:
            fields = (entry / "stat").read_text().rsplit(")", 1)[1].split() if entry.name.isdigit() else []
            if fields and int(fields[2]) == pgid:
                stats[int(entry.name)] = (int(fields[1]), int(fields[21]) * os.sysconf("SC_PAGE_SIZE") / 2**20)
        except (OSError, ValueError, IndexError):
            continue
    parents = {parent for parent, _ in stats.values()}
    return sorted(mb for pid, (parent, mb) in stats.items() if parent in stats and pid not in parents)


def load(url: str, photos: list[Path], clients: int, seconds: float, warmup: float) -> dict:
    """bench/loadgen.py in a child process (its CPU is not the sampler's); images/s counts 200s only."""
    done = subprocess.run([sys.executable, "-m", "bench.loadgen", url, *map(str, photos), "--concurrency",
                           str(clients), "--duration", str(seconds), "--warmup", str(warmup)], cwd=ROOT,
                          capture_output=True, text=True, check=True, timeout=warmup + seconds + 120)
    result = json.loads(done.stdout.splitlines()[-1])
    good = result["requests"] - result["errors"]
    return {**result, "images_per_s": result["throughput"] * good / max(1, result["requests"])}


def round_(label: str, env: dict[str, str], photos: list[Path], args: argparse.Namespace, moto: S3Server) -> dict:
    polls = moto.listings()
    with serve(env) as server:
        idle = group_rss_mb(server.proc.pid)  # right after /health/ready: every worker has its model
        workers = worker_rss(server.proc.pid)
        if label == "B" and not any((Path(env["MODEL_CACHE_DIR"]) / "s3").rglob("model.tflite")):
            raise RuntimeError("round B is not serving from the S3 cache")
        # The interpreter plan differs between starts (the solo interpreter is kept only if it timed
        # faster at start-up, which a busy machine decides): it is one more interpreter's memory.
        plan = requests.get(server.url + "/mobilenet/", timeout=10).json().get("inference") or {}
        with server.rss() as rss:  # peak over warm-up and load, every 50 ms, master + workers
            result = load(server.url + "/mobilenet/prediction", photos, args.clients, args.seconds, args.warmup)
    return {"store": label, "startup_s": server.startup_s, "idle_mb": idle, "peak_mb": rss.peak,
            "images_per_s": result["images_per_s"], "p50_ms": result["p50_ms"],
            "p95_ms": result.get("p95_ms", math.nan), "errors": result["errors"],
            "statuses": result.get("statuses", {}), "store_listings": moto.listings() - polls,
            "solo_threads": plan.get("solo_threads"), "workers_idle_mb": workers}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--cache", type=Path, default=Path(tempfile.gettempdir()) / "bench-store-rss",
                        help="where the built model and photos are kept between runs")
    parser.add_argument("--rebuild", action="store_true", help="build the model again")
    parser.add_argument("--rounds", type=int, default=3, help="rounds of each store, alternated")
    parser.add_argument("--clients", type=int, default=16)
    parser.add_argument("--seconds", type=float, default=20.0)
    parser.add_argument("--warmup", type=float, default=3.0)
    parser.add_argument("--env", action="append", default=[], metavar="KEY=VALUE",
                        help="server setting for both stores, e.g. SOLO_THREADS=1 to pin the interpreter plan")
    parser.add_argument("--output", type=Path, default=ROOT / "bench" / "store_rss.json")
    args = parser.parse_args()
    models, photos = build(args.cache, args.rebuild)
    with tempfile.TemporaryDirectory(prefix="store-rss-") as tmp:
        work = Path(tmp)
        moto = S3Server(work / "moto.log")
        try:
            s3 = {**FAKE, "AWS_ENDPOINT_URL": moto.url}
            import boto3
            boto3.client("s3", endpoint_url=moto.url, region_name="us-east-1",
                         aws_access_key_id="testing", aws_secret_access_key="testing").create_bucket(Bucket=BUCKET)
            url = f"s3://{BUCKET}/{PREFIX}"
            # The real command an operator runs, in its own process.
            subprocess.run([sys.executable, "-m", "flask", "--app", "application", "models", "publish", "mobilenet",
                            "--to", url, "--models-dir", str(models)], cwd=ROOT, check=True,
                           env={**os.environ, **s3, "TF_CPP_MIN_LOG_LEVEL": "3"})
            client_mb = float(subprocess.run([sys.executable, "-c", CLIENT_COST, moto.url, BUCKET], cwd=ROOT,
                                             env={**os.environ, **s3}, capture_output=True, text=True,
                                             check=True).stdout)
            rounds = []
            for i in range(args.rounds):
                for label in "AB":  # a fresh cache each round: B fetches the model from the store every time
                    cache = work / f"cache-{i}-{label}"
                    env = {"MODELS_DIR": str(models), "MODEL_CACHE_DIR": str(cache),
                           **dict(kv.split("=", 1) for kv in args.env)}
                    if label == "B":
                        env.update(s3, MODELS_DIR=url)
                    print(f"[store_rss] round {i + 1} {label}: MODELS_DIR={env['MODELS_DIR']}", flush=True)
                    rounds.append({"round": i + 1, **round_(label, env, photos, args, moto)})
        finally:
            moto.stop()
    return report(rounds, client_mb, args)


def report(rounds: list[dict], client_mb: float, args: argparse.Namespace) -> int:
    cols = ("startup_s", "idle_mb", "peak_mb", "images_per_s", "p50_ms", "p95_ms", "errors", "store_listings")
    head = f"{'round':>5} {'store':<5} {'start s':>7} {'idle MB':>8} {'peak MB':>8} {'img/s':>7} " \
           f"{'p50 ms':>7} {'p95 ms':>7} {'errors':>6} {'lists':>5} solo workers"

    def line(name: str, store: str, r: dict) -> str:
        return (f"{name:>5} {store:<5} {r['startup_s']:>7.1f} {r['idle_mb']:>8.1f} {r['peak_mb']:>8.1f} "
                f"{r['images_per_s']:>7.1f} {r['p50_ms']:>7.1f} {r['p95_ms']:>7.1f} {r['errors']:>6g} "
                f"{r['store_listings']:>5g} {r.get('solo_threads') or '-':>4} "
                + "/".join(f"{mb:.0f}" for mb in r.get("workers_idle_mb", [])))
    print(f"\nMobileNetV2-224 float32, {args.clients} clients, {args.warmup:g} s warm-up + {args.seconds:g} s, "
          f"MODEL_POLL_SECONDS default, {' '.join(args.env) or 'default settings'}; A: local directory, "
          f"B: s3:// (moto)\n{head}")
    for r in rounds:
        print(line(str(r["round"]), r["store"], r))
    med = {s: {c: statistics.median(r[c] for r in rounds if r["store"] == s) for c in cols} for s in "AB"}
    for s in "AB":
        print(line("med", s, med[s]))
    diff = {c: med["B"][c] - med["A"][c] for c in cols}
    print(line("B-A", "", diff))
    worst = max(r["peak_mb"] for r in rounds if r["store"] == "B")
    errors = sum(r["errors"] for r in rounds)
    ok = worst <= LIMIT_MB and errors == 0
    print(f"\nB peak RSS: median {med['B']['peak_mb']:.1f} MB, worst {worst:.1f} MB -> "
          f"{'<=' if worst <= LIMIT_MB else '>'} {LIMIT_MB:g} MB: {'PASS' if worst <= LIMIT_MB else 'FAIL'}")
    print(f"S3 client cost: idle {diff['idle_mb']:+.1f} MB, peak {diff['peak_mb']:+.1f} MB (B-A medians) = "
          f"{100 * diff['peak_mb'] / DYNO_MB:+.1f}% of a {DYNO_MB:g} MB dyno; the S3 client and one listing in a bare "
          f"interpreter: {client_mb:.1f} MB (per worker); B's worst peak leaves {DYNO_MB - worst:.0f} MB of the dyno")
    print(f"errors: {errors}")
    if len({r["solo_threads"] for r in rounds}) > 1:  # decided per worker at start-up, by timing
        print("NOTE: the solo interpreter was kept in some rounds only: B-A mixes its memory in; "
              "pin the plan with --env SOLO_THREADS=1 to compare the stores alone")
    results = {"clients": args.clients, "env": args.env, "seconds": args.seconds, "warmup": args.warmup,
               "limit_mb": LIMIT_MB, "rounds": rounds, "medians": med, "b_minus_a": diff, "b_worst_peak_mb": worst,
               "client_mb": client_mb, "pass": ok}
    args.output.write_text(json.dumps(results, indent=1) + "\n")
    print(f"wrote {args.output}")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
