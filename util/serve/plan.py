"""How a model is served: the image size, the pixel scaling and the output kind, with the reason for each.

Decided once from the model's own facts (in its manifest, read off the model at compile
time) and model.yaml, which wins where it speaks. The compiler verifies with the same plan
the server uses, so what was checked is what is served.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from msgspec import structs

from util.errors import ModelLoadError
from util.serve.image import Preprocessing
from util.serve.outputs import Outputs, check_kind, detect_kind
from util.serve.spec import METADATA, ModelSpec

DEFAULT_SIZE = (224, 224)


@dataclass(frozen=True)
class Plan:
    image_shape: tuple[int, int, int]  # (height, width, channels) the image pipeline produces
    tensor_shape: tuple[int, ...]  # the model's input without the batch axis: (H, W) or (H, W, C)
    size_from: str
    preprocessing: Preprocessing
    scale_from: str
    outputs: Outputs
    output_from: str
    warnings: tuple[str, ...] = ()

    def to_dict(self) -> dict[str, Any]:
        return {"image_shape": list(self.image_shape), "size_from": self.size_from,
                "scale": self.preprocessing.scale, "scale_from": self.scale_from,
                "output": self.outputs.kind, "output_from": self.output_from,
                "threshold": self.outputs.threshold if self.outputs.multilabel else None,
                "warnings": list(self.warnings)}


def make_plan(spec: ModelSpec, facts: dict[str, Any]) -> Plan:
    """The serving plan for `spec` given the model facts of its manifest; ModelLoadError if none fits."""
    try:
        return _plan(spec, facts)
    except ValueError as exc:
        raise ModelLoadError(spec.path, str(exc)) from None


def _plan(spec: ModelSpec, facts: dict[str, Any]) -> Plan:
    dims = list(facts["model_input"])
    warnings: list[str] = []
    if len(dims) == 2:  # (H, W): greyscale images whose channel axis the model leaves out
        dims.append(1)
    if len(dims) != 3 or dims[2] not in (1, 3):
        raise ValueError(f"the model's input shape {facts['model_input']} is not an image: expected "
                         "(height, width), (height, width, 1) or (height, width, 3)")
    height, width, channels = dims
    own = spec.preprocessing.size
    if height is None or width is None:
        if own and any(fixed is not None and fixed != wanted
                       for fixed, wanted in zip((height, width), own, strict=True)):
            raise ValueError(f"{METADATA} preprocessing.size {list(own)} differs from the model's fixed side "
                             f"(input {facts['model_input']}); give the fixed side its own value")
        size, size_from = (own, f"{METADATA} preprocessing.size") if own else (
            DEFAULT_SIZE, f"default {DEFAULT_SIZE[0]}x{DEFAULT_SIZE[1]}: the model accepts any size; "
                          f"set preprocessing.size: [height, width] in {METADATA} to choose")
        height, width = height or size[0], width or size[1]
    else:
        size_from = "model"
        if own and tuple(own) != (height, width):
            raise ValueError(f"{METADATA} preprocessing.size {list(own)} differs from the model's fixed input "
                             f"{height}x{width}; remove it")
    in_model = facts.get("preprocessing_in_model")
    preprocessing = spec.preprocessing
    if "scale" in spec.explicit:
        scale_from = METADATA
        if in_model and preprocessing.scale != "raw":
            warnings.append(f"the model scales its own pixels ({in_model}) and {METADATA} sets scale: "
                            f"{preprocessing.scale}, so pixels are scaled twice; remove `scale` unless intended")
    elif in_model:
        preprocessing, scale_from = structs.replace(preprocessing, scale="raw"), f"model ({in_model})"
    elif spec.format == "tflite":
        scale_from = ("default: a .tflite cannot show whether it scales its own pixels (the converter folds "
                      f"that into the first layer); set preprocessing.scale in {METADATA} if it does")
        warnings.append(f"scale is {preprocessing.scale} by default; {scale_from.split('; ')[-1]}")
    else:
        scale_from = "default"
    output = facts["output"]
    if spec.output:
        kind, output_from = spec.output, METADATA
    else:
        kind, output_from = detect_kind(output["activation"], output["units"]), f"model ({output['detected_from']})"
    check_kind(kind, output["units"], len(spec.labels))
    tensor = (height, width) if len(facts["model_input"]) == 2 else (height, width, channels)
    return Plan(image_shape=(height, width, channels), tensor_shape=tensor, size_from=size_from,
                preprocessing=preprocessing, scale_from=scale_from, outputs=Outputs(kind, spec.threshold),
                output_from=output_from, warnings=tuple(warnings))
