"""Deploy files: the Procfile under honcho (as Heroku runs it), app.json, k8s/ (Dockerfile: test_docker_build.py)."""
from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import yaml

from tests.conftest import ROOT, free_port, procfile_web
from tests.support import K8S_VERSION
from tests.support.live import assert_reads_digits, wait_ready
from util.config import SETTINGS


def process_tree(root_pid: int) -> list[str]:
    """Command lines of every descendant of `root_pid`."""
    children: dict[int, list[int]] = {}
    for entry in Path("/proc").iterdir():
        try:
            ppid = int((entry / "stat").read_text().rsplit(")", 1)[1].split()[1]) if entry.name.isdigit() else None
        except OSError:
            continue
        if ppid is not None:
            children.setdefault(ppid, []).append(int(entry.name))
    found, stack = [], list(children.get(root_pid, []))
    while stack:
        pid = stack.pop()
        try:
            found.append(Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode())
        except OSError:
            continue
        stack.extend(children.get(pid, []))
    return found






@pytest.mark.slow
def test_honcho_runs_the_procfile_like_heroku(tmp_path: Path) -> None:
    port = free_port()
    env = {**os.environ, "PORT": str(port), "WEB_CONCURRENCY": "3",
           "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ['PATH']}"}
    honcho = subprocess.Popen([sys.executable, "-m", "honcho", "start", "web"], cwd=ROOT, env=env,
                              stdout=subprocess.PIPE, stderr=subprocess.STDOUT, start_new_session=True)
    try:
        wait_ready(f"http://127.0.0.1:{port}", honcho,
                   lambda: honcho.stdout.read().decode() if honcho.stdout else "")
        assert_reads_digits(f"http://127.0.0.1:{port}")
        # honcho's `sh -c` holds the unexpanded line; gunicorn's master and workers got $PORT.
        booted = time.monotonic() + 30  # ready means one worker answered; the others may still be booting
        while True:
            gunicorns = [c for c in process_tree(honcho.pid) if "gunicorn" in c and f"0.0.0.0:{port} " in c]
            if len(gunicorns) >= 1 + 3 or time.monotonic() > booted:
                break
            time.sleep(0.1)
        assert len(gunicorns) == 1 + 3, gunicorns  # the master and WEB_CONCURRENCY workers
    finally:
        os.killpg(honcho.pid, signal.SIGTERM)
        honcho.wait(30)


def test_python_version_and_app_json() -> None:
    version = (ROOT / ".python-version").read_text().strip()
    assert version == f"{sys.version_info.major}.{sys.version_info.minor}"
    app = json.loads((ROOT / "app.json").read_text())
    assert app["description"] and app["formation"]["web"]["size"] == "basic"
    documented = set(SETTINGS) | {"WEB_CONCURRENCY", "GUNICORN_THREADS", "LOG_LEVEL"}
    for name, var in app["env"].items():
        assert name in documented, f"app.json sets {name}, which the app does not read"
        assert var["description"] and "value" in var
    assert "$PORT" in procfile_web() or "${PORT" in procfile_web()


def k8s_documents() -> list[dict]:
    return [doc for path in sorted((ROOT / "k8s").glob("*.yaml")) for doc in yaml.safe_load_all(path.read_text())]


def test_k8s_manifests_validate_offline() -> None:
    files = sorted(str(p) for p in (ROOT / "k8s").glob("*.yaml"))
    run = subprocess.run([sys.executable, "-m", "kubernetes_validate", "--strict", "-k", K8S_VERSION, *files],
                         capture_output=True, text=True)
    assert run.returncode == 0, run.stdout + run.stderr
    assert {d["kind"] for d in k8s_documents()} == {"Deployment", "Service", "HorizontalPodAutoscaler", "Secret"}


def test_k8s_validation_can_fail(tmp_path: Path) -> None:
    broken = yaml.safe_load((ROOT / "k8s" / "deployment.yaml").read_text())
    broken["spec"]["replicas"] = "two"
    broken["spec"]["template"]["spec"]["containers"][0]["livenessProbe"]["httpGett"] = {}
    path = tmp_path / "broken.yaml"
    path.write_text(yaml.safe_dump(broken))
    run = subprocess.run([sys.executable, "-m", "kubernetes_validate", "--strict", "-k", K8S_VERSION, str(path)],
                         capture_output=True, text=True)
    assert run.returncode != 0


def test_k8s_deployment_probes_and_security() -> None:
    deployment = next(d for d in k8s_documents() if d["kind"] == "Deployment")
    pod = deployment["spec"]["template"]["spec"]
    container = pod["containers"][0]
    assert container["livenessProbe"]["httpGet"]["path"] == "/health/live"
    assert container["readinessProbe"]["httpGet"]["path"] == "/health/ready"
    assert pod["securityContext"]["runAsNonRoot"] is True
    assert container["securityContext"]["readOnlyRootFilesystem"] is True
    assert any(m["mountPath"] == "/tmp" for m in container["volumeMounts"])
    env = {e["name"]: e.get("value") for e in container["env"]}
    cache = next(m for m in container["volumeMounts"] if m["mountPath"] == env["MODEL_CACHE_DIR"])
    volume = next(v for v in pod["volumes"] if v["name"] == cache["name"])
    assert "medium" not in volume["emptyDir"] and volume["emptyDir"]["sizeLimit"] == "1Gi"  # on disk, for models
    secret = next(d for d in k8s_documents() if d["kind"] == "Secret")
    assert container["envFrom"] == [{"secretRef": {"name": secret["metadata"]["name"], "optional": True}}]
    assert set(secret["stringData"]) <= set(SETTINGS) | {"AWS_REGION", "AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY"}
    assert secret["stringData"]["MODELS_DIR"].startswith("s3://")
    limits, requests_ = container["resources"]["limits"], container["resources"]["requests"]
    mib = {"Mi": 1, "Gi": 1024}
    limit_mib = int(limits["memory"][:-2]) * mib[limits["memory"][-2:]]
    # The live test holds the serving processes to 300 MB: the limit leaves headroom above it.
    assert limit_mib >= 300 * 1.25 and int(requests_["memory"][:-2]) <= limit_mib
    hpa = next(d for d in k8s_documents() if d["kind"] == "HorizontalPodAutoscaler")
    assert hpa["spec"]["scaleTargetRef"]["name"] == deployment["metadata"]["name"]
    assert hpa["spec"]["metrics"][0]["resource"]["name"] == "cpu"
    service = next(d for d in k8s_documents() if d["kind"] == "Service")
    assert service["spec"]["selector"] == deployment["spec"]["selector"]["matchLabels"]


@pytest.mark.slow
def test_slug_check_fails_over_its_limit() -> None:
    # `make test` runs scripts/slug_size.py with the real 300 MB limit; here a 50 MB one must fail.
    run = subprocess.run([sys.executable, "scripts/slug_size.py", "--limit-mb", "50"], cwd=ROOT,
                         capture_output=True, text=True, timeout=600)
    assert run.returncode == 1 and "slug too large" in run.stderr
    venv_mb = float(run.stdout.split("venv ")[1].split(" MB")[0])
    assert 50 < venv_mb <= 300, run.stdout
