"""The HTTP fake (``cdsessions/fake/server.py``): it listens on loopback only, refusing any other
host before binding anything."""

from __future__ import annotations

import http.client
import io
import re
import socket
import threading
import time
from collections.abc import Callable
from contextlib import suppress
from typing import Final
from urllib.parse import urlsplit

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from cdsessions._core.servers import is_loopback_host
from cdsessions._core.wire import HttpRequest, HttpResponse
from cdsessions.fake import FakeService
from cdsessions.fake.server import make_server, serve_in_thread

# Refused before any socket exists. Only TEST-NET addresses (RFC 5737, RFC 3849) are handed to
# the server: even a broken check could not bind them (they are not this machine's), so nothing
# ever listens beyond loopback or looks a name up, whatever the code under test does.
UNBINDABLE = ["192.0.2.1", "198.51.100.7", "2001:db8::1"]


@pytest.mark.parametrize("host", UNBINDABLE)
def test_the_http_fake_never_listens_beyond_loopback(host: str) -> None:
    """Found by applying a deliberate bug the older tests let through."""
    with pytest.raises(ValueError, match="loopback"):
        make_server(FakeService(), host, 0)
    with pytest.raises(ValueError, match="loopback"), serve_in_thread(FakeService(), host):
        pass


@pytest.mark.parametrize(
    "host",
    ["0.0.0.0", "::", "", "192.0.2.1", "example.invalid", "localhost.example.invalid"],  # noqa: S104
)
def test_wildcards_and_other_hosts_are_not_loopback(host: str) -> None:
    """Found by applying a deliberate bug the older tests let through."""
    assert not is_loopback_host(host)


@pytest.mark.parametrize("host", ["127.0.0.1", "127.8.9.10", "::1", "localhost", "LOCALHOST"])
def test_loopback_hosts_are_recognised(host: str) -> None:
    """Found by applying a deliberate bug the older tests let through."""
    assert is_loopback_host(host)


# -- one whole line per request, connections closed with the server (issue #18) -------------

LOG_LINE: Final = re.compile(r"(GET|POST|DELETE) /api/\S* [1-5]\d\d \d+\.\dms")
KEY: Final = "sk-fake-server-0123456789"


class _SlowSink:
    """A log destination written the way ``print`` writes (text, then its newline, as two
    calls), slowly, like a terminal or a full pipe: unserialised callers interleave in it."""

    def __init__(self) -> None:
        self.parts: list[str] = []

    def write(self, text: str) -> None:
        time.sleep(0.0005)
        self.parts.append(text)

    def log(self, line: str) -> None:
        self.write(line)
        self.write("\n")


def _eventually(check: Callable[[], bool]) -> None:
    """A request is logged just after its answer is written: wait for the last line."""
    deadline = time.monotonic() + 10
    while not check() and time.monotonic() < deadline:
        time.sleep(0.01)


def _port(base_url: str) -> int:
    port = urlsplit(base_url).port
    assert port is not None
    return port


def _get(connection: http.client.HTTPConnection, path: str = "/api/sessions") -> int:
    connection.request("GET", path, headers={"Authorization": f"Bearer {KEY}"})
    answer = connection.getresponse()
    answer.read()
    return answer.status


def test_concurrent_requests_log_one_whole_line_each() -> None:
    """Bug: concurrent requests' log lines ran together (the log function was called from every
    connection's thread at once)."""
    sink = _SlowSink()
    threads, each = 16, 8
    with serve_in_thread(FakeService(), log=sink.log) as base_url:
        port = _port(base_url)

        def client(number: int) -> None:
            connection = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
            for request in range(each):
                assert _get(connection, f"/api/session/c{number}r{request}") == 404
            connection.close()

        workers = [threading.Thread(target=client, args=(n,)) for n in range(threads)]
        for worker in workers:
            worker.start()
        for worker in workers:
            worker.join()
        _eventually(lambda: len(sink.parts) == 2 * threads * each)
    lines = "".join(sink.parts).split("\n")
    assert lines.pop() == ""  # the text ends with a newline
    assert len(lines) == threads * each
    assert all(LOG_LINE.fullmatch(line) for line in lines), [
        line for line in lines if not LOG_LINE.fullmatch(line)
    ][:3]
    paths = sorted(line.split()[1] for line in lines)
    assert paths == sorted(f"/api/session/c{n}r{r}" for n in range(threads) for r in range(each))


def test_a_path_with_terminal_escapes_is_logged_escaped_on_one_line() -> None:
    lines: list[str] = []
    with serve_in_thread(FakeService(), log=lines.append) as base_url:
        with socket.create_connection(("127.0.0.1", _port(base_url)), timeout=10) as peer:
            peer.sendall(b"GET /api/session/\x1b[2J\x07" + b"x" * 500 + b" HTTP/1.1\r\n\r\n")
            assert peer.recv(12) == b"HTTP/1.1 401"
        _eventually(lambda: len(lines) == 1)
    (line,) = lines
    assert line.isprintable()
    assert line.startswith("GET /api/session/\\x1b[2J\\x07xxx")
    assert len(line) < 300  # the path is clipped


def test_stopping_the_server_closes_its_kept_alive_connections() -> None:
    """Bug: a kept-alive connection opened before the server stopped still reached the stopped
    fake (its thread kept serving it), so the next test's client could talk to the last
    test's fake."""
    old = FakeService()
    with serve_in_thread(old) as base_url:
        connection = http.client.HTTPConnection("127.0.0.1", _port(base_url), timeout=10)
        assert _get(connection) == 200
    with pytest.raises((http.client.RemoteDisconnected, ConnectionError)):
        _get(connection)
    connection.close()
    assert old.requests_handled == 1


