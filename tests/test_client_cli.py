"""The client against the live gunicorn server and moto's S3: predict, predict-prefix, resume, API down."""
from __future__ import annotations

import io
import json
import logging
import re
import subprocess
import sys
import threading
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any, ClassVar

import pytest

import client.cli as cli
from client import APIError, APIUnavailable, PredictionClient
from scripts.digits import render, to_png
from tests.conftest import ROOT, free_port

pytestmark = pytest.mark.slow  # gunicorn and moto servers


def run(*argv: str) -> tuple[int, list[dict[str, Any]]]:
    out = io.StringIO()
    code = cli.main([*argv], out=out)
    return code, [json.loads(line) for line in out.getvalue().splitlines()]


def upload_digits(s3: Any, bucket: str, images: Any, labels: Any, prefix: str) -> dict[str, int]:
    """PNG-rendered digits under `prefix`; returns key -> true label."""
    truth = {f"{prefix}{i:04d} digit.png": int(label) for i, label in enumerate(labels)}
    bodies = [to_png(render(image)) for image in images]
    with ThreadPoolExecutor(8) as pool:
        list(pool.map(lambda kv: s3.put_object(Bucket=bucket, Key=kv[0], Body=kv[1]), zip(truth, bodies, strict=True)))
    return truth


def read_lines(path: Path) -> list[dict[str, Any]]:
    return [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines()]


def test_predict_s3_url_shapes_and_local_file(live_server: str, s3: Any, bucket: str, aws_env: str,
                                              digits_split: Any, tmp_path: Path) -> None:
    _, _, x_test, y_test = digits_split
    truth = upload_digits(s3, bucket, x_test[:3], y_test[:3], "dir/sub dir/")
    keys = list(truth)
    local = tmp_path / "local.png"
    local.write_bytes(to_png(render(x_test[3])))
    refs = [f"s3://{bucket}/{keys[0]}", f"{aws_env}/{bucket}/{keys[1].replace(' ', '%20')}", keys[2], str(local)]
    code, lines = run("predict", *refs, "--api-url", live_server, "--bucket", bucket)
    assert code == 0, lines
    assert [line["ref"] for line in lines] == refs
    assert [line["label"] for line in lines] == [str(y) for y in y_test[:4]]
    assert all(line["model"] == "digits" and 0 < line["confidence"] <= 1 for line in lines)


def test_library_one_call_and_server_errors(live_server: str, s3: Any, bucket: str, digits_split: Any) -> None:
    _, _, x_test, y_test = digits_split
    key = next(iter(upload_digits(s3, bucket, x_test[:1], y_test[:1], "one/")))
    api = PredictionClient(live_server, "digits", timeout=10)
    prediction = api.predict_reference(f"https://s3.amazonaws.com/{bucket}/{key.replace(' ', '%20')}", s3=s3)
    assert (prediction.label, prediction.model, prediction.version) == (str(y_test[0]), "digits", 1)
    assert prediction.predictions[0]["label"] == prediction.label
    with pytest.raises(APIError) as caught:
        api.predict(b"not an image at all", "junk.png")
    assert caught.value.status == 400 and caught.value.error == "invalid_image" and caught.value.message
    with pytest.raises(APIError) as caught:
        PredictionClient(live_server, "nosuchmodel").predict(b"x", "x.png")
    assert caught.value.status == 404 and "digits" in caught.value.message


def test_predict_missing_key_is_a_clean_error(live_server: str, bucket: str, capsys: Any) -> None:
    code, lines = run("predict", f"s3://{bucket}/missing/key.png", "--api-url", live_server)
    assert code == 1
    assert lines[0]["error_type"] == "ObjectNotFound"
    assert f"s3://{bucket}/missing/key.png" in lines[0]["error"]
    assert "Traceback" not in capsys.readouterr().err


