"""k8s/kserve/: KServe's ServingRuntime and InferenceService, and the S3 credentials, validated offline.

KServe's custom resources are read into the KServe SDK's own model classes (kserve, installed with
--no-deps), strictly: a key the SDK does not know, a value of the wrong type or a missing required
field is an error. The Kubernetes types they embed (Container, Probe, ObjectMeta, ...) are checked
against kubernetes-validate's strict schemas, as tests/test_deploy.py checks k8s/.
"""
from __future__ import annotations

import copy
import importlib.util
import json
import re
import subprocess
import sys
import types
from functools import cache
from pathlib import Path
from typing import Any

import jsonschema
import pytest
import yaml
from referencing import Registry, Resource

from tests.conftest import ROOT
from tests.support import K8S_VERSION
from util.config import SETTINGS, parse_setting

KSERVE = ROOT / "k8s" / "kserve"
KINDS = {"serving.kserve.io/v1alpha1": {"ServingRuntime": "V1alpha1ServingRuntime"},
         "serving.kserve.io/v1beta1": {"InferenceService": "V1beta1InferenceService"}}
DEFS_ID = "https://kubernetes.io/api/_definitions.json"


class Invalid(ValueError):
    pass


@cache
def sdk() -> types.ModuleType:
    """kserve.models without kserve/__init__.py, which imports the model server (FastAPI, gRPC, ...)."""
    if "kserve" not in sys.modules:
        package = types.ModuleType("kserve")
        package.__path__ = list(importlib.util.find_spec("kserve").submodule_search_locations)
        sys.modules["kserve"] = package
    import kserve.models
    return kserve.models


@cache
def k8s_definitions() -> tuple[Registry, dict[str, str]]:
    """kubernetes-validate's strict definitions, and the Python client's names for them (V1Container, ...)."""
    import kubernetes_validate
    path = (Path(kubernetes_validate.__file__).parent / "kubernetes-json-schema" / f"v{K8S_VERSION}-local-strict"
            / "_definitions.json")
    contents = json.loads(path.read_text())
    names: dict[str, str] = {}
    for key in contents["$defs"]:  # io.k8s.api.core.v1.Container -> V1Container, apps.v1.X -> K8sIoApiAppsV1X
        *group, version, kind = key.split(".")
        names.setdefault(version.capitalize() + kind, key)  # core and meta come first: they win
        names["".join(part.capitalize() for part in [*group, version]) + kind] = key
    names["ResourceQuantity"] = "io.k8s.apimachinery.pkg.api.resource.Quantity"
    return Registry().with_resource(DEFS_ID, Resource.from_contents(contents)), names


def read(value: Any, type_name: str, where: str) -> Any:
    """`value` as the SDK's `type_name` (its openapi_types notation), or Invalid saying where and why."""
    if m := re.fullmatch(r"list\[(.+)\]", type_name):
        if not isinstance(value, list):
            raise Invalid(f"{where}: expected a list, got {value!r}")
        return [read(item, m[1], f"{where}[{i}]") for i, item in enumerate(value)]
    if m := re.fullmatch(r"dict\(str, (.+)\)", type_name):
        if not isinstance(value, dict) or not all(isinstance(k, str) for k in value):
            raise Invalid(f"{where}: expected a mapping with string keys, got {value!r}")
        return {k: read(v, m[1], f"{where}.{k}") for k, v in value.items()}
    primitives = {"str": str, "int": int, "bool": bool, "float": (int, float), "datetime": str, "object": object}
    if type_name in primitives:
        if not isinstance(value, primitives[type_name]) or (type_name in {"int", "float"} and isinstance(value, bool)):
            raise Invalid(f"{where}: expected {type_name}, got {value!r}")
        return value
    model = getattr(sdk(), type_name, None)
    if model is not None:
        if not isinstance(value, dict):
            raise Invalid(f"{where}: expected a {type_name} mapping, got {value!r}")
        attributes = {json_key: attr for attr, json_key in model.attribute_map.items()}
        if unknown := sorted(set(value) - set(attributes)):
            raise Invalid(f"{where}: {type_name} has no field {', '.join(unknown)}")
        kwargs = {attributes[k]: read(v, model.openapi_types[attributes[k]], f"{where}.{k}")
                  for k, v in value.items() if v is not None}
        try:
            return model(**kwargs)  # the SDK's own checks: required fields
        except ValueError as exc:
            raise Invalid(f"{where}: {exc}") from None
    registry, names = k8s_definitions()
    if type_name not in names:
        raise Invalid(f"{where}: no schema for {type_name}")
    schema = {"$ref": f"{DEFS_ID}#/$defs/{names[type_name]}"}
    error = jsonschema.exceptions.best_match(
        jsonschema.Draft202012Validator(schema, registry=registry).iter_errors(value))
    if error is not None:
        at = "".join(f"[{p}]" if isinstance(p, int) else f".{p}" for p in error.absolute_path)
        raise Invalid(f"{where}{at}: {error.message}")
    return value


