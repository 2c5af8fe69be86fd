"""The per-model namespace factory: `POST /<model>/prediction`, `GET /<model>/`, and the same per version
under `/<model>/versions/<v>/`."""
from __future__ import annotations

from typing import Any
from weakref import WeakKeyDictionary

from flask import request
from flask_restx import Namespace, Resource, reqparse
from werkzeug.datastructures import FileStorage
from werkzeug.exceptions import BadRequest

from api import bodies, scheduling, schemas
from api.dataplane import resolve
from api.protocols import batch_limit
from util.errors import InvalidParameter, MalformedRequest, MissingImage, ServiceError, UnsupportedMediaType
from util.serve.image import FORMAT_NAMES
from util.serve.served import ServedModel
from util.serve.versions import ModelGroup

# Resources are shared by every model namespace; this one only carries their documentation.
doc = Namespace("model", description="documentation template for model namespaces")


class Bounded:
    """A reqparse type that parses a number within bounds and declares them in the spec."""

    def __init__(self, name: str, kind: type, low: float, high: float, why: str = "") -> None:
        self.name, self.kind, self.low, self.high, self.why = name, kind, low, high, why
        self.__schema__ = {"type": "integer" if kind is int else "number", "minimum": low, "maximum": high}

    def __call__(self, raw: Any) -> Any:
        try:
            value = self.kind(raw)
        except (TypeError, ValueError):
            raise ValueError(f"{self.name} must be {'an integer' if self.kind is int else 'a number'} from "
                             f"{self.low} to {self.high}, got {raw!r}") from None
        if not self.low <= value <= self.high:
            raise ValueError(f"{self.name} must be from {self.low} to {self.high}{self.why}, got {value}")
        return value


class OneOf:
    """A reqparse type that takes one of a model's labels, declares them as the spec's enum, and gives
    the label's index: the one place a label is checked and converted."""

    def __init__(self, model: str, labels: list[str]) -> None:
        # Names only, no model: flask-restx deep-copies parser types when it writes the spec.
        self.model, self.labels = model, labels
        self.__schema__ = {"type": "string", "enum": labels}

    def __call__(self, raw: Any) -> int:
        if raw not in self.labels:
            shown = ", ".join(self.labels[:20]) + (", ..." if len(self.labels) > 20 else "")
            raise ValueError(f"label {raw!r} is not one of model {self.model}'s labels: {shown}")
        return self.labels.index(raw)


def make_parser(labels: int, multilabel: bool, batch: bool = False) -> reqparse.RequestParser:
    """The one parser that both reads and documents a prediction request for a model with `labels` labels
    (`batch`: several `images` files)."""
    parser = reqparse.RequestParser()
    if batch:
        parser.add_argument("images", location="files", type=FileStorage, required=True, action="append",
                            help=f"The images (repeat the field, up to MAX_BATCH_IMAGES): {FORMAT_NAMES}")
    else:
        parser.add_argument("image", location="files", type=FileStorage, required=True,
                            help=f"The image: {FORMAT_NAMES}")
    parser.add_argument("top_k", location=("form", "args"), type=Bounded("top_k", int, 1, labels), required=False,
                        help=f"How many labels to return, best first (default 5, at most {labels})")
    if multilabel:  # declared for multi-label models only, so the spec never offers what would be refused
        parser.add_argument("threshold", location=("form", "args"), type=Bounded("threshold", float, 0, 1),
                            required=False, help="The score at or above which a label is listed in "
                                                 "positive_labels (default: the model's, 0.5 unless set)")
    return parser


def parse(parser: reqparse.RequestParser, prediction: bool = True) -> dict[str, Any]:
    """The request's arguments, with the service's own errors for what is missing or malformed."""
    if request.mimetype != "multipart/form-data":
        raise UnsupportedMediaType(
            "send the image as multipart/form-data with an 'image' file field "
            f"(got {request.mimetype or 'a request without a body'})")
    try:
        files, form = request.files, request.form
    except ValueError as exc:  # StrictRequest: the multipart body itself is broken
        raise MalformedRequest(f"the multipart/form-data body cannot be parsed ({exc}); send it with a boundary, "
                               "complete, with UTF-8 field names and file names") from None
    field = parser.args[0].name  # image, or images for a batch
    if files.get(field) is None:
        hint = " (it arrived as a text field: send it as a file)" if field in form else ""
        raise MissingImage(f"the multipart field '{field}' with the image file is missing{hint}")
    # predict explains why a model that is not multi-label refuses a threshold
    known = {arg.name for arg in parser.args} | ({"threshold"} if prediction else set())
    # A part whose Content-Disposition has no readable name arrives under the name None.
    unknown = sorted({name or "" for name in (*form, *files, *request.args)} - known)
    if unknown:
        shown = ", ".join(repr(name[:40]) if name else "(a part with no name)" for name in unknown[:5])
        raise InvalidParameter(f"unknown form field(s) or query parameter(s) {shown}; this route takes "
                               f"{', '.join(arg.name for arg in parser.args)}")
    if field == "image" and len(files.getlist("image")) > 1:
        raise InvalidParameter(f"send one image per request; got {len(files.getlist('image'))} 'image' files "
                               "(POST .../predictions takes several 'images')")
    if field == "images" and len(files.getlist("images")) > batch_limit():
        raise InvalidParameter(f"{len(files.getlist('images'))} images; at most {batch_limit()} per request "
                               "(MAX_BATCH_IMAGES)")
    repeated = [arg.name for arg in parser.args if arg.name != "images" and len(request.values.getlist(arg.name)) > 1]
    if repeated:
        raise InvalidParameter(f"{repeated[0]} is given more than once (form and query together count)")
    try:
        return parser.parse_args()
    except BadRequest as exc:
        errors = (getattr(exc, "data", None) or {}).get("errors") or {}
        messages = [str(text).removeprefix(f"{arg.help} ") for arg in parser.args for name, text in errors.items()
                    if arg.name == name]
        raise InvalidParameter("; ".join(messages) or exc.description or "invalid request") from None


