"""`python -m client predict-prefix` at several `--batch-size` values against the Procfile server
and moto's S3 server, in alternating rounds: how many images per request the client should send.

Run: python -m bench.client_batches [--images 300] [--rounds 2]; prints one JSON line per run and a
summary with each size's images/s relative to one image per request.
"""
from __future__ import annotations

import argparse
import contextlib
import io
import json
import os
import tempfile
from pathlib import Path

from bench.servers import free_port, serve

SIZES = (1, 4, 8)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--images", type=int, default=300)
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--concurrency", type=int, default=4)
    args = parser.parse_args()
    import boto3
    from moto.server import ThreadedMotoServer

    from client.cli import main as client_main
    from scripts.digits import load_split, render, to_png
    os.environ.update({"AWS_ACCESS_KEY_ID": "bench", "AWS_SECRET_ACCESS_KEY": "bench", "AWS_DEFAULT_REGION":
                       "us-east-1"})
    port = free_port()
    moto = ThreadedMotoServer(ip_address="127.0.0.1", port=port, verbose=False)
    moto.start()
    endpoint = f"http://127.0.0.1:{port}"
    s3 = boto3.client("s3", endpoint_url=endpoint, region_name="us-east-1")
    s3.create_bucket(Bucket="bench")
    _, _, x_test, _ = load_split()
    for i in range(args.images):
        s3.put_object(Bucket="bench", Key=f"digits/{i:04d}.png", Body=to_png(render(x_test[i % len(x_test)])))
    rates: dict[int, list[float]] = {size: [] for size in SIZES}
    try:
        with serve({}) as server, tempfile.TemporaryDirectory() as tmp:
            for round_ in range(args.rounds):
                for size in SIZES:
                    out = io.StringIO()
                    output = Path(tmp) / f"r{round_}-{size}.jsonl"
                    with contextlib.redirect_stderr(io.StringIO()):
                        client_main(["predict-prefix", "s3://bench/digits/", "--api-url", server.url,
                                     "--endpoint-url", endpoint, "--batch-size", str(size), "--concurrency",
                                     str(args.concurrency), "--output", str(output), "--no-progress"], out)
                    summary = json.loads(out.getvalue().strip().splitlines()[-1])
                    rates[size].append(summary["images_per_second"])
                    print(json.dumps({"round": round_ + 1, "batch_size": size, **summary}), flush=True)
    finally:
        moto.stop()
    base = sum(rates[1]) / len(rates[1])
    for size in SIZES:
        mean = sum(rates[size]) / len(rates[size])
        print(f"batch size {size}: {mean:.1f} images/s (rounds {rates[size]}), {mean / base:.2f}x one per request")


if __name__ == "__main__":
    main()
