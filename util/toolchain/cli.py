"""`flask --app application models ...` and `python -m util.toolchain`: compile and list models."""
from __future__ import annotations

import os
import sys
from pathlib import Path
from typing import Any

import click

from util.config import load_settings
from util.errors import ModelLoadError
from util.serve.artifacts import artifact_status
from util.serve.metadata import read_policy
from util.serve.spec import ModelSpec, model_dirs, read_spec, version_dirs


def _models_dir(explicit: str | None) -> Path:
    if explicit:
        return Path(explicit)
    try:
        from flask import current_app
        configured = str(current_app.config["MODELS_DIR"])
    except RuntimeError:  # not inside a Flask app context
        configured = str(load_settings()["MODELS_DIR"])
    if "://" in configured:  # a store holds compiled files only: the tool chain works on sources
        raise click.UsageError(f"MODELS_DIR is {configured}; give --models-dir, the directory with the sources")
    return Path(configured)


def _select(models_dir: Path, names: tuple[str, ...]) -> list[ModelSpec]:
    """Every version each named model (all by default) serves under its model.yaml `versions` policy."""
    try:
        dirs = {d.name: d for d in model_dirs(models_dir)}
        unknown = [n for n in names if n not in dirs]
        if unknown:
            raise click.UsageError(f"unknown model(s) {', '.join(unknown)}; known: {', '.join(dirs) or 'none'}")
        return [read_spec(dirs[n], v) for n in (names or tuple(dirs))
                for v in read_policy(dirs[n]).wanted(list(version_dirs(dirs[n])))]
    except ModelLoadError as exc:
        raise click.ClickException(exc.message) from None


def describe(m: dict[str, Any]) -> str:
    """One line on how a manifest's model is served and how well it was verified."""
    v = m.get("verification") or {}
    if m["runtime"] == "keras":
        return f"WARNING: served by the Keras runtime: {m['fallback_reason']}"
    if not m.get("verified"):
        return f"{m['artifact']['file']} served as is, UNVERIFIED ({v.get('reason')})"
    text = (f"model.tflite ({m['artifact']['bytes']} bytes), max abs diff {v['max_abs_diff']:.3g} <= "
            f"{v['tolerance']:g}, top-1 agreement {v['top1_agreement']:.0%} on {v['images']} images")
    q = m.get("quantization")
    if q and q.get("served"):
        text += (f"; serving {q['mode']} ({q['bytes']} bytes): top-1 agreement {q['top1_agreement']:.1%} on "
                 f"{q['images']} images, max score difference {q['max_score_diff']:.3g}")
    elif q:
        text += f"; WARNING: {q['reason']}"
    if v.get("weak"):
        text += (f"; WEAK verification: scores vary by at most {v['output_spread']:.2g} across very different "
                 "images (untrained?)")
    return text


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
    from util.toolchain.compile import compile_model
    tolerance = load_settings()["COMPILE_TOLERANCE"] if tolerance is None else tolerance
    failed = False
    for spec in _select(_models_dir(models_dir), names):
        if if_stale and artifact_status(spec)[0] == "fresh":
            click.echo(f"{spec.name} v{spec.version}: up to date")
            continue
        try:
            m = compile_model(spec, tolerance)
        except ModelLoadError as exc:
            click.echo(f"{spec.name} v{spec.version}: FAILED: {exc.message}", err=True)
            failed = True
            continue
        for warning in (m.get("plan") or {}).get("warnings", []):
            click.echo(f"{spec.name} v{spec.version}: WARNING: {warning}", err=True)
        click.echo(f"{spec.name} v{spec.version} ({spec.format}): {describe(m)}", err=m["runtime"] == "keras")
    if failed:
        sys.exit(1)


@models_cli.command("publish")
@click.argument("names", nargs=-1)
@click.option("--to", "url", required=True, help="s3://bucket/prefix (other stores: AWS_ENDPOINT_URL).")
@click.option("--models-dir", default=None, help="Defaults to the app's MODELS_DIR.")
@click.option("--tolerance", type=float, default=None, help="Max abs diff accepted when compiling (default 1e-4).")
def publish_command(names: tuple[str, ...], url: str, models_dir: str | None, tolerance: float | None) -> None:
    """Compile what is stale and upload every version the policy serves to a model store."""
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    from botocore.exceptions import BotoCoreError, ClientError  # publishing uses boto3 (requirements-dev.txt)

    from util.toolchain.publish import Publisher
    if not url.startswith("s3://"):
        raise click.UsageError(f"--to takes s3://bucket/prefix, not {url!r}")
    root = _models_dir(models_dir)
    specs = _select(root, names)
    tolerance = load_settings()["COMPILE_TOLERANCE"] if tolerance is None else tolerance
    try:
        publisher = Publisher(url, click.echo)
        failed = False
        for spec in specs:
            try:
                if spec.format != "tflite" and artifact_status(spec)[0] != "fresh":
                    from util.toolchain.compile import compile_model
                    click.echo(f"{spec.name} v{spec.version}: compiling ({describe(compile_model(spec, tolerance))})")
                publisher.version(spec)
            except ModelLoadError as exc:
                click.echo(f"{spec.name} v{spec.version}: NOT PUBLISHED: {exc.message}", err=True)
                failed = True
        for name in dict.fromkeys(spec.name for spec in specs):
            publisher.policy(name, root / name, {spec.path for spec in specs})
    except (BotoCoreError, ClientError) as exc:
        raise click.ClickException(f"the store {url} refused or cannot be reached: {exc}") from None
    if failed:
        sys.exit(1)


@models_cli.command("list")
@click.option("--models-dir", default=None, help="Defaults to the app's MODELS_DIR.")
def list_command(models_dir: str | None) -> None:
    """Show each model's version, format, labels, artifact state and verification."""
    for spec in _select(_models_dir(models_dir), ()):
        try:
            state, manifest = artifact_status(spec)
        except ModelLoadError as exc:
            click.echo(f"{spec.name}\tv{spec.version}\t{spec.format}\tERROR: {exc.reason}")
            continue
        runtime = (manifest or {}).get("runtime", "-")
        status = ((manifest or {}).get("verification") or {}).get("status", "-")
        if state != "fresh":
            status = f"{status} (stale: recompile)" if manifest else "-"
        click.echo(f"{spec.name}\tv{spec.version}\t{spec.format}\t{len(spec.labels)} labels\tartifact {state}\t"
                   f"runtime {runtime}\tverification {status}")


def main() -> int:
    """Entry point of `python -m util.toolchain` (used for compiling in a child process)."""
    try:
        compile_command.main(prog_name="python -m util.toolchain", standalone_mode=False)
    except click.ClickException as exc:
        exc.show()
        return exc.exit_code
    except SystemExit as exc:
        return int(exc.code or 0)
    return 0
