"""model.yaml `quantize`: int8 calibrated on samples/, float16, the agreement check and its fallback."""
from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np
import pytest

from tests.support import builders
from util.errors import ModelLoadError

pytestmark = pytest.mark.slow
ROOT = Path(__file__).resolve().parents[1]


def with_yaml(model_dir: Path, extra: str) -> None:
    yaml = model_dir / "model.yaml"
    yaml.write_text((yaml.read_text() if yaml.exists() else "") + extra)


@pytest.fixture
def digits_int8(tmp_path: Path) -> Path:
    from util.serve.spec import read_spec
    from util.toolchain.compile import compile_model
    target = tmp_path / "digits"
    shutil.copytree(ROOT / "saved_models" / "digits", target)
    with_yaml(target / "1", "quantize: int8\n")
    compile_model(read_spec(target))
    return target


def test_int8_digits_agree_with_keras_on_held_out_digits(digits_int8: Path, digits_split) -> None:
    from scripts.digits import render, to_png
    from util.serve.artifacts import artifact_status
    from util.serve.image import preprocess
    from util.serve.runtimes import LiteRTRuntime
    from util.serve.spec import read_spec
    spec = read_spec(digits_int8)
    state, manifest = artifact_status(spec)
    q = manifest["quantization"]
    assert state == "fresh" and q["mode"] == "int8" and q["served"] and q["calibration_images"] == 30
    assert q["bytes"] < q["float32_bytes"] / 2 and manifest["artifact"]["bytes"] == q["bytes"]
    _, _, x_test, y_test = digits_split
    calibrated = {int(i) for label in range(10) for i in np.flatnonzero(y_test == label)[:3]}  # samples/
    held_out = [i for i in range(len(x_test)) if i not in calibrated]
    x = np.stack([preprocess(to_png(render(x_test[i])), (8, 8, 1), spec.preprocessing, 40_000_000)
                  for i in held_out])
    keras = np.asarray(builders.keras_model(spec)(x)).argmax(axis=1)
    int8 = LiteRTRuntime(spec.artifact).predict(x).argmax(axis=1)
    agreement = float((keras == int8).mean())
    print(f"int8 digits: top-1 agreement with Keras {agreement:.2%} on {len(held_out)} held-out digits; "
          f"{q['bytes']} bytes against {q['float32_bytes']} float32")
    assert agreement >= 0.99


def test_int8_needs_enough_samples(tmp_path: Path) -> None:
    from util.serve.spec import read_spec
    from util.toolchain.compile import compile_model
    path = builders.write_colors_model(tmp_path / "colors")
    with_yaml(path, "quantize: int8\n")
    with pytest.raises(ModelLoadError, match=r"int8 needs at least 20 representative images in samples/ \(found 0\)"):
        compile_model(read_spec(path))


def test_float16_is_verified_and_served(tmp_path: Path) -> None:
    from util.serve.spec import read_spec
    from util.toolchain.compile import compile_model
    path = builders.write_colors_model(tmp_path / "colors")
    with_yaml(path, "quantize: float16\n")
    q = compile_model(read_spec(path))["quantization"]
    assert q["mode"] == "float16" and q["served"] and q["top1_agreement"] == 1.0 and q["max_score_diff"] < 0.01


def test_low_agreement_serves_float32_and_says_why(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from util.serve.artifacts import artifact_status, sha256
    from util.serve.spec import read_spec
    from util.toolchain import compile as compiler
    path = builders.write_colors_model(tmp_path / "colors")
    fp32 = compiler.compile_model(read_spec(path))["artifact"]["sha256"]
    with_yaml(path, "quantize: float16\nquantize_min_agreement: 0.99\n")
    assert artifact_status(read_spec(path))[0] == "stale"  # another quantization than compiled
    real = compiler.verify

    def disagreeing(*args: object, **kwargs: object) -> dict:
        return {**real(*args, **kwargs), "top1_agreement": 0.5}  # as a badly calibrated model would
    monkeypatch.setattr(compiler, "verify", disagreeing)
    manifest = compiler.compile_model(read_spec(path))
    q = manifest["quantization"]
    assert not q["served"] and "0.500" in q["reason"] and "below quantize_min_agreement 0.99" in q["reason"]
    assert manifest["artifact"]["sha256"] == fp32 == sha256(path / "model.tflite")
