"""The Procfile server (2 workers, 16 clients) with MODELS_DIR=s3://... against moto's S3 server:
answers as from disk, a version published under load, a half-written one, the store stopped under
load, and a restart with the store stopped."""
from __future__ import annotations

import shutil
import time
from collections.abc import Callable, Iterator
from contextlib import AbstractContextManager
from pathlib import Path

import pytest
import requests

from bench.servers import RssSampler, S3Server
from tests.conftest import FAKE_ENV, SERVERS
from tests.support.live import Load, digit_pngs
from tests.support.store import publish, put_version
from tests.support.versions import add_version

pytestmark = pytest.mark.slow
POLL = 1.0


@pytest.fixture
def digits_store(tmp_path: Path) -> Path:
    models = tmp_path / "models"
    (models / "digits").mkdir(parents=True)
    add_version(models / "digits", 1)
    return models


@pytest.fixture
def store(store_env: str, monkeypatch: pytest.MonkeyPatch) -> Iterator[S3Server]:
    """moto in a process of its own: in this one, the 16 client threads would slow it down."""
    process = S3Server()
    monkeypatch.setenv("AWS_ENDPOINT_URL", process.url)
    try:
        yield process
    finally:
        process.stop()


@pytest.fixture
def s3_server_env(store: S3Server, tmp_path: Path) -> dict[str, str]:
    import boto3
    boto3.client("s3", endpoint_url=store.url).create_bucket(Bucket="models-bucket")
    return {**FAKE_ENV, "AWS_ENDPOINT_URL": store.url, "MODELS_DIR": "s3://models-bucket/models",
            "MODEL_CACHE_DIR": str(tmp_path / "cache"), "MODEL_POLL_SECONDS": str(POLL), "WEB_CONCURRENCY": "2",
            "AWS_CONFIG_FILE": str(tmp_path / "none"), "AWS_SHARED_CREDENTIALS_FILE": str(tmp_path / "none")}


def answers(url: str, images: list[bytes]) -> list[dict]:
    return [requests.post(f"{url}/digits/prediction", files={"image": ("d.png", im)}, timeout=10).json()
            for im in images]


def consistent(load: Load, v1: list[str]) -> None:
    """Every answer succeeded and is the one its reported version gives (v2 has reversed labels)."""
    failed = [r for r in load.records if r[1] != 200]
    assert not failed, failed[:5]
    mixed = [r for r in load.records if r[3] != (v1[r[4]] if r[2] == 1 else str(9 - int(v1[r[4]])))]
    assert not mixed, mixed[:5]


def test_served_from_the_store_under_load(server_factory: Callable[..., AbstractContextManager[str]],
                                          live_server: str, digits_store: Path, s3_server_env: dict[str, str],
                                          store: S3Server) -> None:
    import boto3
    s3 = boto3.client("s3", endpoint_url=store.url)
    url = s3_server_env["MODELS_DIR"]
    publish(digits_store, url)
    images = digit_pngs()
    with server_factory(**s3_server_env) as server:
        first = answers(server, images)
        assert first == answers(live_server, images)  # exactly as the same model served from disk
        v1 = [a["label"] for a in first]
        with RssSampler(SERVERS[server].proc.pid) as rss, Load(server, images) as load:
            time.sleep(1.0)
            add_version(digits_store / "digits", 2, reversed_labels=True)
            publish(digits_store, url)
            published = time.monotonic()
            time.sleep(2 * POLL + 1.0)
            late = load.versions_after(published + 2 * POLL, time.monotonic())
            last_v1 = max(r[0] for r in load.records if r[2] == 1) - published
            first_v2 = min(r[0] for r in load.records if r[2] == 2) - published
            assert late == {2}, f"v2 answered from {first_v2:.2f} s after publishing, v1 until {last_v1:.2f} s"
            # An upload that stopped after the weights: never served.
            put_version(s3, "models-bucket", "models/digits/3", digits_store / "digits" / "1",
                        ["labels.txt", "model.tflite"])
            time.sleep(2 * POLL + 0.5)
            store.stop()  # the store goes away under load
            stopped = time.monotonic()
            time.sleep(3 * POLL)
            assert load.versions_after(stopped, time.monotonic()) == {2}
        consistent(load, v1)
        # The store's client and cache cost little: within the budget the disk-served digits test holds.
        assert 0 < rss.peak <= 300, f"peak RSS {rss.peak:.0f} MB"
        assert 3 not in {r[2] for r in load.records} and len(load.records) > 100
        ready = requests.get(f"{server}/health/ready", timeout=5)
        assert ready.status_code == 200 and "unreachable" in ready.json()["failures"]["store"]["error"]
    # A restart with the store still stopped serves what the cache holds.
    with server_factory(**s3_server_env) as server:
        again = answers(server, images)
        assert [a["version"] for a in again] == [2] * len(images)
        assert [a["label"] for a in again] == [str(9 - int(label)) for label in v1]
        ready = requests.get(f"{server}/health/ready", timeout=5).json()
        assert "store" in ready["failures"] and ready["models"] == {"digits": True}


def test_a_stale_newest_version_on_disk_does_not_stop_a_restart(
        server_factory: Callable[..., AbstractContextManager[str]], digits_store: Path) -> None:
    add_version(digits_store / "digits", 2, reversed_labels=True)
    weights = digits_store / "digits" / "2" / "weights.h5"
    weights.write_bytes(weights.read_bytes() + b"\0")  # sources changed, artifact not recompiled
    shutil.copytree(digits_store / "digits", digits_store / "broken")
    (digits_store / "broken" / "1" / "model.tflite").write_bytes(b"not a flatbuffer")
    shutil.rmtree(digits_store / "broken" / "2")
    with server_factory(MODELS_DIR=str(digits_store), AUTO_COMPILE="false") as server:
        answer = answers(server, digit_pngs(1))[0]
        assert answer["version"] == 1
        ready = requests.get(f"{server}/health/ready", timeout=5)
        body = ready.json()
        assert ready.status_code == 200 and "model.tflite is stale" in body["failures"]["digits"]["v2"]
        assert "broken" in body["failures"] and body["models"] == {"digits": True}
        states = requests.get(f"{server}/digits/", timeout=5).json()["versions"]
        assert [(s["version"], s["state"]) for s in states] == [(1, "serving"), (2, "failed")]
        assert requests.get(f"{server}/v2/health/ready", timeout=5).status_code == 503  # V2: every model
