"""The live server against its own spec: schemathesis with every check, and the headers it needs."""
from __future__ import annotations

import os
import shutil
import subprocess
import sys
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest

from tests.conftest import ROOT
from tests.support.tutorials import tagger


@pytest.fixture(scope="module")
def conformance_server(tmp_path_factory: pytest.TempPathFactory,
                       server_factory: Callable[..., contextmanager[str]]) -> Iterator[str]:
    """The default digits model and a multi-label one (whose spec declares `threshold`)."""
    from util.serve.spec import read_spec
    from util.toolchain.compile import compile_model
    root = tmp_path_factory.mktemp("conformance")
    shutil.copytree(ROOT / "saved_models" / "digits", root / "digits")
    tagger(root / "tagger" / "1")
    compile_model(read_spec(root / "tagger"))
    with server_factory(MODELS_DIR=str(root)) as url:
        yield url


@pytest.mark.slow
def test_schemathesis_finds_nothing(conformance_server: str) -> None:
    st = Path(sys.executable).with_name("st")
    env = {**os.environ, "SCHEMATHESIS_HOOKS": "tests.support.st_hooks", "PYTHONPATH": str(ROOT), "NO_COLOR": "1"}
    run = subprocess.run([str(st), "run", f"{conformance_server}/swagger.json", "--checks", "all",
                          "--max-examples", "60"], cwd=ROOT, env=env, capture_output=True, text=True, timeout=600)
    summary = run.stdout[-3000:]
    print(summary)
    assert run.returncode == 0 and "No issues found" in run.stdout, summary
    # 2 models x (prediction, batch prediction, explanation, metadata; each per version), health (2),
    # TF Serving (6), V2 (9)
    assert "Selected: 33/33" in run.stdout


def test_405_keeps_the_allow_header_in_json(client) -> None:
    answer = client.get("/colors/prediction")
    assert answer.status_code == 405 and answer.get_json()["error"] == "method_not_allowed"
    assert "POST" in answer.headers["Allow"] and answer.mimetype == "application/json"
    trace = client.open("/health/live", method="TRACE")
    assert trace.status_code == 405 and "GET" in trace.headers["Allow"]


@pytest.mark.parametrize("form, message", [
    ({"top_k": "1", "colour": "red"}, "unknown form field(s) or query parameter(s) 'colour'"),
    ({"top_k": "0"}, "top_k must be from 1 to 3"),
    ({"top_k": "1.5"}, "top_k must be an integer"),
    ({"threshold": "0.5"}, "threshold applies to multi-label models only"),
])
def test_form_fields_are_checked(client, form: dict, message: str) -> None:
    import io

    from tests.support import builders
    data = {"image": (io.BytesIO(builders.encode(builders.solid((200, 0, 0)))), "r.png"), **form}
    answer = client.post("/colors/prediction", data=data)
    assert answer.status_code == 400 and answer.get_json()["error"] == "invalid_parameter"
    assert message in answer.get_json()["message"]


def test_a_part_without_a_name_is_a_400_not_a_500(client) -> None:
    # Found by schemathesis: Werkzeug files a part whose name it cannot read under None.
    from tests.support import builders
    boundary = "b0undary"
    body = (f"--{boundary}\r\nContent-Disposition: form-data; name=\"image\"; filename=\"r.png\"\r\n"
            f"Content-Type: image/png\r\n\r\n").encode() + builders.encode(builders.solid((200, 0, 0))) + (
        f"\r\n--{boundary}\r\nContent-Disposition: form-data\r\n\r\nvalue\r\n--{boundary}--\r\n").encode()
    answer = client.post("/colors/prediction", data=body, content_type=f"multipart/form-data; boundary={boundary}")
    assert answer.status_code == 400, answer.get_json()
    assert "(a part with no name)" in answer.get_json()["message"]
