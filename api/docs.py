"""The Swagger UI page at `/`: flask-restx's page with a plugin for several files (api/web/)."""
from __future__ import annotations

from flask import Blueprint, Flask, render_template
from flask_restx import Api

# The app's own page assets (the Swagger UI plugin, the demo page); a model named `ui` would
# only clash on an asset named like one of its routes.
web = Blueprint("web", __name__, template_folder="web/templates", static_folder="web/static",
                static_url_path="/ui")


def install(app: Flask, api: Api) -> None:
    """Serve the Swagger UI from api/web/templates/docs.html instead of flask-restx's template."""
    app.register_blueprint(web)

    @api.documentation
    def swagger_ui() -> str:
        return render_template("docs.html", title=api.title, specs_url=api.specs_url)
