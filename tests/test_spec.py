"""util/serve/spec.py and util/toolchain/formats/: discovery, versions, metadata, Keras 3 and tf.keras 2
loading, load errors."""
from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pytest

from tests.support import builders
from util.errors import ModelLoadError
from util.serve.spec import discover, read_spec


@pytest.fixture
def colors(tmp_path: Path, models_dir: Path) -> Path:
    target = tmp_path / "colors"
    shutil.copytree(models_dir / "colors", target)
    return target / "1"


def test_discovers_highest_version_and_flat_dirs(tmp_path: Path, models_dir: Path) -> None:
    shutil.copytree(models_dir / "colors" / "1", tmp_path / "colors" / "2")
    shutil.copytree(models_dir / "colors" / "1", tmp_path / "colors" / "10")
    shutil.copytree(models_dir / "shades", tmp_path / "shades")
    (tmp_path / ".hidden").mkdir()
    specs = {s.name: s for s in discover(tmp_path)}
    assert sorted(specs) == ["colors", "shades"]
    assert specs["colors"].version == 10 and specs["colors"].path.name == "10"
    assert specs["shades"].version == 1 and specs["shades"].path == tmp_path / "shades"
    assert specs["colors"].title == "Colours" and specs["colors"].labels == builders.COLORS
    assert specs["shades"].preprocessing.resize == "crop"


@pytest.mark.parametrize("weights_name", ["model.weights.h5", "weights.h5"])
def test_keras3_weights_load_under_either_name(tmp_path: Path, weights_name: str) -> None:
    # A Keras 3 weights file renamed to plain `weights.h5` must not be read as legacy HDF5.
    path = builders.write_colors_model(tmp_path / "colors", weights_name=weights_name)
    model = builders.keras_model(read_spec(path))
    red = np.zeros((1, 8, 8, 3), np.float32)
    red[..., 0] = 1
    assert int(np.argmax(model(red))) == 0


def test_tf_keras_2_json_and_legacy_h5_load(models_dir: Path) -> None:
    spec = read_spec(models_dir / "shades")
    assert json.loads(spec.source.read_text())["keras_version"].startswith("2.")
    model = builders.keras_model(spec)
    assert type(model).__module__.startswith("tf_keras")
    probs = np.asarray(model(np.full((2, 8, 8, 1), [[[[0.1]]], [[[0.9]]]], np.float32)))
    assert probs.argmax(axis=1).tolist() == [0, 1]


def test_keras3_model_reads_legacy_h5_weights(tmp_path: Path) -> None:
    import keras
    path = builders.write_colors_model(tmp_path / "colors")
    model = keras.models.model_from_json((path / "model.json").read_text())
    model.load_weights(str(path / "model.weights.h5"))
    (path / "model.weights.h5").unlink()
    import h5py
    from keras.src.legacy.saving import legacy_h5_format
    with h5py.File(path / "weights.h5", "w") as f:
        legacy_h5_format.save_weights_to_hdf5_group(f, model)
    loaded = builders.keras_model(read_spec(path))
    np.testing.assert_allclose(loaded.layers[-1].get_weights()[0], np.eye(3) * 10)


def test_corrupt_json_names_directory(colors: Path) -> None:
    (colors / "model.json").write_text('{"class_name": "Sequential", ')
    with pytest.raises(ModelLoadError, match=rf"{colors}.*not valid JSON"):
        read_spec(colors.parent)


def test_json_of_unknown_layer_names_directory(colors: Path) -> None:
    config = json.loads((colors / "model.json").read_text())
    config["config"]["layers"][1]["class_name"] = "NoSuchLayer"
    (colors / "model.json").write_text(json.dumps(config))
    with pytest.raises(ModelLoadError,
                       match=rf"{colors}.*uses the class NoSuchLayer, which is neither built into Keras"):
        builders.keras_model(read_spec(colors.parent))


def test_weights_that_do_not_fit_name_directory(colors: Path, tmp_path: Path) -> None:
    other = builders.write_shades_model(tmp_path / "other")
    (colors / "model.weights.h5").unlink()
    shutil.copy(other / "weights.h5", colors / "weights.h5")
    with pytest.raises(ModelLoadError, match=rf"{colors}.*weights.h5 does not fit the architecture"):
        builders.keras_model(read_spec(colors.parent))


def test_missing_labels_names_directory(colors: Path) -> None:
    (colors / "labels.txt").unlink()
    with pytest.raises(ModelLoadError, match=rf"{colors}.*missing labels.txt"):
        read_spec(colors.parent)


def test_label_count_mismatch_names_directory(colors: Path) -> None:
    (colors / "labels.txt").write_text("red\ngreen\n")
    from util.toolchain.compile import compile_model
    with pytest.raises(ModelLoadError, match=rf"{colors}.*2 labels but the model outputs 3"):
        compile_model(read_spec(colors.parent))


@pytest.mark.parametrize("yaml_text, reason", [
    ("title: [unclosed", "not valid YAML"),
    ("colour: red\n", "unknown keys"),
    ("preprocessing:\n  resize: squash\n", "resize must be one of"),
    ("preprocessing:\n  gamma: 2\n", "unknown preprocessing keys"),
])
def test_bad_model_yaml_names_directory(colors: Path, yaml_text: str, reason: str) -> None:
    (colors / "model.yaml").write_text(yaml_text)
    with pytest.raises(ModelLoadError, match=rf"{colors}.*{reason}"):
        read_spec(colors.parent)


def test_missing_weights_and_missing_dir(colors: Path, tmp_path: Path) -> None:
    (colors / "model.weights.h5").unlink()
    with pytest.raises(ModelLoadError, match="expected one weights file"):
        read_spec(colors.parent)
    with pytest.raises(ModelLoadError, match="does not exist"):
        discover(tmp_path / "nowhere")
