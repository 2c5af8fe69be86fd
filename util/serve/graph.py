"""Model facts read off a TFLite flatbuffer (no TensorFlow): for bare .tflite models and SavedModels,
which carry no Keras layers to inspect. LiteRT checks the model and gives the input and output
tensors; the op list is read from the flatbuffer with the `tflite` package (the schema's Python
bindings): the model's own ops, before any delegate folds them (LiteRT lists ops only privately).
"""
from __future__ import annotations

from typing import Any

# Ops that only move or relabel values between the activation and the output tensor.
PASS_THROUGH = {"RESHAPE", "SQUEEZE", "QUANTIZE", "DEQUANTIZE", "IDENTITY"}
ACTIVATIONS = {"SOFTMAX": "softmax", "LOGISTIC": "sigmoid"}
# Element-wise arithmetic applied to the pixels first: a Rescaling / Normalization layer.
PIXEL_MATHS = {"MUL", "DIV", "SUB", "ADD"}


def graph_facts(model: bytes) -> dict[str, Any]:
    """{"model_input", "output": {units, activation, detected_from}, "preprocessing_in_model"}."""
    from ai_edge_litert.interpreter import Interpreter, OpResolverType

    # Without delegates: only to check that LiteRT takes the model and to read its tensors' details.
    interpreter = Interpreter(model_content=model,
                              experimental_op_resolver_type=OpResolverType.BUILTIN_WITHOUT_DEFAULT_DELEGATES)
    inputs, outputs = interpreter.get_input_details(), interpreter.get_output_details()
    if len(inputs) != 1 or len(outputs) != 1:
        raise ValueError(f"the model has {len(inputs)} inputs and {len(outputs)} outputs; one of each is served")
    ops = operators(model)
    producer = {t: op for op in ops for t in op["outputs"]}
    tensor, op = outputs[0]["index"], None
    while (op := producer.get(tensor)) is not None and op["op_name"] in PASS_THROUGH:
        tensor = op["inputs"][0]
    name = op["op_name"] if op else "none"
    first = next((o["op_name"] for o in ops if inputs[0]["index"] in o["inputs"]), None)
    signature = [int(d) for d in inputs[0]["shape_signature"][1:]]
    return {
        "model_input": [None if d < 0 else d for d in signature],
        "output": {"units": int(outputs[0]["shape_signature"][-1]), "activation": ACTIVATIONS.get(name, "linear"),
                   "detected_from": f"tflite graph: last op {name}"},
        "preprocessing_in_model": f"tflite graph: {first} on the input pixels" if first in PIXEL_MATHS else None,
    }


def operators(model: bytes) -> list[dict[str, Any]]:
    """The main subgraph's ops in order: {"op_name", "inputs", "outputs"} (tensor indices, as LiteRT numbers them)."""
    import tflite

    root = tflite.Model.GetRootAsModel(model, 0)
    graph = root.Subgraphs(0)
    found = []
    for i in range(graph.OperatorsLength()):
        op = graph.Operators(i)
        code = root.OperatorCodes(op.OpcodeIndex())
        # Codes above 127 live only in BuiltinCode; older files only fill DeprecatedBuiltinCode.
        number = max(code.BuiltinCode(), code.DeprecatedBuiltinCode())
        name = tflite.opcode2name(number) if number != tflite.BuiltinOperator.CUSTOM else "CUSTOM"
        found.append({"op_name": name, "inputs": [op.Inputs(j) for j in range(op.InputsLength())],
                      "outputs": [op.Outputs(j) for j in range(op.OutputsLength())]})
    return found
