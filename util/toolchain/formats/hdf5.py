"""A full model in one HDF5 file (`model.save("x.h5")`), written by tf.keras 2 or Keras 3."""
from __future__ import annotations

import json

from util.errors import ModelLoadError
from util.serve.spec import ModelSpec
from util.toolchain.formats.keras_source import KerasSource
from util.toolchain.inspect import load_error, refuse_unservable


def load(spec: ModelSpec) -> KerasSource:
    import h5py
    try:
        with h5py.File(spec.source, "r") as f:
            config, version = f.attrs.get("model_config"), str(f.attrs.get("keras_version", ""))
    except OSError as exc:
        raise ModelLoadError(spec.path, f"{spec.source.name} is not a readable HDF5 file: {exc}") from None
    if config is None:
        raise ModelLoadError(spec.path, f"{spec.source.name} holds weights only (no model_config); add model.json "
                                        "(model.to_json()) or save the whole model with model.save()")
    refuse_unservable(json.loads(config if isinstance(config, str) else config.decode()), spec.path)
    legacy = version.startswith("2.")
    try:
        if legacy:
            import tf_keras
            model = tf_keras.models.load_model(str(spec.source), compile=False)
        else:
            import keras
            model = keras.models.load_model(str(spec.source), compile=False)
    except Exception as exc:  # Keras raises many types for a bad file
        raise load_error(exc, spec.path, spec.source.name) from None
    try:
        return KerasSource(model, "tf.keras 2" if legacy else "keras 3")
    except ValueError as exc:
        raise ModelLoadError(spec.path, str(exc)) from None
