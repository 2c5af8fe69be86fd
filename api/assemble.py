"""Assembles the flask-restx Api: health, protocols, one namespace per model; errors through api/errors.py."""
from __future__ import annotations

import logging

from flask import Flask, Request
from flask_restx import Api
from werkzeug.formparser import FormDataParser

from api import auth, demo, docs, explain, health, openinference, schemas, tfserving
from api.errors import error_response
from api.models import make_namespace
from util.serve.registry import Registry

log = logging.getLogger(__name__)

DESCRIPTION = (
    "Image classification with Keras models compiled to TFLite. Each model has its own section: "
    "`POST /<model>/prediction` with a multipart `image` file returns the top labels. "
    "Errors are JSON: `{\"message\": ..., \"error\": <code>}`."
)
DEMO_LINK = " **[Try the models in the demo page](/demo)**: drop an image, see the top labels and why."


class StrictRequest(Request):
    """A malformed multipart body raises instead of parsing to nothing, so the client can be told why."""

    def make_form_data_parser(self) -> FormDataParser:
        parser = super().make_form_data_parser()
        parser.silent = False
        return parser


def create_api(app: Flask, registry: Registry, version: str) -> Api:
    """The Api with its error mapping, optional API keys, health and one namespace per model."""
    app.config.setdefault("RESTX_ERROR_404_HELP", False)
    app.config.setdefault("RESTX_MASK_SWAGGER", False)
    app.request_class = StrictRequest
    keys = auth.load_keys(app.config)
    description = DESCRIPTION + (DEMO_LINK if demo.install(app, bool(keys)) else "")
    api = Api(app, version=version, title="Keras image classification API", description=description,
              doc="/", catch_all_404s=True, authorizations=auth.SCHEMES if keys else None)
    auth.install(app, keys)
    docs.install(app, api)

    for model in schemas.ERRORS.values():
        api.add_model(model.name, model)

    # flask-restx routes: every exception through the one mapping (api/errors.py).
    @api.errorhandler(Exception)
    @api.response(400, "Error", schemas.ERRORS[400])
    @api.response(404, "Error", schemas.ERRORS[404])
    @api.response(500, "Error", schemas.ERRORS[500])
    def any_error(exc: Exception) -> tuple[dict, int, dict[str, str]]:
        """A refusal with its reason (status per error code), an HTTP error, or a logged JSON 500."""
        return error_response(exc)

    api.add_namespace(health.ns)
    api.add_namespace(tfserving.ns)
    api.add_namespace(openinference.ns)
    for group in registry.groups.values():
        if group.versions:  # a new model that failed to load gets no routes (its error is in /health/ready)
            ns = make_namespace(group, auth.SECURITY if keys else None)
            explain.add_routes(ns, group, {"security": auth.SECURITY} if keys else {})
            api.add_namespace(ns)
    return api
