"""Models from S3: `flask models publish` into moto's S3 server (real HTTP), served from
`MODELS_DIR=s3://...` through the cache, with half-written, sources-only and unreachable stores."""
from __future__ import annotations

import io
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from application import create_app
from tests.conftest import ROOT, free_port
from tests.support import builders
from tests.support.store import publish, put_version
from util.serve.store import MARKER

IMAGES = [builders.encode(builders.solid(c)) for c in ((230, 20, 20), (20, 200, 40), (30, 40, 220), (128, 128, 128))]




def s3_app(url: str, cache: Path, **settings: Any):
    return create_app({"MODELS_DIR": url, "MODEL_CACHE_DIR": str(cache), "PRELOAD_MODELS": True,
                       "AUTO_COMPILE": False, "MODEL_POLL_SECONDS": 0, **settings})


def predict(client, image: bytes, path: str = "/colors/prediction") -> dict:
    answer = client.post(path, data={"image": (io.BytesIO(image), "x.png")})
    assert answer.status_code == 200, answer.get_json()
    return answer.get_json()




def test_published_models_answer_as_from_disk(models_dir: Path, store_env: str, bucket: str,
                                              tmp_path: Path) -> None:
    url = f"s3://{bucket}/models"
    first = publish(models_dir, url)
    assert "colors v1: " in first.stdout and "shades v1: " in first.stdout and MARKER in first.stdout
    assert "0 unchanged" in first.stdout
    again = publish(models_dir, url, "colors")
    assert "(0 uploaded, 5 unchanged)" in again.stdout  # nothing changed: nothing sent
    disk = create_app({"MODELS_DIR": str(models_dir), "PRELOAD_MODELS": True}).test_client()
    store = s3_app(url, tmp_path / "cache").test_client()
    for model in ("colors", "shades"):
        for image in IMAGES:
            assert predict(store, image, f"/{model}/prediction") == predict(disk, image, f"/{model}/prediction")
    info = store.get("/colors/").get_json()
    assert info["published"] is True and info["format"] == "json" and info["verified"] is True
    assert info["answers_checked"] > 0 and info["versions"] == [{"version": 1, "state": "serving", "default": True}]
    cached = sorted(p.relative_to(tmp_path / "cache").as_posix() for p in (tmp_path / "cache").rglob("*")
                    if p.is_file() and "colors" in p.parts)
    assert f"s3/{bucket}/models/colors/1/model.tflite" in cached
    assert not any(name.endswith((".h5", "model.json")) for name in cached)  # compiled files only


def test_versions_appear_only_when_whole(models_dir: Path, store_env: str, bucket: str, s3: Any,
                                         tmp_path: Path) -> None:
    url = f"s3://{bucket}/models"
    publish(models_dir, url, "colors")
    app = s3_app(url, tmp_path / "cache")
    client, registry = app.test_client(), app.extensions["registry"]
    version = models_dir / "colors" / "1"
    # Upload stopped after the weights: the compiled files are there, the marker is not.
    put_version(s3, bucket, "models/colors/2", version, ["labels.txt", "model.tflite"])
    registry.refresh()
    assert predict(client, IMAGES[0])["version"] == 1
    states = {s["version"]: s for s in client.get("/colors/").get_json()["versions"]}
    assert states[2]["state"] == "failed" and "not published" in states[2]["error"]
    # Sources copied without publishing: reported with the command that fixes it.
    put_version(s3, bucket, "models/colors/3", version, ["labels.txt", "model.json", "model.weights.h5"])
    registry.refresh()
    failures = client.get("/health/ready").get_json()["failures"]["colors"]
    assert f"flask --app application models publish colors --to {url}" in failures["v3"]
    assert "upload incomplete" not in failures["v3"] and "v2" in failures
    # A marker whose list does not match what was uploaded (a file replaced after it): never served.
    put_version(s3, bucket, "models/colors/2", version, ["model.tflite.json", "model.yaml"])
    s3.put_object(Bucket=bucket, Key=f"models/colors/2/{MARKER}", Body=s3.get_object(
        Bucket=bucket, Key=f"models/colors/1/{MARKER}")["Body"].read().replace(b'"model": "colors", "version": 1',
                                                                                 b'"model": "colors", "version": 2'))
    s3.put_object(Bucket=bucket, Key="models/colors/2/model.tflite", Body=b"x" * version.joinpath(
        "model.tflite").stat().st_size)  # same size, other bytes
    registry.refresh()
    assert predict(client, IMAGES[0])["version"] == 1
    assert "changed while it was fetched" in registry.groups["colors"].pending[2]


