"""Watching the answers (util/serve/monitor.py): top-1 confidence, labels, low-confidence answers and drift in
/metrics, counted once per answered image on every protocol and summed over both workers; the Grafana
dashboard (docs/grafana/keras-serve.json) queries only series that exist."""
from __future__ import annotations

import base64
import dataclasses
import io
import json
import re
import shutil
from collections import Counter
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import requests
from prometheus_client import REGISTRY
from prometheus_client.mmap_dict import MmapedDict
from prometheus_client.parser import text_string_to_metric_families

from tests.support import builders
from util.metrics import CONFIDENCE_BUCKETS
from util.serve.metadata import Monitoring, read_metadata
from util.serve.monitor import Drift, Monitor, total_variation

DASHBOARD = Path(__file__).resolve().parent.parent / "docs" / "grafana" / "keras-serve.json"
LABELS = builders.COLORS
# Solid colours the `colors` model answers with known labels and confidences (softmax(10 * mean - 5)):
# red ~1.0, orange ~0.88, muddy ~0.47 (all three red), green and blue ~1.0.
KNOWN = {"red": ((255, 0, 0), "red"), "orange": ((200, 150, 0), "red"), "muddy": ((120, 110, 100), "red"),
         "green": ((0, 255, 0), "green"), "blue": ((0, 0, 255), "blue")}
PNGS = {name: builders.encode(builders.solid(rgb)) for name, (rgb, _) in KNOWN.items()}


def b64(data: bytes) -> str:
    return base64.b64encode(data).decode()


# --- the drift arithmetic, on a fake stream of labels -------------------------------------------------------

def test_total_variation_is_half_the_l1_distance_of_the_mixes() -> None:
    assert total_variation(np.array([2, 2, 0]), np.array([1, 1, 0])) == 0.0  # counts are normalised
    assert total_variation(np.array([4, 0, 0]), np.array([0, 2, 2])) == 1.0
    assert total_variation(np.array([1, 2, 1]), np.array([2, 2, 0])) == pytest.approx(0.25)


def test_drift_waits_for_the_baseline_and_a_full_window_then_follows_the_label_mix() -> None:
    drift = Drift(labels=3, window=4)
    assert [drift.add(label) for label in (0, 0, 1, 1)] == [None] * 4  # the baseline: half 0, half 1
    assert [drift.add(label) for label in (1, 0, 0)] == [None] * 3  # the window is not full yet
    assert drift.add(1) == 0.0  # the same mix
    # Label 2, never seen in the baseline, takes over one answer at a time.
    assert [drift.add(2) for _ in range(4)] == pytest.approx([0.25, 0.5, 0.75, 1.0])
    assert [drift.add(label) for label in (0, 1, 0, 1)] == pytest.approx([0.75, 0.5, 0.25, 0.0])
    assert [drift.add(0) for _ in range(4)] == pytest.approx([0.0, 0.25, 0.25, 0.5])  # all 0: half the mass moved


def test_a_long_stream_with_a_changed_mix_is_far_from_the_baseline() -> None:
    rng = np.random.default_rng(0)
    drift = Drift(labels=4, window=500)
    before = rng.choice(4, size=1500, p=[0.4, 0.3, 0.2, 0.1])
    after = rng.choice(4, size=500, p=[0.1, 0.2, 0.3, 0.4])  # mirror image: TVD 0.4
    distances = [drift.add(int(label)) for label in np.concatenate([before, after])]
    assert distances[:999] == [None] * 999 and distances[999] is not None
    noise = max(distances[999:1500])  # the same mix, sampled twice
    assert noise < 0.12
    # The window is all `after` now: its distance is exactly that of the two samples' mixes, far above noise.
    assert distances[-1] == pytest.approx(total_variation(np.bincount(before[:500], minlength=4),
                                                          np.bincount(after, minlength=4)))
    assert distances[-1] > 3 * noise


# --- the monitor against the real registry (this process: no multiprocess directory) ------------------------

def value(name: str, **labels: str) -> float:
    return REGISTRY.get_sample_value(name, labels) or 0.0


