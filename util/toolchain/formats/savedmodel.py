"""A TensorFlow SavedModel directory (tf.keras 2 `model.save("dir")`, Keras 3 `model.export("dir")`).

Read through its serving signature, which is what TensorFlow Serving would call: the
reference outputs come from the signature and the flatbuffer is converted from it.
"""
from __future__ import annotations

from typing import Any

import numpy as np

from util.errors import ModelLoadError
from util.serve.graph import graph_facts
from util.serve.spec import ModelSpec

SIGNATURE = "serving_default"
PIXEL_OPS = {"Mul", "RealDiv", "Div", "Sub", "AddV2", "Add"}
PASS_THROUGH = {"Identity", "Cast"}
CALLS = {"StatefulPartitionedCall", "PartitionedCall"}


class SavedModelSource:
    keras_format = "tensorflow saved_model"

    def __init__(self, spec: ModelSpec) -> None:
        import tensorflow as tf
        self.spec = spec
        try:
            self._loaded = tf.saved_model.load(str(spec.source))
        except Exception as exc:  # TensorFlow raises many types for a bad directory
            raise ModelLoadError(spec.path, f"the SavedModel in {spec.source.name} could not be loaded: "
                                            f"{str(exc).strip().splitlines()[0]}") from None
        signatures = dict(self._loaded.signatures)
        if SIGNATURE not in signatures:
            raise ModelLoadError(spec.path, f"the SavedModel has no '{SIGNATURE}' signature (it has "
                                            f"{sorted(signatures) or 'none'}); save it with model.export() or "
                                            "tf.saved_model.save(..., signatures=...)")
        self._fn = signatures[SIGNATURE]
        inputs = self._fn.structured_input_signature[1]
        outputs = self._fn.structured_outputs
        if len(inputs) != 1 or len(outputs) != 1:
            raise ModelLoadError(spec.path, f"the '{SIGNATURE}' signature has {len(inputs)} inputs and "
                                            f"{len(outputs)} outputs; one of each is served")
        (self._input, spec_in), = inputs.items()
        self._output = next(iter(outputs))
        self._input_shape = [None if d is None else int(d) for d in spec_in.shape[1:]]
        self._flatbuffer: bytes | None = None

    def facts(self) -> dict[str, Any]:
        # No Keras layers to read here: the converted graph tells the output activation, and the
        # TensorFlow graph the pixel scaling (the converter folds a Rescaling into the first conv).
        facts = graph_facts(self.convert())
        facts["model_input"] = self._input_shape
        graph = self._fn.graph.as_graph_def()
        library = {f.signature.name: f for f in graph.library.function}
        found = _pixel_op(list(graph.node), self._input, library, 0)
        facts["preprocessing_in_model"] = f"TensorFlow graph: {found} on the input pixels" if found else None
        return facts

    def reference(self, batch: np.ndarray) -> np.ndarray:
        import tensorflow as tf
        return np.asarray(self._fn(**{self._input: tf.constant(batch, tf.float32)})[self._output])

    def convert(self, quantize: str = "none", representative: np.ndarray | None = None) -> bytes:
        import tensorflow as tf

        from util.toolchain.quantize import configure
        if quantize == "none" and self._flatbuffer is not None:
            return self._flatbuffer
        converter = tf.lite.TFLiteConverter.from_saved_model(str(self.spec.source), signature_keys=[SIGNATURE])
        configure(converter, quantize, representative)
        flatbuffer = converter.convert()
        if quantize == "none":
            self._flatbuffer = flatbuffer
        return flatbuffer


def _pixel_op(nodes: list[Any], name: str, library: dict[str, Any], depth: int) -> str | None:
    """The element-wise op applied first to tensor `name`, following calls into functions."""
    if depth > 20:
        return None
    for node in nodes:
        for position, source in enumerate(node.input):
            if source.startswith("^") or source.split(":")[0] != name:
                continue
            if node.op in PASS_THROUGH:
                found = _pixel_op(nodes, node.name, library, depth + 1)
            elif node.op in CALLS and node.attr["f"].func.name in library:
                function = library[node.attr["f"].func.name]
                found = _pixel_op(list(function.node_def), function.signature.input_arg[position].name, library,
                                  depth + 1)
            else:
                found = f"{node.op} '{node.name}'" if node.op in PIXEL_OPS else None
            if found:
                return found
    return None


def load(spec: ModelSpec) -> SavedModelSource:
    return SavedModelSource(spec)
