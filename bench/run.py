"""`make bench`: measure everything in one run and rewrite bench/RESULTS.md.

(a) in-process limit, (b) this server under load (float32 and int8), (c) the seed-style naive
server, (d) the HTTP floor, (e) start-up, (f) LitServe and BentoML on the same artifact; plus
process-model variants, front ends, priorities and deadlines, and the soak. `--smoke` runs the same
code with a tiny model and tiny durations (used by the test suite so this cannot rot).
"""
from __future__ import annotations

import argparse
import json
import os
import platform
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import requests

from bench import assets, chart, decode, explanations, fronts, priority, report, soak
from bench.report import MOBILENET, MOBILENET_INT8
from bench.servers import ROOT, serve

FULL = {"size": 224, "train": 200, "samples": 30, "concurrency": (1, 4, 16, 64), "duration": 8.0, "warmup": 2.0,
        "limit_seconds": 5.0, "photos": 16, "digits": 64, "variant_concurrency": (1, 4, 16), "slow": 64,
        "soak_seconds": 600.0, "soak_warmup": 30.0, "front_rounds": 3, "front_concurrency": (1, 16, 64),
        "explain_rounds": 2, "priority_rounds": 3, "priority_margin": 1.0, "version_requests": (10, 10, 30),
        "model_poll": 1.0, "deadline_s": 0.005,
        # decode: (width, height, runs per round): a 12 MP phone photo and a downsized one
        "decode_sizes": ((4032, 3024, 5), (1000, 750, 20)), "decode_rounds": 4}
SMOKE = {"size": 32, "train": 20, "samples": 20, "concurrency": (1, 4), "duration": 0.5, "warmup": 0.2,
         "limit_seconds": 0.3, "photos": 2, "digits": 4, "variant_concurrency": (1,), "slow": 4,
         "soak_seconds": 2.0, "soak_warmup": 0.5, "front_rounds": 1, "front_concurrency": (1, 4),
         "explain_rounds": 1, "priority_rounds": 1, "priority_margin": 0.2, "version_requests": (3, 2, 5),
         "model_poll": 1.0, "deadline_s": 0.0001,  # the tiny model rarely queues 5 ms: 0.1 ms still sheds
         "decode_sizes": ((64, 48, 2),), "decode_rounds": 2}
# (processes, interpreter threads, batch size) for the in-process limit
LIMIT_CONFIGS = [(1, 2, 1), (1, 2, 2), (1, 2, 4), (1, 2, 8), (1, 1, 1), (2, 1, 1), (2, 1, 2), (2, 1, 4)]
# Peers on the same compiled .tflite (bench/peers/, own venv): the command, with {python} and {port}
# filled in, and the path that answers 200 once they are ready.
PEERS = {"LitServe": (["{python}", "-m", "bench.peers.litserve_app", "{port}"], "/health"),
         "BentoML": (["{python}", "-m", "bentoml", "serve", "bench.peers.bentoml_service:ImageClassifier",
                      "--host", "127.0.0.1", "--port", "{port}"], "/readyz")}
VARIANTS = {
    "2 workers x 1 lane, no solo interpreter": {"WEB_CONCURRENCY": "2", "SOLO_THREADS": "1"},
    "2 workers x 1 lane x 2 threads": {"WEB_CONCURRENCY": "2", "INTERPRETER_THREADS": "2", "SOLO_THREADS": "1"},
    "1 worker x 2 lanes + solo": {"WEB_CONCURRENCY": "1"},
    "3 workers x 1 lane + solo": {"WEB_CONCURRENCY": "3"},
    "2 workers + solo, batches <= 4": {"WEB_CONCURRENCY": "2", "MAX_BATCH_SIZE": "4"},
}


def in_process(model_dir: Path, images: list[Path], procs: int, threads: int, batch: int, seconds: float) -> dict:
    command = [sys.executable, "-m", "bench.inprocess", str(model_dir), str(threads), str(batch), str(seconds),
               *map(str, images)]
    children = [subprocess.Popen(command, cwd=ROOT, stdout=subprocess.PIPE, text=True) for _ in range(procs)]
    results = [json.loads(child.communicate()[0]) for child in children]
    return {"procs": procs, "threads": threads, "batch": batch,
            "images_per_s": sum(r["images_per_s"] for r in results),
            "median_batch_ms": max(r["median_batch_ms"] for r in results)}