def test_monitor_counts_each_answer_by_its_top1(models_dir: Path) -> None:
    from util.serve.spec import read_spec
    spec = dataclasses.replace(read_spec(models_dir / "colors"), name="unit-monitor")
    monitor = Monitor(spec, Monitoring(low_confidence=0.5, window=2))
    scores = np.array([[0.9, 0.05, 0.05], [0.2, 0.7, 0.1], [0.4, 0.35, 0.25], [1 / 3, 1 / 3, 1 / 3]])
    monitor.observe(scores)
    at = {"model": "unit-monitor", "version": "1"}
    # A tie goes to the first label, as the ranked list the native body shows.
    assert {label: value("keras_serve_answers_total", **at, label=label) for label in LABELS} == \
        {"red": 3, "green": 1, "blue": 0}
    assert value("keras_serve_answer_confidence_count", **at) == 4
    assert value("keras_serve_answer_confidence_sum", **at) == pytest.approx(0.9 + 0.7 + 0.4 + 1 / 3)
    assert value("keras_serve_answer_confidence_bucket", **at, le="0.4") == 2
    assert value("keras_serve_answer_confidence_bucket", **at, le="0.5") == 2
    assert value("keras_serve_answer_confidence_bucket", **at, le="0.9") == 4
    assert value("keras_serve_low_confidence_answers_total", **at) == 2  # 0.4 and 1/3 are below 0.5
    assert value("keras_serve_answer_drift", **at) == 0.5  # baseline red, green; window red, red
    monitor.observe(np.zeros((0, 3)))  # an empty batch changes nothing
    assert value("keras_serve_answer_confidence_count", **at) == 4


def test_the_drift_gauge_is_absent_until_the_window_is_full(models_dir: Path) -> None:
    from util.serve.spec import read_spec
    spec = dataclasses.replace(read_spec(models_dir / "colors"), name="unit-absent")
    monitor = Monitor(spec, Monitoring(window=3))
    monitor.observe(np.eye(3)[[0, 1, 2, 0, 1]])
    assert REGISTRY.get_sample_value("keras_serve_answer_drift", {"model": "unit-absent", "version": "1"}) is None
    monitor.observe(np.eye(3)[[2]])
    assert REGISTRY.get_sample_value("keras_serve_answer_drift", {"model": "unit-absent", "version": "1"}) == 0.0


@pytest.mark.parametrize("text, message", [
    ("monitoring:\n  low_confidence: 1.5\n", "monitoring takes low_confidence (a number from 0 to 1) and window "
                                             "(an integer from 1 to 100000), not {'low_confidence': 1.5}"),
    ("monitoring:\n  window: 0\n", "monitoring takes low_confidence (a number from 0 to 1) and window "
                                   "(an integer from 1 to 100000), not {'window': 0}"),
    ("monitoring: 0.5\n", "monitoring takes low_confidence (a number from 0 to 1) and window (an integer from 1 "
                          "to 100000), not 0.5"),
    ("monitoring:\n  low_confidense: 0.5\n", "unknown monitoring keys ['low_confidense']; known: "
                                             "['low_confidence', 'window']"),
])
def test_model_yaml_monitoring_is_declared(tmp_path: Path, text: str, message: str) -> None:
    from util.errors import ModelLoadError
    (tmp_path / "model.yaml").write_text(text)
    with pytest.raises(ModelLoadError) as info:
        read_metadata(tmp_path)
    assert message in info.value.message


def test_model_yaml_monitoring_defaults_and_values(tmp_path: Path, models_dir: Path) -> None:
    from util.serve.spec import read_spec
    assert read_spec(models_dir / "colors").monitoring == Monitoring(low_confidence=0.5, window=500)
    (tmp_path / "model.yaml").write_text("monitoring:\n  low_confidence: 0.8\n  window: 50\n")
    assert read_metadata(tmp_path)[0].monitoring == Monitoring(low_confidence=0.8, window=50)


# --- every protocol through the Flask app: one observation per answered image -----------------------------

def answers_now() -> tuple[dict[str, float], float]:
    at = {"model": "colors", "version": "1"}
    return ({label: value("keras_serve_answers_total", **at, label=label) for label in LABELS},
            value("keras_serve_answer_confidence_count", **at))


def send(client, protocol: str, names: list[str]) -> Any:
    images = [PNGS[n] for n in names]
    if protocol == "native":
        return [client.post("/colors/prediction", data={"image": (io.BytesIO(im), "i.png")}) for im in images]
    if protocol == "batch":  # one unreadable file: it is no answer, so it is not counted
        files = [(io.BytesIO(im), f"{i}.png") for i, im in enumerate(images)] + [(io.BytesIO(b"no"), "x.png")]
        return client.post("/colors/predictions", data={"images": files})
    if protocol == "tfserving-predict":
        return client.post("/v1/models/colors:predict", json={"instances": [{"b64": b64(im)} for im in images]})
    if protocol == "tfserving-classify":
        return client.post("/v1/models/colors:classify", json={"examples": [{"image": {"b64": b64(im)}}
                                                                            for im in images]})
    if protocol == "v2":
        return client.post("/v2/models/colors/infer", json={"inputs": [
            {"name": "image", "datatype": "BYTES", "shape": [len(images)], "data": [b64(im) for im in images]}]})
    assert protocol == "explanation"  # occluded passes are no answers; the explanation itself is not one either
    return [client.post("/colors/explanation", data={"image": (io.BytesIO(im), "i.png")},
                        headers={"Accept": "application/json"}) for im in images]


