"""`GET /demo`: a page for people, not programs. Drop an image, see the top labels and why.

The page (api/web/templates/demo.html, api/web/static/demo.*) calls the same public routes a
client would: `POST /<model>/prediction` and `POST /<model>/explanation`. DEMO_PAGE=false
turns it off.
"""
from __future__ import annotations

from flask import Blueprint, Flask, current_app, render_template

demo = Blueprint("demo", __name__, template_folder="web/templates")


@demo.get("/demo")
def page() -> str:
    """The demo page, listing the models served now."""
    registry = current_app.extensions["registry"]
    models = [{"name": name, "title": model.spec.title, "description": model.spec.description,
               "labels": len(model.spec.labels), "version": model.spec.version}
              for name, model in sorted(registry.models.items())]
    return render_template("demo.html", models=models, max_bytes=current_app.config["MAX_CONTENT_LENGTH"],
                           needs_key=current_app.extensions["demo"]["needs_key"])


def install(app: Flask, needs_key: bool) -> bool:
    """Serve the page unless DEMO_PAGE is false (`needs_key`: the API keys are set); whether it is served."""
    if not app.config["DEMO_PAGE"]:
        return False
    app.extensions["demo"] = {"needs_key": needs_key}
    app.register_blueprint(demo)
    return True
