"""The log stream over real sockets against a hostile server (tests/support/hostile.py): a
stream that trickles, stalls, never ends, sends invalid UTF-8 or a 100 MB line, or closes in the
middle of an event ends by the deadline and the size caps, as a value, never an exception or a
hang; memory stays bounded."""

from __future__ import annotations

import itertools
import socket
import threading
import time
import tracemalloc
import uuid
from collections.abc import Callable
from typing import Any, Final

import msgspec
import pytest
from returns.result import Result, Success

from cdsessions import (
    ApiError,
    AsyncSessionsClient,
    DecodeFailed,
    LogLine,
    SessionsClient,
    Timeout,
    TransportFailed,
)
from cdsessions._core.wire import HttpRequest
from cdsessions.testing import expect_failure, expect_success
from cdsessions.transports import Urllib3Transport
from tests.support.hostile import Peer, hostile, response

KEY: Final = "test-key-0123456789"
SESSION: Final = "3f0c0000-0000-4000-8000-000000000000"
SLACK: Final = 1.5  # scheduling noise on a busy 2-core machine: upper bounds only
HEAD: Final = response(
    "200 OK", "Content-Type: text/event-stream", "Transfer-Encoding: chunked", body=b""
)


def chunk(data: bytes) -> bytes:
    return f"{len(data):x}\r\n".encode() + data + b"\r\n"


def event(message: str) -> bytes:
    return (
        b'data: {"message": "' + message.encode() + b'", "level": "info", '
        b'"timestamp": "2026-12-07T03:00:00Z"}\n\n'
    )


SESSION_BODY: Final = (
    b'{"session_id": "' + SESSION.encode() + b'", "gpu_event_id": "e", "url": null}'
)


def streaming(body: Callable[[Peer], None], *, gone: bool = False) -> Callable[[Peer], None]:
    """Read the request, write a chunked event-stream head, then let ``body`` write. A get
    (what a stalled follower asks) is answered at once: the session, or 404 when ``gone``."""

    def script(peer: Peer) -> None:
        request = peer.read_request()
        if request is None:
            return
        if request.target.startswith("/api/session/"):
            if gone:
                detail = b'{"detail": "GPUEvent not found"}'
                status = "404 Not Found"
            else:
                detail, status = SESSION_BODY, "200 OK"
            length = f"Content-Length: {len(detail)}"
            peer.write(response(status, "Content-Type: application/json", length, body=detail))
        else:
            peer.write(HEAD)
            body(peer)
        peer.close()

    return script


def follow(base_url: str, timeout: Timeout) -> tuple[list[Result[LogLine, ApiError]], float]:
    client = SessionsClient(KEY, server=base_url, timeout=timeout, retry=False)
    began = time.monotonic()
    got = list(client.follow_logs(SESSION))
    client.close()
    return got, time.monotonic() - began


def test_a_stream_that_cannot_connect_ends_with_one_failure_unsent() -> None:
    with socket.socket() as probe:  # a port of 127.0.0.1 nobody listens on (just freed)
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    transport = Urllib3Transport()
    request = HttpRequest("GET", "/stream", base_url=f"http://127.0.0.1:{port}/api")
    pieces = list(transport.stream(msgspec.structs.replace(request, operation="logs")))
    transport.close()
    [piece] = pieces
    error = expect_failure(piece, TransportFailed)
    assert (error.kind, error.sent) == ("connect", False), error


def test_lines_then_a_clean_end_of_chunks_is_a_clean_end() -> None:
    def body(peer: Peer) -> None:
        peer.write(chunk(event("one") + event("two")) + b"0\r\n\r\n")

    with hostile(streaming(body)) as server:
        got, _ = follow(server.base_url, Timeout(2, 2, 5))
        [request] = server.requests
    assert [expect_success(x).message for x in got] == ["one", "two"]
    assert request.target.startswith("/api/v2/stream-logs?session_id=" + SESSION)
    assert request.header("accept") == "text/event-stream"


def test_a_trickling_stream_ends_at_the_deadline_with_its_lines_so_far() -> None:
    def body(peer: Peer) -> None:
        peer.write(chunk(event("first")))
        peer.trickle(chunk(b": keep-alive\n"), every=0.05, lasting=10)

    with hostile(streaming(body)) as server:
        got, elapsed = follow(server.base_url, Timeout(2, 2, 1.0))
    assert expect_success(got[0]).message == "first"
    error = expect_failure(got[-1], TransportFailed)
    assert error.kind == "timeout"
    assert len(got) == 2
    assert elapsed <= 1.0 + SLACK


def test_a_stall_fails_a_follower_at_the_read_timeout() -> None:
    def body(peer: Peer) -> None:
        peer.write(chunk(event("first")))
        peer.stall(10)

    with hostile(streaming(body)) as server:
        got, elapsed = follow(server.base_url, Timeout(2, 0.5, 10))
    assert expect_failure(got[-1], TransportFailed).kind == "timeout"
    assert elapsed <= 0.5 + SLACK


