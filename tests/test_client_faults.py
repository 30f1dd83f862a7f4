"""Every fault, for every operation, against a real server on 127.0.0.1 scripted per test.

Each case asserts the failure type, how many requests the server saw (a paid create: exactly
one once it may have arrived) and that the call took as long as its settings allow, no longer.
Timeouts are short (0.3 s) so the suite stays fast.
"""

from __future__ import annotations

import socket
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any

import pytest
from returns.result import Failure, Result, Success

from cdsessions import (
    ApiError,
    CreateSessionBody,
    DecodeFailed,
    HttpError,
    InvalidRequest,
    RetryPolicy,
    SessionsClient,
    Timeout,
    TransportFailed,
)
from tests.support import samples
from tests.support.loopback import Raw, Reply, Script, serve
from tests.support.operations import CALLS, IDEMPOTENT, NONE, OK_BODIES, READ_ONLY, Call

KEY = "sk-live-FAULTS-0123456789abcdef"
ATTEMPTS = 3
DELAY = 0.02
POLICY = RetryPolicy(max_attempts=ATTEMPTS, backoff=DELAY, multiplier=1, jitter=0)
TIMEOUT = Timeout(connect=0.3, read=0.3, total=1.5)
SLACK = 0.5  # scheduling noise on a busy 2-core machine


def head(*lines: str) -> bytes:
    return ("HTTP/1.1 200 OK\r\n" + "".join(f"{line}\r\n" for line in lines) + "\r\n").encode()


def trickle(chunk: bytes) -> Callable[[object], None]:
    """Write ``chunk`` every 50 ms for 10 s, or until the client goes away."""

    def run(file: object) -> None:
        try:
            for _ in range(200):
                file.write(chunk)  # type: ignore[attr-defined]
                file.flush()  # type: ignore[attr-defined]
                time.sleep(0.05)
        except OSError:
            return

    return run


def nested(operation: str) -> bytes:
    deep = "[" * 100_000 + "]" * 100_000  # msgspec recurses into it even in an ignored field
    inner = f'{{"session_id": "{samples.SESSION_ID}", "extra": {deep}}}'
    return (f"[{inner}]" if operation == "list" else inner).encode()


def chunked(body: bytes) -> bytes:
    return head("Content-Type: application/json", "Transfer-Encoding: chunked") + (
        f"{len(body):x}\r\n".encode() + body + b"\r\n0\r\n\r\n"
    )


@dataclass(frozen=True)
class Fault:
    """What the server does, and what every operation must make of it."""

    script: Callable[[str], Script]  # given the operation's name
    expect: type[ApiError]
    kind: str | None = None  # TransportFailed.kind
    retried_by: frozenset[str] = NONE  # these repeat it ATTEMPTS times; the rest send it once
    each: float = 0.0  # seconds one attempt takes
    timeout: Timeout = TIMEOUT
    options: dict[str, Any] = field(default_factory=dict)


def always(reply: Reply | Raw) -> Callable[[str], Script]:
    return lambda _operation: lambda _received: reply


