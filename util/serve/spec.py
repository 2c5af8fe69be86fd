"""saved_models/ discovery: which save format a version directory holds, its labels and model.yaml.

Cheap and TensorFlow-free: the web process reads this at start-up. Loading the model
itself is the tool chain's business (util/toolchain/formats/).
"""
from __future__ import annotations

import json
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from util.errors import ModelLoadError
from util.serve.image import Preprocessing
from util.serve.metadata import METADATA, Monitoring, read_metadata

NAME_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]*$")
ARCHITECTURE = "model.json"
LABELS = "labels.txt"
ARTIFACT = "model.tflite"
MANIFEST = "model.tflite.json"
SAMPLES = "samples"
SAVED_MODEL = "saved_model.pb"
# Save format -> how people make it; the README's "Bring your model" table mirrors this.
FORMATS = {
    "json": "model.to_json() + save_weights(): model.json and a weights .h5",
    "hdf5": "model.save('x.h5'): a full model in one HDF5 file (tf.keras 2 or Keras 3)",
    "keras": "model.save('x.keras'): a Keras 3 archive",
    "savedmodel": "tf.keras 2 model.save('dir') or Keras 3 model.export('dir'): a TensorFlow SavedModel",
    "tflite": "a .tflite you converted yourself: served as is, unverified",
}


@dataclass(frozen=True)
class ModelSpec:
    """One servable model version on disk and what its model.yaml says about it."""

    name: str
    version: int
    path: Path
    format: str
    source: Path  # the file (or SavedModel directory) the model is read from
    labels: tuple[str, ...]
    title: str
    description: str
    preprocessing: Preprocessing
    explicit: frozenset[str] = frozenset()  # preprocessing keys model.yaml set itself
    weights: Path | None = None  # the weights file of the `json` format
    batching: dict[str, Any] = field(default_factory=dict)
    output: str | None = None  # model.yaml's override of the detected output kind
    threshold: float = 0.5
    quantize: str = "none"
    quantize_min_agreement: float = 0.99
    monitoring: Monitoring = field(default_factory=Monitoring)  # low-confidence threshold, drift window
    published: bool = False  # compiled files only (from a store or a KServe copy): no sources to compile

    @property
    def artifact(self) -> Path:
        return self.source if self.format == "tflite" or self.published else self.path / ARTIFACT

    @property
    def manifest(self) -> Path:
        return self.path / MANIFEST

    @property
    def samples(self) -> Path:
        return self.path / SAMPLES

    @property
    def sources(self) -> tuple[Path, ...]:
        """Every file the served model is derived from (hashed to tell a stale artifact)."""
        if self.published:
            return ()
        if self.format == "json":
            assert self.weights is not None  # read_spec finds the weights of every json version
            return (self.source, self.weights)
        if self.format == "savedmodel":  # the version directory itself may be the SavedModel
            ours = {ARTIFACT, MANIFEST, LABELS, METADATA}
            return tuple(sorted(p for p in self.source.rglob("*") if p.is_file() and not (
                p.parent == self.path and (p.name in ours or p.name.startswith(".")))
                and SAMPLES not in p.relative_to(self.path).parts[:1]))
        return (self.source,)


def discover(models_dir: str | Path) -> list[ModelSpec]:
    """Every model under `models_dir`, highest version of each, sorted by name."""
    return [read_spec(entry) for entry in model_dirs(models_dir)]


def model_dirs(models_dir: str | Path) -> list[Path]:
    """The model directories under `models_dir` (hidden and `_` ones skipped), sorted by name."""
    root = Path(models_dir)
    if not root.is_dir():
        raise ModelLoadError(root, "the models directory does not exist")
    return [entry for entry in sorted(root.iterdir()) if entry.is_dir() and not entry.name.startswith((".", "_"))]


def version_dirs(model_dir: Path) -> dict[int, Path]:
    """Numbered version directories by number, or the directory itself as version 1."""
    versions = {int(d.name): d for d in model_dir.iterdir() if d.is_dir() and d.name.isdigit()}
    return dict(sorted(versions.items())) or {1: model_dir}


def version_dir(model_dir: Path, version: int | None = None) -> tuple[int, Path]:
    """One version directory (the highest by default)."""
    versions = version_dirs(model_dir)
    number = max(versions) if version is None else version
    if number not in versions:
        raise ModelLoadError(model_dir, f"no version {number} (found {', '.join(map(str, versions))})")
    return number, versions[number]