def limit(model_dir: Path, images: list[Path], cfg: dict) -> dict:
    rows = [in_process(model_dir, images, *c, cfg["limit_seconds"]) for c in LIMIT_CONFIGS]
    single = min(r["median_batch_ms"] for r in rows if r["procs"] == 1 and r["batch"] == 1)
    return {"rows": rows, "best": max(rows, key=lambda r: r["images_per_s"]), "single_image_ms": single}


def load(url: str, images: list[Path], concurrency: int, cfg: dict, body: str = "native") -> dict:
    command = [sys.executable, "-m", "bench.loadgen", url, *map(str, images), "--concurrency", str(concurrency),
               "--duration", str(cfg["duration"]), "--warmup", str(cfg["warmup"]), "--body", body]
    return json.loads(subprocess.run(command, cwd=ROOT, capture_output=True, text=True, check=True).stdout)


def drive(env: dict[str, str], route: str, images: list[Path], levels: tuple[int, ...], cfg: dict,
          app: str | None = None, command: list[str] | None = None, ready: str = "/health/ready",
          body: str = "native", root: Path = ROOT) -> dict:
    """Start a server, run the load at each concurrency, record RSS peaks and start-up time."""
    with serve(env, app, command=command, ready=ready, root=root) as server:
        runs = []
        for concurrency in levels:
            with server.rss() as rss:
                result = load(server.url + route, images, concurrency, cfg, body)
            runs.append({**result, "peak_rss_mb": rss.peak})
        plan = None
        if command is None and body == "native":
            about = requests.get(server.url + route.rsplit("/", 1)[0] + "/", timeout=10)
            plan = about.json().get("inference") if about.status_code == 200 else None
    return {"startup_s": server.startup_s, "runs": runs, "inference": plan}


def run_peers(model_dir: Path, images: list[Path], cfg: dict, python: Path | None) -> dict:
    """LitServe and BentoML serving model_dir's .tflite, under the same load as this server."""
    if python is None or not python.exists():
        return {"skipped": f"no peers venv ({python}); `make bench` creates .venv-peers"}
    peers = {}
    for name, (command, ready) in PEERS.items():
        print(f"[bench] peer: {name}", flush=True)
        argv = [part.replace("{python}", str(python)) for part in command]
        peers[name] = drive({"PEER_MODEL_DIR": str(model_dir), "BENTOML_DO_NOT_TRACK": "True"}, "/prediction",
                            images, cfg["concurrency"], cfg, command=argv, ready=ready)
    return peers


# Other routes to the same model and prediction path: route, loadgen body, images per request.
PROTOCOLS = {"native, 1 image per request (POST /mobilenet/prediction)": ("/mobilenet/prediction", "native", 1),
             "Open Inference V2 infer (JSON, base64 image)": ("/v2/models/mobilenet/infer", "v2", 1),
             "native, 4 images per request (POST /mobilenet/predictions)": ("/mobilenet/predictions", "batch4", 4)}


def run_protocols(models: Path, photos: list[Path], cfg: dict) -> dict:
    """Each route of PROTOCOLS under load, in one run (the first, the native route, is the reference)."""
    rows = {}
    for label, (route, body, per_request) in PROTOCOLS.items():
        print(f"[bench] route: {label}", flush=True)
        rows[label] = {**drive({"MODELS_DIR": str(models)}, route, photos, cfg["variant_concurrency"], cfg,
                               body=body), "images_per_request": per_request}
    return rows


def run_explanations(models: Path, photos: list[Path], cfg: dict) -> dict:
    """(h) explanation latency against one prediction, on the Procfile server with default settings."""
    print("[bench] explanations", flush=True)
    with serve({"MODELS_DIR": str(models)}) as server:
        return explanations.measure(server.url, "mobilenet", photos, cfg["explain_rounds"])


