"""The WSGI application: `create_app(config=None)`, and `app` / `application` for servers."""
from __future__ import annotations

import logging
from collections.abc import Mapping
from typing import Any

import click
from flask import Flask

from api import metrics, requestlog, scheduling
from api.assemble import create_api
from api.errors import error_response
from util import logs
from util.config import load_settings
from util.serve.registry import Registry

__version__ = "1.0.0"
log = logging.getLogger("api.reload")


class ToolChainCommands(click.Group):
    """`flask models ...`: loaded from util.toolchain only when run, so the web process never imports the tool chain."""

    def _commands(self) -> click.Group:
        from util.toolchain.cli import models_cli
        return models_cli

    def list_commands(self, ctx: click.Context) -> list[str]:
        return self._commands().list_commands(ctx)

    def get_command(self, ctx: click.Context, name: str) -> click.Command | None:
        return self._commands().get_command(ctx, name)


def create_app(config: Mapping[str, Any] | None = None, registry: Registry | None = None) -> Flask:
    """Build the app: settings (defaults < environment < `config`), models (or `registry`'s), API, CLI."""
    app = Flask(__name__)
    app.config.update(load_settings(config))
    logs.configure(app.config["LOG_FORMAT"] or None)
    if registry is None:
        registry = Registry(app.config)
        if app.config["PRELOAD_MODELS"]:  # before the routes: a version that fails leaves an older one
            registry.load_all()
    app.extensions["registry"] = registry
    requestlog.install(app)  # first, so even a request refused by the API key check has its id
    scheduling.install(app)  # X-Priority, X-Request-Timeout
    create_api(app, registry, __version__)
    metrics.install(app)
    app.cli.add_command(ToolChainCommands("models", help="Compile and inspect the models under MODELS_DIR."))

    @app.errorhandler(Exception)
    def any_error(exc: Exception) -> tuple[dict, int, dict[str, str]]:
        # Outside flask-restx routes (static files, the demo page, an API key check before /metrics):
        # the same mapping, so every error is JSON, and an unforeseen one is logged with its traceback.
        return error_response(exc)

    return app


def rebuild_routes(app: Flask) -> None:
    """New routes and spec for the models `app`'s registry serves now (a model came or went)."""
    # Flask takes no new routes once serving: build the app again around the same registry and
    # put its WSGI callable in place in one assignment; requests in flight finish on the old one.
    app.wsgi_app = create_app({**app.config}, app.extensions["registry"]).wsgi_app  # type: ignore[method-assign]  # Flask's documented way to wrap it
    log.info("routes rebuilt: models %s", ", ".join(app.extensions["registry"].models) or "none")


def watch_models(app: Flask) -> None:
    """Poll MODELS_DIR (a directory or a store) every MODEL_POLL_SECONDS (gunicorn starts this in each worker).
    Versions swap inside the registry; when a model name comes or goes, the routes and the spec are rebuilt."""
    app.extensions["registry"].watch(app.config["MODEL_POLL_SECONDS"], lambda: rebuild_routes(app))


app = application = create_app()
