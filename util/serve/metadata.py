"""model.yaml declared: every key it may hold, its type and its rule (README "Bring your model").

One file serves two readers: `<name>/model.yaml` gives the versions policy, a version's own
model.yaml the rest (an unversioned model's one file gives both).
"""
from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Annotated, Any, Literal

import yaml
from msgspec import Meta, Struct, structs

from util.errors import ModelLoadError
from util.schemas import SchemaError, convert, rule, unknown_keys
from util.serve.image import Preprocessing
from util.serve.outputs import Kind

METADATA = "model.yaml"
BATCHING = "batching takes max_batch_size (>= 1) and max_batch_delay_ms (>= 0)"
MONITORING = "monitoring takes low_confidence (a number from 0 to 1) and window (an integer from 1 to 100000)"
Versions = Annotated[Literal["latest", "all"] | Annotated[tuple[Annotated[int, Meta(ge=0)], ...], Meta(min_length=1)],
                     rule("versions must be latest, all or a list of version numbers")]
DefaultVersion = Annotated[int | None, rule("default_version must be a version number")]
Fraction = Annotated[float, Meta(ge=0, le=1)]


class VersionPolicy(Struct, frozen=True):
    """Which versions of a model to serve (`versions: latest | all | [1, 2]`) and the default one."""

    versions: Versions = "latest"
    default_version: DefaultVersion = None

    def wanted(self, available: list[int]) -> list[int]:
        """The versions to serve out of those on disk, ascending."""
        if self.versions == "latest":
            return available[-1:]
        if self.versions == "all":
            return list(available)
        return [v for v in available if v in self.versions]


class Batching(Struct, frozen=True, forbid_unknown_fields=True):
    """model.yaml `batching`: this model's own MAX_BATCH_SIZE and MAX_BATCH_DELAY_MS."""

    max_batch_size: Annotated[int, Meta(ge=1)] | None = None
    max_batch_delay_ms: Annotated[float, Meta(ge=0)] | None = None

    def given(self) -> dict[str, Any]:
        """The keys model.yaml set (the others follow the settings)."""
        return {k: v for k, v in structs.asdict(self).items() if v is not None}


class Monitoring(Struct, frozen=True, forbid_unknown_fields=True):
    """model.yaml `monitoring`: the low-confidence threshold and the drift window (util/serve/monitor.py)."""

    low_confidence: Fraction = 0.5  # a top-1 confidence below this counts as a low-confidence answer
    window: Annotated[int, Meta(ge=1, le=100_000)] = 500  # answers in the baseline and in the sliding window


class ModelYaml(Struct, frozen=True, forbid_unknown_fields=True):
    """A version's model.yaml (and the policy keys, which read_policy reads from the model's own)."""

    title: str | None = None
    description: str | None = None
    preprocessing: Preprocessing | None = None
    batching: Annotated[Batching | None, rule(BATCHING, inner=True)] = None
    monitoring: Annotated[Monitoring | None, rule(MONITORING, inner=True)] = None
    output: Kind | None = None  # overrides the output kind read off the model
    threshold: Annotated[Fraction, rule("threshold must be a number from 0 to 1")] = 0.5
    quantize: Literal["none", "float16", "int8"] = "none"
    quantize_min_agreement: Annotated[Fraction, rule("quantize_min_agreement must be a number from 0 to 1")] = 0.99
    versions: Versions = "latest"
    default_version: DefaultVersion = None


def read_yaml(path: Path) -> dict[str, Any]:
    """The mapping in `path`/model.yaml ({} without one), every unknown key refused."""
    file = path / METADATA
    if not file.is_file():
        return {}
    try:
        meta = yaml.safe_load(file.read_text(encoding="utf-8")) or {}
    except yaml.YAMLError as exc:
        raise ModelLoadError(path, f"{METADATA} is not valid YAML: {exc}") from None
    if not isinstance(meta, dict):
        raise ModelLoadError(path, f"{METADATA} must be a mapping")
    with _naming(path):
        unknown_keys(meta, ModelYaml)
    return meta


def read_metadata(path: Path) -> tuple[ModelYaml, dict[str, Any]]:
    """A version's model.yaml, declared and raw (the raw one tells which keys it set itself)."""
    raw = read_yaml(path)
    with _naming(path):
        return convert(raw, ModelYaml), raw


def read_policy(model_dir: Path) -> VersionPolicy:
    """`versions` and `default_version` from <name>/model.yaml (its other keys are a version's business)."""
    raw = read_yaml(model_dir)
    with _naming(model_dir):
        return convert(raw, VersionPolicy)


@contextmanager
def _naming(path: Path) -> Iterator[None]:
    """A value that breaks its declared rule: a ModelLoadError naming the directory and the file."""
    try:
        yield
    except SchemaError as exc:
        raise ModelLoadError(path, f"{METADATA}: {exc}") from None
