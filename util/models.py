"""saved_models/ discovery, model metadata, and Keras loading (Keras 3, else legacy tf.keras 2).

Discovery and metadata are cheap and TensorFlow-free; only `load_keras` imports TensorFlow,
and only the compiler and the Keras runtime call it.
"""
from __future__ import annotations

import json
import re
import shutil
import tempfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from util.errors import ModelLoadError
from util.image import Preprocessing

NAME_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]*$")
ARCHITECTURE = "model.json"
LABELS = "labels.txt"
METADATA = "model.yaml"
ARTIFACT = "model.tflite"
MANIFEST = "model.tflite.json"
METADATA_KEYS = {"title", "description", "preprocessing", "batching"}
BATCHING_KEYS = {"max_batch_size": (int, 1), "max_batch_delay_ms": (float, 0)}  # key -> (type, minimum)


@dataclass(frozen=True)
class ModelSpec:
    """One servable model version on disk and what its model.yaml says about it."""

    name: str
    version: int
    path: Path
    weights: Path
    labels: tuple[str, ...]
    title: str
    description: str
    preprocessing: Preprocessing
    batching: dict[str, Any] = field(default_factory=dict)

    @property
    def architecture(self) -> Path:
        return self.path / ARCHITECTURE

    @property
    def artifact(self) -> Path:
        return self.path / ARTIFACT

    @property
    def manifest(self) -> Path:
        return self.path / MANIFEST

    @property
    def sources(self) -> tuple[Path, Path]:
        return (self.architecture, self.weights)


def discover(models_dir: str | Path) -> list[ModelSpec]:
    """Every model under `models_dir`, highest version of each, sorted by name."""
    root = Path(models_dir)
    if not root.is_dir():
        raise ModelLoadError(root, "the models directory does not exist")
    specs = []
    for entry in sorted(root.iterdir()):
        if entry.is_dir() and not entry.name.startswith((".", "_")):
            specs.append(read_spec(entry))
    return specs


def version_dir(model_dir: Path) -> tuple[int, Path]:
    """The highest numbered version directory, or the directory itself as version 1."""
    versions = [(int(d.name), d) for d in model_dir.iterdir() if d.is_dir() and d.name.isdigit()]
    return max(versions) if versions else (1, model_dir)


def read_spec(model_dir: Path) -> ModelSpec:
    """Read and validate a model directory's files, naming the directory in every error."""
    if not NAME_RE.match(model_dir.name):
        raise ModelLoadError(model_dir, "model names may hold letters, digits, '.', '_' and '-' only")
    version, path = version_dir(model_dir)
    if not (path / ARCHITECTURE).is_file():
        raise ModelLoadError(path, f"missing {ARCHITECTURE} (the output of model.to_json())")
    try:
        json.loads((path / ARCHITECTURE).read_text())
    except (ValueError, UnicodeDecodeError) as exc:
        raise ModelLoadError(path, f"{ARCHITECTURE} is not valid JSON: {exc}") from None
    labels = read_labels(path)
    meta = read_metadata(path)
    try:
        preprocessing = Preprocessing.from_dict(meta.get("preprocessing"))
    except (TypeError, ValueError) as exc:
        raise ModelLoadError(path, f"{METADATA}: {exc}") from None
    batching = meta.get("batching") or {}
    if not isinstance(batching, dict) or not all(
            k in BATCHING_KEYS and isinstance(v, (int, float)) and not isinstance(v, bool) and v >= BATCHING_KEYS[k][1]
            for k, v in batching.items()):
        raise ModelLoadError(path, f"{METADATA}: batching takes max_batch_size (>= 1) and max_batch_delay_ms (>= 0)")
    return ModelSpec(
        name=model_dir.name, version=version, path=path, weights=find_weights(path), labels=labels,
        title=str(meta.get("title") or model_dir.name), description=str(meta.get("description") or ""),
        preprocessing=preprocessing, batching={k: BATCHING_KEYS[k][0](v) for k, v in batching.items()})


def find_weights(path: Path) -> Path:
    """`weights.h5`, else the single other `*.h5` file of the directory."""
    if (path / "weights.h5").is_file():
        return path / "weights.h5"
    candidates = sorted(p for p in path.glob("*.h5") if p.is_file())
    if len(candidates) != 1:
        found = ", ".join(p.name for p in candidates) or "none"
        raise ModelLoadError(path, f"expected one weights file (weights.h5 or *.weights.h5), found {found}")
    return candidates[0]


def read_labels(path: Path) -> tuple[str, ...]:
    file = path / LABELS
    if not file.is_file():
        raise ModelLoadError(path, f"missing {LABELS} (one label per line, in output order)")
    labels = tuple(line.strip() for line in file.read_text(encoding="utf-8").splitlines() if line.strip())
    if not labels:
        raise ModelLoadError(path, f"{LABELS} is empty")
    return labels


def read_metadata(path: Path) -> dict[str, Any]:
    file = path / METADATA
    if not file.is_file():
        return {}
    try:
        meta = yaml.safe_load(file.read_text(encoding="utf-8")) or {}
    except yaml.YAMLError as exc:
        raise ModelLoadError(path, f"{METADATA} is not valid YAML: {exc}") from None
    if not isinstance(meta, dict):
        raise ModelLoadError(path, f"{METADATA} must be a mapping")
    unknown = set(meta) - METADATA_KEYS
    if unknown:
        raise ModelLoadError(path, f"{METADATA} has unknown keys {sorted(unknown)}; known: {sorted(METADATA_KEYS)}")
    return meta


def check_outputs(spec: ModelSpec, units: int) -> None:
    """The output layer and labels.txt must agree, or every answer would be mislabelled."""
    if units != len(spec.labels):
        raise ModelLoadError(spec.path, f"{LABELS} has {len(spec.labels)} labels but the model outputs {units} values")


def is_legacy_json(config: dict[str, Any]) -> bool:
    """tf.keras 2.x JSON records its version; Keras 3 JSON does not (or says 3.x)."""
    return str(config.get("keras_version", "3")).startswith("2.")


def load_keras(spec: ModelSpec) -> Any:
    """Build the architecture and load the weights with Keras 3 or, for 2.x JSON, tf_keras."""
    text = spec.architecture.read_text()
    legacy = is_legacy_json(json.loads(text))
    try:
        if legacy:
            import tf_keras
            model = tf_keras.models.model_from_json(text)
        else:
            import keras
            model = keras.models.model_from_json(text)
    except Exception as exc:  # Keras raises many types for a bad config
        raise ModelLoadError(spec.path, f"{ARCHITECTURE} does not describe a loadable model: {exc}") from None
    try:
        _load_weights(model, spec.weights, legacy)
    except Exception as exc:
        raise ModelLoadError(spec.path, f"{spec.weights.name} does not fit the architecture: {exc}") from None
    check_outputs(spec, int(model.outputs[0].shape[-1]))
    return model


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
