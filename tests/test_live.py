"""A real gunicorn server started with the Procfile's web command, TensorFlow import-blocked."""
from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np
import pytest
import requests

from tests.conftest import ROOT, SERVERS, free_port, procfile_web
from tests.support import builders

pytestmark = pytest.mark.slow


def post(url: str, data: bytes, name: str = "digit.png", session: requests.Session | None = None,
         **form: str) -> requests.Response:
    return (session or requests).post(url, files={"image": (name, data, "application/octet-stream")},
                                      data=form, timeout=30)


def test_blocker_really_blocks_tensorflow(tf_blocker: tuple[Path, Path], tmp_path: Path) -> None:
    blocker, _ = tf_blocker
    env = {**os.environ, "PYTHONPATH": str(blocker), "TF_IMPORT_MARKER": str(tmp_path / "probe.log")}
    run = subprocess.run([sys.executable, "-c", "import tensorflow"], env=env, capture_output=True, text=True)
    assert run.returncode != 0 and "tensorflow is blocked" in run.stderr


def test_digit_predicted_by_server_that_cannot_import_tensorflow(
        live_server: str, tf_blocker: tuple[Path, Path], digits_split) -> None:
    from scripts.digits import render, to_png
    _, _, x_test, y_test = digits_split
    for digit, label in list(zip(x_test, y_test, strict=True))[:10]:
        body = post(f"{live_server}/digits/prediction", to_png(render(digit))).json()
        assert body["label"] == str(label), body
    info = requests.get(f"{live_server}/digits/", timeout=10).json()
    assert info["runtime"] == "tflite"
    _, marker = tf_blocker
    assert not marker.exists(), f"the server tried to import: {marker.read_text()}"


def test_tf_keras_and_keras3_fixture_models_served_live(server_factory, models_dir: Path) -> None:
    with server_factory(MODELS_DIR=str(models_dir)) as url:
        dark = post(f"{url}/shades/prediction", builders.encode(builders.solid(40, mode="L"))).json()
        red = post(f"{url}/colors/prediction", builders.encode(builders.solid((230, 20, 20)), "JPEG"),
                   name="r.jpg", top_k="2").json()
    assert dark["label"] == "dark" and dark["model"] == "shades"
    assert red["label"] == "red" and len(red["predictions"]) == 2


def test_bad_input_over_http_is_json_4xx(live_server: str) -> None:
    url = f"{live_server}/digits/prediction"
    too_big = post(url, b"\0" * (10 * 1024 * 1024 + 1))
    assert too_big.status_code == 413 and too_big.json()["error"] == "payload_too_large"
    assert post(url, b"").json()["error"] == "invalid_image"
    assert post(url, b"%PDF-1.4 not an image").status_code == 400
    missing = requests.post(url, files={"picture": ("x.png", b"x")}, timeout=10)
    assert missing.status_code == 400 and missing.json()["error"] == "missing_image"
    unknown = requests.post(f"{live_server}/nope/prediction", files={"image": ("x.png", b"x")}, timeout=10)
    assert unknown.status_code == 404 and "/digits/prediction" in unknown.json()["message"]
    bad_k = post(url, builders.encode(builders.solid(255, mode="L")), top_k="11")
    assert bad_k.status_code == 400 and bad_k.json()["error"] == "invalid_parameter"
    # The server is still healthy after all of that.
    assert requests.get(f"{live_server}/health/ready", timeout=10).status_code == 200


def test_end_to_end_accuracy_matches_in_process(live_server: str, digits_split) -> None:
    from scripts.digits import render, to_png
    from tests.support import builders
    from util.serve.image import preprocess
    from util.serve.spec import discover
    _, _, x_test, y_test = digits_split
    uploads = [to_png(render(digit)) for digit in x_test]
    spec = {s.name: s for s in discover(ROOT / "saved_models")}["digits"]
    model = builders.keras_model(spec)
    batch = np.stack([preprocess(data, (8, 8, 1), spec.preprocessing, 40_000_000) for data in uploads])
    in_process = float(np.mean(np.argmax(np.asarray(model(batch)), axis=1) == y_test))
    with SERVERS[live_server].rss() as rss, requests.Session() as session, ThreadPoolExecutor(8) as pool:
        labels = list(pool.map(lambda d: post(f"{live_server}/digits/prediction", d, session=session)
                               .json()["label"], uploads * 3))[:len(uploads)]
    served = float(np.mean(np.array(labels) == y_test.astype(str)))
    print(f"held-out digits: in-process {in_process:.2%}, live server {served:.2%} (n={len(y_test)}); "
          f"peak RSS of all server processes {rss.peak:.0f} MB")
    assert served >= 0.97
    assert abs(served - in_process) <= 0.005
    # A Heroku basic dyno has 512 MB; the serving processes (master + workers) stay within 300.
    assert 0 < rss.peak <= 300


def test_a_server_whose_only_model_is_stale_starts_and_says_why_it_is_not_ready(
        tmp_path: Path, tf_blocker: tuple[Path, Path]) -> None:
    builders.write_colors_model(tmp_path / "colors")  # sources without a compiled artifact, no older version
    port = free_port()
    env = {**os.environ, "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ['PATH']}",
           "HOST": "127.0.0.1", "PORT": str(port), "MODELS_DIR": str(tmp_path), "AUTO_COMPILE": "0",
           "PYTHONPATH": f"{tf_blocker[0]}{os.pathsep}{ROOT}", "TF_IMPORT_MARKER": str(tmp_path / "m.log")}
    server = subprocess.Popen(["sh", "-c", procfile_web()], cwd=ROOT, env=env, stdout=subprocess.DEVNULL,
                              stderr=subprocess.DEVNULL, start_new_session=True)
    url = f"http://127.0.0.1:{port}"
    try:
        wait_live = time.monotonic() + 60
        while True:  # up (not crashed), though with nothing to serve
            assert server.poll() is None, "the server exited"
            with contextlib.suppress(requests.RequestException):
                if requests.get(f"{url}/health/live", timeout=2).status_code == 200:
                    break
            assert time.monotonic() < wait_live, "the server never answered /health/live"
            time.sleep(0.1)
        ready = requests.get(f"{url}/health/ready", timeout=5)
        message = ready.json()["message"]
        assert ready.status_code == 503 and "model.tflite is missing" in message
        assert f"{tmp_path / 'colors'}" in message and "flask --app application models compile colors" in message
        assert not (tmp_path / "m.log").exists()  # and it never tried TensorFlow
    finally:
        os.killpg(server.pid, signal.SIGTERM)
        server.wait(30)
