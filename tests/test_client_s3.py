"""Reading S3 references against moto's S3 server on 127.0.0.1: URL shapes, presigned URLs, odd keys, pages."""
from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any
from urllib.parse import quote

import pytest
import requests

from client import (
    AccessDenied,
    BucketNotFound,
    ObjectNotFound,
    S3Error,
    list_keys,
    parse_s3_reference,
    read_object,
    read_reference,
    s3_client,
)

pytestmark = pytest.mark.slow  # moto's S3 server

ODD_KEYS = ["plain.png", "with space.png", "a+b.png", "café/数字 7.png", "nested/deeper/still/x.png",
            "sp ace/plus+sign/ünï cödé+ +.png", "percent%20literal.png"]
# Every AWS URL shape: parsed to (bucket, key), then read from moto with that pair.
SHAPES = [
    "s3://{bucket}/{raw}",
    "https://{bucket}.s3.amazonaws.com/{quoted}",
    "https://{bucket}.s3.eu-central-1.amazonaws.com/{quoted}",
    "https://{bucket}.s3-eu-central-1.amazonaws.com/{quoted}",
    "https://s3.amazonaws.com/{bucket}/{quoted}",
    "https://s3.eu-central-1.amazonaws.com/{bucket}/{quoted}",
    "https://{bucket}.s3.amazonaws.com/{quoted}?X-Amz-Algorithm=AWS4-HMAC-SHA256&X-Amz-Signature=00ff",
    "{endpoint}/{bucket}/{quoted}",
    "{endpoint}/{bucket}/{quoted}?X-Amz-Expires=60&X-Amz-Signature=00ff",
]


def put(s3: Any, bucket: str, key: str) -> bytes:
    body = f"bytes of {key}".encode()
    s3.put_object(Bucket=bucket, Key=key, Body=body)
    return body


@pytest.mark.parametrize("shape", SHAPES)
@pytest.mark.parametrize("key", ODD_KEYS)
def test_every_shape_reads_the_object(shape: str, key: str, s3: Any, bucket: str, aws_env: str) -> None:
    body = put(s3, bucket, key)
    ref = shape.format(bucket=bucket, raw=key, quoted=quote(key, safe="/"), endpoint=aws_env)
    assert parse_s3_reference(ref) == (bucket, key)
    name, data = read_reference(ref, s3=s3)
    assert (name, data) == (key, body)


@pytest.mark.parametrize("key", ODD_KEYS)
def test_presigned_urls_from_boto3(key: str, s3: Any, bucket: str) -> None:
    body = put(s3, bucket, key)
    url = s3.generate_presigned_url("get_object", Params={"Bucket": bucket, "Key": key}, ExpiresIn=300)
    assert "Signature" in url
    assert requests.get(url, timeout=10).content == body  # the URL is real and signed for this key
    assert parse_s3_reference(url) == (bucket, key)
    assert read_reference(url, s3=s3) == (key, body)


def test_virtual_hosted_presigned_url(aws_env: str, s3: Any, bucket: str) -> None:
    import boto3
    from botocore.config import Config
    body = put(s3, bucket, "dir/a b+c.png")
    aws = boto3.client("s3", region_name="eu-central-1", config=Config(s3={"addressing_style": "virtual"}))
    url = aws.generate_presigned_url("get_object", Params={"Bucket": bucket, "Key": "dir/a b+c.png"})
    assert url.startswith(f"https://{bucket}.s3.")
    assert read_reference(url, s3=s3) == ("dir/a b+c.png", body)


def test_client_from_environment_and_bare_key(s3: Any, bucket: str, monkeypatch: pytest.MonkeyPatch) -> None:
    body = put(s3, bucket, "dir/seven.png")
    monkeypatch.setenv("AWS_STORAGE_BUCKET_NAME", bucket)
    client = s3_client()  # endpoint, credentials and region from the environment only
    assert read_reference("dir/seven.png", s3=client) == ("dir/seven.png", body)
    assert read_reference("dir/seven.png") == ("dir/seven.png", body)


def test_local_files(tmp_path: Path) -> None:
    path = tmp_path / "my digit.png"
    path.write_bytes(b"local bytes")
    assert read_reference(str(path)) == ("my digit.png", b"local bytes")
    assert read_reference(path.as_uri()) == ("my digit.png", b"local bytes")


def test_missing_key_names_bucket_and_key(s3: Any, bucket: str) -> None:
    with pytest.raises(ObjectNotFound) as caught:
        read_object(s3, bucket, "nope/missing.png")
    assert (caught.value.bucket, caught.value.key) == (bucket, "nope/missing.png")
    assert f"s3://{bucket}/nope/missing.png" in str(caught.value)
    with pytest.raises(ObjectNotFound):
        read_reference(f"s3://{bucket}/nope/missing.png", s3=s3)


def test_missing_bucket(s3: Any) -> None:
    with pytest.raises(BucketNotFound) as caught:
        read_object(s3, "no-such-bucket-here", "k.png")
    assert caught.value.bucket == "no-such-bucket-here"
    assert "no-such-bucket-here" in str(caught.value)
    with pytest.raises(BucketNotFound):
        list(list_keys(s3, "no-such-bucket-here"))


@pytest.mark.parametrize(("operation", "call"), [
    ("get_object", lambda s3: read_object(s3, "locked", "secret.png")),
    ("list_objects_v2", lambda s3: list(list_keys(s3, "locked", "p/"))),
])
def test_access_denied_is_typed(operation: str, call: Any, s3: Any) -> None:
    from botocore.stub import Stubber
    with Stubber(s3) as stub:
        stub.add_client_error(operation, service_error_code="AccessDenied", http_status_code=403)
        with pytest.raises(AccessDenied) as caught:
            call(s3)
    assert caught.value.bucket == "locked"
    assert isinstance(caught.value, S3Error) and "access denied" in str(caught.value)


def test_pagination_lists_all_1050_objects(s3: Any, bucket: str) -> None:
    keys = {f"many/{i // 100:02d}/img {i:04d}.png" for i in range(1050)}
    with ThreadPoolExecutor(16) as pool:
        list(pool.map(lambda key: s3.put_object(Bucket=bucket, Key=key, Body=b"x"), keys))
    s3.put_object(Bucket=bucket, Key="other/outside.png", Body=b"x")
    listed = list(list_keys(s3, bucket, "many/"))
    assert len(listed) == 1050 and set(listed) == keys  # more than one 1,000-key page
