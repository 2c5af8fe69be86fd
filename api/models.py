"""The per-model namespace factory: `POST /<model>/prediction` and `GET /<model>/`."""
from __future__ import annotations

from flask import request
from flask_restx import Namespace, Resource, reqparse
from werkzeug.datastructures import FileStorage

from api import schemas
from util.errors import MissingImage, UnsupportedMediaType
from util.serving import ServedModel

# Resources are shared by every model namespace; this one only carries their documentation.
doc = Namespace("model", description="documentation template for model namespaces")

upload = reqparse.RequestParser()
upload.add_argument("image", location="files", type=FileStorage, required=True,
                    help="The image: PNG, JPEG, GIF, WebP, BMP or TIFF")
upload.add_argument("top_k", location="form", type=int, required=False,
                    help="How many labels to return, best first (default 5, at most the number of labels)")


def read_upload() -> tuple[bytes, str | None]:
    """The `image` file's bytes and the raw `top_k`, from a multipart request."""
    if request.mimetype != "multipart/form-data":
        raise UnsupportedMediaType(
            "send the image as multipart/form-data with an 'image' file field "
            f"(got {request.mimetype or 'a request without a body'})")
    file = request.files.get("image")
    if file is None:
        hint = " (it arrived as a text field: send it as a file)" if "image" in request.form else ""
        raise MissingImage(f"the multipart field 'image' with the image file is missing{hint}")
    return file.read(), request.form.get("top_k", request.args.get("top_k"))


class ModelResource(Resource):
    """A resource bound to one served model (given per namespace as a class kwarg)."""

    def __init__(self, api: object = None, *args: object, served: ServedModel, **kwargs: object) -> None:
        super().__init__(api, *args, **kwargs)
        self.served = served


@doc.response(503, "Model not loaded", schemas.error)
@doc.response(500, "Inference failed", schemas.error)
@doc.response(422, "Image larger than MAX_IMAGE_PIXELS", schemas.error)
@doc.response(415, "Not multipart/form-data, or an image format that is not accepted", schemas.error)
@doc.response(413, "Request body larger than MAX_CONTENT_LENGTH", schemas.error)
@doc.response(400, "Missing `image` field; empty, corrupt or non-image file; bad `top_k`", schemas.error)
@doc.response(200, "The top labels, best first", schemas.prediction)
@doc.expect(upload)
class Prediction(ModelResource):
    def post(self) -> dict:
        """Classify an uploaded image (multipart field `image`)."""
        data, raw_top_k = read_upload()
        return self.served.predict(data, self.served.top_k(raw_top_k))


@doc.response(200, "Labels, input shape, preprocessing, runtime and provenance", schemas.model_info)
class Metadata(ModelResource):
    def get(self) -> dict:
        """Describe the model and how it is served."""
        return self.served.info()


def make_namespace(served: ServedModel) -> Namespace:
    """A documented namespace for one served model."""
    spec = served.spec
    about = f"{spec.title} (v{spec.version})" + (f": {spec.description}" if spec.description else "")
    ns = Namespace(spec.name, description=about, path=f"/{spec.name}")
    schemas.add_models(ns, schemas.error, schemas.label_score, schemas.prediction,
                       schemas.preprocessing, schemas.model_info)
    # Resources are shared, so operation ids (unique in Swagger 2.0) are set per model.
    ns.add_resource(Prediction, "/prediction", resource_class_kwargs={"served": served},
                    route_doc={"post": {"id": f"predict_{spec.name}"}})
    ns.add_resource(Metadata, "/", resource_class_kwargs={"served": served},
                    route_doc={"get": {"id": f"describe_{spec.name}"}})
    return ns
