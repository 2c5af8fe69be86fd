"""POST /<model>/explanation: the occlusion map peaks where the model looks, equals Keras' own, and
its cost is bounded."""
from __future__ import annotations

import io
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from tests.conftest import ROOT
from tests.support import builders

JSON = {"Accept": "application/json"}


@pytest.fixture(scope="module")
def spot_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    from util.serve.spec import discover
    from util.toolchain.compile import compile_model
    root = tmp_path_factory.mktemp("spot-models")
    builders.write_spot_model(root / "spot")
    for spec in discover(root):
        compile_model(spec)
    return root


def make_app(models_dir: Path, **settings: object):
    from application import create_app
    return create_app({"MODELS_DIR": str(models_dir), "PRELOAD_MODELS": True, **settings})


@pytest.fixture(scope="module")
def spot_app(spot_dir: Path):
    return make_app(spot_dir)


def explain(client, image: Image.Image, model: str = "spot", headers: dict | None = None,
            **fields: object):
    data = {"image": (io.BytesIO(builders.encode(image)), "image.png"), **{k: str(v) for k, v in fields.items()}}
    return client.post(f"/{model}/explanation", data=data, headers=headers if headers is not None else JSON)


def log_odds(p: np.ndarray, index: int) -> float:
    """log(p / (1 - p)), with 1 - p as the other labels' total (it would round to 0 for a sure label)."""
    p = p.astype(np.float64)
    return float(np.log(p[index]) - np.log(np.delete(p, index).sum()))


def keras_occlusion(model, x: np.ndarray, grid: int, index: int,
                    measure: str = "confidence") -> np.ndarray:
    """The reference: each cell in turn set to the image's mean colour, scored by Keras itself."""
    height, width, _ = x.shape
    fill = x.mean(axis=(0, 1))

    def score(image: np.ndarray) -> float:
        p = model.predict(image[None], verbose=0)[0]
        return float(p[index]) if measure == "confidence" else log_odds(p, index)
    baseline = score(x)
    drops = np.zeros((grid, grid))
    for r in range(grid):
        for c in range(grid):
            top, bottom = round(r * height / grid), round((r + 1) * height / grid)
            left, right = round(c * width / grid), round((c + 1) * width / grid)
            occluded = x.copy()
            occluded[top:bottom, left:right] = fill
            drops[r, c] = baseline - score(occluded)
    return drops


def test_the_map_peaks_on_the_one_region_the_model_looks_at(spot_app) -> None:
    client = spot_app.test_client()
    coarse = explain(client, builders.spot_image(), grid=4).get_json()
    assert coarse["label"] == "spot" and coarse["baseline_confidence"] > 0.9 and coarse["shape"] == [4, 4]
    grid = np.array(coarse["grid"])
    assert np.unravel_index(grid.argmax(), grid.shape) == (1, 2)  # SPOT is rows 8-15, columns 16-23 of 32
    assert grid[1, 2] > 0.5 and np.abs(np.delete(grid.ravel(), 1 * 4 + 2)).max() < 1e-6
    fine = np.array(explain(client, builders.spot_image(), grid=8).get_json()["grid"])
    lit = {(int(r), int(c)) for r, c in zip(*np.nonzero(fine > 0.01), strict=True)}
    assert lit == {(2, 4), (2, 5), (3, 4), (3, 5)}  # the four cells SPOT covers at 4x4 pixels a cell
    other = np.array(explain(client, builders.spot_image(), grid=4, label="plain").get_json()["grid"])
    assert other[1, 2] < -0.5  # occluding the spot is what makes `plain` more likely


@pytest.mark.parametrize("measure", ["confidence", "log_odds"])
def test_the_map_equals_keras_occlusion(spot_app, spot_dir: Path, measure: str) -> None:
    from util.serve.spec import discover
    served = spot_app.extensions["registry"].models["spot"]
    image = builders.spot_image(noise=0.5, seed=3)  # noise: every cell matters a little, differently
    x = served.prepare(builders.encode(image))
    answer = explain(spot_app.test_client(), image, grid=4, measure=measure).get_json()
    assert answer["measure"] == measure
    reference = keras_occlusion(builders.keras_model(discover(spot_dir)[0]), x, 4, 1, measure)
    assert np.std(reference) > 0.01  # the cells differ, so agreement means something
    np.testing.assert_allclose(answer["grid"], reference, atol=1e-4)


@pytest.mark.parametrize("measure", ["confidence", "log_odds"])
def test_digits_map_equals_keras_occlusion_on_a_real_digit(digits_split, measure: str) -> None:
    from scripts.digits import render, to_png
    from util.serve.spec import discover
    app = make_app(ROOT / "saved_models")
    served = app.extensions["registry"].models["digits"]
    _, _, x_test, _ = digits_split
    pngs = [to_png(render(x)) for x in x_test[:100]]
    # Confidence: the least sure of 100 digits (a saturated softmax barely moves); log-odds: the surest.
    ranked = sorted(pngs, key=lambda data: served.classify([data])[0].max())
    png = ranked[0] if measure == "confidence" else ranked[-1]
    answer = app.test_client().post("/digits/explanation", headers=JSON, data={
        "image": (io.BytesIO(png), "digit.png"), "measure": measure}).get_json()
    assert answer["label"] == served.ranked(served.classify([png])[0])[0][0] and answer["passes"] == 8 * 8 + 1
    spec = next(s for s in discover(ROOT / "saved_models") if s.name == "digits")
    reference = keras_occlusion(builders.keras_model(spec), served.prepare(png), 8, int(answer["label"]), measure)
    assert np.std(reference) > 0.01
    np.testing.assert_allclose(answer["grid"], reference, atol=1e-4)