def test_predict_prefix_end_to_end_accuracy(live_server: str, s3: Any, bucket: str, digits_split: Any,
                                            tmp_path: Path) -> None:
    _, _, x_test, y_test = digits_split
    truth = upload_digits(s3, bucket, x_test, y_test, "held-out/")
    s3.put_object(Bucket=bucket, Key="held-out/README.txt", Body=b"not an image")
    s3.put_object(Bucket=bucket, Key="elsewhere/0000 digit.png", Body=b"outside the prefix")
    output = tmp_path / "out" / "results.jsonl"
    code, (summary,) = run("predict-prefix", f"s3://{bucket}/held-out/", "--api-url", live_server,
                           "--concurrency", "4", "--output", str(output), "--no-progress")
    assert code == 0, summary
    records = read_lines(output)
    assert sorted(r["key"] for r in records) == sorted(truth)
    correct = sum(r["label"] == str(truth[r["key"]]) for r in records)
    accuracy = correct / len(truth)
    print(f"\npredict-prefix accuracy on {len(truth)} held-out digits: {accuracy:.4f} "
          f"({summary['images_per_second']} images/s)")
    assert accuracy >= 0.97
    assert summary["objects"] == len(truth) + 1 and summary["images"] == len(truth)
    assert (summary["predicted"], summary["errors"], summary["skipped"]) == (len(truth), 0, 0)
    assert summary["images_per_second"] > 0


def test_resume_after_interrupted_run(live_server: str, s3: Any, bucket: str, digits_split: Any,
                                      tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    _, _, x_test, y_test = digits_split
    keys = list(upload_digits(s3, bucket, x_test[:30], y_test[:30], "batch/"))
    output = tmp_path / "results.jsonl"
    # An interrupted run: 10 results, one failure (to retry) and a line torn mid-write.
    done = [json.dumps({"key": key, "label": "0", "confidence": 0.5}) for key in keys[:10]]
    failed = json.dumps({"key": keys[10], "error": "HTTP 503: not ready", "error_type": "APIUnavailable"})
    output.write_text("\n".join([*done, failed, '{"key": "' + keys[11]]) + "\n")
    requested: list[str] = []
    original = cli.read_object
    lock = threading.Lock()

    def recording(s3_client: Any, bucket_name: str, key: str) -> bytes:
        with lock:
            requested.append(key)
        return original(s3_client, bucket_name, key)
    monkeypatch.setattr(cli, "read_object", recording)
    code, (summary,) = run("predict-prefix", f"s3://{bucket}/batch/", "--api-url", live_server,
                           "--concurrency", "3", "--output", str(output), "--no-progress")
    assert code == 0
    assert sorted(requested) == sorted(keys[10:])
    records = read_lines(output)
    assert sorted(r["key"] for r in records) == sorted(keys)  # every key exactly once
    assert all("error" not in r for r in records)
    assert (summary["skipped"], summary["predicted"]) == (10, 20)
    requested.clear()
    assert run("predict-prefix", f"s3://{bucket}/batch/", "--api-url", live_server, "--output", str(output),
               "--no-progress")[0] == 0
    assert requested == [] and len(read_lines(output)) == 30


def test_api_down_retries_then_clean_error(s3: Any, bucket: str, tmp_path: Path,
                                           caplog: pytest.LogCaptureFixture) -> None:
    s3.put_object(Bucket=bucket, Key="p/one.png", Body=b"\x89PNG\r\n\x1a\nxx")
    down = f"http://127.0.0.1:{free_port()}"  # nothing listens there
    with caplog.at_level(logging.WARNING, logger="client"):
        code, lines = run("predict", f"s3://{bucket}/p/one.png", "--api-url", down,
                          "--retries", "2", "--backoff", "0.01")
    assert code == 1 and lines[0]["error_type"] == "APIUnavailable"
    assert "after 3 attempts" in lines[0]["error"] and down in lines[0]["error"]
    retries = [r.getMessage() for r in caplog.records if "retrying" in r.getMessage()]
    assert len(retries) == 2 and "0.01s" in retries[0] and "0.02s" in retries[1]  # exponential
    output = tmp_path / "down.jsonl"
    code, (summary,) = run("predict-prefix", f"s3://{bucket}/p/", "--api-url", down, "--retries", "1",
                           "--backoff", "0.01", "--output", str(output), "--no-progress")
    assert code == 1 and summary["errors"] == 1 and "after 2 attempts" in read_lines(output)[0]["error"]


def test_module_entry_point_exit_status(s3: Any, bucket: str) -> None:
    s3.put_object(Bucket=bucket, Key="x.png", Body=b"\x89PNG\r\n\x1a\nxx")
    down = f"http://127.0.0.1:{free_port()}"
    result = subprocess.run([sys.executable, "-m", "client", "predict", f"s3://{bucket}/x.png", "not a ref",
                             "--api-url", down, "--retries", "1", "--backoff", "0"],
                            cwd=ROOT, capture_output=True, text=True, timeout=60)
    assert result.returncode == 1 and "Traceback" not in result.stderr
    first, second = (json.loads(line) for line in result.stdout.splitlines())
    assert first["error_type"] == "APIUnavailable"
    assert second["error_type"] == "ValueError" and "accepted" in second["error"]


class Flaky(BaseHTTPRequestHandler):
    """Answers 503, then 429, then a prediction; counts requests."""
    statuses: ClassVar[list[int]] = [503, 429, 200]
    seen: ClassVar[list[tuple[str, str]]] = []

    def do_POST(self) -> None:
        self.rfile.read(int(self.headers["Content-Length"]))
        status = self.statuses[min(len(self.seen), 2)]
        self.seen.append((self.path, self.headers["Content-Type"]))
        body = json.dumps({"label": "7", "confidence": 0.9, "predictions": [], "model": "digits", "version": 1}
                          if status == 200 else {"message": "busy", "error": "not_ready"}).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args: Any) -> None:
        pass


