"""`model.json` (model.to_json()) + a weights .h5, written by Keras 3 or tf.keras 2."""
from __future__ import annotations

import json
import shutil
import tempfile
from pathlib import Path
from typing import Any

from util.errors import ModelLoadError
from util.serve.spec import ModelSpec
from util.toolchain.formats.keras_source import KerasSource
from util.toolchain.inspect import load_error, refuse_unservable


def is_legacy(config: dict[str, Any]) -> bool:
    """tf.keras 2.x JSON records its version; Keras 3 JSON does not (or says 3.x)."""
    return str(config.get("keras_version", "3")).startswith("2.")


def load(spec: ModelSpec) -> KerasSource:
    text = spec.source.read_text()
    try:
        config = json.loads(text)
    except ValueError as exc:
        raise ModelLoadError(spec.path, f"{spec.source.name} is not valid JSON: {exc}") from None
    refuse_unservable(config, spec.path)
    legacy = is_legacy(config)
    try:
        if legacy:
            import tf_keras
            model = tf_keras.models.model_from_json(text)
        else:
            import keras
            model = keras.models.model_from_json(text)
    except Exception as exc:  # Keras raises many types for a bad config
        raise load_error(exc, spec.path, spec.source.name) from None
    assert spec.weights is not None
    try:
        _load_weights(model, spec.weights, legacy)
    except Exception as exc:
        raise ModelLoadError(spec.path, f"{spec.weights.name} does not fit the architecture: {exc}") from None
    try:
        return KerasSource(model, "tf.keras 2" if legacy else "keras 3")
    except ValueError as exc:
        raise ModelLoadError(spec.path, str(exc)) from None


def _load_weights(model: Any, weights: Path, legacy: bool) -> None:
    # Keras 3 picks the reader by suffix: `.weights.h5` is its own format, plain `.h5` the
    # legacy one. Files are named freely here, so sniff the layout and give it the right name.
    import h5py
    with h5py.File(weights, "r") as f:
        keras3_layout = "layer_names" not in f.attrs and "model_weights" not in f
    if legacy or not keras3_layout or weights.name.endswith(".weights.h5"):
        model.load_weights(str(weights))
        return
    with tempfile.TemporaryDirectory() as tmp:
        renamed = Path(tmp) / "model.weights.h5"
        shutil.copyfile(weights, renamed)
        model.load_weights(str(renamed))
