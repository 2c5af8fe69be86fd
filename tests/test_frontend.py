"""Bad requests beyond image bytes, sent as raw bytes to a live server, and slow clients.

Every case must get a JSON 4xx (or, for a body that never arrives, a 408 / closed connection)
and never a 5xx, a hang or an HTML page. The server runs with BODY_TIMEOUT=2 s.
"""
from __future__ import annotations

import contextlib
import json
import socket
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from urllib.parse import urlsplit

import pytest
import requests

from tests.support import builders
from tests.support.clients import Clients

pytestmark = pytest.mark.slow
PNG = builders.encode(builders.stroke())
BOUNDARY = b"XyZ"


@pytest.fixture(scope="module")
def server(server_factory: Callable[..., contextmanager[str]]) -> Iterator[tuple[str, int]]:
    with server_factory(BODY_TIMEOUT="2") as url:
        parts = urlsplit(url)
        yield parts.hostname or "127.0.0.1", parts.port or 80


def multipart(*parts: tuple[bytes, bytes | None, bytes]) -> bytes:
    body = b""
    for name, filename, content in parts:
        disposition = b'form-data; name="' + name + b'"' + (b'; filename="' + filename + b'"' if filename else b"")
        body += b"--" + BOUNDARY + b"\r\nContent-Disposition: " + disposition + b"\r\n\r\n" + content + b"\r\n"
    return body + b"--" + BOUNDARY + b"--\r\n"


def request(body: bytes, length: int | None = None, content_type: bytes = b"multipart/form-data; boundary=XyZ",
            query: bytes = b"") -> bytes:
    length = len(body) if length is None else length
    return (b"POST /digits/prediction" + query + b" HTTP/1.1\r\nHost: test\r\nContent-Type: " + content_type +
            b"\r\nContent-Length: " + str(length).encode() + b"\r\n\r\n" + body)


def exchange(address: tuple[str, int], data: bytes, wait: float = 10.0) -> tuple[int, dict, bytes]:
    """Send raw bytes, read the first response: (status, headers, body)."""
    with socket.create_connection(address, timeout=wait) as sock:
        with contextlib.suppress(BrokenPipeError, ConnectionResetError):  # answered and closed before reading all
            sock.sendall(data)
        raw = b""
        try:
            while b"\r\n\r\n" not in raw or len(raw) < _expected(raw):
                chunk = sock.recv(65536)
                if not chunk:
                    break
                raw += chunk
        except ConnectionResetError:
            pass
    head, _, body = raw.partition(b"\r\n\r\n")
    lines = head.decode("latin-1").split("\r\n")
    headers = dict(line.lower().split(": ", 1) for line in lines[1:] if ": " in line)
    return int(lines[0].split()[1]), headers, body[:int(headers.get("content-length", len(body)))]


def _expected(raw: bytes) -> int:
    head, _, _ = raw.partition(b"\r\n\r\n")
    for line in head.split(b"\r\n"):
        if line.lower().startswith(b"content-length:"):
            return len(head) + 4 + int(line.split(b":")[1])
    return len(raw) + 1


