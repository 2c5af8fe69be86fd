"""Served models: a spec + a runtime + preprocessing + top-k, and the registry of all of them.

Runtimes are created by `load()`, which gunicorn calls after fork (gunicorn.conf.py) so no
interpreter is shared between processes; elsewhere the first request or readiness probe does.
"""
from __future__ import annotations

import logging
import threading
from contextlib import nullcontext
from typing import Any

import numpy as np

from util.compile import artifact_status, ensure_compiled, tensorflow_installed
from util.config import interpreter_plan
from util.batching import BatchingRuntime
from util.errors import InferenceError, InvalidParameter, ModelLoadError, NotFound, ServiceError
from util.image import preprocess
from util.models import ModelSpec, discover
from util.runtimes import Runtime, as_probabilities, open_runtime

log = logging.getLogger(__name__)


class ServedModel:
    """One model version as the API sees it."""

    def __init__(self, spec: ModelSpec, settings: dict[str, Any]) -> None:
        self.spec = spec
        self.settings = settings
        self.runtime: Runtime | None = None
        self.manifest: dict[str, Any] | None = None
        self._lock = threading.Lock()

    @property
    def ready(self) -> bool:
        return self.runtime is not None

    def load(self) -> None:
        """Pick the runtime (verified TFLite, else Keras) and create it; idempotent."""
        with self._lock:
            if self.runtime is not None:
                return
            wanted = self.settings["MODEL_RUNTIME"]
            if wanted == "keras":
                self.manifest = artifact_status(self.spec)[1]
                kind = "keras"
            else:
                self.manifest = ensure_compiled(self.spec, self.settings["MODELS_DIR"],
                                                self.settings["COMPILE_TOLERANCE"], self.settings["AUTO_COMPILE"])
                kind = self.manifest["runtime"]
            if kind == "keras" and wanted != "keras":
                reason = self.manifest.get("fallback_reason") if self.manifest else None
                if wanted == "tflite" or not tensorflow_installed():
                    raise ModelLoadError(self.spec.path, f"no verified model.tflite ({reason}) and "
                                         f"{'MODEL_RUNTIME=tflite' if wanted == 'tflite' else 'TensorFlow is not installed'}")
                log.warning("model %s: serving with the Keras runtime because %s", self.spec.name, reason)
            runtime = open_runtime(self.spec, kind, interpreter_plan(self.settings))
            size, delay = self.batching()
            if size > 1:
                runtime = BatchingRuntime(runtime, size, delay, name=self.spec.name)
            self.runtime = runtime
            log.info("model %s v%s ready on %s (batches of up to %d, %g ms)", self.spec.name, self.spec.version,
                     kind, size, delay)

    def batching(self) -> tuple[int, float]:
        """(max_batch_size, max_batch_delay_ms): model.yaml, else the global settings."""
        own = self.spec.batching
        return (own.get("max_batch_size", self.settings["MAX_BATCH_SIZE"]),
                own.get("max_batch_delay_ms", self.settings["MAX_BATCH_DELAY_MS"]))

    def close(self) -> None:
        """Finish queued requests (a batching runtime drains its queue)."""
        if isinstance(self.runtime, BatchingRuntime):
            self.runtime.close()

    def top_k(self, raw: str | None) -> int:
        """Parse and bound the requested number of predictions."""
        count = len(self.spec.labels)
        if raw is None or raw == "":
            return min(self.settings["DEFAULT_TOP_K"], count)
        try:
            k = int(raw)
        except ValueError:
            raise InvalidParameter(f"top_k must be an integer from 1 to {count}, got {raw!r}") from None
        if not 1 <= k <= count:
            raise InvalidParameter(f"top_k must be from 1 to {count} (the number of labels), got {k}")
        return k

    def predict(self, data: bytes, top_k: int) -> dict[str, Any]:
        """Classify one encoded image; raises util.errors for bad input."""
        if self.runtime is None:
            self.load()
        assert self.runtime is not None
        # A batcher holds a batch open for requests still being decoded.
        with getattr(self.runtime, "incoming", nullcontext)():
            x = preprocess(data, self.runtime.input_shape, self.spec.preprocessing, self.settings["MAX_IMAGE_PIXELS"])
        try:
            probabilities = as_probabilities(self.runtime.predict(x[None]))[0]
        except ServiceError:
            raise
        except Exception as exc:
            log.exception("model %s: inference failed", self.spec.name)
            raise InferenceError(f"inference failed in model {self.spec.name}: {exc}") from None
        order = np.argsort(-probabilities, kind="stable")[:top_k]
        predictions = [{"label": self.spec.labels[i], "confidence": float(probabilities[i])} for i in order]
        return {**predictions[0], "predictions": predictions, "model": self.spec.name, "version": self.spec.version}

    def info(self) -> dict[str, Any]:
        """Metadata for GET /<model>/."""
        manifest = self.manifest or artifact_status(self.spec)[1] or {}
        verification = manifest.get("verification") or {}
        return {
            "name": self.spec.name, "version": self.spec.version, "title": self.spec.title,
            "description": self.spec.description, "labels": list(self.spec.labels),
            "input_shape": list(self.runtime.input_shape) if self.runtime else manifest.get("input_shape"),
            "preprocessing": self.spec.preprocessing.to_dict(),
            "runtime": self.runtime.kind if self.runtime else None, "ready": self.ready,
            "source_sha256": manifest.get("sources"), "verified_max_abs_diff": verification.get("max_abs_diff"),
            "tolerance": verification.get("tolerance"), "compiled_at": manifest.get("compiled_at"),
            "batching": dict(zip(("max_batch_size", "max_batch_delay_ms"), self.batching())),
            "inference": getattr(getattr(self.runtime, "runtime", self.runtime), "plan", None),
        }


class Registry:
    """Every model under MODELS_DIR, by name."""

    def __init__(self, settings: dict[str, Any]) -> None:
        self.models = {spec.name: ServedModel(spec, settings) for spec in discover(settings["MODELS_DIR"])}

    def get(self, name: str) -> ServedModel:
        try:
            return self.models[name]
        except KeyError:
            raise NotFound(f"no model named {name!r}; available: {', '.join(self.models) or 'none'}") from None

    def load_all(self) -> None:
        for model in self.models.values():
            model.load()

    def close(self) -> None:
        for model in self.models.values():
            model.close()

    @property
    def ready(self) -> bool:
        return all(m.ready for m in self.models.values())
