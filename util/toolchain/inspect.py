"""What a Keras model says about itself: its last activation, pixel scaling inside it, and what
cannot be served (Lambda layers, custom classes the tool chain cannot rebuild).
"""
from __future__ import annotations

import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from util.errors import ModelLoadError

# Identity at inference (and in the converted graph): skipped when looking for the first real layer.
AUGMENTATION_PREFIXES = ("Random",)
GEOMETRY = {"InputLayer", "Resizing", "CenterCrop"}
# Layers (tf.keras 2 records tf.math ops as TFOpLambda; Keras 3 ops as operations) that scale pixels.
PIXEL_LAYERS = {"Rescaling", "Normalization", "TFOpLambda", "TrueDivide", "Divide", "Multiply", "Subtract", "Add"}
# Between the activation and the output: these keep a probability a probability.
PASS_THROUGH = {"Reshape", "Flatten", "Dropout", "Identity", "GlobalAveragePooling1D", "GlobalAveragePooling2D",
                "GlobalAveragePooling3D", "SpatialDropout2D", "ActivityRegularization"}
EXPORT_HINT = ("rebuild that part from built-in Keras layers, or export the model as a TensorFlow SavedModel "
               "(Keras 3: model.export('dir'); tf.keras 2: model.save('dir')), which carries the computation as a "
               "graph and needs no Python code, and put that directory in the version directory instead")


def _producer(tensor: Any) -> Any:
    history = getattr(tensor, "_keras_history", None)
    return None if history is None else (getattr(history, "operation", None) or getattr(history, "layer", None))


def last_activation(model: Any) -> tuple[str, str]:
    """(activation name, where it was found) of the layer that produces the model's output."""
    layer = _producer(model.outputs[0]) or model.layers[-1]
    while True:
        cls = type(layer).__name__
        if hasattr(layer, "layers") and hasattr(layer, "outputs"):  # a nested model: its own last layer
            layer = _producer(layer.outputs[0]) or layer.layers[-1]
            continue
        if cls in PASS_THROUGH:
            previous = _producer(layer.input)
            if previous is None:
                return "linear", f"keras layer '{layer.name}' ({cls})"
            layer = previous
            continue
        break
    where = f"keras layer '{layer.name}' ({cls})"
    if cls == "Softmax":
        return "softmax", where
    activation = getattr(layer, "activation", None)
    if activation is None:
        return "linear", where
    name = getattr(activation, "__name__", None) or str(activation)
    return name, where


def preprocessing_layer(model: Any) -> str | None:
    """The layer that scales pixels when the model begins with one (looking inside nested models)."""
    found = _first_real_layer(model)
    return found if isinstance(found, str) else None


def _first_real_layer(model: Any) -> str | bool:
    """A description of the pixel-scaling layer; False at the first other layer; True if none met yet."""
    for layer in getattr(model, "layers", []):
        cls = type(layer).__name__
        if cls in GEOMETRY or cls.startswith(AUGMENTATION_PREFIXES):
            continue
        if hasattr(layer, "layers"):
            inner = _first_real_layer(layer)
            if inner is True:  # only augmentation inside: keep looking
                continue
            return f"{inner} in '{layer.name}'" if isinstance(inner, str) else False
        if cls in PIXEL_LAYERS:
            return f"{cls} layer '{layer.name}'"
        return False
    return True


def _walk(config: Any) -> Iterator[dict[str, Any]]:
    if isinstance(config, dict):
        if "class_name" in config:
            yield config
        for value in config.values():
            yield from _walk(value)
    elif isinstance(config, list):
        for value in config:
            yield from _walk(value)


def refuse_unservable(config: Any, path: Path) -> None:
    """Raise ModelLoadError for a Lambda layer or an unregistered custom class in a Keras config."""
    for node in _walk(config):
        name = (node.get("config") or {}).get("name") if isinstance(node.get("config"), dict) else None
        if node["class_name"] == "Lambda":
            raise ModelLoadError(path, f"layer '{name}' is a Lambda layer (class Lambda): its Python code is not "
                                       f"part of the saved model and cannot be compiled safely; {EXPORT_HINT}")
        module = node.get("module")
        if isinstance(module, str) and module.split(".")[0] not in {"keras", "builtins"}:
            import keras
            if keras.saving.get_registered_object(node.get("registered_name") or node["class_name"]) is None:
                raise ModelLoadError(path, f"layer '{name}' is of the custom class {node['class_name']} "
                                           f"(from {module}), which is not registered here; {EXPORT_HINT}")


UNKNOWN_CLASS = re.compile(r"(?:Could not locate class|Unknown layer|Unknown object|Unknown activation"
                           r"|Unknown class|Could not deserialize)[:\s]*'?`?(?:[\w]+\.)*(\w+)")


def load_error(exc: Exception, path: Path, what: str) -> ModelLoadError:
    """A loader's exception as a load error that names the class and what to do."""
    text = str(exc)
    if "Lambda" in text and "deserializ" in text:
        return ModelLoadError(path, f"{what} holds a Lambda layer (class Lambda); {EXPORT_HINT}")
    match = UNKNOWN_CLASS.search(text)
    if match:
        return ModelLoadError(path, f"{what} uses the class {match.group(1)}, which is neither built into Keras nor "
                                    f"registered here; {EXPORT_HINT}")
    first = text.strip().splitlines()[0] if text.strip() else type(exc).__name__
    return ModelLoadError(path, f"{what} could not be loaded: {first}")
