"""`GET /demo`: a page for people, not programs. Drop or draw an image, see the top labels and why.

The page (api/web/templates/demo.html, api/web/static/demo.*, draw.js) calls the same public routes
a client would: `POST /<model>/prediction` and `POST /<model>/explanation`, or a version's
`/<model>/versions/<v>/...`. DEMO_PAGE=false turns it off.
"""
from __future__ import annotations

from typing import Any

from flask import Blueprint, Flask, current_app, render_template

from util.serve.registry import Registry

demo = Blueprint("demo", __name__, template_folder="web/templates")


def served_models(registry: Registry) -> list[dict[str, Any]]:
    """Each model served now: its default version and every served one with its label count (the top-k bound)."""
    models = []
    for name, default in sorted(registry.models.items()):
        served = registry.groups[name].versions  # one read: the dictionary is swapped whole on a reload
        versions = [{"version": v, "labels": len(m.spec.labels)} for v, m in sorted(served.items())]
        models.append({"name": name, "title": default.spec.title or name, "version": default.spec.version,
                       "versions": versions})
    return models


@demo.get("/demo")
def page() -> str:
    """The demo page, listing the models served now."""
    models = served_models(current_app.extensions["registry"])
    # The pickers are filled from this by the script, so the version list follows the chosen model.
    settings = {"maxBytes": current_app.config["MAX_CONTENT_LENGTH"],
                "models": {m["name"]: {"title": m["title"], "default": m["version"], "versions": m["versions"]}
                           for m in models}}
    return render_template("demo.html", models=models, settings=settings,
                           needs_key=current_app.extensions["demo"]["needs_key"])


def install(app: Flask, needs_key: bool) -> bool:
    """Serve the page unless DEMO_PAGE is false (`needs_key`: the API keys are set); whether it is served."""
    if not app.config["DEMO_PAGE"]:
        return False
    app.extensions["demo"] = {"needs_key": needs_key}
    app.register_blueprint(demo)
    return True
