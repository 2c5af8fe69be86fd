"""`flask models publish NAME... --to s3://bucket/prefix`: compiled versions into a model store.

Each version the model's policy serves is compiled if stale, then its compiled files
(artifact, manifest, labels, model.yaml, samples) are uploaded under
`<prefix>/<model>/<version>/`, and `published.json` (every file with its size and sha256)
last: readers (util/serve/s3store.py) see a version only once that marker is there, and
fetch exactly what it lists. Files whose ETag already matches are not sent again.
"""
from __future__ import annotations

import hashlib
import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

from util.errors import ModelLoadError
from util.serve.artifacts import artifact_status
from util.serve.probes import sample_files
from util.serve.s3store import split_url
from util.serve.spec import LABELS, MANIFEST, METADATA, ModelSpec
from util.serve.store import MARKER


def version_files(spec: ModelSpec) -> dict[str, Path]:
    """What a reader needs to serve the version, by name relative to the version directory."""
    files = {LABELS: spec.path / LABELS, spec.artifact.name: spec.artifact, MANIFEST: spec.manifest}
    if (spec.path / METADATA).is_file():
        files[METADATA] = spec.path / METADATA
    files.update({f"samples/{p.name}": p for p in sample_files(spec.samples)})
    return files


def _md5(data: bytes) -> str:
    return '"' + hashlib.md5(data, usedforsecurity=False).hexdigest() + '"'  # a single-part upload's ETag


class Publisher:
    """Uploads versions to one store URL, skipping files the store already holds."""

    def __init__(self, url: str, echo: Callable[[str], None]) -> None:
        self.url, self.echo = url, echo
        self.bucket, self.prefix = split_url(url)
        # boto3, on the machine that publishes: every AWS credential source, ~/.aws profiles included.
        import boto3
        self.s3 = boto3.client("s3")
        self.etags = {item["Key"]: item["ETag"] for page in self.s3.get_paginator("list_objects_v2").paginate(
            Bucket=self.bucket, Prefix=self.prefix) for item in page.get("Contents", [])}

    def put(self, key: str, data: bytes) -> bool:
        """Upload unless the store holds the same bytes; True when sent."""
        if self.etags.get(self.prefix + key) == _md5(data):
            return False
        self.s3.put_object(Bucket=self.bucket, Key=self.prefix + key, Body=data)
        return True

    def version(self, spec: ModelSpec) -> None:
        """Upload one compiled version, its marker last."""
        state, manifest = artifact_status(spec)
        if state != "fresh" or not manifest or manifest.get("runtime") != "tflite":
            why = (manifest or {}).get("fallback_reason") or f"model.tflite is {state}"
            raise ModelLoadError(spec.path, f"nothing to publish: {why} (the server needs a verified model.tflite)")
        files = version_files(spec)
        base = f"{spec.name}/{spec.version}/"
        listed: dict[str, Any] = {}
        sent = 0
        for name, path in files.items():
            data = path.read_bytes()
            listed[name] = {"bytes": len(data), "sha256": hashlib.sha256(data).hexdigest()}
            sent += self.put(base + name, data)
        marker = {"model": spec.name, "version": spec.version, "artifact_sha256": listed[spec.artifact.name]["sha256"],
                  "compiled_at": manifest.get("compiled_at"), "files": listed}
        sent += self.put(base + MARKER, (json.dumps(marker, indent=1, sort_keys=True) + "\n").encode())
        self.echo(f"{spec.name} v{spec.version}: {len(files) + 1} files at {self.url.rstrip('/')}/{base} "
                  f"({sent} uploaded, {len(files) + 1 - sent} unchanged); {MARKER} written last")

    def policy(self, name: str, model_dir: Path, spec_dirs: set[Path]) -> None:
        """The model's own model.yaml (versions policy), once its versions are there."""
        if (model_dir not in spec_dirs and (model_dir / METADATA).is_file()
                and self.put(f"{name}/{METADATA}", (model_dir / METADATA).read_bytes())):
            self.echo(f"{name}: {METADATA} (versions policy) uploaded")