@pytest.mark.parametrize("protocol", ["native", "batch", "tfserving-predict", "tfserving-classify", "v2"])
def test_every_protocol_counts_each_answered_image_once(client, protocol: str) -> None:
    names = ["red", "green", "blue", "orange"]
    before, count = answers_now()
    answered = send(client, protocol, names)
    assert all(a.status_code == 200 for a in (answered if isinstance(answered, list) else [answered]))
    after, count_after = answers_now()
    assert {label: after[label] - before[label] for label in LABELS} == {"red": 2, "green": 1, "blue": 1}
    assert count_after - count == len(names)


def test_explanations_are_not_counted(client) -> None:
    before = answers_now()
    assert [a.status_code for a in send(client, "explanation", ["red", "blue"])] == [200, 200]
    assert answers_now() == before


# --- a live server: two workers, three copies of `colors` --------------------------------------------------

@pytest.fixture(scope="module")
def watched(tmp_path_factory: pytest.TempPathFactory, models_dir: Path,
            server_factory: Callable[..., contextmanager[str]]) -> Iterator[tuple[str, Path]]:
    """`colors` as it is, `strict` (low_confidence 0.9) and `drifty` (window 4), on 2 workers."""
    root = tmp_path_factory.mktemp("watched")
    for name, monitoring in (("colors", None), ("strict", "{low_confidence: 0.9}"), ("drifty", "{window: 4}")):
        shutil.copytree(models_dir / "colors", root / name)
        if monitoring:  # model.yaml is not a source of the compiled artifact: the copy stays fresh
            (root / name / "1" / "model.yaml").write_text(f"title: {name}\nmonitoring: {monitoring}\n")
    directory = tmp_path_factory.mktemp("prometheus")
    with server_factory(MODELS_DIR=str(root), PROMETHEUS_MULTIPROC_DIR=str(directory), WEB_CONCURRENCY="2") as url:
        yield url, directory


def scrape(url: str) -> dict[tuple[str, frozenset], float]:
    text = requests.get(f"{url}/metrics", timeout=10).text
    return {(s.name, frozenset(s.labels.items())): s.value
            for family in text_string_to_metric_families(text) for s in family.samples}


def at(samples: dict, name: str, **labels: str) -> float | None:
    return samples.get((name, frozenset(labels.items())))


def post(url: str, model: str, name: str) -> dict:
    """One native prediction on a new connection, so the kernel may hand it to either worker."""
    answer = requests.post(f"{url}/{model}/prediction", files={"image": ("i.png", PNGS[name])},
                           headers={"Connection": "close"}, timeout=30)
    assert answer.status_code == 200, answer.text
    return answer.json()


def per_worker(directory: Path, model: str) -> dict[str, float]:
    """Answers counted by each worker's own file (pid -> images), read as /metrics reads them."""
    counts: dict[str, float] = {}
    for file in directory.glob("counter_*.db"):
        for key, number, _, _ in MmapedDict.read_all_values_from_file(str(file)):
            _, name, labels, _ = json.loads(key)  # (family, sample name, labels, help)
            if name == "keras_serve_answers_total" and labels.get("model") == model:
                pid = file.stem.rsplit("_", 1)[-1]
                counts[pid] = counts.get(pid, 0.0) + number
    return counts


def top1(row: list[float]) -> tuple[str, float]:
    best = int(np.argmax(row))
    return LABELS[best], float(row[best])


