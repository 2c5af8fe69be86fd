"""The README documents every setting and starts with the two set-up commands."""
from __future__ import annotations

from pathlib import Path

from util.config import SETTINGS

README = (Path(__file__).resolve().parents[1] / "README.md").read_text()


def test_first_lines_give_run_and_test_commands() -> None:
    head = README.splitlines()[:6]
    assert any(line.startswith("make run") for line in head)
    assert any(line.startswith("make test") for line in head)


def test_every_setting_is_documented() -> None:
    missing = [name for name in SETTINGS if f"`{name}`" not in README]
    assert not missing, f"README lacks {missing}"