def test_a_request_in_flight_at_stop_gets_its_whole_answer_then_the_connection_closes() -> None:
    inside, release = threading.Event(), threading.Event()

    def hold(request: HttpRequest) -> HttpResponse | None:
        inside.set()
        release.wait(10)
        return None

    fake = FakeService(intercept=hold)
    answers: list[int] = []
    with serve_in_thread(fake) as base_url:
        connection = http.client.HTTPConnection("127.0.0.1", _port(base_url), timeout=10)
        asking = threading.Thread(target=lambda: answers.append(_get(connection)))
        asking.start()
        assert inside.wait(10)
        threading.Timer(0.2, release.set).start()  # answers once the server is closing
    asking.join(10)
    assert answers == [200]
    with pytest.raises((http.client.RemoteDisconnected, ConnectionError)):
        _get(connection)
    assert fake.requests_handled == 1


def _exchange(port: int, data: bytes) -> bytes:
    """Send ``data`` on a fresh connection, end the sending side, read until the server closes."""
    received = b""
    with socket.create_connection(("127.0.0.1", port), timeout=10) as peer:
        peer.sendall(data)
        peer.shutdown(socket.SHUT_WR)
        with suppress(ConnectionResetError):
            while chunk := peer.recv(65536):
                received += chunk
    return received


def _first_response(data: bytes) -> http.client.HTTPResponse:
    class _Socket:
        def makefile(self, mode: str) -> io.BytesIO:
            return io.BytesIO(data)

    response = http.client.HTTPResponse(_Socket())  # type: ignore[arg-type]
    response.begin()
    return response


def _parse_first_response(data: bytes) -> int:
    return _first_response(data).status


def test_an_unreadable_content_length_is_a_400_naming_it() -> None:
    with serve_in_thread(FakeService()) as base_url:
        received = _exchange(
            _port(base_url),
            b"POST /api/session HTTP/1.1\r\nHost: x\r\nContent-Length: x\r\n\r\n{}",
        )
    response = _first_response(received)
    assert response.status == 400
    assert response.read() == b'{"detail":"Invalid Content-Length"}'


def test_a_blank_query_value_reaches_the_service_as_an_empty_string() -> None:
    # FastAPI reads "?session_id=" as "": no such session (404), not a missing field (422).
    with serve_in_thread(FakeService()) as base_url:
        connection = http.client.HTTPConnection("127.0.0.1", _port(base_url), timeout=10)
        try:
            assert _get(connection, "/api/v2/stream-logs?session_id=") == 404
        finally:
            connection.close()


_REQUEST_LINES: Final = st.builds(
    lambda method, target, version: method + b" " + target + b" " + version + b"\r\n",
    st.sampled_from([b"GET", b"POST", b"DELETE", b"HEAD", b"PUT", b"BREW", b"G\x00T"]),
    st.sampled_from([b"/api/sessions", b"/api/session", b"/api/session/x", b"/", b"*"])
    | st.binary(max_size=40).map(lambda tail: b"/api/" + tail),
    st.sampled_from([b"HTTP/1.1", b"HTTP/1.0", b"HTTP/2.0", b"HTTP/1.1x", b""]),
)
_HEADERS: Final = st.lists(
    st.sampled_from(
        [
            f"Authorization: Bearer {KEY}\r\n".encode(),
            b"Content-Length: 2\r\n",
            b"Content-Length: -1\r\n",
            b"Content-Length: 99999999999999999999\r\n",
            b"Content-Length: x\r\n",
            b"Transfer-Encoding: chunked\r\n",
            b"Expect: 100-continue\r\n",
            b"Connection: close\r\n",
            b" folded\r\n",
            b"\xff\xfe: \x00\r\n",
        ]
    )
    | st.binary(max_size=30).map(lambda raw: raw + b"\r\n"),
    max_size=6,
)
_RAW_REQUESTS: Final = st.one_of(
    st.binary(max_size=300),
    st.builds(
        lambda line, headers, body: line + b"".join(headers) + b"\r\n" + body,
        _REQUEST_LINES,
        _HEADERS,
        st.binary(max_size=100) | st.sampled_from([b"{}", b'{"timeout":"' + b"9" * 5000 + b'"}']),
    ),
)


def test_any_request_bytes_get_an_http_answer_or_a_clean_close(
    capfd: pytest.CaptureFixture[str],
) -> None:
    """Whatever bytes arrive, the fake writes well-formed HTTP (or nothing) and closes, never a
    traceback on stderr, and the next good request is answered."""
    with serve_in_thread(FakeService()) as base_url:
        port = _port(base_url)

        @settings(max_examples=200, deadline=None)
        @given(data=_RAW_REQUESTS)
        def any_bytes(data: bytes) -> None:
            received = _exchange(port, data)
            if received:
                assert received.startswith((b"HTTP/1.1 ", b"HTTP/1.0 ")), received[:80]
                assert 100 <= _parse_first_response(received) <= 599
            good = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
            assert _get(good) == 200
            good.close()

        any_bytes()
    captured = capfd.readouterr()
    assert "Traceback" not in captured.err
    assert "Exception" not in captured.err