_parsers: WeakKeyDictionary = WeakKeyDictionary()  # ServedModel -> its parser (versions may differ in labels)


def parser_for(served: ServedModel, batch: bool = False) -> reqparse.RequestParser:
    parsers = _parsers.get(served)
    if parsers is None:
        labels, multilabel = len(served.spec.labels), served.multilabel_hint()
        parsers = _parsers[served] = (make_parser(labels, multilabel), make_parser(labels, multilabel, batch=True))
    return parsers[batch]


class ModelResource(Resource):
    """A resource bound to one model name (given per namespace as class kwargs); the version is looked
    up per request, so a version loaded meanwhile answers without new routes."""

    def __init__(self, api: object = None, *args: object, group: ModelGroup, **kwargs: object) -> None:
        super().__init__(api, *args, **kwargs)
        self.group = group

    def served(self, version: int | None) -> ServedModel:
        return resolve(self.group.name, version)

    def arguments(self, served: ServedModel, batch: bool) -> dict[str, Any]:
        """The parsed request; `threshold` is declared (parsed, bounded) for multi-label models only."""
        args = parse(parser_for(served, batch))
        if "threshold" not in args and "threshold" in request.values:  # let past the unknown-field check
            bodies.undeclared_threshold(served)
        return args

    def predict(self, version: int | None) -> dict:
        served = self.served(version)  # held to the end: a version swapped meanwhile still finishes this
        args = self.arguments(served, batch=False)
        scores = served.classify([args["image"].read()])[0]
        if isinstance(scores, ServiceError):
            raise scores
        return bodies.prediction(served, scores, args.get("top_k"), args.get("threshold"))

    def predict_many(self, version: int | None) -> dict:
        served = self.served(version)
        args = self.arguments(served, batch=True)
        files = args["images"]
        rows = served.classify([f.read() for f in files])
        if all(isinstance(row, ServiceError) for row in rows):
            assert isinstance(rows[0], ServiceError)
            raise rows[0]  # not one image could be read: the request fails, with the first one's reason
        results = [{"filename": f.filename, **({**row.to_dict(), "status": row.status} if isinstance(row, ServiceError)
                                               else bodies.prediction(served, row, args.get("top_k"),
                                                                      args.get("threshold")))}
                   for f, row in zip(files, rows, strict=True)]
        return {"results": results, "model": served.spec.name, "version": served.spec.version}


@doc.response(503, "Model not loaded, or the queue is full (queue_full, with Retry-After)", schemas.ERRORS[503])
@doc.response(500, "Inference failed, or an unexpected error (logged with its traceback)", schemas.ERRORS[500])
@doc.response(422, "Image larger than MAX_IMAGE_PIXELS", schemas.ERRORS[422])
@doc.response(415, "Not multipart/form-data, or an image format that is not accepted", schemas.ERRORS[415])
@doc.response(413, "Request body larger than MAX_CONTENT_LENGTH", schemas.ERRORS[413])
@doc.response(400, "Missing `image` field; empty, corrupt or non-image file; a blank picture for a model that "
              "crops to its content (`blank_image`); bad `top_k` or `threshold`", schemas.ERRORS[400])
@doc.response(504, "The deadline (X-Request-Timeout, REQUEST_TIMEOUT) passed before inference: not run",
              schemas.ERRORS[504])
class Prediction(ModelResource):
    @doc.marshal_with(schemas.prediction, skip_none=True, description="The top labels, best first")
    def post(self) -> dict:
        """Classify an uploaded image (multipart field `image`) with the default version."""
        return self.predict(None)


@doc.response(404, "This version is not served (the answer lists those that are)", schemas.ERRORS[404])
class VersionPrediction(Prediction):
    @doc.marshal_with(schemas.prediction, skip_none=True, description="The top labels, best first")
    def post(self, version: int) -> dict:
        """Classify an uploaded image (multipart field `image`) with one version."""
        return self.predict(version)