def test_a_stall_ends_a_snapshot_with_what_arrived() -> None:
    def body(peer: Peer) -> None:
        peer.write(chunk(event("a") + event("b")))
        peer.stall(10)

    with hostile(streaming(body)) as server:
        client = SessionsClient(KEY, server=server.base_url, timeout=Timeout(2, 0.5, 10))
        began = time.monotonic()
        lines = expect_success(client.logs(SESSION))
        elapsed = time.monotonic() - began
    assert [x.message for x in lines] == ["a", "b"]
    assert elapsed <= 0.5 + SLACK


def test_a_stream_that_never_ends_stops_at_the_deadline_in_bounded_memory() -> None:
    def body(peer: Peer) -> None:
        for n in itertools.count():
            if peer.gone or peer.server.stopping.is_set():
                return
            peer.write(chunk(event(f"line {n}") * 50))

    tracemalloc.start()
    try:
        with hostile(streaming(body)) as server:
            client = SessionsClient(KEY, server=server.base_url, timeout=Timeout(2, 2, 1.0))
            got = client.follow_logs(SESSION)
            count, last = 0, next(got)
            for last in got:  # noqa: B007  (the last one is the point)
                count += 1
            client.close()
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert last is not None
    assert expect_failure(last, TransportFailed).kind == "timeout"
    assert count > 100  # it did follow
    assert peak < 8 * 1024 * 1024


def test_invalid_utf8_is_replaced_and_the_line_still_read() -> None:
    def body(peer: Peer) -> None:
        raw = (
            b'data: {"message": "bad \xff\xfe bytes", "level": "info", '
            b'"timestamp": "2026-12-07T03:00:00Z"}\n\n'
        )
        peer.write(chunk(raw) + b"0\r\n\r\n")

    with hostile(streaming(body)) as server:
        got, _ = follow(server.base_url, Timeout(2, 2, 5))
    assert [expect_success(x).message for x in got] == ["bad \ufffd\ufffd bytes"]


def test_a_100_mb_line_is_refused_at_the_line_cap_without_reading_it_all() -> None:
    sent = [0]

    def body(peer: Peer) -> None:
        peer.write(chunk(b"data: "))
        block = b"x" * (1024 * 1024)
        for _ in range(100):
            if peer.gone:
                return
            peer.write(chunk(block))
            sent[0] += len(block)

    tracemalloc.start()
    try:
        with hostile(streaming(body)) as server:
            got, elapsed = follow(server.base_url, Timeout(2, 2, 20))
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    [only] = got
    assert "longer than allowed" in expect_failure(only, DecodeFailed).problem
    assert peak < 16 * 1024 * 1024
    assert sent[0] < 100 * 1024 * 1024  # the client hung up long before the end
    assert elapsed <= 5


def test_more_than_the_stream_cap_in_all_is_too_large(monkeypatch: pytest.MonkeyPatch) -> None:
    from cdsessions._core import calls

    def body(peer: Peer) -> None:
        while not peer.gone and not peer.server.stopping.is_set():
            peer.write(chunk(event("x" * 1000) * 20))

    monkeypatch.setattr(calls, "MAX_LOG_BYTES", 200_000)  # the 1 GiB cap, scaled down
    with hostile(streaming(body)) as server:
        got, _ = follow(server.base_url, Timeout(2, 2, 10))
    assert expect_failure(got[-1], TransportFailed).kind == "too_large"
    assert len(got) > 1


def test_a_close_in_the_middle_of_an_event_is_a_broken_stream() -> None:
    def body(peer: Peer) -> None:
        peer.write(chunk(event("whole") + b'data: {"message": "hal'))
        peer.write(b"0\r\n\r\n")

    with hostile(streaming(body)) as server:
        got, _ = follow(server.base_url, Timeout(2, 2, 5))
    assert expect_success(got[0]).message == "whole"
    assert expect_failure(got[-1], TransportFailed).kind == "broken"


def test_a_connection_cut_mid_chunk_is_a_broken_stream() -> None:
    def body(peer: Peer) -> None:
        peer.write(b"100\r\n" + event("cut"))  # announces 256 bytes, then the close

    with hostile(streaming(body)) as server:
        got, _ = follow(server.base_url, Timeout(2, 2, 5))
    assert expect_failure(got[-1], TransportFailed).kind == "broken"


def test_stopping_early_closes_the_connection() -> None:
    closed = threading.Event()

    def body(peer: Peer) -> None:
        while not peer.gone and not peer.server.stopping.is_set():
            peer.write(chunk(event("again")))
            time.sleep(0.01)
        closed.set()

    with hostile(streaming(body)) as server:
        client = SessionsClient(KEY, server=server.base_url, timeout=Timeout(2, 2, 10))
        lines = client.follow_logs(SESSION)
        expect_success(next(lines))
        lines.close()  # the caller stops following
        assert closed.wait(5), "the server still had a reader after the follower stopped"


