"""Assembles the flask-restx Api: health, one namespace per model, errors mapped once."""
from __future__ import annotations

import logging

from flask import Flask, Request, current_app, request
from flask_restx import Api
from werkzeug.exceptions import HTTPException
from werkzeug.formparser import FormDataParser

from api import auth, demo, docs, explain, health, openinference, schemas, tfserving
from api.models import make_namespace
from util.errors import PayloadTooLarge, ServiceError
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


def http_error_body(exc: HTTPException, registry: Registry) -> dict[str, str]:
    """werkzeug's HTTP errors in the service's error shape, with a hint for unknown URLs."""
    code = (exc.name or "error").lower().replace(" ", "_")
    message = exc.description or exc.name
    if exc.code == 413:
        limit = current_app.config["MAX_CONTENT_LENGTH"]
        if request.content_length is not None and request.content_length <= limit:  # werkzeug's form limits
            return PayloadTooLarge(f"a multipart text field or part header is larger than "
                                   f"{current_app.config['MAX_FORM_MEMORY_SIZE']} bytes, or there are more than "
                                   f"{current_app.config['MAX_FORM_PARTS']} parts").to_dict()
        return PayloadTooLarge(f"the request body is larger than the {limit} byte limit "
                               "(MAX_CONTENT_LENGTH)").to_dict()
    if exc.code == 404:
        models = ", ".join(f"/{name}/prediction" for name in registry.models) or "none"
        message = f"no such URL: {request.path}. Prediction routes: {models}; API documentation at /"
    return {"message": message, "error": code}


def internal_error(exc: BaseException) -> dict[str, str]:
    """Log an unexpected exception with its traceback; the client gets no internals."""
    log.error("unexpected error on %s %s", request.method, request.path, exc_info=exc)
    return {"message": "internal server error: the failure is logged on the server", "error": "internal_error"}


def http_error_headers(exc: HTTPException) -> dict[str, str]:
    """werkzeug's own headers for the error (e.g. `Allow` on a 405), minus its HTML content type."""
    return {k: v for k, v in exc.get_headers() if k.lower() != "content-type"}


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

    @api.errorhandler(ServiceError)
    @api.response(400, "Error", schemas.ERRORS[400])
    def service_error(exc: ServiceError) -> tuple[dict, int, dict[str, str]]:
        """A request the service refused, with the reason (status per error code)."""
        return exc.to_dict(), exc.status, exc.headers

    @api.errorhandler(HTTPException)
    @api.response(404, "Error", schemas.ERRORS[404])
    def http_error(exc: HTTPException) -> tuple[dict, int, dict[str, str]]:
        """An HTTP-level error (unknown URL, method not allowed, body too large)."""
        return http_error_body(exc, registry), exc.code or 500, http_error_headers(exc)

    @api.errorhandler(Exception)
    @api.response(500, "Error", schemas.ERRORS[500])
    def unexpected_error(exc: Exception) -> tuple[dict, int]:
        """Anything unforeseen: a JSON 500, with the traceback in the log."""
        return internal_error(exc), 500

    api.add_namespace(health.ns)
    api.add_namespace(tfserving.ns)
    api.add_namespace(openinference.ns)
    for group in registry.groups.values():
        if group.versions:  # a new model that failed to load gets no routes (its error is in /health/ready)
            ns = make_namespace(group, auth.SECURITY if keys else None)
            explain.add_routes(ns, group, {"security": auth.SECURITY} if keys else {})
            api.add_namespace(ns)
    return api
