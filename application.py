"""The WSGI application: `create_app(config=None)`, and `app` / `application` for servers."""
from __future__ import annotations

import logging
from collections.abc import Mapping
from typing import Any

from flask import Flask
from werkzeug.exceptions import HTTPException

from api import create_api, http_error_body
from util.cli import models_cli
from util.config import load_settings
from util.serving import Registry

__version__ = "1.0.0"


def create_app(config: Mapping[str, Any] | None = None) -> Flask:
    """Build the app: settings (defaults < environment < `config`), models, API, CLI."""
    app = Flask(__name__)
    app.config.update(load_settings(config))
    registry = Registry(app.config)
    app.extensions["registry"] = registry
    create_api(app, registry, __version__)
    app.cli.add_command(models_cli)

    @app.errorhandler(HTTPException)
    def http_error(exc: HTTPException) -> tuple[dict, int]:
        # Outside flask-restx routes (e.g. static files), errors are still JSON.
        return http_error_body(exc, registry), exc.code or 500

    if app.config["PRELOAD_MODELS"]:
        registry.load_all()
    logging.getLogger("util").setLevel(logging.INFO)
    return app


app = application = create_app()
