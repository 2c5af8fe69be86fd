"""The native API's answers, shaped from what a served model computes: a prediction, a model's metadata.

`ServedModel` computes (scores, ranked labels, its manifest and plan); what a client reads is
written here, next to the routes, so the serving core knows nothing of HTTP bodies.
"""
from __future__ import annotations

from typing import Any

import numpy as np
from flask import current_app

from util.errors import InvalidParameter
from util.serve.artifacts import artifact_status
from util.serve.served import ServedModel


def undeclared_threshold(model: ServedModel) -> None:
    """A threshold sent to a model whose parser does not declare one: say why it is refused."""
    model.load()  # idempotent: the plan says what the outputs are
    assert model.plan is not None
    raise InvalidParameter(f"threshold applies to multi-label models only; {model.spec.name} is "
                           f"{model.plan.outputs.kind}")


def prediction(model: ServedModel, scores: np.ndarray, top_k: int | None, threshold: float | None) -> dict[str, Any]:
    """The body for one image's per-label scores: label and confidence on top, the top k, and for a
    multi-label model the threshold in force and the labels at or above it."""
    ranked = model.ranked(scores)
    k = top_k or min(current_app.config["DEFAULT_TOP_K"], len(ranked))
    predictions = [{"label": label, "confidence": score} for label, score in ranked[:k]]
    body = {**predictions[0], "predictions": predictions, "model": model.spec.name, "version": model.spec.version}
    assert model.plan is not None
    if model.plan.outputs.multilabel:
        cut = model.plan.outputs.threshold if threshold is None else threshold
        body["threshold"] = cut
        body["positive_labels"] = [label for label, score in ranked if score >= cut]
    return body


def model_info(model: ServedModel) -> dict[str, Any]:
    """Metadata for GET /<model>/: labels, shapes, preprocessing, runtime, provenance."""
    manifest = model.manifest or artifact_status(model.spec)[1] or {}
    verification = manifest.get("verification") or {}
    plan, spec, runtime = model.plan, model.spec, model.runtime
    return {
        "name": spec.name, "version": spec.version, "title": spec.title,
        "description": spec.description, "labels": list(spec.labels), "format": spec.format,
        "published": spec.published,
        "input_shape": list(plan.image_shape) if plan else None,
        "model_input": manifest.get("model_input"),
        "preprocessing": (plan.preprocessing if plan else spec.preprocessing).to_dict(),
        "serving": plan.to_dict() if plan else None,
        "output": plan.outputs.kind if plan else None,
        "runtime": runtime.kind if runtime else None, "ready": model.ready,
        "verified": bool(manifest.get("verified")), "verification": verification or None,
        "quantization": manifest.get("quantization"),
        "source_sha256": manifest.get("sources"), "verified_max_abs_diff": verification.get("max_abs_diff"),
        "tolerance": verification.get("tolerance"), "compiled_at": manifest.get("compiled_at"),
        "batching": dict(zip(("max_batch_size", "max_batch_delay_ms"), model.batching(), strict=True)),
        "inference": runtime.plan if runtime else None,
        "answers_checked": model.gated if runtime else None,
    }
