"""The Dockerfile, replayed without a container engine (none runs here).

A scratch directory stands for each stage's filesystem: every COPY copies what it names (from the
repository, honouring .dockerignore, or `--from=build` from the replayed build stage) and every RUN
runs for real under `sh -c` in WORKDIR with the stage's ENV, the test venv standing for the image's
Python. Lines that only `python -m pip install` requirements are not run (the test venv has them);
the files they read must have been copied. The runtime stage's files are assembled the same way and
its CMD is started and asked for a prediction. Not exercised: the base image, apt/pip inside it,
the runtime stage's RUN (venv, user), file ownership, USER itself.
"""
from __future__ import annotations

import contextlib
import json
import os
import re
import shutil
import signal
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import pytest
from dockerfile_parse import DockerfileParser

from tests.conftest import ROOT, free_port, procfile_web
from tests.support.live import assert_reads_digits, wait_ready

DOCKERFILE = ROOT / "Dockerfile"
# The image's PATH leads to its own Python; here the test venv (with TensorFlow for the build) does.
VENV_PATH = f"{Path(sys.executable).parent}{os.pathsep}{os.environ['PATH']}"
PIP_INSTALL = re.compile(r"python -m pip install\s")
COMPILED = {"model.tflite", "model.tflite.json"}  # left out of the build's copy, so compiling must happen


class RunFailed(Exception):
    """A replayed RUN line exited non-zero."""

    def __init__(self, command: str, returncode: int, output: str) -> None:
        super().__init__(f"RUN {command} exited with {returncode}:\n{output[-3000:]}")
        self.command, self.output = command, output


def stages(dockerfile: Path = DOCKERFILE) -> list[list[dict]]:
    """Each stage's instructions (FROM first, comments dropped), each with `env`: the ENV in force there."""
    parser = DockerfileParser(path=str(dockerfile), parent_env={})
    found: list[list[dict]] = []
    for ins, context in zip(parser.structure, parser.context_structure, strict=True):
        if ins["instruction"] == "FROM":
            found.append([])
        if found and ins["instruction"] != "COMMENT":
            found[-1].append({**ins, "env": context.envs})
    return found


def dockerignored(path: str) -> bool:
    """Whether .dockerignore leaves out `path` (repo-relative) as Docker does: patterns are anchored at the
    root, `**` spans directories, a match on a parent directory covers its contents, the last match wins."""
    parents = ["/".join(path.split("/")[:n]) for n in range(1, path.count("/") + 2)]
    ignored = False
    for line in (ROOT / ".dockerignore").read_text().splitlines():
        pattern = line.strip()
        if not pattern or pattern.startswith("#"):
            continue
        parts = re.split(r"(\*\*/?|\*|\?)", pattern.lstrip("!").strip("/"))
        table = {"**/": "(.*/)?", "**": ".*", "*": "[^/]*", "?": "[^/]"}
        regex = re.compile("".join(table.get(part, re.escape(part)) for part in parts))
        if any(regex.fullmatch(parent) for parent in parents):
            ignored = not pattern.startswith("!")
    return ignored


def copy_sources(ins: dict, root: Path, workdir: str, build: Path | None,
                 leave_out: Callable[[str], bool] = lambda name: False) -> None:
    """One COPY into `root` (the stage's "/"); `--from=build` sources come from `build` (the build's "/")."""
    words = ins["value"].split()
    *sources, dest = [w for w in words if not w.startswith("--")]  # --chown is not replayed
    origin = next((w.split("=", 1)[1] for w in words if w.startswith("--from=")), None)
    target = root / os.path.join(workdir, dest).lstrip("/")
    for source in sources:
        if origin is None:
            assert not dockerignored(source.strip("/")), f"COPY {source}: excluded by .dockerignore"
            src = ROOT / source
        else:
            assert origin == "build" and build is not None, f"COPY --from={origin}: no such replayed stage"
            src = build / source.lstrip("/")
        assert src.exists(), f"COPY {source}: no such file{' in the build stage' if origin else ''}"
        if src.is_dir():
            def ignore(directory: str, names: list[str]) -> set[str]:
                left = {n for n in names if leave_out(n)}
                if origin is None:  # .dockerignore filters the build context, not another stage's files
                    rel = Path(directory).relative_to(ROOT)
                    left |= {n for n in names if dockerignored((rel / n).as_posix())}
                return left
            shutil.copytree(src, target, ignore=ignore, dirs_exist_ok=True)
        else:
            to = target / src.name if dest.endswith("/") else target
            to.parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(src, to)


def requirements_copied(path: Path) -> None:
    """The requirements file pip would read, and those it includes with -r, were copied."""
    assert path.is_file(), f"pip reads {path.name}, which no COPY put in place"
    for nested in re.findall(r"^\s*(?:-r|--requirement)\s+(\S+)", path.read_text(), re.M):
        requirements_copied(path.parent / nested)


def run_line(ins: dict, root: Path, cwd: Path, run: bool) -> None:
    """One RUN: a requirements-only pip line is checked, not run; others run (if `run`) and must succeed."""
    commands = [c.strip() for c in ins["value"].split("&&")]
    if all(PIP_INSTALL.match(c) for c in commands):
        for name in re.findall(r"(?:-r|--requirement)\s+(\S+)", ins["value"]):
            requirements_copied(cwd / name)
        return
    if not run:
        return
    env = {"HOME": str(root / "root"), "LANG": "C.UTF-8", **ins["env"], "PATH": VENV_PATH}
    done = subprocess.run(["sh", "-c", ins["value"]], cwd=cwd, env=env, capture_output=True, text=True)
    if done.returncode:
        raise RunFailed(ins["value"], done.returncode, done.stdout + done.stderr)


