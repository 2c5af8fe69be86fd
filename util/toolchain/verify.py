"""Keras (the reference) against LiteRT on the same inputs: random tensors and real images."""
from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import numpy as np

from util.serve import probes
from util.serve.answers import same_top1
from util.serve.crop import BlankImage
from util.serve.image import input_range, preprocess_image
from util.serve.plan import Plan
from util.serve.runtimes import LiteRTRuntime
from util.toolchain.formats import Source

RANDOM_SAMPLES = 32
BATCH = 8
# Below this spread of any label's score across very different images, the outputs barely depend
# on the input (an untrained network): agreement then proves little.
WEAK_SPREAD = 0.02
TIE = 0.02  # two labels Keras scores this close are a tie for top-1 agreement


def image_inputs(plan: Plan, samples_dir: Path, seed: int) -> tuple[list[str], np.ndarray]:
    """Names and preprocessed arrays (N, H, W, C) of the probe images and the model's samples."""
    height, width, _ = plan.image_shape
    names, arrays = [], []
    for name, image in probes.generated((width, height), seed) + probes.samples(samples_dir):
        try:
            arrays.append(preprocess_image(image, plan.image_shape, plan.preprocessing))
        except BlankImage:  # a solid colour, for a model that crops to content: the server refuses it too
            continue
        names.append(name)
    return names, np.stack(arrays).astype(np.float32)


def random_inputs(plan: Plan, seed: int) -> np.ndarray:
    low, high = input_range(plan.preprocessing)
    x = np.random.default_rng(seed).uniform(low, high, (RANDOM_SAMPLES, *plan.image_shape)).astype(np.float32)
    x[0], x[1] = low, high  # the flat extremes, where saturation bugs show
    return x


def _both(source: Source, runtime: LiteRTRuntime, x: np.ndarray, plan: Plan) -> tuple[np.ndarray, np.ndarray]:
    expected, actual = [], []
    for start in range(0, len(x), BATCH):
        batch = x[start:start + BATCH]
        expected.append(np.asarray(source.reference(batch.reshape(len(batch), *plan.tensor_shape)), np.float64))
        actual.append(runtime.predict(batch).astype(np.float64))
    return np.concatenate(expected).reshape(len(x), -1), np.concatenate(actual).reshape(len(x), -1)


def verify(source: Source, flatbuffer: bytes, plan: Plan, samples_dir: Path, seed: int = 0) -> dict[str, Any]:
    """Max abs diff over random and image inputs, top-1 agreement and score spread over the images."""
    runtime = LiteRTRuntime(flatbuffer, lane_threads=os.cpu_count() or 1, tensor_shape=plan.tensor_shape)
    names, images = image_inputs(plan, samples_dir, seed)
    ref_random, lite_random = _both(source, runtime, random_inputs(plan, seed), plan)
    ref_images, lite_images = _both(source, runtime, images, plan)
    scores_ref, scores_lite = plan.outputs.scores(ref_images), plan.outputs.scores(lite_images)
    # LiteRT's pick, judged by Keras' own scores: within TIE of Keras' best is a tie, not a disagreement.
    # On a probe shape no label fits (0.300 against 0.293), int8's rounding may fall either way.
    agree = np.array([same_top1(lite, ref, TIE) for lite, ref in zip(scores_lite, scores_ref, strict=True)])
    spread = float((scores_ref.max(axis=0) - scores_ref.min(axis=0)).max())
    low, high = input_range(plan.preprocessing)
    return {
        "random_samples": len(ref_random), "images": len(names),
        "samples": sum(name.startswith("samples/") for name in names), "seed": seed, "input_range": [low, high],
        "max_abs_diff": float(max(np.abs(ref_random - lite_random).max(), np.abs(ref_images - lite_images).max())),
        "top1_agreement": float(agree.mean()),
        "disagreeing_images": [n for n, ok in zip(names, agree, strict=True) if not ok],
        "max_score_diff": float(np.abs(scores_ref - scores_lite).max()),
        "output_spread": spread, "weak": spread < WEAK_SPREAD,
    }