FAULTS: dict[str, Fault] = {
    "reset mid-response": Fault(
        always(Raw(head("Content-Length: 500") + b'{"session_id": "', reset=True)),
        TransportFailed,
        "broken",
        retried_by=IDEMPOTENT,
    ),
    "headers slower than the read timeout": Fault(
        lambda op: lambda _: Reply(200, OK_BODIES[op].encode(), delay=0.5),
        TransportFailed,
        "timeout",
        retried_by=IDEMPOTENT,
        each=0.3,
    ),
    "headers that trickle forever": Fault(
        always(Raw(b"HTTP/1.1 200 OK\r\n", then=trickle(b"X-Slow: 1\r\n"))),
        TransportFailed,
        "timeout",
        each=0.6,
        timeout=Timeout(connect=0.3, read=0.3, total=0.6),
    ),
    "a body that trickles forever": Fault(
        always(Raw(head("Content-Length: 100000"), then=trickle(b" "))),
        TransportFailed,
        "timeout",
        each=0.6,
        timeout=Timeout(connect=0.3, read=0.3, total=0.6),
    ),
    "a truncated chunked body": Fault(
        always(Raw(head("Transfer-Encoding: chunked") + b'40\r\n{"session_id": ')),
        TransportFailed,
        "broken",
        retried_by=IDEMPOTENT,
    ),
    "Content-Length longer than the body": Fault(
        always(Raw(head("Content-Type: application/json", "Content-Length: 900") + b"[]")),
        TransportFailed,
        "broken",
        retried_by=IDEMPOTENT,
    ),
    "Content-Length shorter than the body": Fault(
        lambda op: (
            lambda _: Raw(
                head("Content-Type: application/json", "Content-Length: 7") + OK_BODIES[op].encode()
            )
        ),
        DecodeFailed,
    ),
    "malformed JSON": Fault(always(Reply(200, b'{"session_id": "x", ')), DecodeFailed),
    "wrong content type": Fault(
        lambda op: lambda _: Reply(200, OK_BODIES[op].encode(), (("Content-Type", "text/html"),)),
        DecodeFailed,
    ),
    "deeply nested JSON": Fault(lambda op: lambda _: Reply(200, nested(op)), DecodeFailed),
    "a declared body over the cap": Fault(
        always(Reply(200, b" " * 5000 + b"{}")),
        TransportFailed,
        "too_large",
        options={"max_response_bytes": 4096},
    ),
    "a chunked body over the cap": Fault(
        always(Raw(chunked(b" " * 5000 + b"{}"))),
        TransportFailed,
        "too_large",
        options={"max_response_bytes": 4096},
    ),
    "500": Fault(
        always(Reply(500, b"Internal Server Error", (("Content-Type", "text/plain"),))),
        HttpError,
        retried_by=READ_ONLY,
    ),
    "503": Fault(always(Reply(503, b'{"detail": "busy"}')), HttpError, retried_by=IDEMPOTENT),
    "429 with a Retry-After past the deadline": Fault(
        always(Reply(429, b'{"detail": "slow down"}', (("Retry-After", "30"),))), HttpError
    ),
}


@pytest.fixture
def clients() -> Iterator[Callable[..., SessionsClient]]:
    made: list[SessionsClient] = []

    def make(base_url: str, **options: Any) -> SessionsClient:
        options = {"timeout": TIMEOUT, "retry": POLICY, **options}
        client = SessionsClient(KEY, server=base_url, **options)
        made.append(client)
        return client

    yield make
    for client in made:
        client.close()


def timed(call: Call, client: SessionsClient) -> tuple[Result[Any, ApiError], float]:
    started = time.monotonic()
    result = call(client)
    return result, time.monotonic() - started


def check_failure(result: Result[Any, ApiError], expect: type[ApiError], kind: str | None) -> Any:
    assert isinstance(result, Failure), result
    error = result.failure()
    assert type(error) is expect, error
    if kind is not None:
        assert isinstance(error, TransportFailed)
        assert error.kind == kind, error
    assert KEY not in repr(error)
    assert KEY not in str(error)
    return error


@pytest.mark.parametrize("operation", CALLS)
@pytest.mark.parametrize("fault_name", FAULTS)
def test_every_fault_is_a_typed_failure_within_bounds(
    fault_name: str, operation: str, clients: Callable[..., SessionsClient]
) -> None:
    fault = FAULTS[fault_name]
    with serve(fault.script(operation)) as server:
        client = clients(server.base_url, timeout=fault.timeout, **fault.options)
        result, elapsed = timed(CALLS[operation], client)
        check_failure(result, fault.expect, fault.kind)
        attempts = ATTEMPTS if operation in fault.retried_by else 1
        assert len(server.received) == attempts
    fastest = attempts * fault.each
    slowest = min(fastest + attempts * DELAY + SLACK, (fault.timeout.total or 0) + SLACK)
    assert fastest - 0.05 <= elapsed <= slowest


