"""TensorFlow Serving's REST API (v1), translated onto the one prediction path.

`POST /v1/models/<m>[/versions/<v>]:predict | :classify`, `GET /v1/models/<m>[/versions/<v>]`
(model_version_status) and `.../metadata`, with TF Serving's request and answer shapes and its
`{"error": "..."}` errors. The single input is named `image`: `{"b64": "<encoded image>"}` or an
already preprocessed float tensor (height, width, channels). Every instance of a request goes
through the runtime as one batch.
"""
from __future__ import annotations

from typing import Any

import numpy as np
from flask import request
from flask_restx import Namespace

from api import scheduling, schemas
from api.dataplane import model_group, resolve
from api.protocols import ErrorFieldResource, batch_limit, decode_base64
from util.errors import InvalidParameter, NotFound
from util.serve.bodies import INPUT, TFClassify, TFPredict, tf_body
from util.serve.served import ServedModel

ns = Namespace("tensorflow-serving", path="/v1/models",
               description="TensorFlow Serving's REST API: predict, classify, model status and metadata. "
                           "Errors are `{\"error\": \"...\"}` as TensorFlow Serving writes them.")
schemas.add_models(ns, schemas.tf_error, schemas.tf_request, schemas.tf_answer, schemas.tf_status,
                   schemas.tf_metadata)
VERBS = ("predict", "classify")


def served(name: str, version: int | None) -> ServedModel:
    """The data plane's version, its 404 worded as TF Serving words it (clients may match on it)."""
    try:
        return resolve(name, version)
    except NotFound:
        servable = f"Latest({name})" if version is None else f"Specific({name}, {version})"
        raise NotFound(f"Servable not found for request: {servable}") from None


def split_verb(target: str) -> tuple[str, str]:
    """"digits:predict" -> ("digits", "predict")."""
    head, _, verb = target.rpartition(":")
    if not head or verb not in VERBS:
        raise NotFound(f"unknown method in {target!r}: use <model>:predict or <model>:classify")
    return head, verb


def instance_image(model: ServedModel, value: Any) -> np.ndarray:
    """One instance: {"b64": ...}, {"image": {"b64": ...} | tensor}, or a tensor."""
    if isinstance(value, dict) and set(value) == {INPUT}:
        value = value[INPUT]
    if isinstance(value, dict):
        if set(value) != {"b64"} or not isinstance(value["b64"], str):
            raise InvalidParameter(f"an instance is {{\"b64\": \"<base64 image>\"}}, {{\"{INPUT}\": ...}} or a "
                                   f"tensor; got an object with keys {sorted(value)[:5]}")
        return model.prepare(decode_base64(value["b64"], "b64 holds no valid base64"))
    return model.check_tensor(value)


def batch_of(model: ServedModel, values: list[Any]) -> np.ndarray:
    limit = batch_limit()
    if not values:
        raise InvalidParameter("no instances: send at least one")
    if len(values) > limit:
        raise InvalidParameter(f"{len(values)} instances; at most {limit} per request (MAX_BATCH_IMAGES)")
    return np.stack([instance_image(model, v) for v in values])


def body() -> Any:
    """The parsed JSON body, or None; util/serve/bodies.py declares what it must hold."""
    return request.get_json(force=True, silent=True)  # TF Serving reads JSON whatever the Content-Type (curl -d)


def predict(model: ServedModel) -> dict:
    """TF Serving's predict: row ("instances") or columnar ("inputs") format, probabilities per label."""
    rows, row_format = tf_body(body(), TFPredict).rows()
    scores = model.scores(batch_of(model, rows)).tolist()
    return {"predictions": scores} if row_format else {"outputs": scores}


def classify(model: ServedModel) -> dict:
    """TF Serving's classify: examples with an `image` feature; every label with its score, best first."""
    scores = model.scores(batch_of(model, tf_body(body(), TFClassify).rows()))
    return {"result": [[[label, score] for label, score in model.ranked(row)] for row in scores]}


def status(name: str, version: int | None) -> dict:
    try:
        group = model_group(name)
    except NotFound:
        raise NotFound(f"Servable not found for request: Latest({name})") from None
    rows = [{"version": str(s["version"]), "state": "AVAILABLE" if s["state"] == "serving" else "END",
             "status": {"error_code": "OK" if s["state"] == "serving" else "UNKNOWN",
                        "error_message": s.get("error", "")}} for s in group.states()]
    if version is not None:
        rows = [r for r in rows if r["version"] == str(version)]
        if not rows:
            raise NotFound(f"Could not find version {version} of model {name}")
    return {"model_version_status": rows}


