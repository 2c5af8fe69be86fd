"""Models from S3 (or any S3-compatible store, through AWS_ENDPOINT_URL), mirrored into a local cache.

The client is obstore (object_store's Rust S3 client): chosen by measurement over boto3, minio
and opendal for its RSS in each worker and its size in the slug (README "Models from S3").
Layout under the prefix: `<model>/model.yaml` (policy, optional) and `<model>/<version>/` with the
compiled files `flask models publish` uploads, `published.json` last. A version exists for
readers only once `published.json` is there; it lists every file with its size and sha256, and
a version is fetched whole into a staging directory, checked against that list, and swapped
into the cache in one rename. Each look is one listing: what kept its ETag is not fetched again.
If the store cannot be read, the cache keeps serving and the error is reported.
"""
from __future__ import annotations

import datetime as dt
import json
import logging
import os
import shutil
import uuid
from pathlib import Path
from typing import TYPE_CHECKING, Any

from util.serve.artifacts import sha256
from util.serve.store import MARKER, CacheLock

if TYPE_CHECKING:  # obstore is imported where a store is used, not when this module is
    from obstore.store import ClientConfig, RetryConfig
    from obstore.store import S3Store as ObjectStore

log = logging.getLogger(__name__)
STATE = ".store.json"  # per cached version (and model): the ETags it was fetched at
COMPILED = ("model.tflite", "model.tflite.json")


def split_url(url: str) -> tuple[str, str]:
    """s3://bucket/prefix -> (bucket, "prefix/") ("" for the whole bucket)."""
    bucket, _, prefix = url[len("s3://"):].partition("/")
    if not bucket:
        raise ValueError(f"MODELS_DIR {url!r} names no bucket (s3://bucket/prefix)")
    prefix = prefix.strip("/")
    return bucket, f"{prefix}/" if prefix else ""


def client(bucket: str) -> ObjectStore:
    """An obstore S3 store for `bucket` from the standard AWS settings: AWS_ENDPOINT_URL(_S3), AWS_REGION,
    credentials from the environment, web identity (Kubernetes), container or instance metadata."""
    from obstore.store import S3Store as ObjectStore
    endpoint = os.environ.get("AWS_ENDPOINT_URL_S3") or os.environ.get("AWS_ENDPOINT_URL") or ""
    # obstore refuses plain HTTP unless told; an operator who names an http:// endpoint has told us.
    options: ClientConfig = {"connect_timeout": "5s", "timeout": "120s", "allow_http": endpoint.startswith("http://")}
    # Few, short retries: a poll against a store that is down must fail in seconds, not minutes.
    retry: RetryConfig = {"max_retries": 2, "retry_timeout": dt.timedelta(seconds=15),
             "backoff": {"init_backoff": dt.timedelta(milliseconds=200), "max_backoff": dt.timedelta(seconds=2),
                         "base": 2}}
    return ObjectStore.from_url(f"s3://{bucket}", client_options=options, retry_config=retry)


