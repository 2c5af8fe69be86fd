"""S3 references (every URL shape people paste) and reading objects with boto3, with typed errors."""
from __future__ import annotations

import os
import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from urllib.parse import unquote, urlsplit

from dotenv import find_dotenv, load_dotenv

IMAGE_EXTENSIONS = frozenset({".png", ".jpg", ".jpeg", ".gif", ".webp", ".bmp", ".tif", ".tiff", ".heic", ".heif",
                              ".avif"})
ACCEPTED_SHAPES = (
    "s3://bucket/key; "
    "https://bucket.s3.amazonaws.com/key, https://bucket.s3.<region>.amazonaws.com/key, "
    "https://bucket.s3-<region>.amazonaws.com/key (virtual-hosted); "
    "https://s3.amazonaws.com/bucket/key, https://s3.<region>.amazonaws.com/bucket/key (path-style); "
    "presigned forms of these; <AWS_S3_ENDPOINT_URL>/bucket/key (MinIO and other S3-compatible stores); "
    "a bare key when a default bucket (AWS_STORAGE_BUCKET_NAME) is set"
)
# bucket.s3.amazonaws.com, bucket.s3.eu-west-1.amazonaws.com, bucket.s3-eu-west-1.amazonaws.com (legacy)
_VIRTUAL_HOST = re.compile(r"^(?P<bucket>[a-z0-9][a-z0-9._-]*?)\.s3(?:[.-](?:dualstack\.)?[a-z0-9-]+)?"
                           r"\.amazonaws\.com(?:\.cn)?$")
# s3.amazonaws.com, s3.eu-west-1.amazonaws.com, s3-eu-west-1.amazonaws.com
_PATH_HOST = re.compile(r"^s3(?:[.-](?:dualstack\.)?[a-z0-9-]+)?\.amazonaws\.com(?:\.cn)?$")
_BUCKET = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,254}$")


class S3Error(Exception):
    """An S3 object could not be read; names the bucket and key."""

    def __init__(self, bucket: str, key: str | None, reason: str) -> None:
        self.bucket, self.key, self.reason = bucket, key, reason
        where = f"s3://{bucket}/{key}" if key is not None else f"bucket {bucket!r}"
        super().__init__(f"{reason}: {where}")


class BucketNotFound(S3Error):
    """The bucket does not exist."""


class ObjectNotFound(S3Error):
    """No object with that key in the bucket."""


class AccessDenied(S3Error):
    """The credentials may not read the object (or list the bucket)."""


def load_env() -> None:
    """Load `.env` from the working directory (or a parent); real environment variables win."""
    load_dotenv(find_dotenv(usecwd=True), override=False)


def parse_s3_reference(ref: str, default_bucket: str | None = None, *, endpoint_url: str | None = None,
                       require_key: bool = True) -> tuple[str, str]:
    """(bucket, key) for any accepted shape; `endpoint_url` defaults to `AWS_S3_ENDPOINT_URL`.

    Keys in http(s) URLs are percent-decoded (`%20`, `%2B`, UTF-8); a literal `+` stays a `+`,
    as in boto3's URLs. `s3://` keys are taken literally, as the AWS CLI does.
    `require_key=False` accepts an empty key (a bucket or prefix root).
    """
    if endpoint_url is None:
        endpoint_url = os.environ.get("AWS_S3_ENDPOINT_URL") or None
    bucket, key = _split(ref.strip(), default_bucket, endpoint_url)
    if not bucket or not _BUCKET.match(bucket) or (require_key and not key):
        raise ValueError(f"not an S3 object reference: {ref!r}; accepted: {ACCEPTED_SHAPES}")
    return bucket, key


def _split(ref: str, default_bucket: str | None, endpoint_url: str | None) -> tuple[str, str]:
    parts = urlsplit(ref)
    scheme = parts.scheme.lower()
    if scheme == "s3":
        return parts.netloc, ref.split("/", 3)[3] if ref.count("/") >= 3 else ""
    if scheme in ("http", "https"):
        host = (parts.hostname or "").lower()
        path = unquote(parts.path)  # the query (a presigned signature) is dropped
        if endpoint_url and _same_origin(parts, urlsplit(endpoint_url)):
            base = urlsplit(endpoint_url).path.rstrip("/")
            if path.startswith(base + "/"):
                return _bucket_and_key(path[len(base):])
        if _PATH_HOST.match(host):
            return _bucket_and_key(path)
        virtual = _VIRTUAL_HOST.match(host)
        if virtual:
            return virtual["bucket"], path[1:]
        return "", ""
    if scheme or not default_bucket or ref.startswith("/"):
        return "", ""
    return default_bucket, ref


