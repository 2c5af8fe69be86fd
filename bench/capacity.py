"""How many requests at once one replica can take within a latency goal, and what to configure.

`python -m bench.capacity URL [--peak-rps 500]` posts images to one running replica (local,
a Heroku dyno, a Kubernetes pod through `kubectl port-forward`, a KServe endpoint) at rising
concurrency with bench/loadgen.py, in a child process per step so the generator's CPU is not
the server's, prints images/s, p50, p95 and errors per step, then the highest concurrency
whose p95 meets the goal with no error, as KServe `scaleTarget`, HPA and `heroku ps:scale` lines.
"""
from __future__ import annotations

import argparse
import asyncio
import json
import math
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import NoReturn
from urllib.parse import urlsplit

ROOT = Path(__file__).resolve().parents[1]
HEADROOM = 0.7  # plan replicas at 70% of measured capacity: bursts, a pod restarting, noise between runs
IMAGES = 30  # distinct uploads, cycled: enough that no cache or branch predictor sees one image only


def drive(spec_json: str) -> None:
    """Child process: one step of bench/loadgen.py; prints its JSON line (or {"error"} if unreachable)."""
    from bench import loadgen
    spec = json.loads(spec_json)
    try:
        result = asyncio.run(loadgen.run(spec["url"], [Path(p) for p in spec["images"]], spec["concurrency"],
                                         spec["duration"], spec["warmup"], headers=spec["headers"]))
    except OSError as exc:  # refused, reset, DNS, TLS: a message, not a trace
        print(json.dumps({"error": f"{type(exc).__name__}: {exc}"}))
        return
    good = result["requests"] - result["errors"]
    print(json.dumps({**result, "images_per_s": result["throughput"] * good / max(1, result["requests"]),
                      **{k: None for k in ("p50_ms", "p95_ms") if not result["requests"]}}))


def die(message: str, code: int = 2) -> NoReturn:
    print(f"capacity: {message}", file=sys.stderr)
    sys.exit(code)


def step(url: str, images: list[Path], headers: dict[str, str], concurrency: int, args: argparse.Namespace) -> dict:
    spec = {"url": url, "images": [str(p) for p in images], "headers": headers, "concurrency": concurrency,
            "duration": args.duration, "warmup": args.warmup}
    try:  # loadgen has no read timeout: a server that stops answering would hang the step forever
        done = subprocess.run([sys.executable, "-c", "import sys; from bench.capacity import drive; drive(sys.argv[1])",
                               json.dumps(spec)], cwd=ROOT, capture_output=True, text=True,
                              timeout=args.warmup + args.duration + 120)
    except subprocess.TimeoutExpired:
        die(f"concurrency {concurrency}: no answer within {args.warmup + args.duration + 120:.0f} s")
    if done.returncode or not done.stdout.strip():
        die(f"the load generator failed:\n{done.stderr[-2000:]}")
    result = json.loads(done.stdout.splitlines()[-1])
    if "error" in result:
        die(f"cannot reach {url} at concurrency {concurrency}: {result['error']}")
    result["meets_goal"] = result["errors"] == 0 and result["p95_ms"] is not None \
        and result["p95_ms"] <= args.p95_goal_ms
    return result


def recommend(steps: list[dict], peak: float | None) -> dict:
    """The highest step meeting the goal (p95 and no error) is the concurrency target; none: step 1's."""
    good = [s for s in steps if s["meets_goal"]]
    pick = max(good, key=lambda s: s["concurrency"]) if good else min(steps, key=lambda s: s["concurrency"])
    rate = pick["images_per_s"]
    replicas = max(1, math.ceil(peak / (rate * HEADROOM))) if peak and rate > 0 else None
    return {"meets_goal": bool(good), "concurrency": pick["concurrency"], "images_per_s": rate,
            "p95_ms": pick["p95_ms"], "headroom": HEADROOM, "peak_rps": peak, "replicas": replicas,
            "hpa_average_value": round(pick["concurrency"] * HEADROOM, 2),
            "highest_step": pick["concurrency"] == max(s["concurrency"] for s in steps)}