GOOD = multipart((b"image", b"a.png", PNG))
CASES = {
    "multipart without boundary": (request(GOOD, content_type=b"multipart/form-data"), 400, "malformed_request"),
    "truncated multipart": (request(GOOD[: len(GOOD) // 2]), 400, "malformed_request"),
    "two image fields": (request(multipart((b"image", b"a.png", PNG), (b"image", b"b.png", PNG))), 400,
                         "invalid_parameter"),
    "non-UTF-8 file name": (request(multipart((b"image", b"\xff\xfe.png", PNG))), 400, "malformed_request"),
    "1 MB field name": (request(multipart((b"image", b"a.png", PNG), (b"f" * 1_000_000, None, b"1"))), 413,
                        "payload_too_large"),
    "Content-Length shorter than the body": (request(GOOD, length=len(GOOD) - 40), 400, "malformed_request"),
    "Content-Length over the limit": (request(GOOD, length=50_000_000), 413, "payload_too_large"),
    "chunked body over the limit": (
        b"POST /digits/prediction HTTP/1.1\r\nHost: test\r\nContent-Type: multipart/form-data; boundary=XyZ\r\n"
        b"Transfer-Encoding: chunked\r\n\r\n"
        + (b"%x\r\n" % 1_000_000 + b"a" * 1_000_000 + b"\r\n") * 12 + b"0\r\n\r\n",
        413, "payload_too_large"),
    "top_k as a float": (request(multipart((b"image", b"a.png", PNG), (b"top_k", None, b"1.5"))), 400,
                         "invalid_parameter"),
    "negative top_k": (request(multipart((b"image", b"a.png", PNG), (b"top_k", None, b"-3"))), 400,
                       "invalid_parameter"),
    "huge top_k": (request(multipart((b"image", b"a.png", PNG), (b"top_k", None, b"9" * 40))), 400,
                   "invalid_parameter"),
    "top_k as a list": (request(multipart((b"image", b"a.png", PNG), (b"top_k", None, b"1"),
                                          (b"top_k", None, b"2"))), 400, "invalid_parameter"),
    "bytes that are not HTTP (a TLS hello)": (b"\x16\x03\x01\x00\xa5\x01\x00\x00\xa1\x03\x03" + b"\0" * 64, 400,
                                              "malformed_request"),
    "a request line that is not HTTP": (b"GARBAGE\r\n\r\n", 400, "malformed_request"),
    "headers over 64 KB": (b"GET /health/live HTTP/1.1\r\nHost: test\r\nX-Big: " + b"a" * 70_000 + b"\r\n\r\n", 400,
                           "malformed_request"),
    "top_k in form and query": (request(multipart((b"image", b"a.png", PNG), (b"top_k", None, b"1")),
                                        query=b"?top_k=2"), 400, "invalid_parameter"),
}


@pytest.mark.parametrize("name", list(CASES))
def test_bad_request_gets_a_json_4xx(server: tuple[str, int], name: str) -> None:
    data, status, code = CASES[name]
    got, headers, body = exchange(server, data)
    assert got == status and headers["content-type"].startswith("application/json"), (got, headers, body[:200])
    assert json.loads(body)["error"] == code


def test_path_traversal_file_name_is_only_a_name(server: tuple[str, int]) -> None:
    got, _, body = exchange(server, request(multipart((b"image", b"../../etc/passwd", PNG))))
    assert got == 200 and json.loads(body)["model"] == "digits"


def test_body_shorter_than_announced_is_cut_off_after_the_body_timeout(server: tuple[str, int]) -> None:
    started = time.monotonic()
    got, headers, body = exchange(server, request(GOOD, length=len(GOOD) + 100))
    assert got == 408 and json.loads(body)["error"] == "request_timeout" and headers["connection"] == "close"
    assert 1.5 < time.monotonic() - started < 8


def test_sixty_four_slow_uploads_do_not_starve_a_normal_request(server: tuple[str, int]) -> None:
    from bench.slowclients import trickling
    with trickling(server, "/digits/prediction", 64) as sockets:  # a few bytes per second on each
        time.sleep(0.5)
        url = f"http://{server[0]}:{server[1]}/digits/prediction"
        timings = []
        for _ in range(5):
            started = time.monotonic()
            answer = requests.post(url, files={"image": ("d.png", PNG)}, timeout=10)
            timings.append(time.monotonic() - started)
            assert answer.status_code == 200
        print(f"with 64 slow uploads open: normal requests answered in {max(timings) * 1000:.0f} ms at worst")
        assert max(timings) < 1.0
        # The stalled uploads are cut off by BODY_TIMEOUT: 408 JSON, then the connection closes.
        time.sleep(2.5)
        sockets[0].settimeout(5)
        answer = sockets[0].recv(65536)
        assert answer.startswith(b"HTTP/1.1 408") and b"request_timeout" in answer


def read_answers(sock: socket.socket, count: int) -> list[tuple[int, bytes]]:
    """Read `count` answers off one connection: (status, body) each."""
    raw, answers = b"", []
    while len(answers) < count:
        while b"\r\n\r\n" not in raw or len(raw) < _expected(raw):
            chunk = sock.recv(65536)
            assert chunk, f"the connection closed after {len(answers)} answers"
            raw += chunk
        length = _expected(raw)
        head, _, body = raw[:length].partition(b"\r\n\r\n")
        answers.append((int(head.split()[1]), body))
        raw = raw[length:]
    return answers


def test_expect_100_continue_is_answered_before_the_body_is_sent(server: tuple[str, int]) -> None:
    head, _, body = request(GOOD).partition(b"\r\n\r\n")
    with socket.create_connection(server, timeout=5) as sock:
        sock.sendall(head + b"\r\nExpect: 100-continue\r\n\r\n")
        assert sock.recv(65536) == b"HTTP/1.1 100 Continue\r\n\r\n"  # curl waits 1 s for it otherwise
        sock.sendall(body)
        [(status, answer)] = read_answers(sock, 1)
    assert status == 200 and json.loads(answer)["model"] == "digits"


def test_pipelined_requests_are_answered_in_order_on_one_connection(server: tuple[str, int]) -> None:
    predict = request(GOOD)
    ready = b"GET /health/ready HTTP/1.1\r\nHost: test\r\n\r\n"
    with socket.create_connection(server, timeout=10) as sock:
        sock.sendall(predict + ready + predict + b"GET /nope HTTP/1.1\r\nHost: test\r\n\r\n")
        answers = read_answers(sock, 4)
    assert [status for status, _ in answers] == [200, 200, 200, 404]
    assert json.loads(answers[0][1])["model"] == "digits" and json.loads(answers[1][1])["status"] == "ok"


def test_an_upgrade_request_is_answered_once_as_plain_http_then_closed(server: tuple[str, int]) -> None:
    data = b"GET /health/live HTTP/1.1\r\nHost: test\r\nConnection: upgrade\r\nUpgrade: websocket\r\n\r\n"
    with socket.create_connection(server, timeout=5) as sock:
        sock.sendall(data + b"\x81\x85not http")
        raw = b""
        while chunk := sock.recv(65536):
            raw += chunk
    assert raw.count(b"HTTP/1.1 ") == 1 and raw.startswith(b"HTTP/1.1 200") and b"connection: close" in raw


def test_sixteen_connections_opened_at_once_are_spread_over_both_workers(
        server_factory: Callable[..., contextmanager[str]]) -> None:
    from tests.support.processes import connections, cpu_seconds, master_pid, workers

    class Posting(Clients):
        def run(self, index: int) -> None:
            with requests.Session() as session:
                while not self.stop.is_set():
                    self.records.append(session.post(self.url, files={"image": ("d.png", PNG)}, timeout=10)
                                        .status_code)

    with server_factory(WEB_CONCURRENCY="2") as url:
        pids = workers(master_pid(url))
        with Posting(url, clients=16) as load:  # 16 keep-alive connections opened together on an idle server
            time.sleep(1.0)
            before = {pid: cpu_seconds(pid) for pid in pids}
            time.sleep(3.0)
            used = {pid: cpu_seconds(pid) - before[pid] for pid in pids}
            held = [connections(pid, urlsplit(url).port or 80) for pid in pids]
    share = min(used.values()) / sum(used.values())
    print(f"16 connections opened at once: held per worker {held}; CPU seconds over 3 s {used}, "
          f"smaller share {share:.2f}")
    assert sum(held) == 16 and max(held) - min(held) <= 2, held
    assert len(used) == 2 and share > 0.3, "one worker held the connections while the other idled"
    assert set(load.records) == {200}
