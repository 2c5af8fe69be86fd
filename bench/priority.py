"""(i) Priorities and deadlines (issue 22), `python -m bench.run --only priority`.

On the bench MobileNetV2 and the Procfile server (default settings), in rounds, every round kept:
(a) one interactive client alone (closed loop, one request at a time, `X-Priority: high`);
(b) 12 clients sending `low` non-stop, and that interactive client sending `high` meanwhile;
(c) the same load with the interactive client sending `low` too (equal priority: what a FIFO server
gives, today's figure without priority); (b) and (c) swap places every other round;
(d) capacity: 13 clients, all `low`;
(e) the 12 low clients, and one client whose `low` requests say `X-Request-Timeout: 0.005`: how fast
they are answered 504, and /metrics before and after (runtime calls against 200 answers, shed counter).
Every load runs in its own process (bench/loadgen.py, or this module's deadline client), so the
interactive client and the low clients do not slow each other.
(f) the first requests to a newly loaded version against steady ones: bench/new_version.py.
"""
from __future__ import annotations

import asyncio
import json
import subprocess
import sys
import time
from collections import Counter
from collections.abc import Callable
from pathlib import Path
from urllib.parse import urlsplit

import requests

from bench import loadgen, new_version
from bench.new_version import median, row
from bench.servers import ROOT, serve

LOW_CLIENTS = 12
HIGH, LOW = {"X-Priority": "high"}, {"X-Priority": "low"}
ROUTE = "/mobilenet/prediction"


