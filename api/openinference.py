"""The Open Inference Protocol (V2, KServe and Triton's HTTP/REST), translated onto the one
prediction path, with the classification and binary tensor data extensions.

Inputs: `image` (BYTES, one encoded image per row: raw in binary data, base64 text in JSON) or
`tensor` (FP32 [N, height, width, channels], already preprocessed). Output: `scores` (FP32
[N, labels]); with `"parameters": {"classification": k}` on it, the top k of each row as
`"score:index:label"` strings (BYTES [N, k]).
"""
from __future__ import annotations

import json
import struct
from typing import Any

import numpy as np
from flask import Response, request
from flask_restx import Namespace

from api import scheduling, schemas
from api.dataplane import model_group, registry, resolve
from api.protocols import ErrorFieldResource, batch_limit, decode_base64
from util.errors import InvalidParameter
from util.serve.bodies import OUTPUT, OutputParameters, V2Input, V2Output, V2Request, v2_body
from util.serve.served import ServedModel

ns = Namespace("open-inference-v2", path="/v2",
               description="Open Inference Protocol (V2) as KServe and Triton speak it, with the classification "
                           "and binary tensor data extensions. Errors are `{\"error\": \"...\"}`.")
schemas.add_models(ns, schemas.v2_error, schemas.v2_input, schemas.v2_output, schemas.v2_request)
HEADER_LENGTH = "Inference-Header-Content-Length"
EXTENSIONS = ["classification", "binary_tensor_data"]


def model_metadata(model: ServedModel) -> dict:
    model.load()
    assert model.plan is not None
    height, width, channels = model.plan.image_shape
    group = model_group(model.spec.name)
    return {"name": model.spec.name, "versions": [str(v) for v in group.versions], "platform": "tflite",
            "inputs": [{"name": "image", "datatype": "BYTES", "shape": [-1]},
                       {"name": "tensor", "datatype": "FP32", "shape": [-1, height, width, channels]}],
            "outputs": [{"name": OUTPUT, "datatype": "FP32", "shape": [-1, len(model.spec.labels)]}],
            "parameters": {"labels": list(model.spec.labels), "preprocessing": model.plan.preprocessing.scale}}


def read_request() -> tuple[V2Request, bytes]:
    """The JSON header, declared, and the binary blobs after it (binary tensor data extension)."""
    raw = request.get_data()
    length = request.headers.get(HEADER_LENGTH)
    if length is not None:
        if not length.isdigit() or int(length) > len(raw):
            raise InvalidParameter(f"{HEADER_LENGTH} must be the JSON header's length in bytes, at most the body's")
        head, blobs = raw[:int(length)], raw[int(length):]
    else:
        head, blobs = raw, b""
    return v2_body(head), blobs


def input_rows(model: ServedModel, spec: V2Input, blobs: bytes) -> np.ndarray:
    """The prepared batch (N, H, W, C) from the one input tensor."""
    shape = spec.shape
    binary = spec.parameters.binary_data_size if spec.parameters else None
    if binary is not None and binary != len(blobs):
        raise InvalidParameter("binary_data_size does not match the binary data after the JSON header")
    limit = batch_limit()
    if not 1 <= shape[0] <= limit:
        raise InvalidParameter(f"a batch holds 1 to {limit} rows (MAX_BATCH_IMAGES), not {shape[0]}")
    if spec.name == "image":
        if spec.datatype != "BYTES" or len(shape) != 1:
            raise InvalidParameter("\"image\" is BYTES of shape [N]: one encoded image per row")
        images = split_bytes(blobs) if binary is not None else [b64_image(v) for v in spec.data or []]
        if len(images) != shape[0]:
            raise InvalidParameter(f"shape says {shape[0]} images, the data holds {len(images)}")
        return np.stack([model.prepare(image) for image in images])
    if spec.datatype != "FP32":
        raise InvalidParameter("\"tensor\" is FP32, already preprocessed")
    try:
        flat = (np.frombuffer(blobs, dtype="<f4") if binary is not None
                else np.asarray(spec.data, dtype=np.float32).ravel())
        rows = flat.reshape(shape)
    except (ValueError, TypeError):
        raise InvalidParameter(f"the data does not fill the shape {shape}") from None
    return np.stack([model.check_tensor(row) for row in rows])


def split_bytes(blob: bytes) -> list[bytes]:
    """BYTES in binary form: each element is a 4-byte little-endian length, then the bytes."""
    items, offset = [], 0
    while offset < len(blob):
        if offset + 4 > len(blob):
            raise InvalidParameter("truncated BYTES element in the binary data")
        (size,) = struct.unpack_from("<I", blob, offset)
        if offset + 4 + size > len(blob):
            raise InvalidParameter("truncated BYTES element in the binary data")
        items.append(blob[offset + 4:offset + 4 + size])
        offset += 4 + size
    return items


def b64_image(value: Any) -> bytes:
    if not isinstance(value, str):
        raise InvalidParameter("in JSON, each \"image\" element is a base64 string")
    return decode_base64(value, "an \"image\" element is not valid base64")


