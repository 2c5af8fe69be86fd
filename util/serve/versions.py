"""Model versions side by side, and picking up new ones while serving (MODEL_POLL_SECONDS).

A `ModelGroup` is one model name: the versions it serves, its default, and the versions that
failed to load. `refresh_group` compares each wanted version's files with what was loaded
(a signature of names, sizes and modification times) and loads what changed *next to* what
serves; only a version that loaded replaces anything, so a broken or half-copied version
never takes over from a good one. Readers see whole dictionaries swapped in one assignment,
and a request already holding the old version finishes on it.
"""
from __future__ import annotations

import logging
import os
from collections.abc import Callable
from pathlib import Path
from typing import Any

from util.errors import ModelLoadError, VersionNotFound
from util.serve.metadata import METADATA, VersionPolicy, read_policy
from util.serve.spec import read_spec, version_dirs

log = logging.getLogger(__name__)
Signature = tuple[tuple[str, int, int], ...]


def signature(path: Path, model_dir: Path) -> Signature:
    """(relative name, size, mtime) of every file of a version, and of the model's own model.yaml."""
    files = [model_dir / METADATA] if path != model_dir else []
    for root, dirs, names in os.walk(path):
        dirs.sort()
        files += [Path(root) / n for n in sorted(names)]
    found = []
    for file in files:
        try:
            st = file.stat()
        except OSError:  # removed while we looked: the next poll sees the new state
            continue
        found.append((str(file.relative_to(model_dir)), st.st_size, st.st_mtime_ns))
    return tuple(found)


class ModelGroup:
    """One model name and its served versions."""

    def __init__(self, name: str, model_dir: Path) -> None:
        self.name, self.dir = name, model_dir
        self.policy = VersionPolicy()
        self.versions: dict[int, Any] = {}  # version -> ServedModel, replaced whole on every change
        self.failures: dict[int, str] = {}  # version -> why it is not served
        self.error: str | None = None  # why the model directory itself cannot be read (model.yaml)
        self.pending: dict[int, str] = {}  # versions the store holds but does not offer yet (unpublished)
        self.loaded_from: dict[int, Signature] = {}  # what each served version was loaded from
        self.failed_on: dict[int, Signature] = {}  # what each failure was seen on (logged once per change)

    def default(self) -> Any:
        """The version answering `/<name>/prediction`: default_version if served, else the highest."""
        if not self.versions:
            raise ModelLoadError(self.dir, "; ".join(f"v{v}: {m}" for v, m in self.failures.items())
                                 or "no version is served")
        wanted = self.policy.default_version
        return self.versions[wanted if wanted in self.versions else max(self.versions)]

    def get(self, version: int) -> Any:
        """A served version, or a 404 naming the served ones."""
        served = self.versions.get(version)
        if served is None:
            listed = ", ".join(str(v) for v in self.versions) or "none"
            why = f" ({self.failures[version]})" if version in self.failures else ""
            raise VersionNotFound(f"model {self.name} does not serve version {version}{why}; served: {listed}")
        return served

    def states(self) -> list[dict[str, Any]]:
        """Each known version: serving (and whether it is the default) or failed, with the reason."""
        default = self.default().spec.version if self.versions else None
        rows = [{"version": v, "state": "serving", "default": v == default} for v in self.versions]
        failed = {**self.pending, **self.failures}
        rows += [{"version": v, "state": "failed", "default": False, "error": m}
                 for v, m in failed.items() if v not in self.versions]
        return sorted(rows, key=lambda r: r["version"])


def refresh_group(group: ModelGroup, make: Callable[[Any], Any]) -> None:
    """Bring `group` to what its directory holds now.

    `make(spec)` returns a ServedModel (loaded, except at start-up before the fork) or raises.
    When no wanted version can serve and nothing serves yet, the newest older version that
    can serve does: at start as in hot reload, one bad version is never an outage."""
    try:
        group.policy = read_policy(group.dir)
        on_disk = version_dirs(group.dir)
    except (ModelLoadError, OSError) as exc:
        if group.error != str(exc):
            log.error("model %s: %s; still serving %s", group.name, exc,
                      ", ".join(f"v{v}" for v in group.versions) or "nothing")
        group.error = str(exc)
        return
    group.error = None
    wanted = group.policy.wanted(list(on_disk))
    served = dict(group.versions)
    for version in sorted(wanted, reverse=True):  # newest first: with `latest`, one version is wanted
        seen = signature(on_disk[version], group.dir)
        if group.loaded_from.get(version) == seen or group.failed_on.get(version) == seen:
            continue  # unchanged since it loaded, or since it failed
        _make(group, version, on_disk[version], make, served, seen)
    keep = set(wanted) & set(served)
    if not keep:  # nothing wanted loads (`latest` broken, or removed): keep serving what did
        keep = set(served) & set(on_disk) or set(served)
    if not keep:  # nothing serves at all: the newest older version that can
        for version in sorted(set(on_disk) - set(wanted), reverse=True):
            seen = signature(on_disk[version], group.dir)
            if group.failed_on.get(version) != seen and _make(group, version, on_disk[version], make, served, seen):
                keep = {version}
                log.warning("model %s: serving v%d, the newest version that loads", group.name, version)
                break
    served = {v: m for v, m in sorted(served.items()) if v in keep}
    dropped = [m for v, m in group.versions.items() if served.get(v) is not m]
    group.versions = served
    for gone in set(group.loaded_from) - set(served):
        group.loaded_from.pop(gone)
    for version in list(group.failures):  # forgotten: gone, or no longer wanted while a wanted one serves
        if version not in on_disk or (version not in wanted and set(wanted) & set(served)):
            group.failures.pop(version)
            group.failed_on.pop(version, None)
    for model in dropped:
        model.close()  # requests still holding it finish on it; a batcher answers what it queued


def _make(group: ModelGroup, version: int, path: Path, make: Callable[[Any], Any], served: dict[int, Any],
          seen: Signature) -> bool:
    """Make one version into `served`; a failure is recorded instead (and what serves keeps serving)."""
    try:
        served[version] = make(read_spec(group.dir, version, group.name))
    except Exception as exc:  # any failure keeps what serves: a bad version never replaces a good one
        _failed(group, version, str(exc), seen)
        return False
    # Compiling may have written the artifact: remember the files as they are after loading.
    group.loaded_from[version] = signature(path, group.dir)
    group.failures.pop(version, None)
    group.failed_on.pop(version, None)
    return True


def load_group(group: ModelGroup, make: Callable[[Any], Any]) -> None:
    """Load the versions made before the fork; one that fails is reported and dropped, and when no
    wanted version is left the newest older version that loads serves (`make` loads)."""
    on_disk = version_dirs(group.dir)
    for version, model in list(group.versions.items()):
        if model.ready:
            continue
        path = on_disk[version]
        try:
            model.load()
        except Exception as exc:
            group.versions = {v: m for v, m in group.versions.items() if v != version}
            group.loaded_from.pop(version, None)
            _failed(group, version, str(exc), signature(path, group.dir))
            continue
        group.loaded_from[version] = signature(path, group.dir)  # loading may have compiled
    if not set(group.versions) & set(group.policy.wanted(list(on_disk))):
        refresh_group(group, make)


def _failed(group: ModelGroup, version: int, message: str, seen: Signature) -> None:
    if group.failures.get(version) != message:  # once per failure, not once per poll
        log.error("model %s v%d not loaded, still serving %s: %s", group.name, version,
                  ", ".join(f"v{v}" for v in group.versions) or "nothing", message)
    group.failures[version], group.failed_on[version] = message, seen
