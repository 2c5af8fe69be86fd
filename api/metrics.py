"""`GET /metrics`: Prometheus' text format (a plain route: not JSON, so not in the Swagger spec)."""
from __future__ import annotations

from flask import Flask, Response

from util import metrics


def install(app: Flask) -> None:
    @app.get("/metrics")
    def scrape() -> Response:
        body, content_type = metrics.exposition()
        return Response(body, content_type=content_type)
