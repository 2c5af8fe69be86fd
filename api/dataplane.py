"""The data plane: one place where a request finds its model version, for every protocol.

`resolve(name, version)` looks the (model, version) up in the registry as it is now (a
version loaded or dropped meanwhile answers without new routes), raises the service's own
404 or 503, and tags the request for its access line. Protocol modules translate only.
"""
from __future__ import annotations

from flask import current_app, g

from util.errors import NotFound, VersionNotFound
from util.serve.registry import Registry
from util.serve.served import ServedModel
from util.serve.versions import ModelGroup


class ModelNotFound(NotFound):
    """No model of that name (or it never served a version)."""


def registry() -> Registry:
    return current_app.extensions["registry"]  # set by create_app


def model_group(name: str) -> ModelGroup:
    """Every version of a model, served or failed (status routes)."""
    group = registry().groups.get(name)
    if group is None:
        raise ModelNotFound(f"unknown model: '{name}'; served: {', '.join(sorted(registry().models)) or 'none'}")
    return group


def resolve(name: str, version: int | str | None = None) -> ServedModel:
    """The served version (the default one for None or ""), tagged for the access log."""
    group = model_group(name)
    if version is None or version == "":
        model = group.default()  # a model left with no version that loads: 503 with the reasons
    elif isinstance(version, int) or str(version).isdigit():
        model = group.get(int(version))
    else:
        raise VersionNotFound(f"model {name} has no version {version!r}: versions are numbers")
    g.model, g.version = model.spec.name, model.spec.version
    return model
