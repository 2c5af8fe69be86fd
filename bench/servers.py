"""Start a server under gunicorn with the project's config, time its start-up, and sample
the resident memory of all its processes (master + workers)."""
from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import requests

ROOT = Path(__file__).resolve().parents[1]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def procfile_web(root: Path = ROOT) -> str:
    web = next(line for line in (root / "Procfile").read_text().splitlines() if line.startswith("web:"))
    return web.split(":", 1)[1].strip()


def group_rss_mb(pgid: int) -> float:
    """Sum of VmRSS over every process in the process group and every descendant of its leader
    (some servers, BentoML's among them, start workers in sessions of their own)."""
    parents, groups, rss = {}, {}, {}
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            stat = (entry / "stat").read_text().rsplit(")", 1)[1].split()
            kb = next((int(line.split()[1]) for line in (entry / "status").read_text().splitlines()
                       if line.startswith("VmRSS:")), 0)
        except (OSError, ValueError, IndexError):
            continue
        pid = int(entry.name)
        parents[pid], groups[pid], rss[pid] = int(stat[1]), int(stat[2]), kb
    members = {pid for pid, group in groups.items() if group == pgid} | {pgid}
    grown = True
    while grown:
        more = {pid for pid, parent in parents.items() if parent in members} - members
        members |= more
        grown = bool(more)
    return sum(rss.get(pid, 0) for pid in members) / 1024


class RssSampler:
    """Peak of the group's total RSS, sampled every 50 ms while running."""

    def __init__(self, pgid: int) -> None:
        self.pgid, self.peak = pgid, 0.0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        while not self._stop.is_set():
            self.peak = max(self.peak, group_rss_mb(self.pgid))
            self._stop.wait(0.05)

    def __enter__(self) -> RssSampler:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join()


class Server:
    def __init__(self, proc: subprocess.Popen, url: str, startup_s: float, log: Path | None = None) -> None:
        self.proc, self.url, self.startup_s, self.log = proc, url, startup_s, log

    def rss(self) -> RssSampler:
        return RssSampler(self.proc.pid)


@contextmanager
def serve(env: dict[str, str], app: str | None = None, log: Path | None = None, command: list[str] | None = None,
          ready: str = "/health/ready", root: Path = ROOT) -> Iterator[Server]:
    """The Procfile's web command (or the same gunicorn config with another `app`, or any other server's
    `command`, where "{port}" is replaced) on loopback, once `ready` answers 200; `root` is the checkout
    it runs from (another one to measure an earlier commit)."""
    port = free_port()
    if command is not None:
        argv = [part.replace("{port}", str(port)) for part in command]
    else:
        argv = ["sh", "-c", procfile_web(root) if app is None else procfile_web(root).replace("application:app", app)]
    full_env = {**os.environ, "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ['PATH']}",
                "HOST": "127.0.0.1", "PORT": str(port), "PYTHONPATH": str(root), "LOG_LEVEL": "warning",
                "TF_CPP_MIN_LOG_LEVEL": "3", **env}
    out = open(log or os.devnull, "wb")  # noqa: SIM115 - the server writes to it until the generator closes it
    start = time.perf_counter()
    proc = subprocess.Popen(argv, cwd=root, env=full_env, stdout=out, stderr=subprocess.STDOUT,
                            start_new_session=True)
    url = f"http://127.0.0.1:{port}"
    name = " ".join(command or []) or app or "application:app"

    def tail() -> str:
        return log.read_text(errors="replace")[-3000:] if log else "(no log kept)"
    try:
        while True:
            if proc.poll() is not None:
                raise RuntimeError(f"server {name} exited with {proc.returncode}:\n{tail()}")
            try:
                if requests.get(f"{url}{ready}", timeout=2).status_code == 200:
                    break
            except requests.RequestException:  # not listening yet, or workers still booting
                pass
            if time.perf_counter() - start > 300:
                raise RuntimeError(f"server not ready after 300 s:\n{tail()}")
            time.sleep(0.02)
        yield Server(proc, url, time.perf_counter() - start, log)
    finally:
        stop(proc)
        out.close()


def stop(proc: subprocess.Popen) -> None:
    """SIGTERM the whole process group (gunicorn drains), SIGKILL after 30 s."""
    if proc.poll() is None:
        os.killpg(proc.pid, signal.SIGTERM)
        try:
            proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()


class S3Server:
    """moto's S3 server in its own process (in the process driving the load, client threads would slow
    it down as no real store is), on a free port; its request log counts the server's polls."""

    def __init__(self, log: Path = Path(os.devnull)) -> None:
        self.url, self.log = f"http://127.0.0.1:{free_port()}", log
        self.proc = subprocess.Popen([sys.executable, "-m", "moto.server", "-H", "127.0.0.1", "-p",
                                      self.url.rsplit(":", 1)[1]], stdout=subprocess.DEVNULL,
                                     stderr=log.open("wb"))
        deadline = time.monotonic() + 30
        while True:
            try:
                requests.get(self.url, timeout=1)
                return
            except requests.RequestException:
                if time.monotonic() > deadline or self.proc.poll() is not None:
                    raise RuntimeError(f"moto did not start:\n{log.read_text()[-2000:]}") from None
                time.sleep(0.1)

    def listings(self) -> int:
        """List requests served so far (one per look at the store by a worker, one by `publish`)."""
        return sum("list-type=2" in line for line in self.log.read_text(errors="replace").splitlines())

    def stop(self) -> None:
        self.proc.terminate()
        self.proc.wait(10)