def build_models(work: Path, cfg: dict) -> tuple[Path, Path, dict]:
    """The bench MobileNetV2 compiled as float32 (work/models) and int8 (work/models_int8)."""
    size = cfg["size"]
    train = assets.write_photos(work / "train", size, size, cfg["train"], seed=10)
    samples = assets.write_photos(work / "samples", size, size, cfg["samples"], seed=11)
    fp32 = assets.make_mobilenet(work / "models", train[0].parent, samples, size)
    int8 = assets.copy_as(fp32, work / "models_int8", "int8")
    return fp32, int8, json.loads((int8 / "model.tflite.json").read_text())["quantization"]


def speed(work: Path, cfg: dict, args: argparse.Namespace) -> dict:
    """Everything measured on the throughput side: the sets (limit, server, naive), the floor and the peers."""
    fp32, int8, quantization = build_models(work, cfg)
    photos = assets.write_photos(work / "p224", cfg["size"], cfg["size"], cfg["photos"])
    sets = {
        MOBILENET: (work / "models", "/mobilenet/prediction", fp32, photos),
        MOBILENET_INT8: (work / "models_int8", "/mobilenet/prediction", int8, photos),
        "MobileNetV2, 1024x768 JPEG": (work / "models", "/mobilenet/prediction", fp32,
                                       assets.write_photos(work / "p1024", 1024, 768, cfg["photos"], seed=1)),
        "digits, PNG": (ROOT / "saved_models", "/digits/prediction", ROOT / "saved_models" / "digits" / "1",
                        assets.write_digits(work / "digits", cfg["digits"])),
    }
    results: dict = {"sets": {}, "int8": quantization}
    for name, (models_dir, route, model_dir, images) in sets.items():
        print(f"[bench] {name}: in-process limit", flush=True)
        entry = {"limit": limit(model_dir, images, cfg)}
        print(f"[bench] {name}: server", flush=True)
        entry["server"] = drive({"MODELS_DIR": str(models_dir)}, route, images, cfg["concurrency"], cfg)
        if not args.skip_naive and name.startswith("MobileNetV2,"):
            print(f"[bench] {name}: naive baseline", flush=True)
            entry["naive"] = drive({"MODELS_DIR": str(models_dir)}, route, images, cfg["concurrency"], cfg,
                                   app="bench.naive_server:app")
        results["sets"][name] = entry
    results["protocols"] = run_protocols(work / "models", photos, cfg)
    results["explanations"] = run_explanations(work / "models", photos, cfg)
    results["peers"] = run_peers(fp32, photos, cfg, args.peers_python)
    print("[bench] HTTP floor", flush=True)
    results["floor"] = drive({}, "/floor/prediction", sets["digits, PNG"][3], cfg["concurrency"], cfg,
                             app="bench.floor_server:app")
    return results


def run_soak(models: Path, images: list[Path], cfg: dict) -> dict:
    """bench/soak.py against the Procfile server: concurrency 16, good and bad requests mixed."""
    with serve({"MODELS_DIR": str(models)}) as server:
        return soak.soak(server.url + "/mobilenet/prediction", images, 16, cfg["soak_seconds"], cfg["soak_warmup"],
                         server.proc.pid)


def run_fronts(work: Path, fp32: Path, images: list[Path], cfg: dict, args: argparse.Namespace) -> dict:
    """bench/fronts.py: this server, an earlier commit (--front-before), LitServe and BentoML, interleaved."""
    return fronts.run(drive, work / "models", fp32, images, cfg, args.peers_python, args.front_before, PEERS)


def run_priority(models: Path, photos: list[Path], cfg: dict) -> dict:
    """bench/priority.py: an interactive client among 12 low ones, with and without priority; deadlines; and the
    first requests to a newly loaded version."""
    return priority.run(models, photos, cfg)


