"""Operations: request ids and access logs, API keys, and Prometheus metrics across workers."""
from __future__ import annotations

import io
import json
import re
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from pathlib import Path

import pytest
import requests

from tests.support import builders

PNG = builders.encode(builders.solid((200, 0, 0)))


def upload() -> dict:
    return {"image": (io.BytesIO(PNG), "r.png")}


def log_lines(text: str) -> list[dict]:
    return [json.loads(line) for line in text.splitlines() if line.startswith("{")]


@pytest.fixture
def json_app(models_dir: Path):
    from application import create_app
    return create_app({"MODELS_DIR": str(models_dir), "LOG_FORMAT": "json", "API_KEYS": ""})


def test_request_id_is_kept_when_sane_and_made_otherwise(json_app, capsys: pytest.CaptureFixture) -> None:
    client = json_app.test_client()
    kept = client.post("/colors/prediction", data=upload(), headers={"X-Request-ID": "order-42.a:b"})
    assert kept.status_code == 200 and kept.headers["X-Request-ID"] == "order-42.a:b"
    forged = client.post("/colors/prediction", data=upload(), headers={"X-Request-ID": "x\" level=error"})
    assert re.fullmatch(r"[0-9a-f]{32}", forged.headers["X-Request-ID"])
    missing = client.get("/health/live")
    assert re.fullmatch(r"[0-9a-f]{32}", missing.headers["X-Request-ID"])
    access = [line for line in log_lines(capsys.readouterr().err) if line["logger"] == "access"]
    first = next(line for line in access if line["request_id"] == "order-42.a:b")
    assert (first["method"], first["path"], first["status"], first["model"], first["version"]) == \
        ("POST", "/colors/prediction", 200, "colors", 1)
    assert first["bytes_in"] > len(PNG) and first["duration_ms"] > 0
    assert len([line for line in access if line["path"] == "/colors/prediction"]) == 2  # one line per request


@pytest.mark.parametrize("protocol", ["native", "tfserving", "v2"])
def test_unexpected_error_is_logged_with_the_request_id_and_traceback(
        json_app, capsys: pytest.CaptureFixture, monkeypatch: pytest.MonkeyPatch, protocol: str) -> None:
    import base64

    import util.serve.served as served

    def broken(*args: object, **kwargs: object) -> None:
        raise KeyError("injected")
    monkeypatch.setattr(served, "preprocess", broken)
    client, b64 = json_app.test_client(), base64.b64encode(PNG).decode()
    headers = {"X-Request-ID": "boom-1"}
    answer = {
        "native": lambda: client.post("/colors/prediction", data=upload(), headers=headers),
        "tfserving": lambda: client.post("/v1/models/colors:predict", json={"instances": [{"b64": b64}]},
                                         headers=headers),
        "v2": lambda: client.post("/v2/models/colors/infer", headers=headers, json={"inputs": [
            {"name": "image", "datatype": "BYTES", "shape": [1], "data": [b64]}]}),
    }[protocol]()
    # One mapping for every route; each protocol only keeps its own body shape.
    expected = ({"error": "internal_error", "message": "internal server error: the failure is logged on the server"}
                if protocol == "native" else {"error": "internal server error: the failure is logged on the server"})
    assert answer.status_code == 500 and answer.get_json() == expected
    errors = [line for line in log_lines(capsys.readouterr().err) if line["level"] == "error"]
    assert errors and errors[0]["request_id"] == "boom-1" and "KeyError: 'injected'" in errors[0]["traceback"]


@pytest.fixture
def keyed_app(models_dir: Path, tmp_path: Path):
    from application import create_app
    keys = tmp_path / "keys.txt"
    keys.write_text("# operators\nfile-key\n")
    return create_app({"MODELS_DIR": str(models_dir), "API_KEYS": "alpha, beta", "API_KEYS_FILE": str(keys),
                       "LOG_FORMAT": "json"})


@pytest.mark.parametrize("headers, status", [
    ({}, 401), ({"Authorization": "Bearer wrong"}, 401), ({"X-API-Key": "alph"}, 401),
    ({"Authorization": "Bearer alpha"}, 200), ({"Authorization": "bearer beta"}, 200),
    ({"X-API-Key": "file-key"}, 200),
])
def test_api_keys_guard_model_routes(keyed_app, headers: dict, status: int,
                                     capsys: pytest.CaptureFixture) -> None:
    client = keyed_app.test_client()
    for answer in (client.post("/colors/prediction", data=upload(), headers=headers),
                   client.get("/colors/", headers=headers)):
        assert answer.status_code == status
        if status == 401:
            assert answer.get_json()["error"] == "unauthorized" and answer.headers["WWW-Authenticate"].startswith(
                "Bearer")
    logged = capsys.readouterr().err
    assert "alpha" not in logged and "file-key" not in logged and "beta" not in logged


