"""S3 + HTTP client for the prediction API: parse S3 references, read objects, classify them.

    from client import PredictionClient
    PredictionClient("http://127.0.0.1:5000", "digits").predict_reference("s3://bucket/seven.png")

`python -m client --help` is the command-line interface (see README, "Client").
"""
from __future__ import annotations

from client.api import APIError, APIUnavailable, Prediction, PredictionClient, PredictionError, predict_reference
from client.s3 import (
    AccessDenied,
    BucketNotFound,
    ObjectNotFound,
    S3Error,
    is_image_key,
    list_keys,
    load_env,
    parse_s3_reference,
    read_object,
    read_reference,
    s3_client,
)

__all__ = [
    "APIError", "APIUnavailable", "AccessDenied", "BucketNotFound", "ObjectNotFound", "Prediction",
    "PredictionClient", "PredictionError", "S3Error", "is_image_key", "list_keys", "load_env",
    "parse_s3_reference", "predict_reference", "read_object", "read_reference", "s3_client",
]
