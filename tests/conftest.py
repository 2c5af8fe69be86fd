"""Layered fixtures: test models -> app -> client; live gunicorn servers from the Procfile."""
from __future__ import annotations

import os
import shutil
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest

from bench.servers import ROOT, Server, free_port, procfile_web, serve  # noqa: F401 - re-exported for tests
from tests import builders

BLOCKER = '''import os
with open(os.environ["TF_IMPORT_MARKER"], "a") as f:
    f.write(__name__ + "\\n")
raise ImportError(__name__ + " is blocked: the web process must not import it")
'''


@pytest.fixture(scope="session")
def models_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """`colors` (Keras 3) and `shades` (tf.keras 2), both compiled to TFLite."""
    from util.build.compile import compile_model
    from util.serve.spec import discover
    root = tmp_path_factory.mktemp("models")
    builders.write_colors_model(root / "colors" / "1")
    builders.write_shades_model(root / "shades")
    for spec in discover(root):
        compile_model(spec)
    return root


@pytest.fixture(scope="session")
def app(models_dir: Path):  # type: ignore[no-untyped-def]
    from application import create_app
    return create_app({"MODELS_DIR": str(models_dir), "PRELOAD_MODELS": True, "MAX_IMAGE_PIXELS": 4_000_000,
                       "MAX_CONTENT_LENGTH": 2 * 1024 * 1024})


@pytest.fixture
def client(app):  # type: ignore[no-untyped-def]
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
                   ) -> Callable[..., "contextmanager[str]"]:
    """Start servers with TensorFlow import-blocked: `with server_factory(MODELS_DIR=...) as url`."""
    blocker, marker = tf_blocker

    def factory(**env: str):  # type: ignore[no-untyped-def]
        log = tmp_path_factory.mktemp("server") / "server.log"
        env = {"PYTHONPATH": f"{blocker}{os.pathsep}{ROOT}", "TF_IMPORT_MARKER": str(marker), **env}
        return serve_url(env, log)
    return factory


@pytest.fixture(scope="session")
def live_server(server_factory: Callable[..., "contextmanager[str]"]) -> Iterator[str]:
    """The repository's own models (the default `digits`) served exactly as the Procfile says."""
    with server_factory() as url:
        yield url


@pytest.fixture(scope="session")
def digits_split():  # type: ignore[no-untyped-def]
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
