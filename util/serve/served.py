"""One model version as the API sees it: a spec, a plan and a runtime.

`prepare -> scores -> ranked` (`classify` for encoded images) is the one prediction path every
route calls; the bodies clients read are shaped in api/ (api/bodies.py for the native API).
Runtimes are created by `load()`, which gunicorn calls after fork (gunicorn.conf.py) so no
interpreter is shared between processes; elsewhere the first request or readiness probe does.
A version serves only after it passed the answer gate (util/serve/answers.py).
"""
from __future__ import annotations

import logging
import threading
import time
from typing import Any

import numpy as np

from util import metrics
from util.config import interpreter_plan
from util.errors import InferenceError, InvalidParameter, ModelLoadError, ServiceError
from util.serve import answers
from util.serve.artifacts import artifact_status, ensure_compiled, tensorflow_installed
from util.serve.batching import BatchingRuntime
from util.serve.image import preprocess
from util.serve.monitor import Monitor
from util.serve.outputs import MULTILABEL
from util.serve.plan import Plan, make_plan
from util.serve.runtimes import Runtime, open_runtime
from util.serve.spec import ModelSpec

log = logging.getLogger(__name__)


class ServedModel:
    """One model version as the API sees it."""

    def __init__(self, spec: ModelSpec, settings: dict[str, Any]) -> None:
        self.spec = spec
        self.settings = settings
        self.runtime: Runtime | None = None
        self.plan: Plan | None = None
        self.manifest: dict[str, Any] | None = None
        self.gated = 0  # images the answer gate checked at load (0: nothing recorded to check)
        self.monitor = Monitor(spec)  # what this version answers, in /metrics
        self._lock = threading.Lock()

    @property
    def ready(self) -> bool:
        return self.runtime is not None

    def load(self) -> None:
        """Pick the runtime (verified TFLite, else Keras), plan the inputs and outputs; idempotent."""
        with self._lock:
            if self.runtime is not None:
                return
            wanted = self.settings["MODEL_RUNTIME"]
            if wanted == "keras" and self.spec.format != "tflite":
                state, self.manifest = artifact_status(self.spec)
                kind, recorded = "keras", (self.manifest or {}).get("answers") if state == "fresh" else None
            else:
                self.manifest = ensure_compiled(self.spec, self.settings["MODELS_DIR"],
                                                self.settings["COMPILE_TOLERANCE"], self.settings["AUTO_COMPILE"])
                kind, recorded = self.manifest["runtime"], self.manifest.get("answers")
            if kind == "keras" and wanted != "keras":
                reason = self.manifest.get("fallback_reason") if self.manifest else None
                if wanted == "tflite" or not tensorflow_installed():
                    why = "MODEL_RUNTIME=tflite" if wanted == "tflite" else "TensorFlow is not installed"
                    raise ModelLoadError(self.spec.path, f"no verified model.tflite ({reason}) and {why}")
                log.warning("model %s: serving with the Keras runtime because %s", self.spec.name, reason)
            if kind == "keras":
                runtime = open_runtime(self.spec, kind, ())
                plan = make_plan(self.spec, runtime.facts)  # type: ignore[attr-defined]  # Keras reads its own
            else:
                assert self.manifest is not None  # ensure_compiled returns one or raises
                plan = make_plan(self.spec, self.manifest)
                runtime = open_runtime(self.spec, kind, plan.tensor_shape, interpreter_plan(self.settings))
            if runtime.output_units != self.manifest_units(runtime):
                raise ModelLoadError(self.spec.path, "the runtime's output differs from the manifest: recompile")
            # Before anything is served: the same answers as Keras gave at compile, on this machine.
            self.gated = answers.check(self.spec, plan, runtime.predict, recorded)
            for warning in plan.warnings:
                log.warning("model %s: %s", self.spec.name, warning)
            size, delay = self.batching()
            if size > 1:
                runtime = BatchingRuntime(runtime, size, delay, name=self.spec.name)
            self.plan, self.runtime = plan, runtime
            metrics.MODEL_INFO.labels(self.spec.name, str(self.spec.version), kind, self.spec.format,
                                      plan.outputs.kind).set(1)
            log.info("model %s v%s ready on %s: %s input %s (size from %s), scale %s (from %s), output %s "
                     "(from %s), batches of up to %d, %g ms", self.spec.name, self.spec.version, kind,
                     self.spec.format, "x".join(map(str, plan.image_shape)), plan.size_from,
                     plan.preprocessing.scale, plan.scale_from, plan.outputs.kind, plan.output_from, size, delay)

    def plan_hint(self) -> Plan | None:
        """The plan in force, or before loading the one its compiled manifest gives (None if unreadable)."""
        if self.plan is not None:
            return self.plan
        try:
            return make_plan(self.spec, artifact_status(self.spec)[1] or {})
        except (KeyError, TypeError, ServiceError):
            return None

    def multilabel_hint(self) -> bool:
        """Whether the model is multi-label, from model.yaml or its manifest, before it is loaded."""
        if self.plan is None and self.spec.output:
            return self.spec.output in MULTILABEL
        plan = self.plan_hint()
        return bool(plan and plan.outputs.multilabel)

    def manifest_units(self, runtime: Runtime) -> int:
        output = (self.manifest or {}).get("output") or {}
        return int(output.get("units", runtime.output_units))

    def batching(self) -> tuple[int, float]:
        """(max_batch_size, max_batch_delay_ms): model.yaml, else the global settings."""
        own = self.spec.batching
        return (own.get("max_batch_size", self.settings["MAX_BATCH_SIZE"]),
                own.get("max_batch_delay_ms", self.settings["MAX_BATCH_DELAY_MS"]))

    def close(self) -> None:
        """Finish queued requests (a batching runtime drains its queue)."""
        if self.runtime is not None:
            self.runtime.close()

    def classify(self, images: list[bytes]) -> list[np.ndarray | ServiceError]:
        """Per-label scores of encoded images, in one runtime batch; a bad image gets its own error."""
        prepared, failed = [], {}
        for i, data in enumerate(images):
            try:
                prepared.append((i, self.prepare(data)))
            except ServiceError as exc:
                failed[i] = exc
        rows = self.scores(np.stack([x for _, x in prepared])) if prepared else np.zeros((0, 0))
        scored = {i: row for (i, _), row in zip(prepared, rows, strict=True)}
        return [scored[i] if i in scored else failed[i] for i in range(len(images))]

    def _loaded(self) -> tuple[Runtime, Plan]:
        if self.runtime is None:
            self.load()
        assert self.runtime is not None and self.plan is not None
        return self.runtime, self.plan

    def prepare(self, data: bytes) -> np.ndarray:
        """One encoded image -> the model's input image (height, width, channels); util.errors if bad."""
        runtime, plan = self._loaded()
        started = time.perf_counter()
        with runtime.incoming():  # a batcher holds a batch open for requests still being decoded
            x = preprocess(data, plan.image_shape, plan.preprocessing, self.settings["MAX_IMAGE_PIXELS"])
        metrics.DECODE_SECONDS.labels(self.spec.name).observe(time.perf_counter() - started)
        return x

    def check_tensor(self, raw: Any) -> np.ndarray:
        """An already preprocessed image (height, width[, channels]) as the model's float32 input."""
        _, plan = self._loaded()
        try:
            x = np.asarray(raw, dtype=np.float32)
        except (TypeError, ValueError):
            raise InvalidParameter("a tensor must be a nested list of numbers") from None
        shape = plan.image_shape
        if x.shape == shape[:2] and shape[2] == 1:
            x = x[:, :, None]
        if x.shape != shape:
            raise InvalidParameter(f"a tensor for model {self.spec.name} must have shape {list(shape)} (height, "
                                   f"width, channels, already preprocessed), not {list(x.shape)}")
        if not np.isfinite(x).all():
            raise InvalidParameter("a tensor must hold finite numbers only")
        return x

    def scores(self, batch: np.ndarray, watch: bool = True) -> np.ndarray:
        """Per-label scores (N, labels) for prepared images (N, height, width, channels): one runtime call."""
        runtime, plan = self._loaded()
        name = self.spec.name
        started = time.perf_counter()
        try:
            raw = runtime.predict(batch)
            metrics.INFERENCE_SECONDS.labels(name).observe(time.perf_counter() - started)
            if self.batching()[0] == 1:  # a batcher records its own batch sizes
                metrics.BATCH_SIZE.labels(name).observe(len(batch))
        except ServiceError:
            raise
        except Exception as exc:
            log.exception("model %s: inference failed", self.spec.name)
            raise InferenceError(f"inference failed in model {self.spec.name}: {exc}") from None
        scores = plan.outputs.scores(raw)
        if watch:  # every route's answers pass here once; an explanation's occluded passes are no answers
            self.monitor.observe(scores)
        return scores

    def ranked(self, scores: np.ndarray) -> list[tuple[str, float]]:
        """(label, score) for one image's scores, best first (ties in label order)."""
        labels = self.spec.labels
        return [(labels[i], float(scores[i])) for i in np.argsort(-scores, kind="stable")]