def test_passes_are_batched_and_bounded(spot_dir: Path) -> None:
    app = make_app(spot_dir, EXPLANATION_MAX_PASSES=16, EXPLANATION_GRID=8)
    served = app.extensions["registry"].models["spot"]
    batches: list[int] = []
    runtime_predict = served.runtime.predict

    def counting(batch: np.ndarray) -> np.ndarray:
        batches.append(len(batch))
        return runtime_predict(batch)
    served.runtime.predict = counting
    client = app.test_client()
    answer = explain(client, builders.spot_image(), grid=4).get_json()
    assert answer["passes"] == 17 and sum(batches) == 17 and len(batches) == 2  # 16 + 1 rows, two runtime calls
    batches.clear()
    default = explain(client, builders.spot_image()).get_json()  # EXPLANATION_GRID=8 is over the bound: 4
    assert default["shape"] == [4, 4] and sum(batches) == 17
    batches.clear()
    refused = explain(client, builders.spot_image(), grid=5)
    assert refused.status_code == 400 and "EXPLANATION_MAX_PASSES=16" in refused.get_json()["message"]
    assert batches == []  # refused before any pass


def test_png_overlay_is_the_default_answer(spot_app) -> None:
    client = spot_app.test_client()
    wide = Image.new("L", (64, 32), 0)
    wide.paste(builders.spot_image().resize((64, 32)))
    answer = explain(client, wide, headers={})
    assert answer.status_code == 200 and answer.mimetype == "image/png"
    assert answer.headers["X-Explanation-Label"] == "spot" and answer.headers["X-Explanation-Passes"] == "65"
    overlay = np.asarray(Image.open(io.BytesIO(answer.data)).convert("RGB")).astype(int)
    assert overlay.shape == (128, 256, 3)  # enlarged to 256 wide; stretched models keep the photo's proportions
    # The heat is drawn where the spot is (red), and nothing is drawn on cells that do not matter.
    spot = overlay[32:64, 128:192]  # SPOT: rows 8-15 of 32, columns 16-23 of 32
    assert (spot[..., 0] - spot[..., 2]).mean() > 100
    assert overlay[100:, :60].max() < 3
    assert explain(client, wide, headers={"Accept": "image/*"}).mimetype == "image/png"


@pytest.mark.parametrize(("fields", "headers", "status", "words"), [
    ({"grid": 0}, JSON, 400, "grid must be from 1"),
    ({"grid": "x"}, JSON, 400, "grid must be an integer"),
    ({"label": "cat"}, JSON, 400, "'cat' is not one of model spot's labels: plain, spot"),
    ({"threshold": 0.5}, JSON, 400, "unknown form field"),
    ({}, {"Accept": "text/html"}, 406, "image/png or application/json"),
])
def test_bad_requests_are_clear_4xx(spot_app, fields: dict, headers: dict, status: int,
                                    words: str) -> None:
    answer = explain(spot_app.test_client(), builders.spot_image(), headers=headers, **fields)
    assert answer.status_code == status and words in answer.get_json()["message"], answer.get_json()


def test_a_non_image_and_versions(spot_app) -> None:
    client = spot_app.test_client()
    broken = client.post("/spot/explanation", data={"image": (io.BytesIO(b"not an image"), "a.txt")}, headers=JSON)
    assert broken.status_code == 400 and broken.get_json()["error"] == "invalid_image"
    version = explain(client, builders.spot_image(), grid=2, headers=JSON)
    def data() -> dict:
        return {"image": (io.BytesIO(builders.encode(builders.spot_image())), "image.png"), "grid": "2"}
    pinned = client.post("/spot/versions/1/explanation", data=data(), headers=JSON)
    assert pinned.status_code == 200 and pinned.get_json()["grid"] == version.get_json()["grid"]
    missing = client.post("/spot/versions/9/explanation", data=data(), headers=JSON)
    assert missing.status_code == 404 and missing.get_json()["error"] == "version_not_found"


def test_swagger_documents_both_answers(spot_app) -> None:
    spec = spot_app.test_client().get("/swagger.json").get_json()
    operation = spec["paths"]["/spot/explanation"]["post"]
    assert operation["produces"] == ["image/png", "application/json"]
    assert {p["name"] for p in operation["parameters"]} >= {"image", "label", "grid"}
    assert "/spot/versions/{version}/explanation" in spec["paths"]


def test_a_label_outside_latin_1_travels_percent_encoded(spot_dir: Path, tmp_path: Path) -> None:
    import shutil
    from urllib.parse import unquote

    from util.serve.spec import discover
    from util.toolchain.compile import compile_model
    shutil.copytree(spot_dir / "spot", tmp_path / "spot")
    (tmp_path / "spot" / "labels.txt").write_text("plain\nsoleil ☀ 太陽\n", encoding="utf-8")
    compile_model(discover(tmp_path)[0])
    client = make_app(tmp_path).test_client()
    answer = explain(client, builders.spot_image(), headers={}, grid=2)
    assert answer.status_code == 200 and unquote(answer.headers["X-Explanation-Label"]) == "soleil ☀ 太陽"
    named = explain(client, builders.spot_image(), grid=2, label="soleil ☀ 太陽").get_json()
    assert named["label"] == "soleil ☀ 太陽"