def _same_origin(url: Any, endpoint: Any) -> bool:
    def port(p: Any) -> int | None:
        return p.port or {"http": 80, "https": 443}.get(p.scheme.lower())
    return (url.scheme.lower() == endpoint.scheme.lower() and url.hostname is not None
            and url.hostname.lower() == (endpoint.hostname or "").lower() and port(url) == port(endpoint))


def _bucket_and_key(path: str) -> tuple[str, str]:
    bucket, _, key = path.lstrip("/").partition("/")
    return bucket, key


def is_image_key(key: str) -> bool:
    """True when the key's extension is an image type the API accepts."""
    return Path(key).suffix.lower() in IMAGE_EXTENSIONS


def s3_client(endpoint_url: str | None = None, region: str | None = None, max_pool_connections: int = 10) -> Any:
    """A boto3 S3 client: default credential chain, `.env` loaded, `AWS_S3_ENDPOINT_URL` honoured."""
    import boto3
    from botocore.config import Config
    load_env()
    return boto3.client(
        "s3", endpoint_url=endpoint_url or os.environ.get("AWS_S3_ENDPOINT_URL") or None,
        region_name=region or os.environ.get("AWS_DEFAULT_REGION") or None,
        config=Config(max_pool_connections=max_pool_connections, retries={"max_attempts": 5, "mode": "standard"}))


def _translate(error: Exception, bucket: str, key: str | None) -> Exception:
    """boto's ClientError -> our typed errors; anything else unchanged."""
    response = getattr(error, "response", None)
    if not isinstance(response, dict):
        return error
    code = str(response.get("Error", {}).get("Code", ""))
    status = response.get("ResponseMetadata", {}).get("HTTPStatusCode")
    if code == "NoSuchBucket":
        return BucketNotFound(bucket, None, "no such bucket")
    if code in ("NoSuchKey", "404", "NotFound") or (status == 404 and key is not None):
        return ObjectNotFound(bucket, key, "no such key")
    if code in ("AccessDenied", "403", "Forbidden", "AllAccessDisabled") or status == 403:
        return AccessDenied(bucket, key, "access denied")
    return S3Error(bucket, key, f"S3 error {code or status}")


def read_object(s3: Any, bucket: str, key: str) -> bytes:
    """The object's bytes; raises BucketNotFound / ObjectNotFound / AccessDenied / S3Error."""
    from botocore.exceptions import ClientError
    try:
        return s3.get_object(Bucket=bucket, Key=key)["Body"].read()
    except ClientError as error:
        raise _translate(error, bucket, key) from error


def list_keys(s3: Any, bucket: str, prefix: str = "") -> Iterator[str]:
    """Every key under the prefix, following pagination (1,000 keys a page)."""
    from botocore.exceptions import ClientError
    try:
        for page in s3.get_paginator("list_objects_v2").paginate(Bucket=bucket, Prefix=prefix):
            for item in page.get("Contents", []):
                yield item["Key"]
    except ClientError as error:
        raise _translate(error, bucket, None) from error


def read_reference(ref: str, s3: Any = None, default_bucket: str | None = None) -> tuple[str, bytes]:
    """(name, bytes) for a local file (path or file:// URL; a path that exists wins) or an S3 reference.

    A bare key uses `default_bucket`, else `AWS_STORAGE_BUCKET_NAME`.
    """
    local = Path(unquote(urlsplit(ref).path)) if ref.startswith("file://") else Path(ref)
    if ref.startswith("file://") or ("://" not in ref and local.is_file()):
        return local.name, local.read_bytes()
    bucket, key = parse_s3_reference(ref, default_bucket or os.environ.get("AWS_STORAGE_BUCKET_NAME"))
    return key, read_object(s3 if s3 is not None else s3_client(), bucket, key)