def test_a_new_version_serves_and_unchanged_files_are_not_fetched_again(
        models_dir: Path, store_env: str, bucket: str, s3: Any, tmp_path: Path) -> None:
    url = f"s3://{bucket}/models"
    publish(models_dir, url, "colors")
    app = s3_app(url, tmp_path / "cache")
    registry = app.extensions["registry"]
    artifact = tmp_path / "cache" / "s3" / bucket / "models" / "colors" / "1" / "model.tflite"
    seen = artifact.stat().st_ino, artifact.stat().st_mtime_ns
    registry.refresh()
    assert (artifact.stat().st_ino, artifact.stat().st_mtime_ns) == seen  # ETags unchanged: not fetched
    for key in [o["Key"] for o in s3.list_objects_v2(Bucket=bucket, Prefix="models/colors/1/")["Contents"]]:
        s3.copy_object(Bucket=bucket, Key=key.replace("/1/", "/2/"), CopySource={"Bucket": bucket, "Key": key})
    registry.refresh()
    assert predict(app.test_client(), IMAGES[0])["version"] == 2
    for key in [o["Key"] for o in s3.list_objects_v2(Bucket=bucket, Prefix="models/colors/")["Contents"]]:
        s3.delete_object(Bucket=bucket, Key=key)
    registry.refresh()
    assert "colors" not in registry.groups  # removed from the store: no longer served


def test_an_unreachable_store_serves_from_the_cache(models_dir: Path, own_store: Any, bucket: str,
                                                    tmp_path: Path) -> None:
    url = f"s3://{bucket}/models"
    publish(models_dir, url, "colors")
    app = s3_app(url, tmp_path / "cache")
    own_store.stop()
    assert app.extensions["registry"].refresh() is False  # polling a store that is down changes nothing
    client = app.test_client()
    assert predict(client, IMAGES[1])["label"] == "green"
    restarted = s3_app(url, tmp_path / "cache").test_client()  # a restart with the store still down
    assert predict(restarted, IMAGES[1])["label"] == "green"
    ready = restarted.get("/health/ready")
    assert ready.status_code == 200 and "unreachable" in ready.get_json()["failures"]["store"]["error"]
    empty = s3_app(url, tmp_path / "no-cache").test_client()  # nothing cached and no store: nothing serves
    assert empty.get("/health/ready").status_code == 503


def test_publish_refuses_what_the_server_could_not_serve(models_dir: Path, store_env: str, bucket: str,
                                                         tmp_path: Path) -> None:
    import json
    import shutil
    shutil.copytree(models_dir / "colors", tmp_path / "models" / "colors")
    manifest = tmp_path / "models" / "colors" / "1" / "model.tflite.json"
    facts = json.loads(manifest.read_text())
    facts.update(runtime="keras", fallback_reason="conversion failed: an op LiteRT lacks")  # a Keras fallback
    manifest.write_text(json.dumps(facts))
    run = subprocess.run([sys.executable, "-m", "flask", "--app", "application", "models", "publish", "colors",
                          "--to", f"s3://{bucket}/models", "--models-dir", str(tmp_path / "models")], cwd=ROOT,
                         capture_output=True, text=True, timeout=300)
    assert run.returncode == 1 and "NOT PUBLISHED" in run.stderr and "conversion failed" in run.stderr
    assert "colors/1/" not in run.stdout


@pytest.mark.parametrize("url, why", [("gs://bucket/models", "must be a directory or s3://bucket/prefix"),
                                      ("s3:///models", "names no bucket")])
def test_a_models_dir_that_is_no_store_is_refused_at_start(url: str, why: str) -> None:
    with pytest.raises(ValueError, match=why):
        create_app({"MODELS_DIR": url})


def test_publishing_to_a_store_that_is_down_says_so(models_dir: Path, store_env: str,
                                                    monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("AWS_ENDPOINT_URL", f"http://127.0.0.1:{free_port()}")  # nothing listens there
    monkeypatch.setenv("AWS_MAX_ATTEMPTS", "1")
    run = subprocess.run([sys.executable, "-m", "flask", "--app", "application", "models", "publish", "colors",
                          "--to", "s3://some-bucket/models", "--models-dir", str(models_dir)], cwd=ROOT,
                         capture_output=True, text=True, timeout=300)
    assert run.returncode == 1 and "refused or cannot be reached" in run.stderr and "Traceback" not in run.stderr
