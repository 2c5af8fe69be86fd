"""A live server's gunicorn processes, read from /proc: the master, its workers, their CPU time."""
from __future__ import annotations

import contextlib
import os
import time
from pathlib import Path

from tests.conftest import SERVERS


def master_pid(url: str) -> int:
    """gunicorn's master (the Procfile line runs under `sh -c`, which may or may not exec it); waits for 2 workers."""
    pid = SERVERS[url].proc.pid
    if Path(f"/proc/{pid}/comm").read_text().strip() in {"sh", "dash", "bash"}:
        pid = children(pid)[0]
    deadline = time.monotonic() + 30
    while len(workers(pid)) < 2 and time.monotonic() < deadline:  # ready means one worker answered
        time.sleep(0.05)
    return pid


def children(pid: int) -> list[int]:
    found = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                if int((entry / "stat").read_text().rsplit(")", 1)[1].split()[1]) == pid:
                    found.append(int(entry.name))
            except (OSError, IndexError, ValueError):
                continue
    return sorted(found)


def workers(master: int) -> list[int]:
    return [pid for pid in children(master) if "gunicorn" in Path(f"/proc/{pid}/cmdline").read_bytes().decode(
        errors="replace")]


def cpu_seconds(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def connections(pid: int, port: int) -> int:
    """Established TCP connections to local `port` that process `pid` holds open."""
    inodes = set()
    for fd in Path(f"/proc/{pid}/fd").iterdir():
        with contextlib.suppress(OSError):
            target = os.readlink(fd)
            if target.startswith("socket:["):
                inodes.add(target[8:-1])
    count = 0
    for table in ("/proc/net/tcp", "/proc/net/tcp6"):
        with contextlib.suppress(OSError):
            for line in Path(table).read_text().splitlines()[1:]:
                fields = line.split()
                if int(fields[1].rsplit(":", 1)[1], 16) == port and fields[3] == "01" and fields[9] in inodes:
                    count += 1
    return count
