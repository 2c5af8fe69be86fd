"""Response schemas shared by every namespace (registered per namespace with `add_models`)."""
from __future__ import annotations

from flask_restx import Model, Namespace, fields

# One example per status, so a reader of the spec sees what each answer says (the codes of util/errors.py).
ERROR_EXAMPLES = {
    400: ("invalid_image", "the uploaded file is not a readable image"),
    401: ("unauthorized", "this route needs an API key: Authorization: Bearer <key> or X-API-Key"),
    404: ("version_not_found", "model digits does not serve version 7; served: 1, 2"),
    405: ("method_not_allowed", "The method is not allowed for the requested URL."),
    406: ("not_acceptable", "Accept: text/csv: this route answers image/png or application/json"),
    408: ("request_timeout", "the request body did not arrive within 60 s (BODY_TIMEOUT)"),
    413: ("payload_too_large", "the request body is larger than MAX_CONTENT_LENGTH (10485760 bytes)"),
    415: ("unsupported_media_type", "send the image as multipart/form-data, field `image`"),
    422: ("image_too_large", "the image has 48000000 pixels; the limit is MAX_IMAGE_PIXELS (40000000)"),
    500: ("internal_error", "unexpected error; it is logged with request id 4f1c..."),
    503: ("queue_full", "the queue is full: 64 predictions already wait in this worker (MAX_QUEUE); retry after the "
                        "Retry-After seconds"),
    504: ("deadline_exceeded", "the request's deadline passed while it waited for an inference lane; it was not run"),
}


def error_for(status: int) -> Model:
    """The error body as documented under one status: the common fields, that status's example."""
    code, message = ERROR_EXAMPLES[status]
    return Model(f"Error{status}", {
        "message": fields.String(required=True, description="What went wrong, for a person", example=message),
        "error": fields.String(required=True, description="A stable machine-readable code", example=code),
    })


ERRORS = {status: error_for(status) for status in ERROR_EXAMPLES}

label_score = Model("LabelScore", {
    "label": fields.String(required=True, example="7"),
    "confidence": fields.Float(required=True, description="Probability from 0 to 1", example=0.993),
})

prediction = Model("Prediction", {
    "label": fields.String(required=True, description="The most likely label", example="7"),
    "confidence": fields.Float(required=True, description="Its probability from 0 to 1", example=0.993),
    "predictions": fields.List(fields.Nested(label_score), required=True, description="Top-k labels, best first"),
    "model": fields.String(required=True, example="digits"),
    "version": fields.Integer(required=True, example=1),
    "threshold": fields.Float(description="Multi-label models only: the threshold applied", example=0.5),
    "positive_labels": fields.List(fields.String, description="Multi-label models only: every label scoring at "
                                   "or above the threshold, best first", example=["cat", "outdoor"]),
})

preprocessing = Model("Preprocessing", {
    "resize": fields.String(enum=["stretch", "pad", "crop"]),
    "resample": fields.String(example="bilinear"),
    "scale": fields.String(enum=["unit", "tf", "torch", "caffe", "raw"]),
    "invert": fields.Boolean(),
    "autocontrast": fields.Boolean(),
    "crop": fields.String(enum=["content"], description="content: cut to what is drawn before resizing (absent: "
                          "the whole picture)"),
    "crop_margin": fields.Float(description="With crop: the margin on every side, as a share of the content's "
                                "longer side", example=0.1),
    "size": fields.List(fields.Integer, description="Height, width for models of unknown input size"),
})

serving = Model("Serving", {
    "image_shape": fields.List(fields.Integer, description="Height, width, channels the image is resized to"),
    "size_from": fields.String(description="Why that size: the model, model.yaml, or the default",
                               example="model"),
    "scale": fields.String(enum=["unit", "tf", "torch", "caffe", "raw"]),
    "scale_from": fields.String(description="Why that scale: model.yaml, the model's own Rescaling layer, or the "
                                "default", example="model (Rescaling layer 'rescaling')"),
    "output": fields.String(enum=["softmax", "logits", "binary", "binary_logits", "multilabel",
                                  "multilabel_logits"]),
    "output_from": fields.String(example="model (keras layer 'dense' (Dense))"),
    "threshold": fields.Float(description="Multi-label models: default threshold"),
    "warnings": fields.List(fields.String),
})

version_state = Model("VersionState", {
    "version": fields.Integer(required=True, example=2),
    "state": fields.String(required=True, enum=["serving", "failed"], example="serving"),
    "default": fields.Boolean(description="Answers POST /<model>/prediction", example=True),
    "error": fields.String(description="Why a failed version is not served (the previous one keeps serving)"),
})