def test_health_docs_and_metrics_stay_open_and_the_spec_declares_the_schemes(keyed_app) -> None:
    client = keyed_app.test_client()
    for path in ("/health/live", "/", "/swagger.json", "/ui/swagger-batch.js", "/metrics"):
        assert client.get(path).status_code == 200, path
    spec = client.get("/swagger.json").get_json()
    assert set(spec["securityDefinitions"]) == {"apikey", "bearer"}
    assert spec["paths"]["/colors/prediction"]["post"]["security"] == [{"apikey": []}, {"bearer": []}]
    assert "security" not in spec["paths"]["/health/live"]["get"]


def test_api_keys_open_can_close_everything(models_dir: Path) -> None:
    from application import create_app
    client = create_app({"MODELS_DIR": str(models_dir), "API_KEYS": "k", "API_KEYS_OPEN": ""}).test_client()
    assert client.get("/health/live").status_code == 401 and client.get("/metrics").status_code == 401
    assert client.get("/health/live", headers={"X-API-Key": "k"}).status_code == 200
    with pytest.raises(ValueError, match="API_KEYS_OPEN"):
        create_app({"MODELS_DIR": str(models_dir), "API_KEYS": "k", "API_KEYS_OPEN": "health,everything"})


@pytest.fixture(scope="module")
def metered(tmp_path_factory: pytest.TempPathFactory, models_dir: Path,
            server_factory: Callable[..., contextmanager[str]]) -> Iterator[tuple[str, Path]]:
    directory = tmp_path_factory.mktemp("prometheus")
    with server_factory(MODELS_DIR=str(models_dir), PROMETHEUS_MULTIPROC_DIR=str(directory), API_KEYS="sekret",
                        WEB_CONCURRENCY="2") as url:
        yield url, directory


def sample(text: str, name: str, **labels: str) -> float:
    wanted = ",".join(f'{k}="{v}"' for k, v in sorted(labels.items()))
    for line in text.splitlines():
        if line.startswith(name + "{"):
            got = ",".join(sorted(line[len(name) + 1:line.index("}")].split(",")))
            if got == wanted:
                return float(line.rsplit(" ", 1)[1])
    return 0.0


@pytest.mark.slow
def test_one_scrape_counts_every_request_of_both_workers(metered: tuple[str, Path]) -> None:
    url, directory = metered

    def one(_: int) -> int:  # a new connection each time, so both workers accept some
        return requests.post(f"{url}/colors/prediction", files={"image": ("r.png", PNG)},
                             headers={"X-API-Key": "sekret", "Connection": "close"}, timeout=30).status_code
    n, pids = 0, set()
    with ThreadPoolExecutor(16) as pool:
        while len(pids) < 2 and n < 960:  # which worker accepts is the kernel's choice: send until both have
            assert list(pool.map(one, range(48))) == [200] * 48
            n += 48
            pids = {p.stem.rsplit("_", 1)[-1] for p in directory.glob("counter_*.db")}
    assert len(pids) >= 2, f"{n} requests all reached {pids}"
    text = requests.get(f"{url}/metrics", timeout=10).text  # open without a key
    assert sample(text, "keras_serve_requests_total", model="colors", route="/colors/prediction", status="200") == n
    assert sample(text, "keras_serve_decode_seconds_count", model="colors") == n
    assert sample(text, "keras_serve_inference_seconds_count", model="colors") == n
    assert sample(text, "keras_serve_batch_size_count", model="colors") == n
    assert sample(text, "keras_serve_request_seconds_count", model="colors", route="/colors/prediction") == n
    assert sample(text, "keras_serve_model_info", model="colors", version="1", runtime="tflite", format="json",
                  output="softmax") == 1
    assert "keras_serve_in_flight_requests" in text


@pytest.mark.slow
def test_client_sends_prediction_api_key(metered: tuple[str, Path], monkeypatch: pytest.MonkeyPatch) -> None:
    from client import APIError, PredictionClient
    monkeypatch.setenv("PREDICTION_API_KEY", "sekret")
    assert PredictionClient(metered[0], "colors").predict(PNG, "r.png").label == "red"
    monkeypatch.delenv("PREDICTION_API_KEY")
    with pytest.raises(APIError) as refused:
        PredictionClient(metered[0], "colors", retries=0).predict(PNG, "r.png")
    assert refused.value.status == 401 and refused.value.error == "unauthorized"