def validate(document: dict) -> Any:
    """The KServe resource `document` as an SDK object (V1beta1InferenceService, ...), or Invalid."""
    kind = KINDS.get(document.get("apiVersion"), {}).get(document.get("kind"))
    if kind is None:
        raise Invalid(f"not a KServe resource this test knows: {document.get('apiVersion')} {document.get('kind')}")
    return read(document, kind, document["kind"])


def documents(name: str) -> list[dict]:
    return [d for d in yaml.safe_load_all((KSERVE / name).read_text()) if d]


def one(kind: str) -> dict:
    return next(d for path in sorted(KSERVE.glob("*.yaml")) for d in documents(path.name) if d["kind"] == kind)


def test_kserve_resources_validate_against_the_sdk_models() -> None:
    runtime = validate(one("ServingRuntime"))
    isvc = validate(one("InferenceService"))
    assert type(runtime).__name__ == "V1alpha1ServingRuntime" and runtime.spec.containers
    assert isvc.spec.predictor.model.model_format.name == "keras"
    kinds = sorted(d["kind"] for path in KSERVE.glob("*.yaml") for d in documents(path.name))
    assert kinds == ["InferenceService", "Secret", "ServiceAccount", "ServingRuntime"]


def broken(kind: str, change: str) -> dict:
    document = copy.deepcopy(one(kind))
    if kind == "InferenceService":
        predictor = document["spec"]["predictor"]
        if change == "unknown field":
            predictor["minReplica"] = predictor.pop("minReplicas")
        elif change == "wrong type":
            predictor["scaleTarget"] = "four"
        elif change == "unknown nested field":
            predictor["model"]["storageURI"] = predictor["model"].pop("storageUri")
        elif change == "missing required":
            del predictor["model"]["modelFormat"]
    else:
        container = document["spec"]["containers"][0]
        if change == "missing container name":
            del container["name"]
        elif change == "probe typo":
            container["readinessProbe"]["httpGett"] = container["readinessProbe"].pop("httpGet")
        elif change == "port as text":
            container["ports"][0]["containerPort"] = "8080"
        elif change == "env not a list":
            container["env"] = {"PORT": "8080"}
        elif change == "protocolVersions not a list":
            document["spec"]["protocolVersions"] = "v2"
    return document


@pytest.mark.parametrize("kind,change", [
    ("InferenceService", "unknown field"), ("InferenceService", "wrong type"),
    ("InferenceService", "unknown nested field"), ("InferenceService", "missing required"),
    ("ServingRuntime", "missing container name"), ("ServingRuntime", "probe typo"),
    ("ServingRuntime", "port as text"), ("ServingRuntime", "env not a list"),
    ("ServingRuntime", "protocolVersions not a list"),
])
def test_kserve_validation_can_fail(kind: str, change: str) -> None:
    with pytest.raises(Invalid):
        validate(broken(kind, change))


def kubernetes_validate(*paths: Path) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "kubernetes_validate", "--strict", "-k", K8S_VERSION,
                           *map(str, paths)], capture_output=True, text=True)


def test_s3_credentials_validate_offline(tmp_path: Path) -> None:
    run = kubernetes_validate(KSERVE / "s3-credentials.yaml")
    assert run.returncode == 0, run.stdout + run.stderr
    secret = copy.deepcopy(one("Secret"))
    secret["stringdata"] = secret.pop("stringData")
    (tmp_path / "broken.yaml").write_text(yaml.safe_dump(secret))
    assert kubernetes_validate(tmp_path / "broken.yaml").returncode != 0


