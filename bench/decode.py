"""Decoding phone photos (issue 23; `python -m bench.run --only decode`): decode + preprocess to a 224x224
model input, per upload format, on generated photo-like pictures, in this process (no HTTP, no model).

Every round times every format, JPEG included, in an order that reverses from one round to the next
(A B C ... then ... C B A), so a VM that slows down mid-round weighs on all formats alike; ratios are
against JPEG in the same round. Wall time and CPU time are both kept: libheif and libavif decode on
several threads, which an idle machine gives them and a loaded server does not.
"""
from __future__ import annotations

import io
import statistics
import time
from collections.abc import Callable

import numpy as np
import pillow_heif
from PIL import Image

from bench.assets import photo
from util.serve.image import Preprocessing, decode, preprocess, preprocess_image

SHAPE = (224, 224, 3)  # MobileNetV2's input, as in the rest of the bench
MAX_PIXELS = 40_000_000  # the default MAX_IMAGE_PIXELS
# As iPhones write HEIC: the picture in 512x512 tiles (libheif decodes them on several threads) and a
# small copy beside it (320x240 for 4032x3024).
TILE, THUMBNAIL = 512, 320
REFERENCE = "JPEG"


def encodings(image: Image.Image) -> dict[str, tuple[bytes, bool]]:
    """Row label -> (file, decoded with the model's target size as the server does)."""
    def save(fmt: str, **params: object) -> bytes:
        buf = io.BytesIO()
        image.save(buf, fmt, **params)
        return buf.getvalue()
    heic = io.BytesIO()
    # pillow-heif's default quality (50) gives 12 MP files of 3-4 MB, as phones write.
    pillow_heif.from_pillow(image).save(heic, thumbnails=[THUMBNAIL], tile_size=TILE)
    return {REFERENCE: (save("JPEG", quality=90), True), "PNG": (save("PNG"), True),
            "WebP": (save("WEBP", quality=80), True), "AVIF": (save("AVIF"), True),
            f"HEIC (with its {THUMBNAIL} px thumbnail)": (heic.getvalue(), True),
            "HEIC decoded in full (a file without a thumbnail)": (heic.getvalue(), False)}


def timer(data: bytes, targeted: bool) -> Callable[[], object]:
    p = Preprocessing()
    if targeted:  # the server's path: JPEG and HEIF decode less for a small target
        return lambda: preprocess(data, SHAPE, p, MAX_PIXELS)
    return lambda: preprocess_image(decode(data, MAX_PIXELS), SHAPE, p)


def measure(step: Callable[[], object], reps: int) -> dict:
    """Median wall and CPU milliseconds of `reps` runs, after one warm-up."""
    step()
    wall, cpu = [], []
    for _ in range(reps):
        w, c = time.perf_counter(), time.process_time()
        step()
        wall.append(time.perf_counter() - w)
        cpu.append(time.process_time() - c)
    return {"ms": 1000 * statistics.median(wall), "cpu_ms": 1000 * statistics.median(cpu)}


def run(cfg: dict) -> dict:
    sizes = {}
    for width, height, reps in cfg["decode_sizes"]:
        print(f"[bench] decode: {width}x{height}", flush=True)
        files = encodings(photo(width, height, np.random.default_rng(3), 3))
        rows: dict[str, dict] = {label: {"bytes": len(data), "rounds": []} for label, (data, _) in files.items()}
        order = list(files)
        for round_ in range(cfg["decode_rounds"]):
            for label in order if round_ % 2 == 0 else order[::-1]:
                rows[label]["rounds"].append(measure(timer(*files[label]), reps))
            reference = rows[REFERENCE]["rounds"][-1]["ms"]
            for row in rows.values():
                row["rounds"][-1]["vs_jpeg"] = row["rounds"][-1]["ms"] / reference
        sizes[f"{width}x{height}"] = {"reps": reps, "rows": rows}
    return {"sizes": sizes, "heif": pillow_heif.libheif_info()["decoders"], "pillow_heif": pillow_heif.__version__}


def section(entry: dict | None, when: str | None) -> list[str]:
    """Markdown for RESULTS.md: per size, each format's medians and every round's ratio to JPEG."""
    if not entry:
        return []
    lines = ["## Decoding phone photos: decode + preprocess to 224x224, in process", ""]
    if when:
        lines += [f"This section was run again on its own at {when}.", ""]
    lines += [f"Photo-like pictures (bench/assets.py), pillow-heif {entry['pillow_heif']}; HEIC in {TILE} px tiles "
              "with a thumbnail, as iPhones write it. Rounds alternate the order of the formats; ratios are to JPEG "
              "in the same round. CPU time counts every decoder thread.", ""]
    for size, block in entry["sizes"].items():
        lines += [f"**{size}** (median of {block['reps']} runs per round)", "",
                  "| format | file KB | ms per round | median ms | median CPU ms | x JPEG per round | median x JPEG |",
                  "|---|---|---|---|---|---|---|"]
        for label, row in block["rows"].items():
            rounds = row["rounds"]
            ms = ", ".join(f"{r['ms']:.1f}" for r in rounds)
            ratios = ", ".join(f"{r['vs_jpeg']:.2f}" for r in rounds)
            median = {key: statistics.median(r[key] for r in rounds) for key in ("ms", "cpu_ms", "vs_jpeg")}
            lines.append(f"| {label} | {row['bytes'] / 1024:.0f} | {ms} | {median['ms']:.1f} | {median['cpu_ms']:.1f} "
                         f"| {ratios} | {median['vs_jpeg']:.2f} |")
        lines.append("")
    return lines