def loadgen_child(url: str, images: list[Path], clients: int, duration: float, warmup: float,
                  headers: dict[str, str]) -> subprocess.Popen:
    command = [sys.executable, "-m", "bench.loadgen", url, *map(str, images), "--concurrency", str(clients),
               "--duration", str(duration), "--warmup", str(warmup),
               *(arg for name, value in headers.items() for arg in ("--header", f"{name}:{value}"))]
    return subprocess.Popen(command, cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


def deadline_child(url: str, images: list[Path], timeout: float, delay: float, duration: float) -> subprocess.Popen:
    spec = {"url": url, "images": [str(p) for p in images], "timeout": timeout, "delay": delay, "duration": duration}
    return subprocess.Popen([sys.executable, "-m", "bench.priority", json.dumps(spec)], cwd=ROOT,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


def collect(child: subprocess.Popen, what: str) -> dict:
    out, err = child.communicate(timeout=900)
    if child.returncode or not out.strip():
        raise RuntimeError(f"{what} failed with {child.returncode}:\n{err[-3000:]}")
    return json.loads(out.splitlines()[-1])


def good_rate(result: dict) -> float:
    """Images/s answered 200 (loadgen's throughput counts every answer)."""
    return result["throughput"] * (result["requests"] - result["errors"]) / max(1, result["requests"])


def spread(latencies: list[float]) -> dict:
    ms = sorted(1000 * s for s in latencies)
    return {"p50_ms": ms[len(ms) // 2], "p95_ms": ms[min(len(ms) - 1, int(0.95 * len(ms)))], "max_ms": ms[-1]}


async def deadline_client(url: str, images: list[Path], timeout: float, delay: float, duration: float) -> dict:
    """`low` requests with X-Request-Timeout `timeout`, one at a time on one keep-alive connection (after
    `delay` s, for `duration` s): every answer's status and latency."""
    parts = urlsplit(url)
    headers = {**LOW, "X-Request-Timeout": f"{timeout:g}"}
    payloads = loadgen.bodies(parts.netloc, parts.path, images, "native", headers)
    host, port = parts.hostname or "127.0.0.1", parts.port or 80
    await asyncio.sleep(delay)  # the low clients are past their warm-up
    reader, writer = await asyncio.open_connection(host, port)
    seen: dict[int, list[float]] = {}
    stop, i = time.perf_counter() + duration, 0
    try:
        while (start := time.perf_counter()) < stop:
            writer.write(payloads[i % len(payloads)])
            i += 1
            try:
                status, keep = await loadgen.read_response(reader)
            except (ConnectionError, asyncio.IncompleteReadError, ValueError, IndexError):
                status, keep = 0, False
            seen.setdefault(status, []).append(time.perf_counter() - start)
            if not keep:
                writer.close()
                reader, writer = await asyncio.open_connection(host, port)
    finally:
        writer.close()
    return {"requests": sum(map(len, seen.values())), "statuses": {str(s): len(v) for s, v in sorted(seen.items())},
            "latency": {str(s): spread(v) for s, v in sorted(seen.items())}}


def with_low_load(url: str, images: list[Path], cfg: dict, start: Callable[[float, float], subprocess.Popen]
                  ) -> tuple[dict, dict]:
    """12 low clients; `start(delay, duration)` runs a foreground client inside their measured window."""
    warmup, duration, margin = cfg["warmup"], cfg["duration"], cfg["priority_margin"]
    low = loadgen_child(url, images, LOW_CLIENTS, duration + 2 * margin, warmup, LOW)
    front = start(warmup + margin, duration)
    return collect(front, "foreground client"), collect(low, "low clients")


def scrape(url: str) -> dict[str, float]:
    found = {}
    response = requests.get(url + "/metrics", timeout=10)
    response.raise_for_status()
    for line in response.text.splitlines():
        if line.startswith(("keras_serve_inference_seconds_count", "keras_serve_shed_total",
                            "keras_serve_requests_total")):
            key, _, value = line.rpartition(" ")
            found[key] = float(value)
    return found


def evidence(before: dict[str, float], after: dict[str, float]) -> dict:
    """What the server counted meanwhile: runtime calls, answers by status, predictions shed."""
    delta = {key: value - before.get(key, 0.0) for key, value in after.items()}

    def total(prefix: str, *needles: str) -> int:
        return round(sum(v for k, v in delta.items() if k.startswith(prefix) and all(n in k for n in needles)))
    shed = "keras_serve_shed_total"
    return {"runtime_calls": total("keras_serve_inference_seconds_count", 'model="mobilenet"'),
            "answered_200": total("keras_serve_requests_total", 'model="mobilenet"', 'status="200"'),
            "shed_deadline_front": total(shed, "deadline_exceeded", 'stage="front"'),
            "shed_deadline_lane": total(shed, "deadline_exceeded", 'stage="lane"'),
            "shed_queue_full": total(shed, "queue_full")}


def one_round(base: str, images: list[Path], cfg: dict, index: int) -> dict:
    url = base + ROUTE
    warmup, duration = cfg["warmup"], cfg["duration"]
    print(f"[bench] priority, round {index + 1}: idle, with and without priority, capacity, deadlines", flush=True)
    found = {"idle": collect(loadgen_child(url, images, 1, duration, warmup, HIGH), "idle client")}
    order = [("priority", HIGH), ("no_priority", LOW)]
    for name, headers in order if index % 2 == 0 else order[::-1]:
        interactive, low = with_low_load(url, images, cfg, lambda delay, seconds, h=headers: loadgen_child(
            url, images, 1, seconds, delay, h))
        found[name] = {"interactive": interactive, "low": low}
    found["capacity"] = collect(loadgen_child(url, images, LOW_CLIENTS + 1, duration, warmup, LOW), "capacity")
    before = scrape(base)
    client, low = with_low_load(url, images, cfg, lambda delay, seconds: deadline_child(
        url, images, cfg["deadline_s"], delay, seconds))
    time.sleep(0.3)  # every answer is written; the counters are bumped before it
    found["deadlines"] = {"client": client, "low": low, "timeout_s": cfg["deadline_s"],
                          "metrics": evidence(before, scrape(base))}
    return found


def run(models: Path, images: list[Path], cfg: dict) -> dict:
    with serve({"MODELS_DIR": str(models)}) as server:
        rounds = [one_round(server.url, images, cfg, i) for i in range(cfg["priority_rounds"])]
    return {"low_clients": LOW_CLIENTS, "rounds": rounds, "versions": new_version.run(models, images, cfg)}


def statuses(entry: dict) -> Counter:
    """Every non-200 answer of the section, by status (the test's check: no 5xx but 503 / 504)."""
    found: Counter = Counter()
    for one in entry["rounds"]:
        results = [one["idle"], one["capacity"], one["deadlines"]["low"], *(one[k][side] for k in
                   ("priority", "no_priority") for side in ("interactive", "low"))]
        for result in results:
            found.update({k: v for k, v in result["statuses"].items()})
        found.update({k: v for k, v in one["deadlines"]["client"]["statuses"].items() if k != "200"})
    for version in entry["versions"]:
        found.update(version["statuses"])
    return found


def section(entry: dict | None, when: str | None = None) -> list[str]:
    if not entry:
        return []
    rounds = entry["rounds"]
    lines = [f"## (i) priorities and deadlines: {entry['low_clients']} clients sending `low` (MobileNetV2, "
             "224x224 JPEG)", ""]
    if when:
        lines += [f"This section was run again on its own at {when}.", ""]
    idle = [r["idle"]["p95_ms"] for r in rounds]
    figures = {"priority": [r["priority"]["interactive"]["p95_ms"] for r in rounds],
               "no_priority": [r["no_priority"]["interactive"]["p95_ms"] for r in rounds],
               "low": [good_rate(r["priority"]["low"]) for r in rounds],
               "capacity": [good_rate(r["capacity"]) for r in rounds]}
    head = " | ".join(f"round {i + 1}" for i in range(len(rounds)))
    lines += ["One interactive client (one request at a time) alone, then among the low clients sending `high` "
              "(with priority) and sending `low` (no priority: all equal, as a FIFO server; (b) and (c) swap places "
              "every other round); capacity is 13 low clients. Every client set in its own process.", "",
              f"| figure | {head} | median |", "|---|" + "---|" * (len(rounds) + 1),
              row("(a) idle: interactive p50 ms", [r["idle"]["p50_ms"] for r in rounds]),
              row("(a) idle: interactive p95 ms", idle),
              row("(b) with priority: interactive (`high`) p95 ms", figures["priority"]),
              row("(b) with priority: low images/s", figures["low"]),
              row("(c) no priority: interactive (`low`) p95 ms", figures["no_priority"]),
              row("(c) no priority: low images/s", [good_rate(r["no_priority"]["low"]) for r in rounds]),
              row("(d) capacity: images/s, 13 low clients", figures["capacity"]),
              row("(b) p95 / idle p95", [b / a for a, b in zip(idle, figures["priority"], strict=True)], 2),
              row("(c) p95 / idle p95", [c / a for a, c in zip(idle, figures["no_priority"], strict=True)], 2),
              row("(b) low images/s / capacity", [lo / c for lo, c in zip(figures["low"], figures["capacity"],
                                                                          strict=True)], 2), ""]
    with_p, without = median(figures["priority"]) / median(idle), median(figures["no_priority"]) / median(idle)
    share = median(figures["low"]) / median(figures["capacity"])
    odd = statuses(entry)
    lines += [f"On the medians: interactive p95 under load / idle p95 = {with_p:.2f}x with priority (goal <= 2.5: "
              f"{'met' if with_p <= 2.5 else 'NOT met'}), {without:.2f}x without; low images/s during (b) / "
              f"capacity = {share:.2f} (goal >= 0.50: {'met' if share >= 0.5 else 'NOT met'}). Answers other than "
              f"200 in the whole section: {', '.join(f'{k}: {v}' for k, v in sorted(odd.items())) or 'none'}.", ""]
    timeout = rounds[0]["deadlines"]["timeout_s"]
    lines += [f"(e) Under the same 12 low clients, one more client sending `low` with `X-Request-Timeout: "
              f"{timeout:g}` ({1000 * timeout:g} ms), one request at a time; server counters are /metrics deltas "
              "over the phase (all clients).", "",
              "| round | deadline requests | 504 | 200 | 504 p50 ms | 504 p95 ms | 504 max ms | runtime calls "
              "(inference _count) | 200 answers (requests_total) | shed deadline_exceeded front / lane | "
              "low images/s meanwhile |", "|---|---|---|---|---|---|---|---|---|---|---|"]
    all_match = True
    for i, r in enumerate(rounds):
        client, m = r["deadlines"]["client"], r["deadlines"]["metrics"]
        late = client["latency"].get("504", {"p50_ms": float("nan"), "p95_ms": float("nan"), "max_ms": float("nan")})
        shed = m["shed_deadline_front"] + m["shed_deadline_lane"]
        all_match &= 0 < m["runtime_calls"] == m["answered_200"] and shed == client["statuses"].get("504", 0)
        lines.append(f"| {i + 1} | {client['requests']} | {client['statuses'].get('504', 0)} | "
                     f"{client['statuses'].get('200', 0)} | {late['p50_ms']:.1f} | {late['p95_ms']:.1f} | "
                     f"{late['max_ms']:.1f} | {m['runtime_calls']} | {m['answered_200']} | "
                     f"{m['shed_deadline_front']} / {m['shed_deadline_lane']} | "
                     f"{good_rate(r['deadlines']['low']):.1f} |")
    lines += ["", "Runtime calls equal 200 answers and the shed counter equals the 504s in every round: "
              f"{'yes, so no 504 was run' if all_match else 'NO'}.", ""]
    lines += new_version.section(entry["versions"])
    return lines


if __name__ == "__main__":
    args = json.loads(sys.argv[1])
    print(json.dumps(asyncio.run(deadline_client(args["url"], [Path(p) for p in args["images"]], args["timeout"],
                                                 args["delay"], args["duration"]))))