def replay(stage: list[dict], root: Path, build: Path | None = None, run: bool = True,
           leave_out: Callable[[str], bool] = lambda name: False) -> Path:
    """COPY and RUN (RUN only if `run`) `stage`'s instructions in order into `root`; returns WORKDIR."""
    workdir = "/"
    for ins in stage:
        if ins["instruction"] == "WORKDIR":
            workdir = os.path.join(workdir, ins["value"])
            (root / workdir.lstrip("/")).mkdir(parents=True, exist_ok=True)
        elif ins["instruction"] == "COPY":
            copy_sources(ins, root, workdir, build, leave_out)
        elif ins["instruction"] == "RUN":
            run_line(ins, root, root / workdir.lstrip("/"), run)
    return root / workdir.lstrip("/")


def in_force(stage: list[dict], instruction: str) -> dict:
    """The last `instruction` of `stage`: for USER, CMD and HEALTHCHECK, the one the image keeps."""
    return [i for i in stage if i["instruction"] == instruction][-1]


def test_dockerfile_stages_match_the_repo(tmp_path: Path) -> None:
    build, runtime = stages()
    version = (ROOT / ".python-version").read_text().strip()
    images = DockerfileParser(path=str(DOCKERFILE)).parent_images  # ARG defaults substituted
    assert len(images) == 2 and images[0] == images[1], images
    assert re.fullmatch(rf"python:{re.escape(version)}(-[\w.-]+)?", images[0]), images
    assert build[0]["value"].endswith(" AS build")
    runtime_text = " ".join(i["value"] for i in runtime)
    assert set(re.findall(r"requirements[\w-]*\.txt", runtime_text)) == {"requirements.txt"}
    assert in_force(runtime, "USER")["value"].split(":")[0] not in {"0", "root"}
    assert "/health/ready" in in_force(runtime, "HEALTHCHECK")["value"]
    assert json.loads(in_force(runtime, "CMD")["value"]) == ["sh", "-c", "exec " + procfile_web()]
    # Every COPY source exists and is not dockerignored; pip's requirements files were copied.
    replay(build, tmp_path / "build", run=False)
    replay(runtime, tmp_path / "runtime", build=tmp_path / "build", run=False)


@pytest.mark.slow
def test_docker_build_compiles_and_the_image_serves(tmp_path: Path, tf_blocker: tuple[Path, Path]) -> None:
    from util.serve.artifacts import artifact_status
    from util.serve.metadata import read_policy
    from util.serve.spec import model_dirs, read_spec, version_dirs
    build, runtime = stages()
    models = replay(build, tmp_path / "build", leave_out=COMPILED.__contains__) / "saved_models"
    specs = [read_spec(d, v) for d in model_dirs(models) for v in read_policy(d).wanted(list(version_dirs(d)))]
    assert specs
    for spec in specs:  # every version the image serves was compiled (none was copied) and verified
        state, manifest = artifact_status(spec)
        assert state == "fresh" and manifest and manifest["verified"], (spec.name, spec.version, state, manifest)

    app = replay(runtime, tmp_path / "runtime", build=tmp_path / "build", run=False)
    port, marker, log = free_port(), tmp_path / "tf-imports.log", tmp_path / "server.log"
    # Only the blocker on PYTHONPATH: the server imports the assembled copy (its WORKDIR), not the repo.
    env = {"HOME": str(tmp_path), "LANG": "C.UTF-8", **in_force(runtime, "CMD")["env"], "PATH": VENV_PATH,
           "HOST": "127.0.0.1", "PORT": str(port), "PYTHONPATH": str(tf_blocker[0]), "TF_IMPORT_MARKER": str(marker)}
    with log.open("wb") as out:
        server = subprocess.Popen(json.loads(in_force(runtime, "CMD")["value"]), cwd=app, env=env, stdout=out,
                                  stderr=subprocess.STDOUT, start_new_session=True)
    try:
        wait_ready(f"http://127.0.0.1:{port}", server, log.read_text)
        assert_reads_digits(f"http://127.0.0.1:{port}")
        # The HEALTHCHECK's command (shell form), with the test venv's Python in place of the image's.
        check = in_force(runtime, "HEALTHCHECK")["value"].split(" CMD ", 1)[1]
        assert subprocess.run(["sh", "-c", check], env=env, timeout=10).returncode == 0
    finally:
        with contextlib.suppress(ProcessLookupError):  # already gone: its log says why
            os.killpg(server.pid, signal.SIGTERM)
        returncode = server.wait(30)
    assert returncode == 0, log.read_text()
    assert not marker.exists(), f"the image's web process imported {marker.read_text()}"


def test_the_replay_reports_a_failing_run_line(tmp_path: Path) -> None:
    # The Dockerfile as it was when its build stage ran a module that no longer exists.
    build, _ = stages()
    compile_line = next(i for i in build if i["instruction"] == "RUN" and "models compile" in i["value"])
    lines = DOCKERFILE.read_text().splitlines()
    old = "python -m util.compile --if-stale && flask --app application models list"
    lines[compile_line["startline"]:compile_line["endline"] + 1] = [f"RUN {old}"]
    (tmp_path / "Dockerfile").write_text("\n".join(lines) + "\n")
    broken, _ = stages(tmp_path / "Dockerfile")
    with pytest.raises(RunFailed) as failed:
        replay(broken, tmp_path / "build")
    assert failed.value.command == old and "No module named util.compile" in failed.value.output
