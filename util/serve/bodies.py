"""Request bodies of TensorFlow Serving's REST API and the Open Inference Protocol (V2), declared.

What each protocol module (api/tfserving.py, api/openinference.py) reads from a body, with the
rule a person reads when a field breaks it. Keys a body adds beyond these are ignored, as
TensorFlow Serving and KServe ignore them.
"""
from __future__ import annotations

from typing import Annotated, Any, Final, Literal, TypeVar

import msgspec
from msgspec import UNSET, Meta, Struct

from util.errors import InvalidParameter
from util.schemas import SchemaError, convert, rule

INPUT = "image"  # TF Serving: the name of the model's one input in requests and metadata
OUTPUT: Final = "scores"  # V2: the one output
INPUTS = ("an inference request has \"inputs\": a list with one input, \"image\" (BYTES) or \"tensor\" "
          "(FP32)")
Body = TypeVar("Body", bound=Struct)


class TFPredict(Struct):
    """TF Serving's predict: `instances` (row format) or `inputs` (columnar format), not both."""

    signature_name: str | None = None  # one signature: ignored
    instances: Any = UNSET
    inputs: Any = UNSET

    def rows(self) -> tuple[list[Any], bool]:
        """Every instance, and whether they came in row format (the answer's key says so)."""
        if (self.instances is UNSET) == (self.inputs is UNSET):
            raise InvalidParameter("give either \"instances\" (row format) or \"inputs\" (columnar format), not both")
        row_format = self.instances is not UNSET
        rows = self.instances if row_format else self.inputs
        if not row_format and isinstance(rows, dict) and set(rows) == {INPUT}:
            rows = rows[INPUT]  # columnar with the input named
        return (rows if isinstance(rows, list) else [rows]), row_format  # not a list: a single instance


class TFClassify(Struct):
    """TF Serving's classify: examples with an `image` feature, and features every example shares."""

    examples: Annotated[list[dict[str, Any]],
                        rule(f"\"examples\" must be a list of objects, each with an \"{INPUT}\" feature")]
    context: Annotated[dict[str, Any] | None, rule("\"context\" must be an object of features")] = None
    signature_name: str | None = None

    def rows(self) -> list[Any]:
        """The `image` feature of each example (its own, or the context's)."""
        context, rows = self.context or {}, []
        for example in self.examples:
            if set(example) & set(context):
                raise InvalidParameter("a feature given in \"context\" must not appear in an example")
            features = {**context, **example}
            if INPUT not in features:
                raise InvalidParameter(f"each example needs the \"{INPUT}\" feature ({{\"b64\": \"<base64 image>\"}})")
            rows.append(features[INPUT])
        return rows


class InputParameters(Struct):
    """A V2 input's parameters: the binary tensor data extension's size."""

    binary_data_size: Annotated[Annotated[int, Meta(ge=0)] | None, rule(
        "binary_data_size must be the length in bytes of the binary data after the JSON header")] = None


class V2Input(Struct):
    """The one V2 input: `image` (BYTES, encoded images) or `tensor` (FP32, preprocessed), the batch first."""

    name: Annotated[Literal["image", "tensor"], rule("the input must be named \"image\" (BYTES) or \"tensor\" (FP32)")]
    shape: Annotated[list[Annotated[int, Meta(ge=0)]],
                     rule("an input's shape is a list of sizes, the batch first", min_length=1)]
    datatype: Annotated[Literal["BYTES", "FP32"], rule("an input's datatype is BYTES (\"image\") or FP32 (\"tensor\")")]
    data: Any = None  # base64 strings or numbers; absent with binary data
    parameters: Annotated[InputParameters | None, rule("the input's \"parameters\" must be an object")] = None


class OutputParameters(Struct):
    """A V2 output's parameters: the classification extension's k, and binary data."""

    classification: Annotated[int, Meta(ge=1)] | None = None
    binary_data: bool | None = None  # None: as the request's binary_data_output says


class V2Output(Struct):
    """An output asked for: `scores`, or with `classification: k` the top k of each row."""

    name: Annotated[Literal["scores"], rule(f"the one output is \"{OUTPUT}\"")] = OUTPUT
    parameters: Annotated[OutputParameters | None, rule("the output's \"parameters\" must be an object")] = None


class RequestParameters(Struct):
    """A V2 request's parameters: every output as binary data; Triton's priority and timeout."""

    binary_data_output: bool = False
    priority: Annotated[int, rule("\"priority\" is an integer from 0 (the default) to 3 (1 = highest)",
                                  ge=0, le=3)] = 0
    timeout: Annotated[int, rule("\"timeout\" is an integer number of microseconds above 0", gt=0)] | None = None


class V2Request(Struct):
    """An Open Inference Protocol inference request (its JSON header, with the binary extension)."""

    inputs: Annotated[list[V2Input], rule(INPUTS, min_length=1, max_length=1)]
    id: str | None = None  # echoed in the answer
    outputs: Annotated[list[V2Output] | None, rule(f"\"outputs\" is a list of {{\"name\": \"{OUTPUT}\"}}")] = None
    parameters: Annotated[RequestParameters | None, rule("the request's \"parameters\" must be an object")] = None


def tf_body(data: Any, kind: type[Body]) -> Body:
    """A TF Serving body (parsed JSON) as `kind`, or a 400 that names the field."""
    if not isinstance(data, dict):
        raise InvalidParameter("the body must be a JSON object")
    try:
        return convert(data, kind)
    except SchemaError as exc:
        raise InvalidParameter(str(exc)) from None


def v2_body(head: bytes) -> V2Request:
    """A V2 inference request from its JSON header, or a 400 that names the field."""
    try:
        data = msgspec.json.decode(head)
    except msgspec.DecodeError:
        raise InvalidParameter("the inference request header is not valid JSON") from None
    if not isinstance(data, dict):
        raise InvalidParameter(INPUTS)
    try:
        return convert(data, V2Request)
    except SchemaError as exc:
        raise InvalidParameter(str(exc)) from None
