"""`POST /<model>/explanation` (and per version): an occlusion map of an uploaded image, as a PNG
overlay or JSON. Translation only: the map is util/serve/explain.py's, over the one prediction path."""
from __future__ import annotations

from urllib.parse import quote

from flask import Response, request
from flask_restx import Namespace, reqparse
from werkzeug.datastructures import FileStorage

from api import schemas
from api.models import Bounded, ModelResource, OneOf, doc, parse
from util.errors import NotAcceptable
from util.serve.explain import MEASURES, explain, grid_bound
from util.serve.heatmap import overlay_png
from util.serve.image import FORMAT_NAMES
from util.serve.served import ServedModel
from util.serve.versions import ModelGroup

TYPES = ["image/png", "application/json"]


def explanation_parser(served: ServedModel) -> reqparse.RequestParser:
    """The parser that reads and documents an explanation request (the grid's bound from the settings)."""
    settings = served.settings
    limit, bound = settings["EXPLANATION_MAX_PASSES"], grid_bound(served)
    why = f" for model {served.spec.name} (EXPLANATION_MAX_PASSES={limit}; a cell is at least one input pixel)"
    parser = reqparse.RequestParser()
    parser.add_argument("image", location="files", type=FileStorage, required=True,
                        help=f"The image: {FORMAT_NAMES}")
    parser.add_argument("label", location=("form", "args"), type=OneOf(served.spec.name, list(served.spec.labels)),
                        required=False,
                        help="The label to explain, one of the model's (default: the top one)")
    parser.add_argument("grid", location=("form", "args"), required=False,
                        type=Bounded("grid", int, 1, bound, why),
                        help=f"Cells per side: grid x grid + 1 forward passes (default "
                             f"{settings['EXPLANATION_GRID']}, or the largest allowed if smaller)")
    parser.add_argument("measure", location=("form", "args"), required=False, choices=MEASURES,
                        help="What a cell's value measures: the drop in the label's confidence (default), or in "
                             "its log-odds (tells regions apart where the confidence stays at 1.0)")
    return parser


@doc.response(503, "Model not loaded", schemas.ERRORS[503])
@doc.response(422, "Image larger than MAX_IMAGE_PIXELS", schemas.ERRORS[422])
@doc.response(415, "Not multipart/form-data, or an image format that is not accepted", schemas.ERRORS[415])
@doc.response(413, "Request body larger than MAX_CONTENT_LENGTH", schemas.ERRORS[413])
@doc.response(406, "Accept names neither image/png nor application/json", schemas.ERRORS[406])
@doc.response(400, "Missing `image`; not an image; a blank picture for a model that crops to its content; a label "
              "the model does not have; a grid above the bound", schemas.ERRORS[400])
class Explanation(ModelResource):
    @doc.produces(TYPES)
    @doc.response(200, "A PNG of the heat map over the image as the model saw it (Accept: image/png, the "
                       "default), or the grid as JSON (Accept: application/json)", schemas.explanation)
    def post(self) -> Response | dict:
        """Explain a prediction: how much each region of the image supports the label (occlusion map)."""
        return self.explained(None)

    def explained(self, version: int | None) -> Response | dict:
        served = self.served(version)
        wanted = request.accept_mimetypes.best_match(TYPES) if request.accept_mimetypes else TYPES[0]
        if wanted is None:
            raise NotAcceptable(f"this route answers {' or '.join(TYPES)}; the request accepts "
                                f"{request.headers.get('Accept')}")
        args = parse(explanation_parser(served), prediction=False)
        data = args["image"].read()
        result = explain(served, served.prepare(data), args.get("grid"), args.get("label"),
                         args.get("measure") or "confidence")
        if wanted == "application/json":
            return {**result.to_dict(), "model": served.spec.name, "version": served.spec.version}
        assert served.plan is not None
        png = overlay_png(data, result.drops, served.plan.image_shape, served.plan.preprocessing,
                          served.settings["MAX_IMAGE_PIXELS"])
        # The figures a page shows next to the picture travel with it; the label percent-encoded, as
        # header values are Latin-1 and labels need not be.
        return Response(png, mimetype="image/png", headers={
            "X-Explanation-Label": quote(result.label, safe=""), "X-Baseline-Confidence": f"{result.baseline:.6f}",
            "X-Explanation-Passes": str(result.passes), "X-Explanation-Measure": result.measure, "Vary": "Accept"})


@doc.response(404, "This version is not served (the answer lists those that are)", schemas.ERRORS[404])
class VersionExplanation(Explanation):
    @doc.produces(TYPES)
    @doc.response(200, "As for the default version", schemas.explanation)
    def post(self, version: int) -> Response | dict:
        """Explain a prediction of one version (occlusion map)."""
        return self.explained(version)


def add_routes(ns: Namespace, group: ModelGroup, secured: dict) -> None:
    """The explanation routes of one model's namespace."""
    parser = explanation_parser(group.default())
    name = group.default().spec.name
    kwargs = {"group": group}
    ns.add_resource(Explanation, "/explanation", resource_class_kwargs=kwargs,
                    route_doc={"post": {"id": f"explain_{name}", "expect": [parser], **secured}})
    ns.add_resource(VersionExplanation, "/versions/<int:version>/explanation", resource_class_kwargs=kwargs,
                    route_doc={"post": {"id": f"explain_{name}_version", "expect": [parser], **secured}})
