"""Models in S3 for the tests: `flask models publish` as an operator runs it, and hand-made partial uploads."""
from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path
from typing import Any

from tests.conftest import ROOT


def publish(models: Path, url: str, *names: str) -> subprocess.CompletedProcess[str]:
    """`flask models publish` as an operator runs it."""
    run = subprocess.run([sys.executable, "-m", "flask", "--app", "application", "models", "publish", *names,
                          "--to", url, "--models-dir", str(models)], cwd=ROOT, capture_output=True, text=True,
                         env={**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3"}, timeout=300)
    assert run.returncode == 0, run.stdout + run.stderr
    return run


def put_version(s3: Any, bucket: str, prefix: str, version_dir: Path, names: list[str]) -> None:
    """Upload some of a version's files by hand (an upload that stopped, or a copy made without publish)."""
    for name in names:
        s3.put_object(Bucket=bucket, Key=f"{prefix}/{name}", Body=(version_dir / name).read_bytes())
