"""The answer gate: a version serves only if it answers its own samples as Keras did at compile.

File hashes prove that the files are the ones the manifest names, not that they belong
together: an artifact swapped for another model's (with its hash updated, or a manifest
copied along with it) passes every file check and answers wrongly. So compiling records
Keras' top scores for up to `MAX_IMAGES` of the version's `samples/` (or, without samples,
generated probe images), fed through the server's own image pipeline; before a version
serves, this machine's runtime must give the same top-1 (up to ties within the tolerance)
and the same scores within the manifest's tolerance. Pillow, numpy and the runtime only.
"""
from __future__ import annotations

import io
from collections.abc import Callable
from typing import Any

import numpy as np

from util.errors import ModelLoadError, ServiceError
from util.serve import probes
from util.serve.image import preprocess
from util.serve.plan import Plan
from util.serve.spec import ModelSpec

MAX_IMAGES = 32  # enough to tell models apart, cheap at every start (a few ms each)
TOP = 5  # scores recorded per image: the top-1 and its nearest rivals
PIXELS = probes.SAMPLE_PIXELS  # samples are the operator's own files: MAX_IMAGE_PIXELS does not apply
# Other machines run other kernels (AVX2, AVX-512, VNNI): an artifact's own deviation from
# Keras, measured at compile, is allowed this many times over before it counts as a change.
MARGIN = 2.0


def inputs(spec: ModelSpec, plan: Plan, names: list[str] | None = None) -> list[tuple[str, bytes]]:
    """(name, encoded bytes): the samples named in `names`, else up to MAX_IMAGES samples, else probes."""
    if names is None:
        names = [f"samples/{p.name}" for p in probes.sample_files(spec.samples)][:MAX_IMAGES]
    if names and all(n.startswith("samples/") for n in names):
        found = []
        for name in names:
            try:
                found.append((name, (spec.path / name).read_bytes()))
            except OSError:
                raise ModelLoadError(spec.path, f"{name} is missing: the version is incomplete") from None
        return found
    height, width, _ = plan.image_shape
    wanted = set(names or [])
    return [(name, _png(image)) for name, image in probes.generated((width, height))
            if not wanted or name in wanted]


def _png(image: Any) -> bytes:
    buf = io.BytesIO()
    image.save(buf, "PNG")
    return buf.getvalue()


def scores_of(images: list[tuple[str, bytes]], plan: Plan, predict: Callable[[np.ndarray], np.ndarray],
              batch: int = 1) -> tuple[list[str], np.ndarray]:
    """Per-label scores of the readable images through the serving pipeline and `predict`, `batch` at a time.

    The gate keeps 1, as requests come: a batch of 8 resizes the interpreters' tensors, and the arena
    it grows stays (measured: +60 MB per worker with MobileNetV2)."""
    names, arrays = [], []
    for name, data in images:
        try:
            arrays.append(preprocess(data, plan.image_shape, plan.preprocessing, PIXELS))
            names.append(name)
        except ServiceError:  # not an image (a README in samples/): never recorded, never asked
            continue
    rows = [predict(np.stack(arrays[i:i + batch]).astype(np.float32)) for i in range(0, len(arrays), batch)]
    return names, plan.outputs.scores(np.concatenate(rows)) if rows else np.zeros((0, 0))


def record(names: list[str], reference: np.ndarray, served: np.ndarray, tolerance: float) -> dict[str, Any]:
    """The manifest's `answers`: Keras' top scores per image, and the tolerance the served artifact needs."""
    deviation = float(np.abs(reference - served).max()) if len(names) else 0.0
    tol = max(tolerance, MARGIN * deviation)
    exempt = [n for n, r, s in zip(names, reference, served, strict=True) if not same_top1(r, s, tol)]
    images = [{"name": n, "top": [[int(i), float(r[i])] for i in np.argsort(-r, kind="stable")[:TOP]]}
              for n, r in zip(names, reference, strict=True)]
    return {"reference": "keras", "tolerance": tol, "compile_deviation": deviation, "images": images,
            "top1_exempt": exempt}


def same_top1(expected: np.ndarray, actual: np.ndarray, tol: float) -> bool:
    """Same best label, or a tie within `tol` (the expected best is as good as the best here)."""
    best = int(np.argmax(expected))
    return int(np.argmax(actual)) == best or actual[best] >= actual.max() - tol


def check(spec: ModelSpec, plan: Plan, predict: Callable[[np.ndarray], np.ndarray],
          answers: dict[str, Any] | None) -> int:
    """Raise ModelLoadError unless the runtime answers as recorded; returns the images checked."""
    if not answers:
        return 0  # a bare .tflite: nothing to compare with (its manifest says unverified)
    recorded = {row["name"]: row["top"] for row in answers["images"]}
    names, scores = scores_of(inputs(spec, plan, list(recorded)), plan, predict)
    if names != list(recorded):
        missing = sorted(set(recorded) - set(names))
        raise ModelLoadError(spec.path, f"samples changed since compile ({', '.join(missing[:3])} unreadable)")
    tol, exempt, wrong = float(answers["tolerance"]), set(answers.get("top1_exempt") or ()), []
    for name, row in zip(names, scores, strict=True):
        top = recorded[name]
        diff = max(abs(row[i] - v) for i, v in top)
        best = int(top[0][0])
        top1_ok = name in exempt or int(np.argmax(row)) == best or row[best] >= row.max() - tol
        if diff > tol or not top1_ok:
            wrong.append(f"{name}: {spec.labels[int(np.argmax(row))]!r} {row.max():.3f}, recorded "
                         f"{spec.labels[best]!r} {top[0][1]:.3f} (score diff {diff:.3g} > {tol:.3g})"
                         if diff > tol else f"{name}: top-1 {spec.labels[int(np.argmax(row))]!r}, recorded "
                                            f"{spec.labels[best]!r}")
    if wrong:
        raise ModelLoadError(spec.path, f"answers {len(wrong)} of {len(names)} recorded images differently from "
                                        f"Keras at compile ({'; '.join(wrong[:2])}): the artifact is not this "
                                        "version's model; recompile or publish it again")
    return len(names)
