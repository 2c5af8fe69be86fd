"""Any supported save format -> a verified TFLite flatbuffer and its manifest (TensorFlow inside).

The manifest records the model's own facts (input shape, output activation, pixel scaling
inside the model), the plan they give, and what verification showed; serving reads them
back (util/serve/plan.py) without TensorFlow.
"""
from __future__ import annotations

import contextlib
import datetime as dt
import hashlib
import importlib.metadata
import json
import os
import platform
from typing import Any

from util.serve import answers
from util.serve.artifacts import MANIFEST_FORMAT, source_hashes, tflite_manifest
from util.serve.plan import Plan, make_plan
from util.serve.runtimes import LiteRTRuntime
from util.serve.spec import ModelSpec
from util.toolchain import formats
from util.toolchain.quantize import calibration_images
from util.toolchain.verify import verify

TOOLS = ("tensorflow", "tensorflow-cpu", "keras", "tf-keras", "ai-edge-litert", "numpy")


def tool_versions() -> dict[str, str]:
    versions = {"python": platform.python_version()}
    for dist in TOOLS:
        with contextlib.suppress(importlib.metadata.PackageNotFoundError):  # not installed: not listed
            versions[dist] = importlib.metadata.version(dist)
    return versions


def write_atomic(path: os.PathLike[str], data: bytes) -> None:
    tmp = f"{os.fspath(path)}.{os.getpid()}.tmp"
    with open(tmp, "wb") as f:
        f.write(data)
    os.replace(tmp, path)


def _first_line(exc: Exception) -> str:
    text = str(exc).strip()
    return text.splitlines()[0] if text else type(exc).__name__


def quantize(spec: ModelSpec, source: formats.Source, plan: Plan, fp32: bytes,
             seed: int) -> tuple[dict[str, Any], bytes | None]:
    """The quantized flatbuffer if it agrees with Keras well enough (else None), and what was measured."""
    representative = calibration_images(plan, spec.samples, spec.path) if spec.quantize == "int8" else None
    info: dict[str, Any] = {"mode": spec.quantize, "min_agreement": spec.quantize_min_agreement,
                            "float32_bytes": len(fp32), "served": False}
    try:
        quantized = source.convert(spec.quantize, representative)
        check = verify(source, quantized, plan, spec.samples, seed)
    except Exception as exc:  # the converter raises many types
        info["reason"] = f"{spec.quantize} conversion failed ({_first_line(exc)}); serving float32"
        return info, None
    info.update({"bytes": len(quantized), "images": check["images"], "samples": check["samples"],
                 "calibration_images": 0 if representative is None else len(representative),
                 "top1_agreement": check["top1_agreement"], "max_score_diff": check["max_score_diff"],
                 "max_abs_diff": check["max_abs_diff"], "disagreeing_images": check["disagreeing_images"]})
    if check["top1_agreement"] < spec.quantize_min_agreement:
        info["reason"] = (f"{spec.quantize} top-1 agreement with Keras {check['top1_agreement']:.3f} on "
                          f"{check['images']} images is below quantize_min_agreement {spec.quantize_min_agreement:g} "
                          f"(max score difference {check['max_score_diff']:.3g}); serving float32")
        return info, None
    info["served"] = True
    return info, quantized


def recorded_answers(spec: ModelSpec, source: formats.Source, plan: Plan, flatbuffer: bytes | None,
                     tolerance: float) -> dict[str, Any]:
    """Keras' answers to the gate's images (util/serve/answers.py), and what the served artifact gives."""
    images = answers.inputs(spec, plan)

    def keras(batch: Any) -> Any:
        return source.reference(batch.reshape(len(batch), *plan.tensor_shape))
    names, reference = answers.scores_of(images, plan, keras, batch=8)  # Keras has a large per-call cost
    served = reference
    if flatbuffer:  # the Keras fallback serves the reference itself
        runtime = LiteRTRuntime(flatbuffer, lane_threads=os.cpu_count() or 1, tensor_shape=plan.tensor_shape)
        served = answers.scores_of(images, plan, runtime.predict)[1]
    return answers.record(names, reference, served, tolerance)


def compile_model(spec: ModelSpec, tolerance: float = 1e-4, seed: int = 0) -> dict[str, Any]:
    """Convert, verify and write model.tflite + manifest; fall back to Keras when conversion fails."""
    if spec.format == "tflite":  # served as is: the manifest only records what the graph says
        manifest = tflite_manifest(spec)
        write_atomic(spec.manifest, (json.dumps(manifest, indent=2) + "\n").encode())
        return manifest
    source = formats.load(spec)
    facts = source.facts()
    plan = make_plan(spec, facts)  # refuses here what the server would refuse at load
    verification: dict[str, Any] = {"tolerance": tolerance, "max_abs_diff": None}
    reason: str | None = None
    flatbuffer = b""
    try:
        flatbuffer = source.convert()
        verification.update(verify(source, flatbuffer, plan, spec.samples, seed))
        if not verification["max_abs_diff"] <= tolerance:
            reason = f"verified max abs diff {verification['max_abs_diff']:.3g} exceeds tolerance {tolerance:g}"
    except Exception as exc:  # the converter raises many types (and ConverterError)
        reason = f"conversion failed: {_first_line(exc)}"
    quantization = None
    if reason is None and spec.quantize != "none":
        quantization, quantized = quantize(spec, source, plan, flatbuffer, seed)
        flatbuffer = quantized or flatbuffer
    if reason is None:
        write_atomic(spec.artifact, flatbuffer)
    elif spec.artifact.exists():
        spec.artifact.unlink()  # never leave an unverified flatbuffer next to the manifest
    manifest = {
        "format": MANIFEST_FORMAT, "model": spec.name, "version": spec.version, "save_format": spec.format,
        "keras_format": source.keras_format, "runtime": "tflite" if reason is None else "keras",
        "fallback_reason": reason, "sources": source_hashes(spec),
        "artifact": {"file": spec.artifact.name, "sha256": hashlib.sha256(flatbuffer).hexdigest(),
                     "bytes": len(flatbuffer)} if reason is None else None,
        **facts, "plan": plan.to_dict(), "verified": reason is None, "quantization": quantization,
        "verification": {"status": "weak" if verification.get("weak") else "verified", **verification}
        if reason is None else {"status": "failed", **verification},
        "answers": recorded_answers(spec, source, plan, flatbuffer if reason is None else None, tolerance),
        "tools": tool_versions(), "compiled_at": dt.datetime.now(dt.UTC).isoformat(timespec="seconds"),
    }
    write_atomic(spec.manifest, (json.dumps(manifest, indent=2) + "\n").encode())
    return manifest
