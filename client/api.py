"""HTTP client for `POST /<model>/prediction`: multipart upload, retries with backoff, typed errors."""
from __future__ import annotations

import logging
import mimetypes
import os
import threading
import time
from dataclasses import asdict, dataclass, field
from typing import Any

import requests

from client.s3 import read_reference

LOG = logging.getLogger("client")
RETRY_STATUSES = frozenset({429, 502, 503, 504})
MAX_RETRY_AFTER = 30.0  # seconds; a server asking for longer is not waited for
_MAGIC = ((b"\x89PNG\r\n\x1a\n", "image/png"), (b"\xff\xd8\xff", "image/jpeg"), (b"GIF8", "image/gif"),
          (b"BM", "image/bmp"), (b"II*\x00", "image/tiff"), (b"MM\x00*", "image/tiff"))
# ISO base media files (HEIC/HEIF, AVIF) say what they hold in the major brand of their leading `ftyp` box.
_BRANDS = {b"heic": "image/heic", b"heix": "image/heic", b"heim": "image/heic", b"heis": "image/heic",
           b"mif1": "image/heif", b"msf1": "image/heif-sequence", b"avif": "image/avif", b"avis": "image/avif"}


class PredictionError(Exception):
    """Base of the API client's errors."""


class APIError(PredictionError):
    """The server answered with an error (4xx, or a 5xx that is not retried); carries its JSON message."""

    def __init__(self, status: int, message: str, error: str | None = None, url: str = "") -> None:
        self.status, self.message, self.error, self.url = status, message, error, url
        super().__init__(f"HTTP {status}" + (f" {error}" if error else "") + f": {message}")


class APIUnavailable(PredictionError):
    """Connection errors, timeouts or 429/502/503/504 on every attempt."""

    def __init__(self, url: str, attempts: int, cause: str) -> None:
        self.url, self.attempts, self.cause = url, attempts, cause
        super().__init__(f"prediction API unavailable at {url} after {attempts} attempts: {cause}")


@dataclass(frozen=True)
class Prediction:
    """The server's answer: top label and confidence, the top-k list, model name and version."""

    label: str
    confidence: float
    predictions: list[dict[str, Any]] = field(default_factory=list)
    model: str = ""
    version: int | str | None = None

    @classmethod
    def from_json(cls, body: dict[str, Any]) -> Prediction:
        return cls(label=str(body["label"]), confidence=float(body["confidence"]),
                   predictions=list(body.get("predictions", [])), model=str(body.get("model", "")),
                   version=body.get("version"))

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def guess_content_type(filename: str, data: bytes) -> str:
    """From the file's magic bytes, else its extension, else application/octet-stream."""
    for magic, kind in _MAGIC:
        if data.startswith(magic):
            return kind
    if data[:4] == b"RIFF" and data[8:12] == b"WEBP":
        return "image/webp"
    if data[4:8] == b"ftyp" and data[8:12] in _BRANDS:
        return _BRANDS[data[8:12]]
    return mimetypes.guess_type(filename)[0] or "application/octet-stream"


PRIORITIES = ("high", "normal", "low")