def only(args: argparse.Namespace, cfg: dict) -> None:
    """Run one section again (`speed`, `protocols`, `explanations`, `soak`, `fronts`, `priority` or `decode`)
    into an existing RESULTS.json / RESULTS.md."""
    results = json.loads(args.output.with_suffix(".json").read_text())
    when = time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime())
    with tempfile.TemporaryDirectory(prefix="bench-") as tmp:
        work = Path(tmp)
        if args.only == "speed":
            results.update(speed(work, cfg, args), speed_at=when)
        elif args.only == "protocols":
            build_models(work, cfg)
            photos = assets.write_photos(work / "p224", cfg["size"], cfg["size"], cfg["photos"])
            results.update(protocols=run_protocols(work / "models", photos, cfg), protocols_at=when)
        elif args.only == "decode":
            results.update(decode=decode.run(cfg), decode_at=when)
        elif args.only == "explanations":
            build_models(work, cfg)
            photos = assets.write_photos(work / "p224", cfg["size"], cfg["size"], cfg["photos"])
            results.update(explanations=run_explanations(work / "models", photos, cfg), explanations_at=when)
        else:
            build_models(work, cfg)
            photos = assets.write_photos(work / "p224", cfg["size"], cfg["size"], cfg["photos"])
            if args.only == "soak":
                print(f"[bench] soak: {cfg['soak_seconds']:g} s", flush=True)
                results["soak"] = run_soak(work / "models", photos, cfg)
            elif args.only == "priority":
                results.update(priority=run_priority(work / "models", photos, cfg), priority_at=when)
            else:
                fp32 = work / "models" / "mobilenet"  # where build_models made it
                results.update(fronts=run_fronts(work, fp32, photos, cfg, args), fronts_at=when)
    write(args.output, results)


def write(output: Path, results: dict) -> None:
    output.parent.mkdir(parents=True, exist_ok=True)
    output.write_text(report.render(results, VARIANTS))
    output.with_suffix(".json").write_text(json.dumps(results, indent=1) + "\n")
    chart.draw(results, output.with_suffix(".png"))
    print(f"[bench] wrote {output} and {output.with_suffix('.png').name}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--smoke", action="store_true", help="tiny model and durations, to check the bench runs")
    parser.add_argument("--output", type=Path, default=ROOT / "bench" / "RESULTS.md")
    parser.add_argument("--skip-naive", action="store_true", help="skip the (slow, TensorFlow) naive baseline")
    parser.add_argument("--only", choices=("speed", "protocols", "explanations", "soak", "fronts", "priority",
                                           "decode"),
                        help="run one section again, into the existing results")
    parser.add_argument("--front-before", metavar="REV",
                        help="also measure this git revision's server in the front-end rounds (same venv)")
    parser.add_argument("--peers-python", type=Path, default=ROOT / ".venv-peers" / "bin" / "python",
                        help="python of the venv with bench/peers/requirements.txt (LitServe, BentoML)")
    args = parser.parse_args()
    cfg = SMOKE if args.smoke else FULL
    if args.only:
        return only(args, cfg)
    with tempfile.TemporaryDirectory(prefix="bench-") as tmp:
        work = Path(tmp)
        results: dict = {"machine": f"{os.cpu_count()} cores, {platform.machine()}, Python {platform.python_version()}",
                         "smoke": args.smoke, "variants": {}}
        results.update(speed(work, cfg, args))
        results["decode"] = decode.run(cfg)
        models, photos = work / "models", work / "p224"
        photos = sorted(photos.iterdir())
        for label, env in VARIANTS.items():
            print(f"[bench] variant: {label}", flush=True)
            results["variants"][label] = drive({"MODELS_DIR": str(models), **env}, "/mobilenet/prediction", photos,
                                               cfg["variant_concurrency"], cfg)
        results["fronts"] = run_fronts(work, models / "mobilenet", photos, cfg, args)
        print("[bench] priorities and deadlines", flush=True)
        results["priority"] = run_priority(models, photos, cfg)
        print(f"[bench] soak: {cfg['soak_seconds']:g} s", flush=True)
        results["soak"] = run_soak(models, photos, cfg)
    write(args.output, results)


if __name__ == "__main__":
    main()
