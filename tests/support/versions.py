"""The compiled digits model copied in as versions (the one the repository serves), and a digit to send."""
from __future__ import annotations

import shutil
from pathlib import Path

DIGITS = Path(__file__).resolve().parents[2] / "saved_models" / "digits" / "1"


def add_version(model_dir: Path, version: int, reversed_labels: bool = False) -> Path:
    """The compiled digits model as `version` (copied aside, then renamed: never seen half-copied)."""
    aside = model_dir / f".incoming-{version}"
    shutil.copytree(DIGITS, aside)
    if reversed_labels:  # same weights, so every answer's label tells which version computed it
        (aside / "labels.txt").write_text("".join(f"{9 - d}\n" for d in range(10)))
    return aside.rename(model_dir / str(version))


def _three() -> bytes:
    from scripts.digits import load_split, render, to_png
    _, _, x_test, y_test = load_split()
    return to_png(render(x_test[list(y_test).index(3)]))


THREE = _three()
