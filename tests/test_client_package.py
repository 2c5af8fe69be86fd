"""`pip install ./client` on its own: a fresh venv gets the `client` package, its console script and its
dependencies only (no Flask, no LiteRT), and the script classifies a digit with the live server."""
from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import tomllib
from pathlib import Path
from typing import Any

import pytest
from packaging.requirements import Requirement

from scripts.digits import render, to_png
from tests.conftest import ROOT

CLIENT = ROOT / "client"
SCRIPT = "keras-serve-client"
PINS = ROOT / "requirements-client.txt"


def project() -> dict[str, Any]:
    return tomllib.loads((CLIENT / "pyproject.toml").read_text(encoding="utf-8"))["project"]


def pins() -> dict[str, str]:
    """name -> pinned version from requirements-client.txt."""
    found = {}
    for line in PINS.read_text(encoding="utf-8").splitlines():
        match = re.match(r"^([A-Za-z0-9._-]+)==(\S+)", line.strip())
        if match:
            found[match[1].lower().replace("_", "-")] = match[2]
    return found


def test_declared_ranges_hold_the_pinned_versions() -> None:
    """A library takes ranges; the pins the tests run with must be inside them, and every direct pin declared."""
    pinned = pins()
    declared = {Requirement(text).name.lower(): Requirement(text) for text in project()["dependencies"]}
    assert {"boto3", "requests", "python-dotenv", "tqdm"} <= declared.keys()
    for name, requirement in declared.items():
        assert requirement.specifier.contains(pinned[name]), (name, str(requirement.specifier), pinned[name])
        assert not any(spec.operator in ("==", "===") for spec in requirement.specifier), requirement
    assert project()["scripts"] == {SCRIPT: "client.cli:main"}


def clean_env() -> dict[str, str]:
    """No PYTHONPATH or active venv leaking the repository (or the dev venv) into the fresh one."""
    return {key: value for key, value in os.environ.items()
            if key not in ("PYTHONPATH", "VIRTUAL_ENV", "PYTHONHOME", "PYTHONSTARTUP")}


def run(argv: list[str | Path], cwd: Path, timeout: float = 300) -> subprocess.CompletedProcess[str]:
    return subprocess.run([str(arg) for arg in argv], cwd=cwd, env=clean_env(), capture_output=True, text=True,
                          timeout=timeout)


@pytest.fixture(scope="module")
def venv(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A fresh venv with `pip install -r requirements-client.txt ./client` (the pins, and the package's own
    dependency ranges resolved against them); returns its bin directory."""
    root = tmp_path_factory.mktemp("client-venv")
    made = run([sys.executable, "-m", "venv", root / "venv"], cwd=root)
    assert made.returncode == 0, made.stderr
    bin_dir = root / "venv" / "bin"
    installed = run([bin_dir / "python", "-m", "pip", "install", "--disable-pip-version-check", "-q",
                     "-r", PINS, CLIENT], cwd=root)
    assert installed.returncode == 0, installed.stdout + installed.stderr
    return bin_dir


def python(venv: Path, code: str) -> subprocess.CompletedProcess[str]:
    # cwd is outside the repository, so `import client` can only find the installed package
    return run([venv / "python", "-c", code], cwd=venv.parent.parent)


slow = pytest.mark.slow  # a venv, a pip install (hatchling from the registry) and a gunicorn server


@slow
def test_dependencies_are_satisfied_and_pinned(venv: Path) -> None:
    checked = run([venv / "python", "-m", "pip", "check"], cwd=venv.parent)
    assert checked.returncode == 0, checked.stdout + checked.stderr
    listed = run([venv / "python", "-m", "pip", "list", "--format=json"], cwd=venv.parent)
    versions = {item["name"].lower().replace("_", "-"): item["version"] for item in json.loads(listed.stdout)}
    assert {name: versions.get(name) for name in pins()} == pins()


@slow
def test_installs_the_client_package_only(venv: Path) -> None:
    """Every module of client/ and nothing else: no pyproject.toml, tests or server code."""
    shown = python(venv, "import json, importlib.metadata as m; d = m.distribution('keras-serve-client'); "
                         "print(json.dumps({'files': [str(f) for f in d.files], 'version': d.version}))")
    assert shown.returncode == 0, shown.stderr
    listing = json.loads(shown.stdout)
    files = {name for name in listing["files"] if not name.endswith(".pyc")}
    modules = {f"client/{path.name}" for path in CLIENT.glob("*.py")}
    assert {"client/__init__.py", "client/__main__.py", "client/api.py", "client/cli.py", "client/s3.py"} <= modules
    assert {name for name in files if name.startswith("client/")} == modules
    others = {name for name in files if not name.startswith("client/") and ".dist-info/" not in name}
    assert others == {f"../../../bin/{SCRIPT}"}, others
    assert listing["version"] == project()["version"]


@slow
def test_import_works_without_server_dependencies(venv: Path) -> None:
    imported = python(venv, "import client, client.api, client.cli, client.s3; "
                            "from client import PredictionClient, parse_s3_reference; "
                            "print(client.__file__); print(parse_s3_reference('s3://b/k.png'))")
    assert imported.returncode == 0, imported.stderr
    where, parsed = imported.stdout.splitlines()
    assert Path(where).is_relative_to(venv.parent / "lib"), where  # the installed copy, not the checkout
    assert parsed == "('b', 'k.png')"
    for server_module in ("flask", "flask_restx", "ai_edge_litert", "numpy", "PIL"):
        missing = python(venv, f"import {server_module}")
        assert missing.returncode != 0 and "ModuleNotFoundError" in missing.stderr, server_module


@slow
def test_console_script_help(venv: Path) -> None:
    script = venv / SCRIPT
    assert script.is_file() and os.access(script, os.X_OK)
    for argv, typed in (([script, "--help"], "keras-serve-client"),
                        ([venv / "python", "-m", "client", "--help"], "python -m client")):
        shown = run(argv, cwd=venv.parent)
        assert shown.returncode == 0, shown.stderr
        assert shown.stdout.startswith(f"usage: {typed} ") and "predict-prefix" in shown.stdout, shown.stdout
    shown = run([script, "predict", "--help"], cwd=venv.parent)
    assert shown.returncode == 0 and "--api-url" in shown.stdout and "REF" in shown.stdout, shown.stdout


@slow
def test_console_script_predicts_a_local_digit(venv: Path, live_server: str, digits_split: Any,
                                               tmp_path: Path) -> None:
    _, _, x_test, y_test = digits_split
    image = tmp_path / "digit.png"
    image.write_bytes(to_png(render(x_test[0])))
    predicted = run([venv / SCRIPT, "predict", image, "--api-url", live_server, "--model", "digits",
                     "--timeout", "30"], cwd=tmp_path, timeout=120)
    assert predicted.returncode == 0, predicted.stdout + predicted.stderr
    (line,) = [json.loads(text) for text in predicted.stdout.splitlines()]
    assert line["ref"] == str(image)
    assert (line["label"], line["model"]) == (str(y_test[0]), "digits")
    assert 0 < line["confidence"] <= 1