class PredictionClient:
    """`PredictionClient("http://127.0.0.1:5000", "digits").predict(png_bytes, "seven.png")`.

    Retries connection errors, timeouts and 429/502/503/504 up to `retries` times, sleeping
    `backoff * 2**n` seconds (at most `max_backoff`, or the server's Retry-After). `priority`
    (high, normal, low) is sent as X-Priority. Thread-safe: each thread gets its own requests session.
    """

    def __init__(self, base_url: str, model: str = "digits", timeout: float = 30.0, retries: int = 4,
                 backoff: float = 0.5, max_backoff: float = 10.0, api_key: str | None = None,
                 priority: str | None = None) -> None:
        self.base_url, self.model, self.timeout = base_url.rstrip("/"), model, timeout
        self.retries, self.backoff, self.max_backoff = retries, backoff, max_backoff
        # PREDICTION_API_KEY when not given; sent as a bearer token, never logged.
        key = api_key if api_key is not None else os.environ.get("PREDICTION_API_KEY", "")
        self._headers = {"Authorization": f"Bearer {key}"} if key else {}
        if priority is not None:  # high, normal or low: the server serves people before batch jobs
            if priority not in PRIORITIES:
                raise ValueError(f"priority must be one of {', '.join(PRIORITIES)}, not {priority!r}")
            self._headers["X-Priority"] = priority
        self._local = threading.local()

    @property
    def url(self) -> str:
        return f"{self.base_url}/{self.model}/prediction"

    def _session(self) -> requests.Session:
        if not hasattr(self._local, "session"):
            self._local.session = requests.Session()
        return self._local.session

    def _delay(self, attempt: int, response: requests.Response | None) -> float:
        delay = min(self.max_backoff, self.backoff * 2 ** attempt)
        retry_after = response.headers.get("Retry-After", "") if response is not None else ""
        if retry_after.replace(".", "", 1).isdigit():
            delay = min(MAX_RETRY_AFTER, max(delay, float(retry_after)))
        return delay

    def predict(self, data: bytes, filename: str = "image", content_type: str | None = None,
                top_k: int | None = None) -> Prediction:
        """Upload `data` as the multipart field `image`; the Prediction, or APIError / APIUnavailable."""
        name = filename.rsplit("/", 1)[-1] or "image"
        files = [("image", (name, data, content_type or guess_content_type(name, data)))]
        return self._result(self._post(self.url, files, top_k))

    def predict_many(self, images: list[tuple[bytes, str]], top_k: int | None = None) -> list[Prediction | APIError]:
        """Upload several (data, filename) as `images` in one request (POST /<model>/predictions): per
        image its Prediction or its own APIError; the request itself raises APIError / APIUnavailable."""
        url = f"{self.base_url}/{self.model}/predictions"
        files = [("images", (name.rsplit("/", 1)[-1] or "image", data, guess_content_type(name, data)))
                 for data, name in images]
        response = _refusal_raised(self._post(url, files, top_k), url)
        results = _json(response).get("results")
        if not isinstance(results, list) or len(results) != len(images):
            raise APIError(response.status_code, f"unexpected response body: {response.text[:200]!r}",
                           "bad_response", url)
        return [APIError(int(r.get("status", 400)), str(r.get("message")), r.get("error"), url) if "error" in r
                else Prediction.from_json(r) for r in results]

    def _post(self, url: str, files: list[tuple[str, Any]], top_k: int | None) -> requests.Response:
        """POST with retries on connection errors, timeouts and 429/502/503/504."""
        form = {"top_k": str(top_k)} if top_k is not None else None
        for attempt in range(self.retries + 1):
            response = None
            try:
                response = self._session().post(url, files=files, data=form, headers=self._headers,
                                                timeout=self.timeout)
            except (requests.ConnectionError, requests.Timeout) as error:
                cause = f"{type(error).__name__}: {error}"
            else:
                if response.status_code not in RETRY_STATUSES:
                    return response
                cause = f"HTTP {response.status_code}: {_message(response)}"
            if attempt < self.retries:
                delay = self._delay(attempt, response)
                LOG.warning("attempt %d/%d for %s failed (%s); retrying in %.2fs",
                            attempt + 1, self.retries + 1, url, cause, delay)
                time.sleep(delay)
        raise APIUnavailable(url, self.retries + 1, cause)

    def _result(self, response: requests.Response) -> Prediction:
        _refusal_raised(response, self.url)
        try:
            return Prediction.from_json(response.json())
        except (ValueError, KeyError, TypeError) as error:
            raise APIError(response.status_code, f"unexpected response body: {response.text[:200]!r}",
                           "bad_response", self.url) from error

    def predict_reference(self, ref: str, s3: Any = None, default_bucket: str | None = None,
                          top_k: int | None = None) -> Prediction:
        """Read an S3 reference (any accepted shape) or a local file, and classify it."""
        name, data = read_reference(ref, s3=s3, default_bucket=default_bucket)
        return self.predict(data, name, top_k=top_k)


def predict_reference(ref: str, base_url: str, model: str = "digits", s3: Any = None,
                      default_bucket: str | None = None, **client_options: Any) -> Prediction:
    """One call: read `ref` (S3 or local) and classify it with the API at `base_url`."""
    return PredictionClient(base_url, model, **client_options).predict_reference(ref, s3, default_bucket)


def _refusal_raised(response: requests.Response, url: str) -> requests.Response:
    """The response, unless the server refused: then APIError with its status, message and code."""
    if response.status_code >= 400:
        raise APIError(response.status_code, _message(response), _json(response).get("error"), url)
    return response


def _json(response: requests.Response) -> dict[str, Any]:
    try:
        body = response.json()
    except ValueError:
        return {}
    return body if isinstance(body, dict) else {}


def _message(response: requests.Response) -> str:
    return str(_json(response).get("message") or response.reason or response.text[:200])