model_info = Model("ModelInfo", {
    "name": fields.String(required=True, example="digits"),
    "version": fields.Integer(required=True, example=1),
    "title": fields.String(example="Handwritten digits"),
    "description": fields.String(),
    "labels": fields.List(fields.String, required=True),
    "format": fields.String(enum=["json", "hdf5", "keras", "savedmodel", "tflite"], description="How it was saved"),
    "input_shape": fields.List(fields.Integer, description="Height, width, channels served", example=[8, 8, 1]),
    "model_input": fields.List(fields.Integer, description="The model's own input shape (null: any size)"),
    "preprocessing": fields.Nested(preprocessing, skip_none=True,
                                   description="In force (model.yaml, then the model's own facts)"),
    "serving": fields.Nested(serving, skip_none=True, description="Size, scale and output kind, each with its reason"),
    "output": fields.String(description="How outputs are read: softmax, logits, binary, binary_logits, multilabel, "
                                        "multilabel_logits", example="softmax"),
    "verified": fields.Boolean(description="False for a bare .tflite (no source model) or a Keras fallback"),
    "verification": fields.Raw(description="max_abs_diff, top1_agreement, images, output_spread, weak, status",
                               example={"status": "verified", "max_abs_diff": 2e-7, "top1_agreement": 1.0}),
    "runtime": fields.String(enum=["tflite", "keras"], description="Null until the model is loaded"),
    "ready": fields.Boolean(),
    "quantization": fields.Raw(description="model.yaml quantize: mode, served, top1_agreement and max_score_diff "
                               "against Keras, sizes; absent when not asked for",
                               example={"mode": "int8", "served": True, "top1_agreement": 1.0}),
    "source_sha256": fields.Raw(description="sha256 of model.json and the weights file, by file name",
                                example={"model.json": "9f2c...", "weights.h5": "41ab..."}),
    "verified_max_abs_diff": fields.Float(description="Largest Keras vs TFLite difference seen at compile time"),
    "tolerance": fields.Float(example=1e-4),
    "compiled_at": fields.String(example="2026-11-24T10:00:00+00:00"),
    "batching": fields.Raw(description="max_batch_size and max_batch_delay_ms in force",
                           example={"max_batch_size": 4, "max_batch_delay_ms": 2.0}),
    "versions": fields.List(fields.Nested(version_state, skip_none=True),
                            description="Every version this worker serves or failed to load (GET /<model>/ only)"),
    "inference": fields.Raw(description="LiteRT interpreters in each worker (null for Keras or before loading)",
                            example={"lanes": 1, "lane_threads": 1, "solo_threads": 2, "solo_speedup": 1.9}),
    "answers_checked": fields.Integer(description="Images answered as Keras did at compile before this version "
                                                  "served (0: a bare .tflite, nothing recorded)", example=30),
    "published": fields.Boolean(description="Served from compiled files only (a model store or KServe copy)"),
})

health = Model("Health", {
    "status": fields.String(required=True, enum=["ok", "starting", "failed"], example="ok"),
    "models": fields.Raw(description="Per model: true when loaded", example={"digits": True}),
    "message": fields.String(description="Why the service is not ready"),
    "failures": fields.Raw(description="Versions (or new models) that failed to load, by model: what served "
                                       "before keeps serving", example={"digits": {"v3": "cannot load model ..."}}),
})


def add_models(ns: Namespace, *models: Model) -> None:
    for model in models:
        ns.add_model(model.name, model)


# TensorFlow Serving's REST shapes (api/tfserving.py), as its documentation writes them.
class AnyValue(fields.Raw):
    """Any JSON value (Raw would declare an object): instances are objects or nested lists."""

    __schema_type__ = None


tf_error = Model("TFServingError", {"error": fields.String(required=True, example="Servable not found for request: "
                                                                                 "Latest(half)")})
