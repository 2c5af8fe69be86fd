"""parse_s3_reference: every accepted URL shape, and a helpful ValueError for the rest (no network)."""
from __future__ import annotations

import pytest

from client import is_image_key, parse_s3_reference

MINIO = "http://minio.local:9000"


@pytest.mark.parametrize(("ref", "expected"), [
    ("s3://bucket/key.png", ("bucket", "key.png")),
    ("s3://bucket/a/b/c.png", ("bucket", "a/b/c.png")),
    ("s3://bucket/a b+c.png", ("bucket", "a b+c.png")),  # s3:// keys are literal, as in the AWS CLI
    ("https://bucket.s3.amazonaws.com/key.png", ("bucket", "key.png")),
    ("https://my.dotted.bucket.s3.amazonaws.com/k.png", ("my.dotted.bucket", "k.png")),
    ("https://bucket.s3.eu-west-1.amazonaws.com/dir/key.png", ("bucket", "dir/key.png")),
    ("https://bucket.s3-eu-west-1.amazonaws.com/key.png", ("bucket", "key.png")),  # legacy dash region
    ("http://bucket.s3.amazonaws.com/key.png", ("bucket", "key.png")),
    ("https://s3.amazonaws.com/bucket/key.png", ("bucket", "key.png")),
    ("https://s3.us-west-2.amazonaws.com/bucket/dir/key.png", ("bucket", "dir/key.png")),
    ("https://s3-us-west-2.amazonaws.com/bucket/key.png", ("bucket", "key.png")),
    ("https://bucket.s3.us-east-1.amazonaws.com/key.png?X-Amz-Algorithm=AWS4-HMAC-SHA256&X-Amz-Signature=ab12",
     ("bucket", "key.png")),
    ("https://s3.amazonaws.com/bucket/key.png?AWSAccessKeyId=x&Signature=y%2Bz&Expires=1", ("bucket", "key.png")),
    ("https://bucket.s3.amazonaws.com/my%20photo.png", ("bucket", "my photo.png")),
    ("https://bucket.s3.amazonaws.com/a%2Bb.png", ("bucket", "a+b.png")),
    ("https://bucket.s3.amazonaws.com/a+b.png", ("bucket", "a+b.png")),  # a literal + is not a space
    ("https://bucket.s3.amazonaws.com/caf%C3%A9/%E6%95%B0%E5%AD%97.png", ("bucket", "café/数字.png")),
    ("https://s3.amazonaws.com/bucket/dir/sub%20dir/x%2By.png", ("bucket", "dir/sub dir/x+y.png")),
    (f"{MINIO}/bucket/key.png", ("bucket", "key.png")),
    (f"{MINIO}/bucket/dir/my%20key.png?X-Amz-Signature=00", ("bucket", "dir/my key.png")),
    ("  s3://bucket/key.png\n", ("bucket", "key.png")),
])
def test_accepted_shapes(ref: str, expected: tuple[str, str]) -> None:
    assert parse_s3_reference(ref, endpoint_url=MINIO) == expected


def test_endpoint_defaults_to_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("AWS_S3_ENDPOINT_URL", "https://store.example.com/s3")
    assert parse_s3_reference("https://store.example.com/s3/bucket/k.png") == ("bucket", "k.png")
    monkeypatch.delenv("AWS_S3_ENDPOINT_URL")
    with pytest.raises(ValueError):
        parse_s3_reference("https://store.example.com/s3/bucket/k.png")


def test_custom_endpoint_must_match_port_and_scheme() -> None:
    for ref in ("http://minio.local:9001/bucket/k.png", "https://minio.local:9000/bucket/k.png"):
        with pytest.raises(ValueError):
            parse_s3_reference(ref, endpoint_url=MINIO)


@pytest.mark.parametrize("ref", ["dir/key.png", "key with space.png"])
def test_bare_key_uses_default_bucket(ref: str) -> None:
    assert parse_s3_reference(ref, "fallback", endpoint_url="") == ("fallback", ref)


def test_bucket_root_only_when_allowed() -> None:
    assert parse_s3_reference("s3://bucket/", require_key=False, endpoint_url="") == ("bucket", "")
    assert parse_s3_reference("s3://bucket/photos/", require_key=False, endpoint_url="") == ("bucket", "photos/")
    with pytest.raises(ValueError):
        parse_s3_reference("s3://bucket/", endpoint_url="")


@pytest.mark.parametrize("ref", [
    "key.png",  # bare key without a default bucket
    "/abs/path.png",
    "s3://",
    "s3:///key.png",
    "https://example.com/bucket/key.png",
    "https://bucket.s3.amazonaws.com/",
    "https://s3.amazonaws.com/bucket",
    "ftp://bucket/key.png",
    "gs://bucket/key.png",
    "",
])
def test_rejects_other_shapes_and_says_what_is_accepted(ref: str) -> None:
    with pytest.raises(ValueError) as caught:
        parse_s3_reference(ref, endpoint_url="")
    message = str(caught.value)
    assert repr(ref) in message
    for shape in ("s3://bucket/key", "https://bucket.s3.amazonaws.com/key", "https://s3.amazonaws.com/bucket/key",
                  "presigned", "AWS_S3_ENDPOINT_URL", "bare key"):
        assert shape in message


@pytest.mark.parametrize(("key", "expected"), [
    ("a.png", True), ("dir/b.JPG", True), ("c.jpeg", True), ("d.webp", True), ("e.tiff", True),
    ("f.heic", True), ("g.HEIF", True), ("h.avif", True),
    ("notes.txt", False), ("dir/", False), ("png", False), ("archive.png.zip", False),
])
def test_image_keys(key: str, expected: bool) -> None:
    assert is_image_key(key) is expected