def container() -> dict:
    return one("ServingRuntime")["spec"]["containers"][0]


def test_runtime_container_port_probes_and_protocols() -> None:
    runtime, main = one("ServingRuntime"), container()
    assert main["name"] == "kserve-container" and main["image"].startswith("keras-serve:")
    assert [p["containerPort"] for p in main["ports"]] == [8080]
    env = {e["name"]: e.get("value") for e in main["env"]}
    assert env["PORT"] == "8080" and env["HOST"] == "0.0.0.0"
    assert re.fullmatch(r"/v2/.*ready", main["readinessProbe"]["httpGet"]["path"])
    assert main["livenessProbe"]["httpGet"]["path"] == "/v2/health/live"
    assert {main["readinessProbe"]["httpGet"]["port"], main["livenessProbe"]["httpGet"]["port"]} == {8080}
    assert {"v1", "v2"} <= set(runtime["spec"]["protocolVersions"])
    annotations = runtime["spec"]["annotations"]
    assert annotations["prometheus.kserve.io/port"] == "8080" and annotations["prometheus.kserve.io/path"] == "/metrics"
    security = main["securityContext"]
    assert security["runAsNonRoot"] is True and security["runAsUser"] == 10001
    assert security["readOnlyRootFilesystem"] is True and security["allowPrivilegeEscalation"] is False
    mounts = {m["mountPath"]: m["name"] for m in main["volumeMounts"]}
    volumes = {v["name"]: v for v in runtime["spec"]["volumes"]}
    assert "emptyDir" in volumes[mounts["/tmp"]]
    assert "emptyDir" in volumes[mounts[env["MODEL_CACHE_DIR"]]]


def test_runtime_env_is_settings_the_app_reads() -> None:
    env = {e["name"]: e.get("value") for e in container()["env"]}
    assert env["MODELS_DIR"] == "/mnt/models"  # where KServe's storage initializer puts the model
    assert env["MODEL_NAME"] == "{{.Name}}"  # one model, named after the InferenceService
    assert env["AUTO_COMPILE"] == "false" and env["MODEL_POLL_SECONDS"] == "0"
    read_by_app = set(SETTINGS) | {"WEB_CONCURRENCY", "GUNICORN_THREADS", "LOG_LEVEL", "PORT", "HOST",
                                   "MODEL_NAME", "MODEL_CACHE_DIR"}
    for name in env:
        assert name in read_by_app or name.startswith("AWS_"), f"the runtime sets {name}, which the app does not read"
    for name, value in env.items():
        if name in SETTINGS:
            parse_setting(name, value)  # parses as the app parses it


def test_inference_service_uses_the_runtime_and_s3_credentials() -> None:
    isvc, runtime = one("InferenceService"), one("ServingRuntime")
    predictor = isvc["spec"]["predictor"]
    model = predictor["model"]
    assert model["runtime"] == runtime["metadata"]["name"]
    assert model["modelFormat"]["name"] in {f["name"] for f in runtime["spec"]["supportedModelFormats"]}
    assert model.get("protocolVersion", "v1") in runtime["spec"]["protocolVersions"]
    assert model["storageUri"].startswith("s3://")
    assert predictor["minReplicas"] == 0 and predictor["maxReplicas"] >= 1
    assert predictor["scaleMetric"] == "concurrency" and predictor["scaleTarget"] >= 1
    assert isvc["metadata"]["annotations"]["serving.kserve.io/enable-prometheus-scraping"] == "true"
    account = one("ServiceAccount")
    assert account["metadata"]["name"] == predictor["serviceAccountName"]
    secret = one("Secret")
    assert secret["metadata"]["name"] in {s["name"] for s in account["secrets"]}
    assert set(secret["stringData"]) == {"AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY"}
    assert all("REPLACE" in v for v in secret["stringData"].values())  # placeholders, never real keys
    assert {"serving.kserve.io/s3-endpoint", "serving.kserve.io/s3-usehttps",
            "serving.kserve.io/s3-region"} <= set(secret["metadata"]["annotations"])