@pytest.mark.parametrize("operation", CALLS)
def test_connection_refused_is_retried_for_every_operation_and_nothing_arrives(
    operation: str, clients: Callable[..., SessionsClient]
) -> None:
    with socket.socket() as probe:  # a port that was just free: nothing listens on it
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    result, elapsed = timed(CALLS[operation], clients(f"http://127.0.0.1:{port}/api"))
    error = check_failure(result, TransportFailed, "connect")
    assert error.sent is False
    assert elapsed <= ATTEMPTS * DELAY + SLACK


@pytest.mark.parametrize("operation", ["create", "extend"])
def test_a_create_after_500_or_read_timeout_is_sent_exactly_once_even_with_many_attempts(
    operation: str, clients: Callable[..., SessionsClient]
) -> None:
    generous = RetryPolicy(max_attempts=10, backoff=DELAY, jitter=0)
    for reply in (Reply(500, b'{"detail": "Session creation failed"}'), Reply(200, delay=0.5)):
        with serve(lambda _, reply=reply: reply) as server:  # type: ignore[misc]
            result = CALLS[operation](clients(server.base_url, retry=generous))
            assert isinstance(result, Failure)
            assert len(server.received) == 1


@pytest.mark.parametrize("operation", CALLS)
def test_a_redirect_is_not_followed_and_the_key_goes_nowhere_else(
    operation: str, clients: Callable[..., SessionsClient]
) -> None:
    with serve(lambda _: Reply(200, b"{}")) as elsewhere:
        target = f"{elsewhere.base_url}/session/x"
        moved = Reply(307, b"", (("Location", target),))
        with serve(lambda _: moved) as server:
            result, elapsed = timed(CALLS[operation], clients(server.base_url))
            error = check_failure(result, HttpError, None)
            assert error.status == 307
            assert len(server.received) == 1
        assert elsewhere.received == []
    assert elapsed <= SLACK


@pytest.mark.parametrize("operation", CALLS)
def test_429_is_retried_for_every_operation_after_its_retry_after(
    operation: str, clients: Callable[..., SessionsClient]
) -> None:
    replies = iter(
        [Reply(429, b"{}", (("Retry-After", "0"),)), Reply(200, OK_BODIES[operation].encode())]
    )
    with serve(lambda _: next(replies)) as server:
        result, elapsed = timed(CALLS[operation], clients(server.base_url))
        assert isinstance(result, Success), result
        assert len(server.received) == 2
    assert elapsed <= SLACK


@pytest.mark.parametrize("retry_after", ["1", "http-date"])
def test_retry_after_is_waited_for_in_both_forms(
    retry_after: str, clients: Callable[..., SessionsClient]
) -> None:
    from email.utils import formatdate

    header = formatdate(time.time() + 2, usegmt=True) if retry_after == "http-date" else "1"
    replies = iter([Reply(503, b"{}", (("Retry-After", header),)), Reply(200, b"[]")])
    with serve(lambda _: next(replies)) as server:
        client = clients(server.base_url, timeout=Timeout(connect=0.3, read=0.3, total=4))
        result, elapsed = timed(CALLS["list"], client)
        assert result == Success([])
        assert len(server.received) == 2
    # An HTTP-date has whole seconds: 2 s ahead is between 1 and 2 s away.
    assert 0.95 <= elapsed <= 2 + SLACK


@pytest.mark.parametrize("operation", CALLS)
def test_a_caller_waiting_for_a_pooled_connection_gives_up_at_its_deadline(
    operation: str, clients: Callable[..., SessionsClient]
) -> None:
    with serve(lambda _: Reply(200, b"[]", delay=1.0)) as server:
        client = clients(server.base_url, max_connections=1)
        blocker = threading.Thread(target=lambda: client.list(timeout=Timeout(1, 2, total=3)))
        blocker.start()
        while not server.received:  # the only connection is now busy
            time.sleep(0.01)
        result, elapsed = _with_timeout(client, operation, Timeout(0.3, 0.3, total=0.4))
        blocker.join()
        error = check_failure(result, TransportFailed, "timeout")
        assert error.sent is False
        assert len(server.received) == 1  # the blocker's: the waiting call never went out
    assert 0.35 <= elapsed <= 0.4 + SLACK


