"""Prometheus metrics, summed across gunicorn's workers by prometheus_client's multiprocess mode.

gunicorn.conf.py points PROMETHEUS_MULTIPROC_DIR at a fresh directory before the workers
start (each worker writes its own files there) and removes the files of a worker that dies.
Without it (tests, the Flask dev server) the metrics are the process's own.
"""
from __future__ import annotations

import os

from prometheus_client import (
    CONTENT_TYPE_LATEST,
    REGISTRY,
    CollectorRegistry,
    Counter,
    Gauge,
    Histogram,
    generate_latest,
    multiprocess,
)

LATENCY_BUCKETS = (0.002, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0)
REQUESTS = Counter("keras_serve_requests_total", "HTTP requests answered", ["model", "route", "status"])
REQUEST_SECONDS = Histogram("keras_serve_request_seconds", "Whole request, from routing to the answer",
                            ["model", "route"], buckets=LATENCY_BUCKETS)
DECODE_SECONDS = Histogram("keras_serve_decode_seconds", "Image decoding and preprocessing", ["model"],
                           buckets=LATENCY_BUCKETS)
INFERENCE_SECONDS = Histogram("keras_serve_inference_seconds", "Runtime call, including any wait for a batch",
                              ["model"], buckets=LATENCY_BUCKETS)
BATCH_SIZE = Histogram("keras_serve_batch_size", "Images per inference call", ["model"],
                       buckets=(1, 2, 4, 8, 16, 32, 64))
SHED = Counter("keras_serve_shed_total", "Predictions answered without running them: deadline_exceeded (504) "
               "or queue_full (503), by where they waited (front: for a thread; lane: for an interpreter)",
               ["reason", "stage"])
for _reason, _stage in (("queue_full", "front"), ("deadline_exceeded", "front"), ("deadline_exceeded", "lane")):
    SHED.labels(_reason, _stage)  # at 0 from the start: rate() and the dashboard need no first refusal
QUEUED = Gauge("keras_serve_queued_requests", "Predictions waiting for a thread (MAX_QUEUE per worker)",
               multiprocess_mode="livesum")
IN_FLIGHT = Gauge("keras_serve_in_flight_requests", "Requests being handled now", multiprocess_mode="livesum")
MODEL_INFO = Gauge("keras_serve_model_info", "Served models (1 per loaded model and worker)",
                   ["model", "version", "runtime", "format", "output"], multiprocess_mode="max")

# What the models answer (util/serve/monitor.py): one observation per image a prediction route answers.
# Finer near 1, where a good classifier's top-1 sits; a softmax top-1 is never below 1/labels.
CONFIDENCE_BUCKETS = (0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7, 0.8, 0.9, 0.95, 0.99, 1.0)
ANSWER_CONFIDENCE = Histogram("keras_serve_answer_confidence", "Top-1 confidence of each answered image",
                              ["model", "version"], buckets=CONFIDENCE_BUCKETS)
ANSWERS = Counter("keras_serve_answers_total", "Answered images by top-1 label", ["model", "version", "label"])
LOW_CONFIDENCE = Counter("keras_serve_low_confidence_answers_total",
                         "Answered images whose top-1 confidence is below model.yaml monitoring.low_confidence",
                         ["model", "version"])
# Each worker compares its own window with its own baseline: distances do not add up (no sum), the worst
# worker is what an alert wants (max), and a dead worker's last value must not linger (live).
ANSWER_DRIFT = Gauge("keras_serve_answer_drift", "Total variation distance (0..1) between the top-1 label mix "
                     "of the last monitoring.window answers and of the first ones, worst live worker",
                     ["model", "version"], multiprocess_mode="livemax")


def exposition() -> tuple[bytes, str]:
    """The metrics in Prometheus' text format, and its content type."""
    if os.environ.get("PROMETHEUS_MULTIPROC_DIR"):
        registry = CollectorRegistry()
        multiprocess.MultiProcessCollector(registry)
        return generate_latest(registry), CONTENT_TYPE_LATEST
    return generate_latest(REGISTRY), CONTENT_TYPE_LATEST
