"""A Keras 3 archive (`model.save("x.keras")`): config.json + weights in a zip."""
from __future__ import annotations

import json
import zipfile

from util.errors import ModelLoadError
from util.serve.spec import ModelSpec
from util.toolchain.formats.keras_source import KerasSource
from util.toolchain.inspect import load_error, refuse_unservable


def load(spec: ModelSpec) -> KerasSource:
    try:
        with zipfile.ZipFile(spec.source) as archive:
            config = json.loads(archive.read("config.json"))
    except (OSError, KeyError, ValueError, zipfile.BadZipFile) as exc:
        raise ModelLoadError(spec.path, f"{spec.source.name} is not a Keras 3 archive: {exc}") from None
    refuse_unservable(config, spec.path)
    import keras
    try:
        model = keras.models.load_model(str(spec.source), compile=False)  # safe_mode: no Lambda bytecode
    except Exception as exc:  # Keras raises many types for a bad archive
        raise load_error(exc, spec.path, spec.source.name) from None
    try:
        return KerasSource(model, "keras 3")
    except ValueError as exc:
        raise ModelLoadError(spec.path, str(exc)) from None
