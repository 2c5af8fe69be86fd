"""Render bench results as Markdown, with the issue's targets as ratios from this one run."""
from __future__ import annotations

import datetime as dt

from bench import decode, fronts, priority

MOBILENET, MOBILENET_INT8 = "MobileNetV2, 224x224 JPEG", "MobileNetV2 int8, 224x224 JPEG"


def best(runs: list[dict]) -> dict:
    return max(runs, key=lambda r: r["throughput"])


def at(runs: list[dict], concurrency: int) -> dict:
    return next(r for r in runs if r["concurrency"] == concurrency)


def load_table(title: str, server: dict) -> list[str]:
    plan = server.get("inference")
    lines = [f"**{title}** (start-up to ready: {server['startup_s']:.2f} s"
             + (f"; interpreters per worker: {plan}" if plan else "") + ")", "",
             "| concurrency | req/s | p50 ms | p90 ms | p99 ms | errors | peak RSS MB (all processes) "
             "| load generator CPU (cores) |", "|---|---|---|---|---|---|---|---|"]
    for r in server["runs"]:
        lines.append(f"| {r['concurrency']} | {r['throughput']:.1f} | {r['p50_ms']:.1f} | {r['p90_ms']:.1f} | "
                     f"{r['p99_ms']:.1f} | {r['errors']} | {r['peak_rss_mb']:.0f} | {r['loadgen_cores']:.2f} |")
    return [*lines, ""]


def limit_table(limit: dict) -> list[str]:
    lines = ["| processes x interpreter threads | batch | images/s | median ms per batch |", "|---|---|---|---|"]
    for r in limit["rows"]:
        lines.append(f"| {r['procs']} x {r['threads']} | {r['batch']} | {r['images_per_s']:.1f} | "
                     f"{r['median_batch_ms']:.2f} |")
    return [*lines, "", f"Best: {limit['best']['images_per_s']:.1f} images/s; single image, one process: "
                        f"{limit['single_image_ms']:.2f} ms.", ""]


def met(value: float, wanted: str) -> bool:
    op, bound = wanted.split()
    return value >= float(bound) if op == ">=" else value <= float(bound)


def level(runs: list[dict], wanted: int) -> int:
    """`wanted` if it was measured (smoke runs stop lower), else the highest concurrency measured."""
    levels = [r["concurrency"] for r in runs]
    return wanted if wanted in levels else max(levels)


def peers_best(results: dict, c: int) -> tuple[str, dict] | None:
    """The peer with the highest throughput at concurrency c, and its runs."""
    peers = {k: v for k, v in (results.get("peers") or {}).items() if isinstance(v, dict) and "runs" in v}
    if not peers:
        return None
    name = max(peers, key=lambda k: at(peers[k]["runs"], c)["throughput"])
    return name, peers[name]


def targets(results: dict) -> list[str]:
    mobile = results["sets"][MOBILENET]
    runs = mobile["server"]["runs"]
    c16, c64 = level(runs, 16), level(runs, 64)
    served = at(runs, c16)["throughput"]
    rows = [(f"float32 served at concurrency {c16} / in-process limit (a)",
             served / mobile["limit"]["best"]["images_per_s"], ">= 0.90")]
    if MOBILENET_INT8 in results["sets"]:
        int8 = results["sets"][MOBILENET_INT8]
        rows.append((f"int8 served / float32 served, concurrency {c16}", at(int8["server"]["runs"], c16)["throughput"]
                     / served, ">= 1.5"))
        rows.append((f"int8 served at concurrency {c16} / int8 in-process limit",
                     at(int8["server"]["runs"], c16)["throughput"] / int8["limit"]["best"]["images_per_s"], ">= 0.90"))
    peer = peers_best(results, c16)
    if peer:
        rows.append((f"float32 served / best peer ({peer[0]}), concurrency {c16}",
                     served / at(peer[1]["runs"], c16)["throughput"], ">= 1.2"))
        fastest = min(((k, v) for k, v in results["peers"].items() if isinstance(v, dict) and "runs" in v),
                      key=lambda kv: at(kv[1]["runs"], 1)["p50_ms"])
        rows.append((f"p50 at concurrency 1 / lowest peer p50 ({fastest[0]})",
                     at(runs, 1)["p50_ms"] / at(fastest[1]["runs"], 1)["p50_ms"], "<= 1.0"))
    if "naive" in mobile:
        rows.append(("float32 served / naive baseline (c)", best(runs)["throughput"] / best(mobile["naive"]["runs"])
                     ["throughput"], ">= 20"))
    rows.append(("p50 at concurrency 1 / in-process single image", at(runs, 1)["p50_ms"]
                 / mobile["limit"]["single_image_ms"], "<= 1.25"))
    digits = results["sets"]["digits, PNG"]["server"]["runs"]
    rows.append(("digits req/s / HTTP floor (d)", best(digits)["throughput"] / best(results["floor"]["runs"])
                 ["throughput"], ">= 0.70"))
    rows.append((f"peak RSS MB, MobileNetV2 at concurrency {c64}", at(runs, c64)["peak_rss_mb"], "<= 300"))
    rows.append(("start-up to ready, s", mobile["server"]["startup_s"], "<= 3"))
    lines = ["| target | measured | wanted | met |", "|---|---|---|---|"]
    lines += [f"| {name} | {value:.2f} | {wanted} | {'yes' if met(value, wanted) else 'NO'} |"
              for name, value, wanted in rows]
    return [*lines, ""]