tf_request = Model("TFServingRequest", {
    "signature_name": fields.String(description="Ignored: one signature"),
    "instances": fields.List(AnyValue, min_items=1, example=[{"b64": "iVBORw0KGgo..."}],
                             description="predict, row format: a list of {\"b64\": \"<base64 image>\"}, "
                                         "{\"image\": ...} or preprocessed tensors [height, width, channels]"),
    "inputs": AnyValue(description="predict, columnar format: the same list, or {\"image\": [...]}"),
    "examples": fields.List(AnyValue, min_items=1, example=[{"image": {"b64": "iVBORw0KGgo..."}}],
                            description="classify: a list of {\"image\": {\"b64\": \"<base64 image>\"}}"),
    "context": fields.Raw(description="classify: features shared by every example"),
})
tf_answer = Model("TFServingAnswer", {
    "predictions": fields.List(fields.List(fields.Float), example=[[0.01, 0.97, 0.02]],
                               description="predict, row format: per instance, the score of every label (labels.txt "
                                           "order)"),
    "outputs": fields.List(fields.List(fields.Float), description="predict, columnar format: the same"),
    "result": fields.List(fields.List(fields.List(AnyValue)), example=[[["7", 0.98], ["1", 0.01]]],
                          description="classify: per example, [label, score] pairs, best first"),
})
tf_status = Model("TFServingStatus", {
    "model_version_status": fields.List(fields.Raw, required=True, example=[
        {"version": "1", "state": "AVAILABLE", "status": {"error_code": "OK", "error_message": ""}}]),
})
tf_metadata = Model("TFServingMetadata", {
    "model_spec": fields.Raw(required=True, example={"name": "digits", "signature_name": "", "version": "1"}),
    "metadata": fields.Raw(required=True, description="signature_def (inputs: image; outputs: scores, classes) "
                                                      "and labels"),
})

# Open Inference Protocol (V2) shapes (api/openinference.py).
v2_error = Model("V2Error", {"error": fields.String(required=True, example="unknown model: 'half'")})
v2_input = Model("V2Input", {
    "name": fields.String(required=True, enum=["image", "tensor"], description="image (BYTES) or tensor (FP32)"),
    "datatype": fields.String(required=True, enum=["BYTES", "FP32"]),
    "shape": fields.List(fields.Integer(min=1), required=True, min_items=1,
                         description="[N] for images, [N, H, W, C] (or [N, H, W]) for tensors: the batch first"),
    "data": AnyValue(description="Base64 images, or the tensor's numbers (flat or nested); absent with the "
                                 "binary extension"),
    "parameters": fields.Raw(description="binary_data_size: n bytes of this input after the JSON header"),
})
v2_output = Model("V2RequestedOutput", {
    "name": fields.String(required=True, enum=["scores"], description="the one output"),
    "parameters": fields.Raw(description="classification: k (the top k as \"score:index:label\"); binary_data: true"),
})
v2_request = Model("V2InferenceRequest", {
    "id": fields.String(description="Echoed in the answer"),
    # What the server enforces, so that no schema-valid request is refused for a reason the spec hides.
    "inputs": fields.List(fields.Nested(v2_input), required=True, min_items=1, max_items=1,
                          description="One input: {\"name\": \"image\", \"datatype\": \"BYTES\", \"shape\": [N], "
                          "\"data\": [\"<base64 image>\", ...]} or {\"name\": \"tensor\", \"datatype\": \"FP32\", "
                          "\"shape\": [N, H, W, C], \"data\": [...]}; with the binary extension, \"parameters\": "
                          "{\"binary_data_size\": n} and the data after the JSON (Inference-Header-Content-Length)"),
    "outputs": fields.List(fields.Nested(v2_output), description="[{\"name\": \"scores\", \"parameters\": "
                           "{\"classification\": k, \"binary_data\": true}}]"),
    "parameters": fields.Raw(description="binary_data_output: every output as binary data; priority (Triton's: 1 "
                                         "highest, 2 normal, 3 low, 0 the default); timeout in microseconds "
                                         "(past it before inference: 504, not run)"),
})

batch_prediction = Model("BatchPrediction", {
    "results": fields.List(AnyValue, required=True, description="Per image, in upload order: its `filename` and "
                           "either the fields of a Prediction or its own error (`error`, `message`, `status`)",
                           example=[{"filename": "a.png", "label": "7", "confidence": 0.99, "predictions": []},
                                    {"filename": "b.txt", "error": "invalid_image", "message": "...", "status": 400}]),
    "model": fields.String(required=True, example="digits"),
    "version": fields.Integer(required=True, example=1),
})

explanation = Model("Explanation", {
    "label": fields.String(required=True, description="The label explained (the top one unless asked)", example="7"),
    "baseline_confidence": fields.Float(required=True, description="Its score on the whole image", example=0.99),
    "measure": fields.String(required=True, enum=["confidence", "log_odds"], description="What the grid measures"),
    "shape": fields.List(fields.Integer, required=True, description="Rows, columns of the grid", example=[8, 8]),
    "grid": fields.List(fields.List(fields.Float), required=True,
                        description="Per cell, row by row: the drop in the label's confidence (or log-odds) when "
                                    "that cell is occluded (negative: the label gains)"),
    "passes": fields.Integer(required=True, description="Forward passes run, the whole image included",
                             example=65),
    "occlusion": fields.String(description="What a cell is replaced with", example="mean colour"),
    "model": fields.String(required=True, example="digits"),
    "version": fields.Integer(required=True, example=1),
})