def metadata(model: ServedModel) -> dict:
    """A signature-def-like description: the `image` input, the per-label output, the labels."""
    model.load()  # idempotent: the plan gives the served input shape
    assert model.plan is not None
    height, width, channels = model.plan.image_shape

    def tensor(dtype: str, dims: list[int]) -> dict:
        return {"dtype": dtype, "tensor_shape": {"dim": [{"size": str(d), "name": ""} for d in dims],
                                                 "unknown_rank": False}, "name": INPUT}
    image = tensor("DT_FLOAT", [-1, height, width, channels])
    scores = {**tensor("DT_FLOAT", [-1, len(model.spec.labels)]), "name": "scores"}
    return {"model_spec": {"name": model.spec.name, "signature_name": "", "version": str(model.spec.version)},
            "metadata": {"signature_def": {"signature_def": {
                "serving_default": {"inputs": {INPUT: image}, "outputs": {"scores": scores},
                                    "method_name": "tensorflow/serving/predict"},
                "classify": {"inputs": {INPUT: {**tensor("DT_STRING", [-1]), "name": INPUT}},
                             "outputs": {"classes": {**tensor("DT_STRING", [-1, len(model.spec.labels)]),
                                                     "name": "classes"}, "scores": scores},
                             "method_name": "tensorflow/serving/classify"}}},
                "labels": list(model.spec.labels),
                "image_input": f"{INPUT}: {{\"b64\": \"<base64 PNG/JPEG/...>\"}} or a float tensor "
                               f"[{height}, {width}, {channels}] already preprocessed "
                               f"({model.plan.preprocessing.scale} scale)"}}


def run(name: str, version: int | None, verb: str) -> dict:
    model = served(name, version)
    return predict(model) if verb == "predict" else classify(model)


@ns.route("/<string:target>")
@ns.response(404, "No such model, version or method: `{\"error\": \"...\"}`", schemas.tf_error)
@ns.param("target", "The model name; for POST followed by `:predict` or `:classify`")
class Model(ErrorFieldResource):
    @ns.response(200, "model_version_status of every version", schemas.tf_status)
    def get(self, target: str) -> dict:
        """Status of every version of a model (TF Serving's GetModelStatus)."""
        return status(target, None)

    @ns.expect(schemas.tf_request)
    @ns.response(200, "`{\"predictions\": [[scores...]]}` (predict) or `{\"result\": [[[label, score]...]]}` "
                      "(classify)", schemas.tf_answer)
    @ns.response(400, "Bad instances or examples: `{\"error\": \"...\"}`", schemas.tf_error)
    @ns.response(503, "Model not loaded, or the queue is full (Retry-After)", schemas.tf_error)
    @ns.response(504, "The deadline passed before inference: not run", schemas.tf_error)
    @ns.doc(params=scheduling.PARAMETERS)
    def post(self, target: str) -> dict:
        """Predict or classify with the default version: POST /v1/models/<m>:predict or :classify."""
        name, verb = split_verb(target)
        return run(name, None, verb)


@ns.route("/<string:name>/versions/<string:target>")
@ns.response(404, "No such model, version or method: `{\"error\": \"...\"}`", schemas.tf_error)
@ns.param("target", "The version number; for POST followed by `:predict` or `:classify`")
class Version(ErrorFieldResource):
    @ns.response(200, "model_version_status of this version", schemas.tf_status)
    def get(self, name: str, target: str) -> dict:
        """Status of one version of a model."""
        return status(name, _version(target))

    @ns.expect(schemas.tf_request)
    @ns.response(200, "As for the default version", schemas.tf_answer)
    @ns.response(400, "Bad instances or examples: `{\"error\": \"...\"}`", schemas.tf_error)
    @ns.response(503, "Model not loaded, or the queue is full (Retry-After)", schemas.tf_error)
    @ns.response(504, "The deadline passed before inference: not run", schemas.tf_error)
    @ns.doc(params=scheduling.PARAMETERS)
    def post(self, name: str, target: str) -> dict:
        """Predict or classify with one version: POST /v1/models/<m>/versions/<v>:predict or :classify."""
        version, verb = split_verb(target)
        return run(name, _version(version), verb)


@ns.route("/<string:name>/metadata")
@ns.response(404, "No such model, version or method: `{\"error\": \"...\"}`", schemas.tf_error)
class Metadata(ErrorFieldResource):
    @ns.response(200, "Signature-def-like metadata", schemas.tf_metadata)
    def get(self, name: str) -> dict:
        """Signature-def-like metadata of the default version (TF Serving's GetModelMetadata)."""
        return metadata(served(name, None))


@ns.route("/<string:name>/versions/<int:version>/metadata")
@ns.response(404, "No such model, version or method: `{\"error\": \"...\"}`", schemas.tf_error)
class VersionMetadata(ErrorFieldResource):
    @ns.response(200, "Signature-def-like metadata", schemas.tf_metadata)
    def get(self, name: str, version: int) -> dict:
        """Signature-def-like metadata of one version."""
        return metadata(served(name, version))


def _version(text: str) -> int:
    if not text.isdigit():
        raise NotFound(f"a version is a number, not {text!r}")
    return int(text)
