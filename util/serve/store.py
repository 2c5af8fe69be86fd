"""Where the models live: a local directory, or an S3 prefix mirrored into a local cache.

The registry asks a store for `models()` (name -> local directory) at every look, and reads
those directories under `reading()`; versions, polling and hot reload never know which store
it is. A local directory holds one directory per model; with MODEL_NAME set (KServe copies
one model's files to /mnt/models) it holds that one model, as files or version directories.
"""
from __future__ import annotations

import fcntl
import os
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any, Protocol

from util.errors import ModelLoadError
from util.serve.spec import model_dirs

MARKER = "published.json"  # written last by `flask models publish`: a version exists once it is there


class Store(Protocol):
    """What the registry needs of a model store."""

    url: str
    error: str | None  # why the store could not be read at the last look (what is cached keeps serving)
    pending: dict[str, dict[int, str]]  # versions in the store that are not served, by model: why

    def models(self) -> dict[str, Path]:
        """Look at the store (fetching what changed) and return every model's local directory."""
        ...

    def reading(self) -> Any:
        """A context in which the local directories do not change (loading reads them)."""
        ...


class LocalStore:
    """MODELS_DIR on this machine, read in place."""

    def __init__(self, root: str | Path, single: str = "") -> None:
        self.url, self.root, self.single = str(root), Path(root), single
        self.error: str | None = None
        self.pending: dict[str, dict[int, str]] = {}

    def models(self) -> dict[str, Path]:
        if self.single:  # KServe: MODELS_DIR is the model itself
            if not self.root.is_dir():
                raise ModelLoadError(self.root, "the models directory does not exist")
            return {self.single: self.root}
        return {d.name: d for d in model_dirs(self.root)}

    @contextmanager
    def reading(self) -> Iterator[None]:
        yield  # files are the operator's: nothing of ours rewrites them


class CacheLock:
    """A file lock on a cache directory, shared between the workers (and threads) of this machine:
    exclusive while the cache is written, shared while it is read."""

    def __init__(self, root: Path) -> None:
        root.mkdir(parents=True, exist_ok=True)
        self.path = root / ".lock"

    @contextmanager
    def hold(self, exclusive: bool) -> Iterator[None]:
        fd = os.open(self.path, os.O_CREAT | os.O_RDWR, 0o600)  # one descriptor per holder: threads exclude too
        try:
            fcntl.flock(fd, fcntl.LOCK_EX if exclusive else fcntl.LOCK_SH)
            yield
        finally:
            os.close(fd)  # closing releases the lock


def default_cache_dir() -> Path:
    return Path(tempfile.gettempdir()) / "keras-serve-models"


def open_store(settings: dict[str, Any]) -> Store:
    """The store MODELS_DIR names: `s3://bucket/prefix` or a directory."""
    url = str(settings["MODELS_DIR"])
    if url.startswith("s3://"):
        from util.serve.s3store import S3Store  # obstore only where a store asks for it
        return S3Store(url, Path(settings["MODEL_CACHE_DIR"] or default_cache_dir()))
    if "://" in url:
        raise ValueError(f"MODELS_DIR must be a directory or s3://bucket/prefix, not {url!r}")
    return LocalStore(url, settings["MODEL_NAME"])