def show(rec: dict, goal: float) -> None:
    c, n = rec["concurrency"], rec["replicas"]
    if rec["meets_goal"]:
        more = "\n(the highest step tried: the limit may lie above it; add higher --steps)"
        print(f"\nConcurrency target per replica: {c} (p95 {rec['p95_ms']:.1f} ms <= {goal:g} ms, "
              f"{rec['images_per_s']:.1f} images/s per replica)" + (more if rec["highest_step"] else ""))
    else:
        print(f"\nNo step meets p95 <= {goal:g} ms with no errors: use concurrency {c} and expect "
              f"p95 {rec['p95_ms'] or float('nan'):.1f} ms, {rec['images_per_s']:.1f} images/s per replica "
              f"(a faster machine, int8 (quantize) or a smaller model would help)")
    if n:
        print(f"Replicas for {rec['peak_rps']:g} images/s at {HEADROOM:.0%} utilisation: "
              f"ceil({rec['peak_rps']:g} / ({rec['images_per_s']:.1f} x {HEADROOM})) = {n}")
    else:
        print("Pass --peak-rps (the images/s you expect at peak) to size maxReplicas.")
    print(f"\nKServe InferenceService, Serverless mode (Knative already aims at 70% of scaleTarget), spec.predictor:\n"
          f"  scaleMetric: concurrency\n  scaleTarget: {c}\n  minReplicas: 1" + (f"\n  maxReplicas: {n}" if n else ""))
    print(f"\nKubernetes HPA (k8s/hpa.yaml), per-pod in-flight requests through a Prometheus adapter "
          f"({HEADROOM:.0%} of the target):" + (f"\n  minReplicas: 2\n  maxReplicas: {max(n, 2)}" if n else "") +
          f"\n  metrics:\n    - type: Pods\n      pods:\n        metric: {{name: keras_serve_in_flight_requests}}"
          f"\n        target: {{type: AverageValue, averageValue: \"{rec['hpa_average_value']:g}\"}}")
    if n:
        print(f"\nHeroku:\n  heroku ps:scale web={n}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("url", help="base URL of one replica, e.g. http://127.0.0.1:5000")
    parser.add_argument("--model", help="default: the first model GET /health/live lists")
    parser.add_argument("--route", help="default: /<model>/prediction")
    parser.add_argument("--images", type=Path, help="folder of images to upload (default: generated)")
    parser.add_argument("--steps", default="1,2,4,8,16,32", help="concurrency levels, comma-separated")
    parser.add_argument("--duration", type=float, default=10.0, help="measured seconds per step")
    parser.add_argument("--warmup", type=float, default=2.0, help="unmeasured seconds before each step")
    parser.add_argument("--p95-goal-ms", type=float, default=200.0)
    parser.add_argument("--peak-rps", type=float, help="images/s expected at peak: sizes maxReplicas")
    parser.add_argument("--header", action="append", default=[], metavar="K:V", help="e.g. X-API-Key:secret")
    parser.add_argument("--json", action="store_true", help="one JSON document instead of the report")
    args = parser.parse_args()
    base, levels = args.url.rstrip("/"), [int(c) for c in args.steps.split(",") if c.strip().isdigit()]
    if urlsplit(base).scheme not in ("http", "https") or not urlsplit(base).hostname:
        die(f"URL must be http://host[:port] or https://..., not {args.url!r}")
    if not levels or min(levels) < 1 or len(levels) != len(args.steps.split(",")) or args.duration <= 0 \
            or args.warmup < 0 or (args.peak_rps is not None and args.peak_rps <= 0) \
            or any(":" not in h for h in args.header):
        die("--steps takes positive integers like 1,2,4; --duration, --peak-rps > 0; --header NAME:VALUE")
    headers = dict((k.strip(), v.strip()) for k, v in (h.split(":", 1) for h in args.header))
    import requests  # here, not at the top: the load-generating child does not need it
    session = requests.Session()
    session.headers.update(headers)
    try:  # also the reachability check, before minutes of steps
        live = session.get(f"{base}/health/live", timeout=10)
        models = list(live.json().get("models") or {}) if live.status_code == 200 else []
        model = args.model or (models[0] if models else None)
        if model is None:
            die(f"GET {base}/health/live answered {live.status_code} without models: pass --model")
        info = session.get(f"{base}/{model}/", timeout=30) if args.images is None else None
    except (requests.RequestException, ValueError) as exc:
        die(f"cannot reach {base}: {exc}")
    route = args.route or f"/{model}/prediction"
    with tempfile.TemporaryDirectory() as tmp:
        if args.images is not None:
            images = sorted(p for p in args.images.glob("*") if p.is_file()) if args.images.is_dir() else []
            if not images:
                die(f"no files in {args.images}")
        elif info is not None and info.status_code == 200:  # uploads like the model's: digits drawings or photos
            from bench.assets import write_digits, write_photos
            h, w, channels = info.json().get("input_shape") or (224, 224, 3)  # None: not loaded yet
            images = write_digits(Path(tmp), IMAGES) if (h, w, channels) == (8, 8, 1) else \
                write_photos(Path(tmp), w, h, IMAGES)
        else:
            die(f"GET {base}/{model}/ answered {info.status_code if info is not None else '?'}: "
                f"pass --images DIR (or --header for an API key)")
        if not args.json:
            print(f"{base}{route}: {len(images)} images, {args.duration:g} s per step after {args.warmup:g} s "
                  f"warm-up, goal p95 <= {args.p95_goal_ms:g} ms\n"
                  f"{'concurrency':>11} {'images/s':>9} {'p50 ms':>8} {'p95 ms':>8}  errors")
        steps = []
        for concurrency in levels:
            steps.append(s := step(base + route, images, headers, concurrency, args))
            why = ", ".join(f"HTTP {k} x{n}" + (" (shed)" if k in ("429", "503") else "") if k != "0"
                            else f"no answer x{n}" for k, n in s["statuses"].items())
            if not args.json:
                print(f"{concurrency:>11} {s['images_per_s']:>9.1f} {s['p50_ms'] or math.nan:>8.1f} "
                      f"{s['p95_ms'] or math.nan:>8.1f}  {s['errors']}" + (f": {why}" if why else ""), flush=True)
            if s["requests"] and s["errors"] == s["requests"]:  # a wrong route or key: nothing to measure
                die(f"every request at concurrency {concurrency} failed ({why}): check the URL, --route, --header", 1)
    rec = recommend(steps, args.peak_rps)
    if args.json:
        print(json.dumps({"url": base, "model": model, "route": route, "p95_goal_ms": args.p95_goal_ms,
                          "steps": steps, "recommendation": rec}, indent=1))
    else:
        show(rec, args.p95_goal_ms)


if __name__ == "__main__":
    main()
