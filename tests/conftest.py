"""Layered fixtures: test models -> app -> client; live gunicorn servers from the Procfile."""
from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest
import requests

from tests import builders

ROOT = Path(__file__).resolve().parents[1]
BLOCKER = '''import os
with open(os.environ["TF_IMPORT_MARKER"], "a") as f:
    f.write(__name__ + "\\n")
raise ImportError(__name__ + " is blocked: the web process must not import it")
'''


@pytest.fixture(scope="session")
def models_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """`colors` (Keras 3) and `shades` (tf.keras 2), both compiled to TFLite."""
    from util.compile import compile_model
    from util.models import discover
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


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def procfile_web() -> str:
    for line in (ROOT / "Procfile").read_text().splitlines():
        if line.startswith("web:"):
            return line.split(":", 1)[1].strip()
    raise AssertionError("Procfile has no web: line")


@contextmanager
def run_server(env: dict[str, str], log: Path, timeout: float = 90) -> Iterator[str]:
    """Run the Procfile's web command on 127.0.0.1:<free port>; yield its base URL once ready."""
    port = free_port()
    full_env = {**os.environ, "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ['PATH']}",
                "HOST": "127.0.0.1", "PORT": str(port), **env}
    with log.open("wb") as out:
        proc = subprocess.Popen(["sh", "-c", procfile_web()], cwd=ROOT, env=full_env, stdout=out,
                                stderr=subprocess.STDOUT, start_new_session=True)
    base = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + timeout
        while True:
            if proc.poll() is not None:
                raise RuntimeError(f"server exited with {proc.returncode}:\n{log.read_text()[-3000:]}")
            try:
                if requests.get(f"{base}/health/ready", timeout=5).status_code == 200:
                    break
            except requests.ConnectionError:
                pass
            if time.monotonic() > deadline:
                raise RuntimeError(f"server not ready after {timeout}s:\n{log.read_text()[-3000:]}")
            time.sleep(0.2)
        yield base
    finally:
        stop(proc)


def stop(proc: subprocess.Popen) -> None:
    if proc.poll() is None:
        os.killpg(proc.pid, signal.SIGTERM)
        try:
            proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()


@pytest.fixture(scope="session")
def server_factory(tf_blocker: tuple[Path, Path], tmp_path_factory: pytest.TempPathFactory
                   ) -> Callable[..., "contextmanager[str]"]:
    """Start servers with TensorFlow import-blocked: `with server_factory(MODELS_DIR=...) as url`."""
    blocker, marker = tf_blocker

    def factory(**env: str):  # type: ignore[no-untyped-def]
        log = tmp_path_factory.mktemp("server") / "server.log"
        env = {"PYTHONPATH": f"{blocker}{os.pathsep}{ROOT}", "TF_IMPORT_MARKER": str(marker), **env}
        return run_server(env, log)
    return factory


@pytest.fixture(scope="session")
def live_server(server_factory: Callable[..., "contextmanager[str]"]) -> Iterator[str]:
    """The repository's own models (the default `digits`) served exactly as the Procfile says."""
    with server_factory() as url:
        yield url


@pytest.fixture(scope="session")
def digits_split():  # type: ignore[no-untyped-def]
    from util.digits import load_split
    return load_split()


@pytest.fixture
def copy_model(tmp_path: Path) -> Callable[[Path, str], Path]:
    """Copy a model directory into a fresh MODELS_DIR under tmp_path; returns its path."""
    def copy(source: Path, name: str) -> Path:
        target = tmp_path / "models" / name
        shutil.copytree(source, target)
        return target
    return copy
