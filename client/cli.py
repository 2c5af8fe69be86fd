"""`python -m client`: classify S3 objects or local files, one JSON line per input."""
from __future__ import annotations

import argparse
import json
import os
import sys
import time
from collections.abc import Iterable, Sequence
from concurrent.futures import FIRST_COMPLETED, Future, ThreadPoolExecutor, wait
from pathlib import Path
from typing import Any, TextIO

from botocore.exceptions import BotoCoreError
from tqdm import tqdm

from client.api import PRIORITIES, PredictionClient, PredictionError
from client.s3 import (
    S3Error,
    is_image_key,
    list_keys,
    load_env,
    parse_s3_reference,
    read_object,
    read_reference,
    s3_client,
)

DEFAULT_API_URL = "http://127.0.0.1:5000"
SHOWN_ERRORS = 10  # errors listed in the summary; the output file has them all


def build_parser() -> argparse.ArgumentParser:
    """Flags default from the environment (after `.env` is loaded)."""
    env = os.environ.get
    common = argparse.ArgumentParser(add_help=False)
    common.add_argument("--api-url", default=env("PREDICTION_API_URL", DEFAULT_API_URL),
                        help="prediction API base URL (PREDICTION_API_URL; default %(default)s)")
    common.add_argument("--model", default=env("PREDICTION_MODEL", "digits"),
                        help="model name (PREDICTION_MODEL; default %(default)s)")
    common.add_argument("--bucket", default=env("AWS_STORAGE_BUCKET_NAME"),
                        help="default bucket for bare keys (AWS_STORAGE_BUCKET_NAME)")
    common.add_argument("--endpoint-url", default=env("AWS_S3_ENDPOINT_URL"),
                        help="S3-compatible endpoint, e.g. MinIO (AWS_S3_ENDPOINT_URL)")
    common.add_argument("--region", default=env("AWS_DEFAULT_REGION"), help="AWS region (AWS_DEFAULT_REGION)")
    common.add_argument("--timeout", type=float, default=float(env("PREDICTION_TIMEOUT", "30")),
                        help="seconds per HTTP request (PREDICTION_TIMEOUT; default %(default)s)")
    common.add_argument("--retries", type=int, default=int(env("PREDICTION_RETRIES", "4")),
                        help="retries on connection errors and 429/502/503/504 (default %(default)s)")
    common.add_argument("--backoff", type=float, default=float(env("PREDICTION_BACKOFF", "0.5")),
                        help="first retry delay in seconds, doubled each retry (default %(default)s)")
    common.add_argument("--top-k", type=int, default=None, help="predictions per image (server default)")

    # The command as typed: keras-serve-client when installed, python -m client from a checkout.
    command = Path(sys.argv[0]).name
    parser = argparse.ArgumentParser(prog="python -m client" if command == "__main__.py" else command,
                                     description=__doc__)
    commands = parser.add_subparsers(dest="command", required=True)
    one = commands.add_parser("predict", parents=[common], help="classify S3 references or local files")
    one.add_argument("refs", nargs="+", metavar="REF", help="s3://bucket/key, an S3 URL, a bare key or a file")
    one.add_argument("--priority", choices=PRIORITIES, default="normal",
                     help="X-Priority of the requests (default %(default)s)")
    many = commands.add_parser("predict-prefix", parents=[common], help="classify every image under a prefix")
    many.add_argument("prefix", metavar="s3://bucket/prefix/")
    many.add_argument("--concurrency", type=int, default=4, help="parallel requests (default %(default)s)")
    # A whole bucket is batch work: people using the same server (Swagger, the demo page) go first.
    many.add_argument("--priority", choices=PRIORITIES, default="low",
                      help="X-Priority of the requests (default %(default)s: interactive users go first)")
    # 8 images per request: 1.35x the images/s of one per request (4 images: 1.28x), bench/client_batches.py
    many.add_argument("--batch-size", type=int, default=8,
                      help="images per request (POST /<model>/predictions when above 1; default %(default)s)")
    many.add_argument("--output", type=Path, default=Path("results.jsonl"),
                      help="JSON lines file; keys already in it are skipped (default %(default)s)")
    many.add_argument("--no-progress", action="store_true", help="no progress bar")
    return parser


def make_client(args: argparse.Namespace) -> PredictionClient:
    return PredictionClient(args.api_url, args.model, timeout=args.timeout, retries=args.retries,
                            backoff=args.backoff, priority=args.priority)


def error_text(error: Exception) -> str:
    return str(error) if isinstance(error, (S3Error, PredictionError)) else f"{type(error).__name__}: {error}"


def cmd_predict(args: argparse.Namespace, out: TextIO) -> int:
    api, s3, failed = make_client(args), None, 0
    for ref in args.refs:
        try:
            if s3 is None and not Path(ref).is_file() and not ref.startswith("file://"):
                s3 = s3_client(args.endpoint_url, args.region)
            name, data = read_reference(ref, s3=s3, default_bucket=args.bucket)
            record: dict[str, Any] = {"ref": ref, **api.predict(data, name, top_k=args.top_k).to_dict()}
        except (S3Error, PredictionError, BotoCoreError, ValueError, OSError) as error:
            failed += 1
            record = {"ref": ref, "error": error_text(error), "error_type": type(error).__name__}
        print(json.dumps(record), file=out, flush=True)
    return 1 if failed else 0