@doc.response(503, "Model not loaded, or the queue is full (queue_full, with Retry-After)", schemas.ERRORS[503])
@doc.response(415, "Not multipart/form-data", schemas.ERRORS[415])
@doc.response(413, "Request body larger than MAX_CONTENT_LENGTH", schemas.ERRORS[413])
@doc.response(422, "No image is readable and the first is larger than MAX_IMAGE_PIXELS", schemas.ERRORS[422])
@doc.response(400, "No `images` file, more than MAX_BATCH_IMAGES, a bad `top_k`, or no readable image (the first "
              "one's reason)", schemas.ERRORS[400])
@doc.response(504, "The deadline (X-Request-Timeout, REQUEST_TIMEOUT) passed before inference: not run",
              schemas.ERRORS[504])
class Predictions(ModelResource):
    @doc.response(200, "One result per image in upload order: a prediction or that image's own error",
                  schemas.batch_prediction)
    def post(self) -> dict:
        """Classify several uploaded images (repeat the multipart field `images`) in one batch."""
        return self.predict_many(None)


@doc.response(404, "This version is not served (the answer lists those that are)", schemas.ERRORS[404])
class VersionPredictions(Predictions):
    @doc.response(200, "As for the default version", schemas.batch_prediction)
    def post(self, version: int) -> dict:
        """Classify several uploaded images with one version."""
        return self.predict_many(version)


class Metadata(ModelResource):
    @doc.marshal_with(schemas.model_info, skip_none=True, description="Labels, input shape, preprocessing, output "
                                                                      "kind, runtime, provenance and versions")
    def get(self) -> dict:
        """Describe the model's default version, and list every version with its state."""
        return {**bodies.model_info(self.served(None)), "versions": self.group.states()}


@doc.response(404, "This version is not served (the answer lists those that are)", schemas.ERRORS[404])
class VersionMetadata(ModelResource):
    @doc.marshal_with(schemas.model_info, skip_none=True, description="Labels, input shape, preprocessing, output "
                                                                      "kind, runtime and provenance")
    def get(self, version: int) -> dict:
        """Describe one version of the model."""
        return bodies.model_info(self.served(version))


def make_namespace(group: ModelGroup, security: list[str] | None = None) -> Namespace:
    """A documented namespace for one model name (its default version's labels document the parser)."""
    served = group.default()
    spec = served.spec
    about = f"{spec.title} (v{spec.version})" + (f": {spec.description}" if spec.description else "")
    ns = Namespace(spec.name, description=about, path=f"/{spec.name}")
    schemas.add_models(ns, *schemas.ERRORS.values(), schemas.label_score, schemas.prediction, schemas.preprocessing,
                       schemas.serving, schemas.version_state, schemas.model_info,
                       schemas.batch_prediction, schemas.explanation)
    parser = parser_for(served)
    # Resources are shared, so operation ids (unique in Swagger 2.0) and the parser are set per model.
    secured = {"security": security} if security else {}
    posted = {"params": scheduling.PARAMETERS, **secured}  # X-Priority, X-Request-Timeout
    kwargs = {"group": group}
    ns.add_resource(Prediction, "/prediction", resource_class_kwargs=kwargs,
                    route_doc={"post": {"id": f"predict_{spec.name}", "expect": [parser], **posted}})
    # Swagger 2.0 has no array of files: the spec shows one `images` file field (send it repeatedly);
    # the Swagger UI's plugin (api/web/static/swagger-batch.js) lets that field take several files.
    batch = parser_for(served, batch=True).copy()
    batch.replace_argument("images", location="files", type=FileStorage, required=True,
                           help="Images: repeat the field, up to MAX_BATCH_IMAGES (in the Swagger UI, choose "
                                "several files at once)")
    ns.add_resource(Predictions, "/predictions", resource_class_kwargs=kwargs,
                    route_doc={"post": {"id": f"predict_many_{spec.name}", "expect": [batch], **posted}})
    ns.add_resource(VersionPredictions, "/versions/<int:version>/predictions", resource_class_kwargs=kwargs,
                    route_doc={"post": {"id": f"predict_many_{spec.name}_version", "expect": [batch], **posted}})
    ns.add_resource(Metadata, "/", resource_class_kwargs=kwargs,
                    route_doc={"get": {"id": f"describe_{spec.name}", **secured}})
    ns.add_resource(VersionPrediction, "/versions/<int:version>/prediction", resource_class_kwargs=kwargs,
                    route_doc={"post": {"id": f"predict_{spec.name}_version", "expect": [parser], **posted}})
    ns.add_resource(VersionMetadata, "/versions/<int:version>/", resource_class_kwargs=kwargs,
                    route_doc={"get": {"id": f"describe_{spec.name}_version", **secured}})
    return ns
