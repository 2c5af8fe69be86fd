"""Headless Chromium as the browser tests start it (no background networking: this machine has no internet)."""
from __future__ import annotations

from pathlib import Path

CHROMIUM = Path("/usr/bin/chromium")


# Without the background-networking flags Chromium floods a closed network with connections.
FLAGS = ["--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run", "--disable-background-networking",
         "--disable-component-update", "--disable-sync"]