class S3Store:
    """MODELS_DIR=s3://bucket/prefix, fetched into MODEL_CACHE_DIR."""

    def __init__(self, url: str, cache_dir: Path) -> None:
        self.url = url
        self.bucket, self.prefix = split_url(url)
        self.root = cache_dir / "s3" / self.bucket / self.prefix
        self.lock = CacheLock(self.root)
        self.error: str | None = None
        self.pending: dict[str, dict[int, str]] = {}
        self._client: Any = None
        self._pid = 0

    def _s3(self) -> Any:
        # One per process, made after the fork: obstore's runtime, once used, does not survive a fork.
        if self._pid != os.getpid():
            self._client, self._pid = client(self.bucket), os.getpid()
        return self._client

    def reading(self) -> Any:
        return self.lock.hold(exclusive=False)

    def models(self) -> dict[str, Path]:
        from obstore.exceptions import BaseError
        with self.lock.hold(exclusive=True):
            try:
                self._sync(self._list())
                self.error = None
            except (BaseError, OSError) as exc:  # unreachable, refused, no such bucket, no credentials
                if self.error != str(exc):
                    log.error("model store %s unreachable, serving from the cache %s: %s", self.url, self.root, exc)
                self.error = f"model store {self.url} unreachable: {exc}"
        return {d.name: d for d in sorted(self.root.iterdir()) if d.is_dir() and not d.name.startswith(".")}

    def _list(self) -> dict[str, tuple[str, int]]:
        """Every object under the prefix: relative key -> (ETag, size)."""
        import obstore
        found = {}
        for batch in obstore.list(self._s3(), prefix=self.prefix):
            for item in batch:
                found[item["path"][len(self.prefix):]] = (item["e_tag"] or "", int(item["size"]))
        return found

    def _sync(self, objects: dict[str, tuple[str, int]]) -> None:
        tree: dict[str, dict[int, set[str]]] = {}
        for key in objects:
            parts = key.split("/")
            if len(parts) >= 3 and parts[1].isdigit() and not parts[0].startswith((".", "_")):
                tree.setdefault(parts[0], {}).setdefault(int(parts[1]), set()).add("/".join(parts[2:]))
            elif len(parts) == 2 and parts[1] == "model.yaml":
                tree.setdefault(parts[0], {})
        self.pending = {}
        for model, versions in tree.items():
            self._sync_model(model, versions, objects)
        for gone in {d.name for d in self.root.iterdir() if d.is_dir() and not d.name.startswith(".")} - set(tree):
            log.info("model %s removed from %s", gone, self.url)
            shutil.rmtree(self.root / gone, ignore_errors=True)

    def _sync_model(self, model: str, versions: dict[int, set[str]], objects: dict[str, tuple[str, int]]) -> None:
        local = self.root / model
        local.mkdir(exist_ok=True)
        policy = objects.get(f"{model}/model.yaml")
        state = _read_state(local)
        if policy is None:
            (local / "model.yaml").unlink(missing_ok=True)
        elif state.get("model.yaml") != policy[0]:
            self._fetch(f"{model}/model.yaml", local / "model.yaml")
            _write_state(local, {"model.yaml": policy[0]})
        for version, files in versions.items():
            if MARKER not in files:
                self._unpublished(model, version, files)
                continue  # a copy already cached keeps serving (a version being published again)
            try:
                self._sync_version(model, version, objects)
            except ValueError as exc:  # incomplete or changing under us: the next look tries again
                self.pending.setdefault(model, {})[version] = str(exc)
        for cached in [d for d in local.iterdir() if d.is_dir() and d.name.isdigit()]:
            if int(cached.name) not in versions:
                shutil.rmtree(cached, ignore_errors=True)

    def _unpublished(self, model: str, version: int, files: set[str]) -> None:
        command = f"flask --app application models publish {model} --to {self.url}"
        why = (f"upload incomplete: no {MARKER} yet (an upload in progress, or stopped)"
               if all(f in files for f in COMPILED) else
               f"no compiled artifact ({', '.join(sorted(files)[:4])}); run `{command}` where its sources and "
               "requirements-dev.txt are")
        self.pending.setdefault(model, {})[version] = f"not published: {why}"

    def _sync_version(self, model: str, version: int, objects: dict[str, tuple[str, int]]) -> None:
        base, target = f"{model}/{version}/", self.root / model / str(version)
        marker_etag = objects[base + MARKER][0]
        state = _read_state(target)
        if state.get(MARKER) == marker_etag:
            return  # published once and not since
        marker = json.loads(self._get(base + MARKER))
        listed: dict[str, dict[str, Any]] = marker["files"]
        for name, facts in listed.items():
            if objects.get(base + name, ("", -1))[1] != facts["bytes"]:
                raise ValueError(f"not published: {name} is missing or of another size than {MARKER} says")
        staging = self.root / f".staging-{uuid.uuid4().hex[:8]}"
        try:
            fetched = {}
            for name, facts in listed.items():
                dest = staging / name
                dest.parent.mkdir(parents=True, exist_ok=True)
                etag = objects[base + name][0]
                if state.get("files", {}).get(name) == etag and (target / name).is_file():
                    shutil.copy2(target / name, dest)  # unchanged since the last fetch
                else:
                    self._fetch(base + name, dest)
                if sha256(dest) != facts["sha256"]:
                    raise ValueError(f"{name} changed while it was fetched (published again?)")
                fetched[name] = etag
            _write_state(staging, {MARKER: marker_etag, "files": fetched})
            (staging / MARKER).write_text(json.dumps(marker))
            trash = self.root / f".trash-{uuid.uuid4().hex[:8]}"
            if target.exists():
                target.rename(trash)
            staging.rename(target)  # readers hold the shared lock: none is reading now
            shutil.rmtree(trash, ignore_errors=True)
            log.info("model %s v%d fetched from %s (%d files)", model, version, self.url, len(listed))
        finally:
            shutil.rmtree(staging, ignore_errors=True)

    def _get(self, key: str) -> bytes:
        import obstore
        return bytes(obstore.get(self._s3(), self.prefix + key).bytes())

    def _fetch(self, key: str, dest: Path) -> None:
        import obstore
        tmp = dest.with_name(dest.name + ".part")
        with tmp.open("wb") as f:
            # 1 MiB chunks: the default 10 MiB ones doubled the peak RSS of a download (README "Models from S3").
            for chunk in obstore.get(self._s3(), self.prefix + key).stream(min_chunk_size=1 << 20):
                f.write(chunk)
        tmp.replace(dest)


def _read_state(folder: Path) -> dict[str, Any]:
    try:
        return json.loads((folder / STATE).read_text())
    except (OSError, ValueError):
        return {}


def _write_state(folder: Path, state: dict[str, Any]) -> None:
    folder.mkdir(parents=True, exist_ok=True)
    (folder / STATE).write_text(json.dumps(state))
