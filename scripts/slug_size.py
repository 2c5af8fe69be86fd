"""Heroku budget check (run by `make test`): install requirements.txt into a fresh venv and
fail if it plus the app files a slug would hold exceed 300 MB (Heroku's limit is 500 MB
compressed; uncompressed is the stricter, honest measure)."""
from __future__ import annotations

import argparse
import fnmatch
import os
import subprocess
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
LIMIT_MB = 300.0


def tree_bytes(path: Path) -> int:
    """Bytes of regular files under `path`, symlinks not followed (as `du --apparent-size`)."""
    total = 0
    for folder, _, files in os.walk(path):
        for name in files:
            file = Path(folder) / name
            if not file.is_symlink():
                total += file.stat().st_size
    return total


def slug_files() -> list[Path]:
    """Tracked files, minus what .slugignore drops after the build."""
    tracked = subprocess.run(["git", "ls-files", "-z"], cwd=ROOT, capture_output=True, check=True).stdout
    patterns = [line.strip().rstrip("/") for line in (ROOT / ".slugignore").read_text().splitlines()
                if line.strip() and not line.startswith("#")]
    names = [n for n in tracked.decode().split("\0") if n]
    return [ROOT / n for n in names
            if not any(n == p or n.startswith(p + "/") or fnmatch.fnmatch(n, p) for p in patterns)]


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--limit-mb", type=float, default=LIMIT_MB)
    limit = parser.parse_args().limit_mb
    with tempfile.TemporaryDirectory(prefix="slug-") as tmp:
        venv = Path(tmp) / "venv"
        subprocess.run([sys.executable, "-m", "venv", "--without-pip", str(venv)], check=True)
        # pip from this interpreter installs into the fresh venv's site-packages, like the buildpack.
        site = next((venv / "lib").glob("python3*/site-packages"))
        subprocess.run([sys.executable, "-m", "pip", "install", "--quiet", "--disable-pip-version-check",
                        "--target", str(site), "-r", str(ROOT / "requirements.txt")], check=True)
        venv_mb = tree_bytes(venv) / 2**20
    app_mb = sum(f.stat().st_size for f in slug_files() if f.is_file()) / 2**20
    total = venv_mb + app_mb
    print(f"slug estimate: requirements.txt venv {venv_mb:.1f} MB + app files {app_mb:.1f} MB = "
          f"{total:.1f} MB (limit {limit:.0f} MB)")
    if total > limit:
        print("slug too large: trim requirements.txt (TensorFlow belongs in requirements-dev.txt)", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
