"""Declared schemas (util/schemas.py): settings, model.yaml and the TF Serving / V2 request bodies are
refused with the field, the rule and the value given."""
from __future__ import annotations

import json
from pathlib import Path
from typing import get_args

import msgspec
import pytest

from util.config import SETTINGS, Settings, load_settings, parse_setting
from util.errors import ModelLoadError
from util.serve import bodies
from util.serve.image import RESAMPLING, Resample
from util.serve.metadata import ModelYaml, VersionPolicy, read_metadata, read_policy
from util.serve.outputs import KINDS, Kind

DECLARED = [Settings, ModelYaml, VersionPolicy, bodies.TFPredict, bodies.TFClassify, bodies.V2Request]


def test_every_declared_type_is_valid_and_literals_match_their_tables() -> None:
    # msgspec checks constraints only when a type is first used: an invalid one would be a 500 on a first request.
    assert len(msgspec.inspect.multi_type_info(DECLARED)) == len(DECLARED)
    assert set(get_args(Kind)) == set(KINDS) and set(get_args(Resample)) == set(RESAMPLING)


def test_settings_read_environment_text(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("MAX_BATCH_SIZE", " 8 ")
    monkeypatch.setenv("DEMO_PAGE", "Off")
    monkeypatch.setenv("PRELOAD_MODELS", "yes")
    monkeypatch.setenv("BODY_TIMEOUT", "")  # empty: the default
    settings = load_settings({"TESTING": True, "MODEL_POLL_SECONDS": 0})
    assert (settings["MAX_BATCH_SIZE"], settings["DEMO_PAGE"], settings["PRELOAD_MODELS"]) == (8, False, True)
    assert settings["BODY_TIMEOUT"] == 60.0 and settings["TESTING"] is True and settings["MODEL_POLL_SECONDS"] == 0
    assert set(SETTINGS) <= set(settings) and all(SETTINGS.values())  # every setting documented
    assert parse_setting("AUTO_COMPILE", "false") is False


@pytest.mark.parametrize("name, raw, message", [
    ("MAX_BATCH_SIZE", "four", "environment variable MAX_BATCH_SIZE must be an integer >= 1, not 'four'"),
    ("MAX_BATCH_SIZE", "0", "environment variable MAX_BATCH_SIZE must be an integer >= 1, not '0'"),
    ("BODY_TIMEOUT", "-1", "environment variable BODY_TIMEOUT must be a number > 0, not '-1'"),
    ("DEMO_PAGE", "maybe", "environment variable DEMO_PAGE must be true or false, not 'maybe'"),
    ("MODEL_RUNTIME", "gpu", "environment variable MODEL_RUNTIME must be one of ['auto', 'keras', 'tflite']"),
])
def test_bad_environment_variables_are_named(monkeypatch: pytest.MonkeyPatch, name: str, raw: str,
                                             message: str) -> None:
    monkeypatch.setenv(name, raw)
    with pytest.raises(ValueError) as info:
        load_settings()
    assert str(info.value).startswith(message)


def test_bad_overrides_are_named() -> None:
    with pytest.raises(ValueError, match=r"^setting MODEL_RUNTIME must be one of \['auto', 'keras', 'tflite'\], "
                                         r"not 'gpu'$"):
        load_settings({"MODEL_RUNTIME": "gpu"})


def model_yaml(tmp_path: Path, text: str) -> Path:
    (tmp_path / "model.yaml").write_text(text)
    return tmp_path


@pytest.mark.parametrize("text, message", [
    ("colour: red\nzoom: 2\n", "model.yaml: unknown keys ['colour', 'zoom']; known: ['batching', "),
    ("batching:\n  max_batch_sise: 4\n", "unknown batching keys ['max_batch_sise']; known: ['max_batch_delay_ms', "
                                         "'max_batch_size']"),
    ("batching:\n  max_batch_delay_ms: -1\n", "batching takes max_batch_size (>= 1) and max_batch_delay_ms (>= 0), "
                                              "not {'max_batch_delay_ms': -1}"),
    ("quantize: int4\n", "quantize must be one of ['float16', 'int8', 'none'], not 'int4'"),
    ("quantize_min_agreement: 1.5\n", "quantize_min_agreement must be a number from 0 to 1, not 1.5"),
    ("preprocessing:\n  invert: maybe\n", "preprocessing.invert must be true or false, not 'maybe'"),
    ("preprocessing:\n  size: [64]\n", "preprocessing.size must be [height, width] in pixels (1..4096), not [64]"),
    ("preprocessing: crop\n", "preprocessing must be an object, not 'crop'"),
    ("title: [a, b]\n", "title must be a string, not ['a', 'b']"),
])
def test_model_yaml_names_the_key_the_rule_and_the_value(tmp_path: Path, text: str, message: str) -> None:
    with pytest.raises(ModelLoadError) as info:
        read_metadata(model_yaml(tmp_path, text))
    assert str(tmp_path) in info.value.message and message in info.value.message


@pytest.mark.parametrize("text, message", [
    ("versions: [1, true]\n", "versions must be latest, all or a list of version numbers, not [1, True]"),
    ("versions: []\n", "versions must be latest, all or a list of version numbers, not []"),
    ("default_version: latest\n", "default_version must be a version number, not 'latest'"),
])
def test_version_policy_is_declared(tmp_path: Path, text: str, message: str) -> None:
    with pytest.raises(ModelLoadError, match=message.replace("[", r"\[")):
        read_policy(model_yaml(tmp_path, text))


def test_version_policy_leaves_the_other_keys_to_the_version(tmp_path: Path) -> None:
    # An unversioned model's one model.yaml: a bad threshold fails its version, not the model's policy.
    policy = read_policy(model_yaml(tmp_path, "versions: [3, 1]\nthreshold: 2\n"))
    assert policy.wanted([1, 2, 3]) == [1, 3] and policy.default_version is None
    with pytest.raises(ModelLoadError, match="threshold must be a number from 0 to 1, not 2"):
        read_metadata(tmp_path)


@pytest.mark.parametrize("verb, body, message", [
    ("predict", [{"b64": "x"}], "the body must be a JSON object"),
    ("predict", {"instances": [], "signature_name": 7}, "signature_name must be a string, not 7"),
    ("classify", {}, "\"examples\" must be a list of objects, each with an \"image\" feature"),
    ("classify", {"examples": ["iVBOR"]}, "\"examples\" must be a list of objects, each with an \"image\" feature, "
                                          "not ['iVBOR']"),
    ("classify", {"examples": [{}], "context": [1]}, "\"context\" must be an object of features, not [1]"),
])
def test_tf_serving_bodies(client, verb: str, body: object, message: str) -> None:
    answer = client.post(f"/v1/models/colors:{verb}", json=body)
    assert answer.status_code == 400 and answer.get_json() == {"error": message}


IMAGE = {"name": "image", "datatype": "BYTES", "shape": [1], "data": ["iVBORw0KGgo="]}


@pytest.mark.parametrize("body, message", [
    ([IMAGE], bodies.INPUTS),
    ({"inputs": []}, bodies.INPUTS + ", not []"),
    ({"inputs": [IMAGE, IMAGE]},
     bodies.INPUTS + ", not [{'name': 'image', 'datatype': 'BYTES', 'shape': [1], 'data'..."),
    ({"inputs": [{**IMAGE, "shape": ["1"]}]}, "an input's shape is a list of sizes, the batch first, not ['1']"),
    ({"inputs": [{**IMAGE, "datatype": "INT8"}]}, "an input's datatype is BYTES (\"image\") or FP32 (\"tensor\"), "
                                                  "not 'INT8'"),
    ({"inputs": [{k: v for k, v in IMAGE.items() if k != "shape"}]},
     "an input's shape is a list of sizes, the batch first"),
    ({"inputs": [{**IMAGE, "parameters": {"binary_data_size": -1}}]},
     "binary_data_size must be the length in bytes of the binary data after the JSON header, not -1"),
    ({"inputs": [IMAGE], "outputs": [{"name": "probabilities"}]}, "the one output is \"scores\", not 'probabilities'"),
    ({"inputs": [IMAGE], "outputs": [{"parameters": {"classification": 0}}]},
     "outputs[0].parameters.classification must be an integer >= 1, not 0"),
    ({"inputs": [IMAGE], "outputs": [{"parameters": {"binary_data": "yes"}}]},
     "outputs[0].parameters.binary_data must be true or false, not 'yes'"),
    ({"inputs": [IMAGE], "id": 7}, "id must be a string, not 7"),
])
def test_v2_bodies(client, body: object, message: str) -> None:
    answer = client.post("/v2/models/colors/infer", data=json.dumps(body), content_type="application/json")
    assert answer.status_code == 400 and answer.get_json()["error"] == message


def test_v2_quotes_a_long_value_shortly(client) -> None:
    body = {"inputs": [{**IMAGE, "shape": ["x" * 10_000]}]}
    error = client.post("/v2/models/colors/infer", json=body).get_json()["error"]
    assert error.startswith("an input's shape is a list of sizes, the batch first, not ['xxx") and len(error) < 140
    assert client.post("/v2/models/colors/infer", data=b"{").get_json()["error"] == (
        "the inference request header is not valid JSON")