def output_tensor(model: ServedModel, scores: np.ndarray, wanted: V2Output) -> tuple[dict, np.ndarray | list[bytes]]:
    """(tensor description, its values): scores, or the classification extension's strings."""
    k = (wanted.parameters or OutputParameters()).classification
    if k is None:
        return {"name": OUTPUT, "datatype": "FP32", "shape": list(scores.shape)}, scores.astype("<f4")
    if k > scores.shape[1]:
        raise InvalidParameter(f"classification must be from 1 to {scores.shape[1]}")
    index = {label: i for i, label in enumerate(model.spec.labels)}
    strings = [f"{score:f}:{index[label]}:{label}".encode() for row in scores
               for label, score in model.ranked(row)[:k]]
    return {"name": OUTPUT, "datatype": "BYTES", "shape": [len(scores), k]}, strings


def infer(name: str, version: str | None) -> Any:
    model = resolve(name, version)
    body, blobs = read_request()
    if body.parameters is not None:
        scheduling.admit_v2(body.parameters.priority, body.parameters.timeout)
    scores = model.scores(input_rows(model, body.inputs[0], blobs))
    all_binary = body.parameters.binary_data_output if body.parameters else False
    answer: dict[str, Any] = {"model_name": model.spec.name, "model_version": str(model.spec.version),
                              "outputs": []}
    if body.id is not None:
        answer["id"] = body.id
    tail = b""
    for output in body.outputs or [V2Output()]:
        tensor, values = output_tensor(model, scores, output)
        binary = (output.parameters or OutputParameters()).binary_data
        if all_binary if binary is None else binary:
            data = (values.tobytes() if isinstance(values, np.ndarray)
                    else b"".join(struct.pack("<I", len(v)) + v for v in values))
            tensor["parameters"] = {"binary_data_size": len(data)}
            tail += data
        else:
            tensor["data"] = (values.ravel().tolist() if isinstance(values, np.ndarray)
                              else [v.decode() for v in values])
        answer["outputs"].append(tensor)
    if not tail:
        return answer
    head = json.dumps(answer).encode()
    return Response(head + tail, content_type="application/octet-stream", headers={HEADER_LENGTH: str(len(head))})


@ns.route("")
class V2Server(ErrorFieldResource):
    @ns.response(200, "name, version, extensions")
    def get(self) -> dict:
        """Server metadata: name, version, extensions."""
        from application import __version__
        return {"name": "keras-serve", "version": __version__, "extensions": EXTENSIONS}


@ns.route("/health/live")
class V2Live(ErrorFieldResource):
    @ns.response(200, "The process is up")
    def get(self) -> dict:
        """200 while the process is up."""
        return {}


@ns.route("/health/ready")
class V2Ready(ErrorFieldResource):
    @ns.response(200, "Every model serves a loaded version")
    @ns.response(503, "A model is loading or has no version that serves", schemas.v2_error)
    def get(self) -> Any:
        """200 when every model serves a loaded version (a pod takes no traffic before)."""
        return ({}, 200) if registry().all_serving else ({"error": "not every model is loaded"}, 503)


@ns.route("/models/<string:name>")
@ns.response(404, "Unknown model or version", schemas.v2_error)
class V2Model(ErrorFieldResource):
    @ns.response(200, "Versions, inputs, outputs, labels")
    def get(self, name: str, version: str | None = None) -> dict:
        """Model metadata: versions, inputs (image BYTES or tensor FP32), output scores, labels."""
        return model_metadata(resolve(name, version))


@ns.route("/models/<string:name>/versions/<string:version>")
class V2ModelVersion(V2Model):
    """The same for one version."""


@ns.route("/models/<string:name>/ready")
@ns.response(404, "Unknown model or version", schemas.v2_error)
class V2ModelReady(ErrorFieldResource):
    @ns.response(200, "The model (version) is loaded")
    @ns.response(503, "The model is loading", schemas.v2_error)
    def get(self, name: str, version: str | None = None) -> Any:
        """200 when this model (version) is loaded."""
        return ({}, 200) if resolve(name, version).ready else ({"error": f"model {name} is loading"}, 503)


@ns.route("/models/<string:name>/versions/<string:version>/ready")
class V2ModelVersionReady(V2ModelReady):
    """The same for one version."""


@ns.route("/models/<string:name>/infer")
@ns.response(400, "Bad inputs or outputs", schemas.v2_error)
@ns.response(404, "Unknown model or version", schemas.v2_error)
class V2Infer(ErrorFieldResource):
    @ns.expect(schemas.v2_request)
    @ns.response(200, "model_name, model_version, outputs (JSON, or a JSON header and binary data)")
    @ns.response(503, "Model not loaded, or the queue is full (Retry-After)", schemas.v2_error)
    @ns.response(504, "The deadline (parameters.timeout, X-Request-Timeout) passed before inference: not run",
                 schemas.v2_error)
    @ns.doc(params=scheduling.PARAMETERS)
    def post(self, name: str, version: str | None = None) -> Any:
        """Inference: `image` BYTES or `tensor` FP32 in; `scores` (or its classification) out, JSON or binary."""
        return infer(name, version)


@ns.route("/models/<string:name>/versions/<string:version>/infer")
class V2InferVersion(V2Infer):
    """The same for one version."""