def load_done(output: Path) -> set[str]:
    """Keys with a result in `output`; drops error lines and a torn last line so each key appears once."""
    if not output.exists():
        return set()
    kept, done, dropped = [], set(), False
    for line in output.read_text(encoding="utf-8").splitlines():
        try:
            record = json.loads(line)
            ok = isinstance(record, dict) and "key" in record and "error" not in record
        except ValueError:
            ok = False
        if ok and record["key"] not in done:
            done.add(record["key"])
            kept.append(line)
        else:
            dropped = dropped or bool(line.strip())
    if dropped:  # rewrite, so retried keys are not listed twice
        tmp = output.with_name(output.name + ".tmp")
        tmp.write_text("".join(line + "\n" for line in kept), encoding="utf-8")
        tmp.replace(output)
    return done


def classify(api: PredictionClient, s3: Any, bucket: str, key: str, top_k: int | None) -> dict[str, Any]:
    try:
        prediction = api.predict(read_object(s3, bucket, key), key, top_k=top_k)
        return {"key": key, "label": prediction.label, "confidence": prediction.confidence}
    except Exception as error:
        return {"key": key, "error": error_text(error), "error_type": type(error).__name__}


def classify_batch(api: PredictionClient, s3: Any, bucket: str, keys: list[str],
                   top_k: int | None) -> list[dict[str, Any]]:
    """`keys` read from S3 and classified in one request; a key that fails gets its own error record."""
    records: dict[str, dict[str, Any]] = {}
    readable = []
    for key in keys:
        try:
            readable.append((read_object(s3, bucket, key), key))
        except Exception as error:
            records[key] = {"key": key, "error": error_text(error), "error_type": type(error).__name__}
    try:
        answers: list[Any] = api.predict_many(readable, top_k=top_k) if readable else []
    except Exception as error:
        answers = [error] * len(readable)
    for (_, key), answer in zip(readable, answers, strict=True):
        records[key] = ({"key": key, "error": error_text(answer), "error_type": type(answer).__name__}
                        if isinstance(answer, Exception) else
                        {"key": key, "label": answer.label, "confidence": answer.confidence})
    return [records[key] for key in keys]


def run_bounded(pool: ThreadPoolExecutor, fn: Any, items: Iterable[Any], window: int) -> Iterable[Any]:
    """Results of fn(item) as they complete, with at most `window` in flight (memory stays flat)."""
    pending: set[Future] = set()
    for item in items:
        pending.add(pool.submit(fn, item))
        if len(pending) >= window:
            finished, pending = wait(pending, return_when=FIRST_COMPLETED)
            yield from (f.result() for f in finished)
    for future in wait(pending).done:
        yield future.result()


def cmd_predict_prefix(args: argparse.Namespace, out: TextIO) -> int:
    bucket, prefix = parse_s3_reference(args.prefix, args.bucket, endpoint_url=args.endpoint_url,
                                        require_key=False)
    concurrency = max(1, args.concurrency)
    s3, api = s3_client(args.endpoint_url, args.region, max_pool_connections=concurrency + 2), make_client(args)
    try:
        keys = list(list_keys(s3, bucket, prefix))
    except (S3Error, BotoCoreError) as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    images = [key for key in keys if is_image_key(key)]
    done = load_done(args.output)
    todo = [key for key in images if key not in done]
    counts, errors, start = {"ok": 0, "error": 0}, [], time.monotonic()
    args.output.parent.mkdir(parents=True, exist_ok=True)
    with args.output.open("a", encoding="utf-8") as results, ThreadPoolExecutor(concurrency) as pool, \
            tqdm(total=len(todo), unit="img", disable=True if args.no_progress else None, file=sys.stderr) as bar:
        size = max(1, args.batch_size)
        if size == 1:
            work = run_bounded(pool, lambda key: classify(api, s3, bucket, key, args.top_k), todo, concurrency * 4)
        else:
            batches = [todo[i:i + size] for i in range(0, len(todo), size)]
            work = (record for batch in run_bounded(pool, lambda keys: classify_batch(api, s3, bucket, keys,
                                                                                     args.top_k),
                                                    batches, concurrency * 4) for record in batch)
        for record in work:
            results.write(json.dumps(record, ensure_ascii=False) + "\n")
            results.flush()
            counts["error" if "error" in record else "ok"] += 1
            if "error" in record:
                errors.append(record)
            bar.update()
    elapsed = time.monotonic() - start
    rate = (counts["ok"] + counts["error"]) / elapsed if elapsed > 0 else 0.0
    summary = {"objects": len(keys), "images": len(images), "skipped": len(images) - len(todo),
               "predicted": counts["ok"], "errors": counts["error"], "seconds": round(elapsed, 3),
               "images_per_second": round(rate, 2), "output": str(args.output)}
    for record in errors[:SHOWN_ERRORS]:
        print(f"error: {record['key']}: {record['error']}", file=sys.stderr)
    print(json.dumps(summary), file=out)
    return 1 if counts["error"] else 0


def main(argv: Sequence[str] | None = None, out: TextIO | None = None) -> int:
    """Exit status: 0 all classified, 1 some failed, 2 bad usage or the prefix could not be listed."""
    load_env()
    args = build_parser().parse_args(argv)
    out = out or sys.stdout
    try:
        if args.command == "predict":
            return cmd_predict(args, out)
        return cmd_predict_prefix(args, out)
    except ValueError as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