def detect_format(path: Path) -> tuple[str, Path, Path | None]:
    """(format, source, weights) from the files present; two candidate formats are an error."""
    files = [p for p in sorted(path.iterdir()) if not p.name.startswith(".")]
    h5 = [p for p in files if p.is_file() and p.suffix.lower() in {".h5", ".hdf5"}]
    candidates: list[tuple[str, Path]] = []
    if (path / ARCHITECTURE).is_file():
        candidates.append(("json", path / ARCHITECTURE))
    else:
        candidates += [("hdf5", p) for p in h5 if not p.name.endswith(".weights.h5")]
    candidates += [("keras", p) for p in files if p.is_file() and p.suffix == ".keras"]
    if (path / SAVED_MODEL).is_file():
        candidates.append(("savedmodel", path))
    candidates += [("savedmodel", p) for p in files if p.is_dir() and (p / SAVED_MODEL).is_file()]
    if not candidates:
        tflite = [p for p in files if p.is_file() and p.suffix == ".tflite"]
        if len(tflite) == 1:
            return "tflite", tflite[0], None
        if h5:
            raise ModelLoadError(path, f"{h5[0].name} holds weights only; add {ARCHITECTURE} (model.to_json()) "
                                       "or save the whole model (model.save('model.keras'))")
        raise ModelLoadError(path, "no model found: expected model.json + weights, a full-model .h5, a .keras "
                                   "archive, a SavedModel directory or a single .tflite")
    if len(candidates) > 1:
        names = " and ".join(_shown(path, p) for _, p in candidates)
        raise ModelLoadError(path, f"two candidate models, {names}: keep one per version directory")
    kind, source = candidates[0]
    return kind, source, find_weights(path, h5) if kind == "json" else None


def _shown(path: Path, p: Path) -> str:
    return (p.name + "/" + SAVED_MODEL) if p.is_dir() and p != path else (SAVED_MODEL if p == path else p.name)


def find_weights(path: Path, h5: list[Path]) -> Path:
    """`weights.h5`, else the single other `*.h5` file of the directory."""
    if (path / "weights.h5").is_file():
        return path / "weights.h5"
    if len(h5) != 1:
        found = ", ".join(p.name for p in h5) or "none"
        raise ModelLoadError(path, f"expected one weights file (weights.h5 or *.weights.h5), found {found}")
    return h5[0]


def published_format(path: Path, source: Path) -> str | None:
    """The save format a compiled-only version came from (its manifest says), or None for a bare .tflite."""
    if source.name != ARTIFACT or not (path / MANIFEST).is_file():
        return None
    try:
        saved = json.loads((path / MANIFEST).read_text()).get("save_format")
    except (OSError, ValueError, AttributeError):
        return None
    return saved if saved in FORMATS and saved != "tflite" else None


def read_spec(model_dir: Path, version: int | None = None, name: str | None = None) -> ModelSpec:
    """Read and validate one version's files (the highest by default), naming the directory in every error.

    `name` is the model's name where it is not the directory's (KServe's one-model directory)."""
    name = name or model_dir.name
    if not NAME_RE.match(name):
        raise ModelLoadError(model_dir, "model names may hold letters, digits, '.', '_' and '-' only")
    version, path = version_dir(model_dir, version)
    kind, source, weights = detect_format(path)
    published = None
    if kind == "tflite":  # model.tflite + a compiler's manifest and no sources: published, not bare
        published = published_format(path, source)
        kind = published or kind
    if kind == "json" and not published:
        try:
            json.loads(source.read_text())
        except (ValueError, UnicodeDecodeError) as exc:
            raise ModelLoadError(path, f"{ARCHITECTURE} is not valid JSON: {exc}") from None
    labels = read_labels(path)
    meta, raw = read_metadata(path)
    preprocessing = meta.preprocessing or Preprocessing()
    return ModelSpec(
        name=name, version=version, published=published is not None, path=path, format=kind, source=source,
        weights=weights,
        labels=labels, title=meta.title or name, description=meta.description or "", preprocessing=preprocessing,
        explicit=frozenset(raw.get("preprocessing") or {}), batching=meta.batching.given() if meta.batching else {},
        output=meta.output, threshold=meta.threshold, quantize=meta.quantize,
        quantize_min_agreement=meta.quantize_min_agreement, monitoring=meta.monitoring or Monitoring())


def read_labels(path: Path) -> tuple[str, ...]:
    file = path / LABELS
    if not file.is_file():
        raise ModelLoadError(path, f"missing {LABELS} (one label per line, in output order)")
    labels = tuple(line.strip() for line in file.read_text(encoding="utf-8").splitlines() if line.strip())
    if not labels:
        raise ModelLoadError(path, f"{LABELS} is empty")
    return labels