@pytest.fixture
def flaky_server() -> Iterator[str]:
    Flaky.seen = []
    server = ThreadingHTTPServer(("127.0.0.1", 0), Flaky)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_address[1]}"
    server.shutdown()
    server.server_close()


def test_retries_on_503_and_429(flaky_server: str) -> None:
    prediction = PredictionClient(flaky_server, "digits", retries=2, backoff=0.01).predict(b"GIF89a..", "a.gif")
    assert prediction.label == "7" and len(Flaky.seen) == 3
    assert Flaky.seen[0][0] == "/digits/prediction" and Flaky.seen[0][1].startswith("multipart/form-data")
    Flaky.seen = []
    with pytest.raises(APIUnavailable) as caught:
        PredictionClient(flaky_server, "digits", retries=1, backoff=0.01).predict(b"x", "x.png")
    assert caught.value.attempts == 2 and "HTTP 429: busy" in str(caught.value)


def test_predict_prefix_in_batches_answers_as_one_by_one(live_server: str, s3: Any, bucket: str,
                                                         digits_split: Any, tmp_path: Path) -> None:
    _, _, x_test, y_test = digits_split
    truth = upload_digits(s3, bucket, x_test[:30], y_test[:30], "batched/")
    s3.put_object(Bucket=bucket, Key="batched/broken.png", Body=b"\x89PNG but not really")
    outputs = {}
    for size in ("1", "4"):
        outputs[size] = tmp_path / f"results-{size}.jsonl"
        code, (summary,) = run("predict-prefix", f"s3://{bucket}/batched/", "--api-url", live_server,
                               "--batch-size", size, "--output", str(outputs[size]), "--no-progress")
        assert code == 1 and (summary["predicted"], summary["errors"]) == (30, 1), summary
    one, batched = ({r["key"]: r for r in read_lines(outputs[s])} for s in ("1", "4"))
    assert batched.keys() == one.keys() == set(truth) | {"batched/broken.png"}
    assert batched["batched/broken.png"]["error_type"] == "APIError"
    assert "not a readable image" in batched["batched/broken.png"]["error"]
    for key in truth:
        assert batched[key]["label"] == one[key]["label"]
        assert abs(batched[key]["confidence"] - one[key]["confidence"]) < 1e-6
    assert len({r["label"] for r in batched.values() if "label" in r}) > 3


def test_predict_prefix_sends_low_priority_and_predict_normal(server_factory: Any, s3: Any, bucket: str,
                                                              digits_split: Any, tmp_path: Path) -> None:
    from tests.conftest import SERVERS

    _, _, x_test, y_test = digits_split
    keys = upload_digits(s3, bucket, x_test[:12], y_test[:12], "priority/")
    with server_factory(LOG_LEVEL="info") as url:  # access lines are logged at info
        code, _ = run("predict-prefix", f"s3://{bucket}/priority/", "--api-url", url, "--batch-size", "4",
                      "--output", str(tmp_path / "low.jsonl"), "--no-progress")
        assert code == 0
        code, _ = run("predict", f"s3://{bucket}/{next(iter(keys))}", "--api-url", url)
        assert code == 0
        text = SERVERS[url].log.read_text(errors="replace")
    seen = {(route, priority): len(re.findall(rf"POST {route} 200 .*priority={priority}\b", text))
            for route in ("/digits/predictions", "/digits/prediction") for priority in ("low", "normal")}
    assert seen == {("/digits/predictions", "low"): 3, ("/digits/predictions", "normal"): 0,
                    ("/digits/prediction", "low"): 0, ("/digits/prediction", "normal"): 1}, seen
