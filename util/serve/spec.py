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

import yaml

from util.errors import ModelLoadError
from util.serve.image import Preprocessing
from util.serve.outputs import KINDS

NAME_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]*$")
ARCHITECTURE = "model.json"
LABELS = "labels.txt"
METADATA = "model.yaml"
ARTIFACT = "model.tflite"
MANIFEST = "model.tflite.json"
SAMPLES = "samples"
SAVED_MODEL = "saved_model.pb"
POLICY_KEYS = {"versions", "default_version"}  # in <name>/model.yaml (the version's own for an unversioned model)
METADATA_KEYS = {"title", "description", "preprocessing", "batching", "output", "threshold", "quantize",
                 "quantize_min_agreement"} | POLICY_KEYS
QUANTIZE = ("none", "float16", "int8")
BATCHING_KEYS = {"max_batch_size": (int, 1), "max_batch_delay_ms": (float, 0)}  # key -> (type, minimum)
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


@dataclass(frozen=True)
class VersionPolicy:
    """Which versions of a model to serve (`versions: latest | all | [1, 2]`) and the default one."""

    versions: str | tuple[int, ...] = "latest"
    default_version: int | None = None

    def wanted(self, available: list[int]) -> list[int]:
        """The versions to serve out of those on disk, ascending."""
        if self.versions == "latest":
            return available[-1:]
        if self.versions == "all":
            return list(available)
        return [v for v in available if v in self.versions]


def read_policy(model_dir: Path) -> VersionPolicy:
    """`versions` and `default_version` from <name>/model.yaml."""
    meta = read_metadata(model_dir)
    versions = meta.get("versions", "latest")
    if isinstance(versions, list) and versions and all(
            isinstance(v, int) and not isinstance(v, bool) and v >= 0 for v in versions):
        versions = tuple(sorted(set(versions)))
    elif versions not in ("latest", "all"):
        raise ModelLoadError(model_dir, f"{METADATA}: versions must be latest, all or a list of version numbers, "
                                        f"not {versions!r}")
    default = meta.get("default_version")
    if default is not None and (isinstance(default, bool) or not isinstance(default, int)):
        raise ModelLoadError(model_dir, f"{METADATA}: default_version must be a version number, not {default!r}")
    return VersionPolicy(versions, default)


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
    meta = read_metadata(path)
    raw = meta.get("preprocessing") or {}
    try:
        preprocessing = Preprocessing.from_dict(raw)
    except (TypeError, ValueError) as exc:
        raise ModelLoadError(path, f"{METADATA}: {exc}") from None
    batching = meta.get("batching") or {}
    if not isinstance(batching, dict) or not all(
            k in BATCHING_KEYS and isinstance(v, (int, float)) and not isinstance(v, bool) and v >= BATCHING_KEYS[k][1]
            for k, v in batching.items()):
        raise ModelLoadError(path, f"{METADATA}: batching takes max_batch_size (>= 1) and max_batch_delay_ms (>= 0)")
    output = meta.get("output")
    if output is not None and output not in KINDS:
        raise ModelLoadError(path, f"{METADATA}: output must be one of {list(KINDS)}, not {output!r}")
    threshold = meta.get("threshold", 0.5)
    if isinstance(threshold, bool) or not isinstance(threshold, (int, float)) or not 0 <= threshold <= 1:
        raise ModelLoadError(path, f"{METADATA}: threshold must be a number from 0 to 1, not {threshold!r}")
    quantize = meta.get("quantize", "none")
    if quantize not in QUANTIZE:
        raise ModelLoadError(path, f"{METADATA}: quantize must be one of {list(QUANTIZE)}, not {quantize!r}")
    agreement = meta.get("quantize_min_agreement", 0.99)
    if isinstance(agreement, bool) or not isinstance(agreement, (int, float)) or not 0 <= agreement <= 1:
        raise ModelLoadError(path, f"{METADATA}: quantize_min_agreement must be from 0 to 1, not {agreement!r}")
    return ModelSpec(
        name=name, version=version, published=published is not None, path=path, format=kind, source=source,
        weights=weights,
        labels=labels, title=str(meta.get("title") or name),
        description=str(meta.get("description") or ""), preprocessing=preprocessing, explicit=frozenset(raw),
        batching={k: BATCHING_KEYS[k][0](v) for k, v in batching.items()}, output=output,
        threshold=float(threshold), quantize=quantize, quantize_min_agreement=float(agreement))


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