def test_a_stalled_follower_whose_session_is_gone_ends_cleanly() -> None:
    # The server keeps an ended session's stream open and never ends it: a stall, then a get
    # that answers 404, is the end of the log, not a failure.
    def body(peer: Peer) -> None:
        peer.write(chunk(event("Reached timeout period 10 minutes, deleting session")))
        peer.stall(10)

    with hostile(streaming(body, gone=True)) as server:
        got, elapsed = follow(server.base_url, Timeout(2, 0.5, 10))
        targets = [r.target for r in server.requests]
    assert [expect_success(x).message for x in got] == [
        "Reached timeout period 10 minutes, deleting session"
    ]
    assert targets[-1] == "/api/session/" + SESSION
    assert elapsed <= 0.5 + SLACK


def test_the_async_client_follows_through_its_threads_under_the_same_deadline() -> None:
    import asyncio

    def body(peer: Peer) -> None:
        peer.write(chunk(event("first")))
        peer.stall(10)

    async def main(base_url: str) -> list[Result[LogLine, ApiError]]:
        async with AsyncSessionsClient(KEY, server=base_url, timeout=Timeout(2, 2, 0.8)) as client:
            return [x async for x in client.follow_logs(SESSION)]

    with hostile(streaming(body)) as server:
        began = time.monotonic()
        got = asyncio.run(main(server.base_url))
        elapsed = time.monotonic() - began
    assert expect_success(got[0]).message == "first"
    assert expect_failure(got[-1], TransportFailed).kind == "timeout"
    assert elapsed <= 0.8 + SLACK


def test_a_stream_read_until_close_cut_at_the_deadline_is_a_timeout_not_an_end() -> None:
    # No Content-Length, no chunking: the body ends when the connection closes. The watchdog
    # shutting the socket at the deadline looks like that close; it must not pass for the end.
    def script(peer: Peer) -> None:
        if peer.read_request() is None:
            return
        peer.write(response("200 OK", "Content-Type: text/event-stream", body=event("first")))
        peer.trickle(b": keep-alive\n", every=0.05, lasting=10)
        peer.close()

    with hostile(script) as server:
        got, elapsed = follow(server.base_url, Timeout(2, 2, 1.0))
    assert expect_success(got[0]).message == "first"
    assert expect_failure(got[-1], TransportFailed).kind == "timeout"
    assert elapsed <= 1.0 + SLACK


def test_a_child_forked_while_a_stream_is_open_reads_its_own_and_the_parent_keeps_its() -> None:
    from tests.support.forking import assert_child_ok, fork_and_wait

    child_done = threading.Event()

    def script(peer: Peer) -> None:
        if peer.read_request() is None:
            return
        peer.write(HEAD + chunk(event(f"conn {peer.index} first")))
        if peer.index == 0:
            child_done.wait(20)  # the parent's stream stays open while the child reads
        end = chunk(b'data: {"type": "stream_complete"}\n\n') + b"0\r\n\r\n"
        peer.write(chunk(event(f"conn {peer.index} second")) + end)
        peer.close()

    with hostile(script) as server:
        client = SessionsClient(KEY, server=server.base_url, timeout=Timeout(5, 5, 30))
        lines = client.follow_logs(SESSION)
        assert expect_success(next(lines)).message == "conn 0 first"

        def child() -> int:
            got = client.logs(SESSION)
            messages = [x.message for x in got.unwrap()] if isinstance(got, Success) else []
            return 0 if messages == ["conn 1 first", "conn 1 second"] else 3

        code = fork_and_wait(child)
        child_done.set()
        rest = [expect_success(x).message for x in lines]
        client.close()
    assert_child_ok(code)
    assert rest == ["conn 0 second"]


def test_an_error_no_http_stack_is_known_to_raise_ends_a_stream_as_a_value(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # The operating system's resolver failing in a way nothing expects: the stream's first and
    # only piece says so, as send() would, and nothing went out.
    host = f"{uuid.uuid4().hex}.hostile.test"

    def broken_resolver(name: Any, *args: Any, **kwargs: Any) -> Any:
        raise RuntimeError("the resolver broke")

    monkeypatch.setattr(socket, "getaddrinfo", broken_resolver)
    request = HttpRequest(
        "GET",
        "/session/x/logs",
        base_url=f"http://{host}:9/api",
        operation="logs",
        timeout=Timeout(connect=2, read=2, total=5),
        max_response_bytes=1024,
    )
    (only,) = list(Urllib3Transport().stream(request))
    error = expect_failure(only, TransportFailed)
    assert error == TransportFailed(
        "logs", "broken", "unexpected RuntimeError in the HTTP stack", False
    )
