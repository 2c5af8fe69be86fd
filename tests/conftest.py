"""Layered fixtures: test models -> app -> client; live gunicorn servers from the Procfile; S3 (moto)."""
from __future__ import annotations

import os
import shutil
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pytest

from bench.servers import ROOT, Server, free_port, procfile_web, serve  # noqa: F401 - re-exported for tests
from tests.support import builders

BLOCKER = '''import os
with open(os.environ["TF_IMPORT_MARKER"], "a") as f:
    f.write(__name__ + "\\n")
raise ImportError(__name__ + " is blocked: the web process must not import it")
'''


@pytest.fixture(scope="session")
def models_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """`colors` (Keras 3) and `shades` (tf.keras 2), both compiled to TFLite."""
    from util.serve.spec import discover
    from util.toolchain.compile import compile_model
    root = tmp_path_factory.mktemp("models")
    builders.write_colors_model(root / "colors" / "1")
    builders.write_shades_model(root / "shades")
    for spec in discover(root):
        compile_model(spec)
    return root


@pytest.fixture(scope="session")
def app(models_dir: Path):
    from application import create_app
    return create_app({"MODELS_DIR": str(models_dir), "PRELOAD_MODELS": True, "MAX_IMAGE_PIXELS": 4_000_000,
                       "MAX_CONTENT_LENGTH": 2 * 1024 * 1024})


@pytest.fixture
def client(app):
    return app.test_client()


@pytest.fixture(scope="session")
def tf_blocker(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    """A directory whose tensorflow / keras / tf_keras packages raise on import, and the marker file."""
    root = tmp_path_factory.mktemp("blocker")
    for name in ("tensorflow", "keras", "tf_keras"):
        (root / name).mkdir()
        (root / name / "__init__.py").write_text(BLOCKER)
    return root, root / "imports.log"


SERVERS: dict[str, Server] = {}


@contextmanager
def serve_url(env: dict[str, str], log: Path) -> Iterator[str]:
    """The Procfile's web command on 127.0.0.1:<free port> (bench/servers.py); yields its URL when ready."""
    with serve(env, log=log) as server:
        SERVERS[server.url] = server  # for tests that measure the processes (RSS)
        yield server.url


@pytest.fixture(scope="session")
def server_factory(tf_blocker: tuple[Path, Path], tmp_path_factory: pytest.TempPathFactory
                   ) -> Callable[..., contextmanager[str]]:
    """Start servers with TensorFlow import-blocked: `with server_factory(MODELS_DIR=...) as url`."""
    blocker, marker = tf_blocker

    def factory(**env: str):
        log = tmp_path_factory.mktemp("server") / "server.log"
        env = {"PYTHONPATH": f"{blocker}{os.pathsep}{ROOT}", "TF_IMPORT_MARKER": str(marker), **env}
        return serve_url(env, log)
    return factory


@pytest.fixture(scope="session")
def live_server(server_factory: Callable[..., contextmanager[str]]) -> Iterator[str]:
    """The repository's own models (the default `digits`) served exactly as the Procfile says."""
    with server_factory() as url:
        yield url


@pytest.fixture(scope="session")
def digits_split():
    from scripts.digits import load_split
    return load_split()


@pytest.fixture
def copy_model(tmp_path: Path) -> Callable[[Path, str], Path]:
    """Copy a model directory into a fresh MODELS_DIR under tmp_path; returns its path."""
    def copy(source: Path, name: str) -> Path:
        target = tmp_path / "models" / name
        shutil.copytree(source, target)
        return target
    return copy


# S3: moto's server on 127.0.0.1 and fake credentials; nothing reaches AWS.
FAKE_ENV = {"AWS_ACCESS_KEY_ID": "testing", "AWS_SECRET_ACCESS_KEY": "testing", "AWS_SESSION_TOKEN": "testing",
            "AWS_SECURITY_TOKEN": "testing", "AWS_DEFAULT_REGION": "us-east-1"}


@pytest.fixture(scope="session")
def s3_server() -> Iterator[str]:
    """moto's S3 (server mode, threaded) on a free 127.0.0.1 port; yields its endpoint URL."""
    from moto.server import ThreadedMotoServer
    port = free_port()
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=port, verbose=False)
    server.start()
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        server.stop()


@pytest.fixture
def aws_env(s3_server: str, monkeypatch: pytest.MonkeyPatch, tmp_path: Any) -> str:
    """Fake credentials, the moto endpoint as AWS_S3_ENDPOINT_URL, no profiles or config files."""
    for name, value in FAKE_ENV.items():
        monkeypatch.setenv(name, value)
    for name in ("AWS_PROFILE", "AWS_STORAGE_BUCKET_NAME", "AWS_ENDPOINT_URL", "AWS_ENDPOINT_URL_S3"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("AWS_CONFIG_FILE", str(tmp_path / "no-aws-config"))
    monkeypatch.setenv("AWS_SHARED_CREDENTIALS_FILE", str(tmp_path / "no-aws-credentials"))
    monkeypatch.setenv("AWS_S3_ENDPOINT_URL", s3_server)
    return s3_server


@pytest.fixture
def s3(aws_env: str) -> Any:
    """A boto3 S3 client talking to moto."""
    import boto3
    return boto3.client("s3", endpoint_url=aws_env, region_name="us-east-1")


@pytest.fixture
def bucket(s3: Any) -> str:
    """A fresh, empty bucket."""
    name = f"test-{uuid.uuid4().hex[:12]}"
    s3.create_bucket(Bucket=name)
    return name


@pytest.fixture
def store_env(aws_env: str, monkeypatch: pytest.MonkeyPatch) -> str:
    """The standard variable the server reads (the client library's own is AWS_S3_ENDPOINT_URL)."""
    monkeypatch.setenv("AWS_ENDPOINT_URL", aws_env)
    return aws_env


@pytest.fixture
def own_store(store_env: str, monkeypatch: pytest.MonkeyPatch) -> Iterator[Any]:
    """A second moto server (same in-process buckets) that a test may stop."""
    from moto.server import ThreadedMotoServer
    port = free_port()
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=port, verbose=False)
    server.start()
    monkeypatch.setenv("AWS_ENDPOINT_URL", f"http://127.0.0.1:{port}")
    try:
        yield server
    finally:
        server.stop()
