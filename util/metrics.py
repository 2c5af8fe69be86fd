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
IN_FLIGHT = Gauge("keras_serve_in_flight_requests", "Requests being handled now", multiprocess_mode="livesum")
MODEL_INFO = Gauge("keras_serve_model_info", "Served models (1 per loaded model and worker)",
                   ["model", "version", "runtime", "format", "output"], multiprocess_mode="max")


def exposition() -> tuple[bytes, str]:
    """The metrics in Prometheus' text format, and its content type."""
    if os.environ.get("PROMETHEUS_MULTIPROC_DIR"):
        registry = CollectorRegistry()
        multiprocess.MultiProcessCollector(registry)
        return generate_latest(registry), CONTENT_TYPE_LATEST
    return generate_latest(REGISTRY), CONTENT_TYPE_LATEST