def int8_section(q: dict | None) -> list[str]:
    if not q:
        return []
    return ["## int8 artifact", "",
            f"Full-integer int8, float input and output: {q['bytes']} bytes against {q['float32_bytes']} for float32 "
            f"({q['bytes'] / q['float32_bytes']:.2f}x), calibrated on {q['calibration_images']} samples. Against Keras "
            f"on {q['images']} images: top-1 agreement {q['top1_agreement']:.3f}, max score difference "
            f"{q['max_score_diff']:.3f}. The bench model is a random MobileNetV2 backbone with a trained head, so "
            "its agreement says nothing about a trained model's; it is served here (quantize_min_agreement 0) to "
            "measure speed only. With the default 0.99 the server would have served float32.", ""]


def protocols_section(rows: dict | None, when: str | None) -> list[str]:
    """Other routes to the same path: requests/s and images/s against the one-image native route (first row)."""
    if not rows:
        return []
    lines = ["## (g) other routes to the same prediction path (MobileNetV2, 224x224 JPEG)", ""]
    if when:
        lines += [f"This section was run again on its own at {when}.", ""]
    native = next(iter(rows.values()))["runs"]
    lines += ["| route | concurrency | req/s | images/s | images/s against one image per request | p50 ms |",
              "|---|---|---|---|---|---|"]
    for label, entry in rows.items():
        for r in entry["runs"]:
            images = r["throughput"] * entry["images_per_request"]
            base = next((n["throughput"] for n in native if n["concurrency"] == r["concurrency"]), None)
            lines.append(f"| {label} | {r['concurrency']} | {r['throughput']:.1f} | {images:.1f} | "
                         f"{images / base:.2f} | {r['p50_ms']:.1f} |" if base else
                         f"| {label} | {r['concurrency']} | {r['throughput']:.1f} | {images:.1f} | - | "
                         f"{r['p50_ms']:.1f} |")
    return [*lines, ""]


def explanations_section(rows: dict | None, when: str | None) -> list[str]:
    """(h) explanation latency at one client, against one prediction of the same photos."""
    if not rows:
        return []
    lines = ["## (h) explanations: POST /mobilenet/explanation, one request at a time (224x224 JPEG)", ""]
    if when:
        lines += [f"This section was run again on its own at {when}.", ""]
    lines += ["Grid 8 is the default (EXPLANATION_GRID); 16 is the largest the default EXPLANATION_MAX_PASSES=256 "
              "allows. Passes include the whole image.", "",
              "| request | forward passes | p50 ms | p95 ms | p50 against one prediction |", "|---|---|---|---|---|"]
    for label, r in rows.items():
        lines.append(f"| {label} | {r['passes']} | {r['p50_ms']:.1f} | {r['p95_ms']:.1f} | "
                     f"{r['vs_prediction']:.1f}x |")
    return [*lines, ""]


def peers_section(peers: dict | None) -> list[str]:
    if not peers:
        return []
    lines = ["## (f) peers on the same `.tflite`, same preprocessing (bench/peers/, 224x224 JPEG)", ""]
    if "skipped" in peers:
        return [*lines, f"Not run: {peers['skipped']}.", ""]
    for name, entry in peers.items():
        lines += load_table(name, entry)
    return lines


def soak_section(entry: dict | None) -> list[str]:
    if not entry:
        return []
    return ["## Soak: MobileNetV2 at concurrency 16, two good requests for every bad one", "",
            f"Run {entry['at']} for {entry['duration_s']:g} s after warm-up.", "",
            "| requests | by status | 5xx | unexpected statuses | RSS MB after warm-up | RSS MB at the end | growth |",
            "|---|---|---|---|---|---|---|",
            f"| {entry['requests']} | {', '.join(f'{k}: {v}' for k, v in entry['statuses'].items())} | "
            f"{entry['server_errors']} | {entry['unexpected'] or 'none'} | {entry['rss_start_mb']:.0f} | "
            f"{entry['rss_end_mb']:.0f} | {entry['rss_growth']:+.1%} |", ""]


def render(results: dict, variants: dict) -> str:
    lines = ["# Benchmark results", "",
             f"Written by `make bench` on {dt.date.today().isoformat()} ({results['machine']}); every figure below "
             "comes from this one run." + (" SMOKE RUN: tiny model and durations, figures meaningless." if
                                          results["smoke"] else ""),
             "", "![throughput and p50 against concurrency](RESULTS.png)", "", "## Targets", "", *targets(results)]
    if results.get("speed_at"):
        lines += [f"The throughput sections (targets, sets, peers, floor) were run again on their own at "
                  f"{results['speed_at']}.", ""]
    lines += int8_section(results.get("int8"))
    for name, entry in results["sets"].items():
        lines += [f"## {name}", "", "### (a) in-process limit: decode + preprocess + LiteRT, no HTTP", ""]
        lines += limit_table(entry["limit"])
        lines += ["### (b) this server (Procfile command, default settings)", ""]
        lines += load_table("server", entry["server"])
        if "naive" in entry:
            lines += ["### (c) naive baseline: flask-restx + Keras `model(x)` per request", ""]
            lines += load_table("naive", entry["naive"])
    lines += protocols_section(results.get("protocols"), results.get("protocols_at"))
    lines += explanations_section(results.get("explanations"), results.get("explanations_at"))
    lines += peers_section(results.get("peers"))
    lines += ["## (d) HTTP floor: flask-restx, same upload, constant JSON", "", *load_table("floor", results["floor"])]
    lines += fronts.section(results.get("fronts") or {}, results.get("fronts_at"))
    lines += priority.section(results.get("priority"), results.get("priority_at"))
    lines += decode.section(results.get("decode"), results.get("decode_at"))
    lines += soak_section(results.get("soak"))
    lines += ["## Process-model variants (MobileNetV2, 224x224 JPEG)", ""]
    for label in variants:
        lines += load_table(label, results["variants"][label])
    return "\n".join(lines)