def _with_timeout(
    client: SessionsClient, operation: str, timeout: Timeout
) -> tuple[Result[Any, ApiError], float]:
    calls: dict[str, Call] = {
        "get": lambda c: c.get(samples.SESSION_ID, timeout=timeout),
        "list": lambda c: c.list(timeout=timeout),
        "cancel": lambda c: c.cancel(samples.SESSION_ID, timeout=timeout),
        "create": lambda c: c.create(CreateSessionBody(machine_id="m"), timeout=timeout),
        "extend": lambda c: c.extend(samples.SESSION_ID, 5, timeout=timeout, check_cap=False),
    }
    return timed(calls[operation], client)


def test_a_connection_left_with_extra_bytes_is_not_reused(
    clients: Callable[..., SessionsClient],
) -> None:
    # The first answer declares 2 bytes but sends more, and keeps the connection open meanwhile:
    # reusing it would read "GARBAGE" as the start of the next answer.
    lying = Raw(
        head("Content-Type: application/json", "Content-Length: 2") + b"[]GARBAGE",
        then=lambda _file: time.sleep(0.5),
    )
    replies: Iterator[Reply | Raw] = iter([lying, Reply(200, samples.DELETED.encode())])
    with serve(lambda _: next(replies)) as server:
        client = clients(server.base_url)
        assert client.list() == Success([])
        assert isinstance(client.cancel(samples.SESSION_ID), Success)
        assert len(server.received) == 2
        first, second = server.received
        assert first.peer != second.peer  # a fresh connection


@pytest.mark.parametrize(
    ("option", "value"),
    [
        ("timeout", -1),
        ("timeout", "soon"),
        ("timeout", Timeout(connect=0)),
        ("timeout", Timeout(total=float("nan"))),
        ("retry", 3),
        ("retry", RetryPolicy(max_attempts=0)),
        ("max_response_bytes", 0),
    ],
)
@pytest.mark.parametrize("operation", CALLS)
def test_unusable_settings_are_refused_before_anything_is_sent(
    option: str, value: object, operation: str, clients: Callable[..., SessionsClient]
) -> None:
    with serve(lambda _: Reply(200, OK_BODIES[operation].encode())) as server:
        result = CALLS[operation](clients(server.base_url, **{option: value}))
        error = check_failure(result, InvalidRequest, None)
        assert error.field == option
        assert server.received == []


@pytest.mark.parametrize("operation", CALLS)
def test_retry_false_per_call_turns_retries_off(
    operation: str, clients: Callable[..., SessionsClient]
) -> None:
    calls: dict[str, Call] = {
        "get": lambda c: c.get(samples.SESSION_ID, retry=False),
        "list": lambda c: c.list(retry=False),
        "cancel": lambda c: c.cancel(samples.SESSION_ID, retry=False),
        "create": lambda c: c.create(CreateSessionBody(machine_id="m"), retry=False),
        "extend": lambda c: c.extend(samples.SESSION_ID, 5, retry=False, check_cap=False),
    }
    with serve(lambda _: Reply(429, b"{}", (("Retry-After", "0"),))) as server:
        result = calls[operation](clients(server.base_url))
        check_failure(result, HttpError, None)
        assert len(server.received) == 1


def test_allow_duplicates_lets_a_create_be_repeated(
    clients: Callable[..., SessionsClient],
) -> None:
    replies = iter([Reply(503, b"{}"), Reply(200, samples.CREATED.encode())])
    with serve(lambda _: next(replies)) as server:
        opted_in = RetryPolicy(backoff=DELAY, allow_duplicates=True)
        result = CALLS["create"](clients(server.base_url, retry=opted_in))
        assert isinstance(result, Success)
        assert len(server.received) == 2


