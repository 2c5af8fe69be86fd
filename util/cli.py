"""`flask --app application models ...` and `python -m util.compile`: compile and list models."""
from __future__ import annotations

import os
import sys
from pathlib import Path

import click

from util.config import load_settings
from util.errors import ModelLoadError
from util.models import ModelSpec, discover


def _models_dir(explicit: str | None) -> Path:
    if explicit:
        return Path(explicit)
    try:
        from flask import current_app
        return Path(current_app.config["MODELS_DIR"])
    except RuntimeError:  # not inside a Flask app context
        return Path(load_settings()["MODELS_DIR"])


def _select(models_dir: Path, names: tuple[str, ...]) -> list[ModelSpec]:
    specs = {spec.name: spec for spec in discover(models_dir)}
    unknown = [n for n in names if n not in specs]
    if unknown:
        raise click.UsageError(f"unknown model(s) {', '.join(unknown)}; known: {', '.join(specs) or 'none'}")
    return [specs[n] for n in names] if names else list(specs.values())


@click.group("models")
def models_cli() -> None:
    """Compile and inspect the models under MODELS_DIR."""


@models_cli.command("compile")
@click.argument("names", nargs=-1)
@click.option("--models-dir", default=None, help="Defaults to the app's MODELS_DIR.")
@click.option("--tolerance", type=float, default=None, help="Max abs diff accepted (default COMPILE_TOLERANCE, 1e-4).")
@click.option("--if-stale", is_flag=True, help="Skip models whose artifact is fresh.")
def compile_command(names: tuple[str, ...], models_dir: str | None, tolerance: float | None, if_stale: bool) -> None:
    """Convert models to TFLite, verify against Keras, write model.tflite + manifest."""
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    from util.compile import artifact_status, compile_model
    tolerance = load_settings()["COMPILE_TOLERANCE"] if tolerance is None else tolerance
    failed = False
    try:
        specs = _select(_models_dir(models_dir), names)
    except ModelLoadError as exc:
        raise click.ClickException(exc.message) from None
    for spec in specs:
        if if_stale and artifact_status(spec)[0] == "fresh":
            click.echo(f"{spec.name} v{spec.version}: up to date")
            continue
        try:
            m = compile_model(spec, tolerance)
        except ModelLoadError as exc:
            click.echo(f"{spec.name} v{spec.version}: FAILED: {exc.message}", err=True)
            failed = True
            continue
        diff = m["verification"]["max_abs_diff"]
        if m["runtime"] == "tflite":
            click.echo(f"{spec.name} v{spec.version}: model.tflite ({m['artifact']['bytes']} bytes), "
                       f"max abs diff {diff:.3g} <= {tolerance:g}")
        else:
            click.echo(f"{spec.name} v{spec.version}: WARNING: served by the Keras runtime: {m['fallback_reason']}",
                       err=True)
    if failed:
        sys.exit(1)


@models_cli.command("list")
@click.option("--models-dir", default=None, help="Defaults to the app's MODELS_DIR.")
def list_command(models_dir: str | None) -> None:
    """Show each model's version, labels and artifact state."""
    from util.compile import artifact_status
    for spec in _select(_models_dir(models_dir), ()):
        state, manifest = artifact_status(spec)
        runtime = (manifest or {}).get("runtime", "-")
        click.echo(f"{spec.name}\tv{spec.version}\t{len(spec.labels)} labels\tartifact {state}\truntime {runtime}")


def main() -> int:
    """Entry point of `python -m util.compile` (used for compiling in a child process)."""
    try:
        compile_command.main(prog_name="python -m util.compile", standalone_mode=False)
    except click.ClickException as exc:
        exc.show()
        return exc.exit_code
    except SystemExit as exc:
        return int(exc.code or 0)
    return 0