@pytest.mark.slow
def test_exact_counts_across_both_workers_and_protocols(watched: tuple[str, Path]) -> None:
    url, directory = watched
    cycle = list(KNOWN)
    answers: list[tuple[str, float]] = []  # (label, confidence) of every answered image, as the client read them
    with ThreadPoolExecutor(16) as pool:
        for _ in range(24):  # which worker accepts is the kernel's choice: send until both have answered
            bodies = list(pool.map(lambda i: post(url, "colors", cycle[i % len(cycle)]), range(40)))
            answers += [(b["label"], b["confidence"]) for b in bodies]
            if len(per_worker(directory, "colors")) == 2:
                break
    assert len(per_worker(directory, "colors")) == 2, f"{len(answers)} answers all from one worker"
    native = len(answers)
    assert Counter(label for label, _ in answers) == {"red": len(answers) * 3 // 5, "green": len(answers) // 5,
                                                      "blue": len(answers) // 5}
    # The other protocols, on one connection each; the unreadable file of the batch is no answer.
    batch = requests.post(f"{url}/colors/predictions", timeout=30, files=[
        ("images", (f"{n}.png", PNGS[n])) for n in ("red", "muddy", "blue")] + [("images", ("x.png", b"no"))]).json()
    answers += [(r["label"], r["confidence"]) for r in batch["results"] if "label" in r]
    instances = [{"b64": b64(PNGS[n])} for n in ("orange", "green")]
    predicted = requests.post(f"{url}/v1/models/colors:predict", json={"instances": instances}, timeout=30).json()
    answers += [top1(row) for row in predicted["predictions"]]
    classified = requests.post(f"{url}/v1/models/colors:classify", timeout=30,
                               json={"examples": [{"image": i} for i in instances]}).json()
    answers += [(pairs[0][0], pairs[0][1]) for pairs in classified["result"]]
    v2 = requests.post(f"{url}/v2/models/colors/infer", timeout=30, json={"inputs": [
        {"name": "image", "datatype": "BYTES", "shape": [2], "data": [b64(PNGS["muddy"]), b64(PNGS["blue"])]}]}).json()
    answers += [top1(row) for row in np.reshape(v2["outputs"][0]["data"], (2, 3)).tolist()]
    explained = requests.post(f"{url}/colors/explanation", files={"image": ("i.png", PNGS["green"])},
                              headers={"Accept": "application/json"}, timeout=30)
    assert explained.status_code == 200  # and not counted

    samples, n = scrape(url), len(answers)
    labels = {"model": "colors", "version": "1"}
    assert {label: at(samples, "keras_serve_answers_total", **labels, label=label) for label in LABELS} == \
        {label: float(count) for label, count in Counter(label for label, _ in answers).items()}
    assert sum(per_worker(directory, "colors").values()) == n and min(per_worker(directory, "colors").values()) > 0
    assert at(samples, "keras_serve_answer_confidence_count", **labels) == n
    assert at(samples, "keras_serve_answer_confidence_sum", **labels) == pytest.approx(sum(c for _, c in answers))
    for le in CONFIDENCE_BUCKETS:
        assert at(samples, "keras_serve_answer_confidence_bucket", **labels, le=str(le)) == \
            sum(c <= le for _, c in answers), le
    low = sum(c < 0.5 for _, c in answers)
    assert low == native // 5 + 2  # every muddy image (~0.47): the native ones, one in the batch, one in V2
    assert at(samples, "keras_serve_low_confidence_answers_total", **labels) == low


@pytest.mark.slow
def test_the_model_yaml_threshold_changes_the_low_confidence_count(watched: tuple[str, Path]) -> None:
    url, _ = watched
    before = scrape(url)
    names = list(KNOWN) * 4
    confidences = {model: [post(url, model, name)["confidence"] for name in names] for model in ("colors", "strict")}
    assert confidences["colors"] == pytest.approx(confidences["strict"])  # the same model, the same answers
    after = scrape(url)

    def low(model: str) -> float:
        key = ("keras_serve_low_confidence_answers_total", frozenset({"model": model, "version": "1"}.items()))
        return after.get(key, 0.0) - before.get(key, 0.0)
    assert low("colors") == sum(c < 0.5 for c in confidences["colors"]) == 4  # muddy
    assert low("strict") == sum(c < 0.9 for c in confidences["strict"]) == 8  # muddy and orange


@pytest.mark.slow
def test_the_drift_gauge_appears_with_the_window_and_moves_with_the_label_mix(watched: tuple[str, Path]) -> None:
    url, _ = watched
    labels = {"model": "drifty", "version": "1"}
    assert at(scrape(url), "keras_serve_answer_drift", **labels) is None  # no answers yet: no baseline
    with ThreadPoolExecutor(16) as pool:
        assert {b["label"] for b in pool.map(lambda _: post(url, "drifty", "red"), range(48))} == {"red"}
        # Each worker with 8 answers has an all-red baseline and an all-red window (of 4).
        assert at(scrape(url), "keras_serve_answer_drift", **labels) == 0.0
        moved = []
        for _ in range(10):  # until a worker with a red baseline has 4 blue answers in its window
            assert {b["label"] for b in pool.map(lambda _: post(url, "drifty", "blue"), range(16))} == {"blue"}
            moved.append(at(scrape(url), "keras_serve_answer_drift", **labels))
            if moved[-1] == 1.0:
                break
    assert moved[-1] == 1.0, moved


# --- the Grafana dashboard ---------------------------------------------------------------------------------

KEYWORDS = {"by", "without", "on", "ignoring", "group_left", "group_right", "bool", "and", "or", "unless", "offset"}


def promql_metrics(expr: str) -> set[str]:
    """The metric names a PromQL expression selects (label_values(selector, label) too)."""
    variable = re.fullmatch(r"\s*label_values\((.*),\s*\w+\)\s*", expr)
    if variable:
        expr = variable[1]
    expr = re.sub(r'"(?:[^"\\]|\\.)*"', '""', expr)  # strings (regexes, label values)
    expr = re.sub(r"\{[^}]*\}|\[[^\]]*\]", " ", expr)  # label matchers, ranges ($__rate_interval)
    expr = re.sub(r"\b(?:by|without|on|ignoring|group_left|group_right)\s*\([^)]*\)", " ", expr)  # label lists
    names = set()
    for found in re.finditer(r"(?<![\w.$])[A-Za-z_:][\w:]*", expr):
        if found[0] not in KEYWORDS and not expr[found.end():].lstrip().startswith("("):  # not a function
            names.add(found[0])
    return names


def dashboard_queries() -> list[str]:
    board = json.loads(DASHBOARD.read_text())
    panels = [p for top in board["panels"] for p in (top, *top.get("panels", []))]
    exprs = [t["expr"] for p in panels for t in p.get("targets", [])]
    exprs += [v["query"]["query"] for v in board["templating"]["list"] if v["type"] == "query"]
    return exprs


def test_promql_metric_names_are_extracted() -> None:
    assert promql_metrics('histogram_quantile(0.95, sum by (le) (rate(a_bucket{m=~"$x", s="5.."}'
                          '[$__rate_interval])))') == {"a_bucket"}
    assert promql_metrics("sum by (l) (increase(a_total[$__range])) / ignoring (l) group_left "
                          "sum(b_count offset 1h) > bool 0.5") == {"a_total", "b_count"}
    assert promql_metrics('label_values(c_info{model=~"$model"}, version)') == {"c_info"}


def test_the_dashboard_is_an_importable_grafana_model() -> None:
    board = json.loads(DASHBOARD.read_text())
    variables = {v["name"]: v for v in board["templating"]["list"]}
    assert variables["datasource"]["type"] == "datasource" and variables["datasource"]["query"] == "prometheus"
    assert board["id"] is None and board["uid"] and board["schemaVersion"] >= 36
    ids = [p["id"] for p in board["panels"]]
    assert len(ids) == len(set(ids))
    for panel in board["panels"]:
        assert set(panel["gridPos"]) == {"h", "w", "x", "y"} and panel["gridPos"]["x"] + panel["gridPos"]["w"] <= 24
        if panel["type"] != "row":
            assert panel["datasource"] == {"type": "prometheus", "uid": "${datasource}"}, panel["title"]
            assert panel["targets"] and all(t["expr"] for t in panel["targets"]), panel["title"]
    queried = {name for expr in dashboard_queries() for name in promql_metrics(expr)}
    for family in ("answer_confidence_bucket", "answers_total", "low_confidence_answers_total", "answer_drift",
                   "requests_total", "request_seconds_bucket", "in_flight_requests", "inference_seconds_bucket"):
        assert f"keras_serve_{family}" in queried


SUFFIXES = {"histogram": ("_bucket", "_count", "_sum"), "counter": ("_total",), "gauge": ("",)}


@pytest.mark.slow
def test_every_metric_the_dashboard_queries_exists(watched: tuple[str, Path]) -> None:
    url, _ = watched
    for name in KNOWN:  # every series has a sample: a low-confidence answer (muddy) too
        post(url, "colors", name)
    with ThreadPoolExecutor(16) as pool:  # a full drift window in some worker
        for _ in range(10):
            list(pool.map(lambda _: post(url, "drifty", "green"), range(16)))
            if "keras_serve_answer_drift" in requests.get(f"{url}/metrics", timeout=10).text:
                break
    text = requests.get(f"{url}/metrics", timeout=10).text
    kinds = {s.name: family.type for family in text_string_to_metric_families(text) for s in family.samples}
    queried = {name for expr in dashboard_queries() for name in promql_metrics(expr)}
    assert len(queried) >= 10
    for name in sorted(queried):
        assert name in kinds, f"the dashboard queries {name}, which /metrics does not expose"
        assert name.endswith(SUFFIXES[kinds[name]]), f"{name} is a {kinds[name]}"