def test_every_attempt_carries_the_key(clients: Callable[..., SessionsClient]) -> None:
    with serve(lambda _: Reply(503, b"{}")) as server:
        CALLS["get"](clients(server.base_url))
        seen = list(server.received)
    assert len(seen) == ATTEMPTS
    assert all(r.headers.get("Authorization") == f"Bearer {KEY}" for r in seen)


def test_one_overall_deadline_bounds_every_attempt_and_wait_together(
    clients: Callable[..., SessionsClient],
) -> None:
    patient = RetryPolicy(max_attempts=50, backoff=DELAY, jitter=0)
    with serve(lambda _: Reply(200, b"[]", delay=0.5)) as server:
        client = clients(server.base_url, retry=patient, timeout=Timeout(0.3, 0.3, total=0.8))
        result, elapsed = timed(CALLS["list"], client)
        check_failure(result, TransportFailed, "timeout")
        # 0.3 s each, so a third attempt starts with only what is left of the 0.8 s.
        assert len(server.received) == 3
    assert 0.75 <= elapsed <= 0.8 + SLACK


def test_observers_see_each_attempt_before_and_after(
    clients: Callable[..., SessionsClient],
) -> None:
    from cdsessions._core.observe import AttemptFinished, AttemptStarted, Event

    events: list[Event] = []
    replies = iter([Reply(503, b"{}"), Reply(200, b"[]")])
    with serve(lambda _: next(replies)) as server:
        result = clients(server.base_url, observers=[events.append]).list()
    assert result == Success([])
    assert [type(event) for event in events] == [
        AttemptStarted,
        AttemptFinished,
        AttemptStarted,
        AttemptFinished,
    ]
    first, second = events[1], events[3]
    assert isinstance(first, AttemptFinished)
    assert isinstance(second, AttemptFinished)
    assert (first.attempt, first.status, first.retry_in) == (1, 503, DELAY)
    assert (second.attempt, second.status, second.retry_in) == (2, 200, None)
    assert 0 <= first.elapsed < SLACK
    assert all(
        e.request.headers and dict(e.request.headers)["Authorization"] == "<redacted>"
        for e in events
    )
    assert all(e.operation == "list sessions" for e in events)


def test_debug_logs_show_method_path_status_attempt_and_time(
    clients: Callable[..., SessionsClient], caplog: pytest.LogCaptureFixture
) -> None:
    import logging
    import re

    replies = iter([Reply(502, b"{}"), Reply(200, samples.DELETED.encode())])
    with caplog.at_level(logging.DEBUG, logger="cdsessions"), serve(lambda _: next(replies)) as s:
        assert isinstance(clients(s.base_url).cancel(samples.SESSION_ID), Success)
    lines = [r.getMessage() for r in caplog.records if r.name == "cdsessions"]
    path = f"/session/{samples.SESSION_ID}"
    assert lines[0] == f"DELETE {path}: attempt 1"
    assert re.fullmatch(
        rf"cancel session {samples.SESSION_ID}: 502 after \d\.\d{{3}}s, "
        r"retrying in 0\.02s \(attempt 2\)",
        lines[1],
    )
    assert lines[2] == f"DELETE {path}: attempt 2"
    assert re.fullmatch(rf"DELETE {path}: 200 after \d\.\d{{3}}s \(attempt 2\)", lines[3])
    assert [r.levelname for r in caplog.records if r.name == "cdsessions"] == [
        "DEBUG",
        "INFO",
        "DEBUG",
        "DEBUG",
    ]


def test_a_plain_number_timeout_sets_connect_and_read(
    clients: Callable[..., SessionsClient],
) -> None:
    with serve(lambda _: Reply(200, b"[]", delay=0.6)) as server:
        result, elapsed = timed(
            lambda c: c.list(retry=False), clients(server.base_url, timeout=0.3)
        )
        check_failure(result, TransportFailed, "timeout")
    assert 0.25 <= elapsed <= 0.3 + SLACK
