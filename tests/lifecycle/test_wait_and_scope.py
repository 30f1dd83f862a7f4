"""Lifecycle helpers against the fake: waiting ends in distinct values, and a session started by
``client.session(...)`` never outlives its block (exceptions and Ctrl-C included)."""

from __future__ import annotations

import logging
import math

import msgspec
import pytest
from hypothesis import example, given, settings
from hypothesis import strategies as st
from returns.result import Failure, Result, Success

from cdsessions import (
    AsyncSessionsClient,
    CreateSessionBody,
    DecodeFailed,
    DeleteSessionResponse,
    HttpError,
    InvalidRequest,
    SessionsClient,
    TransportFailed,
)
from cdsessions._core.timeouts import MAX_SECONDS, ready_timeout_from
from cdsessions._core.wire import HttpRequest, HttpResponse
from cdsessions.errors import REPR_LIMIT, ApiError
from cdsessions.fake import DEFAULT_MACHINE_ID, FakeService, FakeTransport, ManualClock
from cdsessions.lifecycle import (
    Backoff,
    NotReady,
    OpenSession,
    SessionGone,
    SessionScope,
    cancel_until_closed,
    counts_as_closed,
    report_unclosed,
    wait_until_ready,
)
from cdsessions.models import Session
from cdsessions.transports._inline import InlineTransport
from tests.support import samples
from tests.support.checks import failure_of, refused, run
from tests.support.clocks import FakeTime
from tests.support.samples import BAD_SECONDS, INVALID_UTF8, UNMASKED_URL
from tests.support.transports import FailingDeletes, Recording, Rewriting

KEY = "fake-key-alice"
BODY = CreateSessionBody(machine_id=DEFAULT_MACHINE_ID)
LOG_STREAM = "/v2/stream-logs"


def _client(service: FakeService, key: str = KEY) -> SessionsClient:
    return SessionsClient(key, transport=FakeTransport(service), retry=False)


def _scope(client: SessionsClient, time: FakeTime, ready_timeout: float = 600) -> SessionScope:
    return SessionScope(
        client, BODY, ready_timeout=ready_timeout, sleep=time.sleep, clock=time.clock
    )


def _new_session(client: SessionsClient) -> str:
    session_id: str = client.create(BODY).unwrap().session_id
    return session_id


# -- wait_until_ready ----------------------------------------------------------------------------


def test_backoff_starts_at_one_second_and_is_capped() -> None:
    assert [Backoff().delay(n) for n in range(7)] == [1.0, 1.5, 2.25, 3.375, 4.0, 4.0, 4.0]
    assert Backoff().delay(10_000) == 4.0  # no overflow on absurd attempt counts


def test_wait_until_ready_polls_with_backoff_until_the_url_appears() -> None:
    service, time = FakeService(ready_after_polls=3), FakeTime()
    client = _client(service)
    sid = _new_session(client)
    seen: list[tuple[int, float]] = []
    result = wait_until_ready(
        client.get,
        sid,
        sleep=time.sleep,
        clock=time.clock,
        on_poll=lambda polls, waited: seen.append((polls, waited)),
    )
    assert isinstance(result, Success)
    assert result.unwrap().url is not None
    assert time.sleeps == [1.0, 1.5, 2.25]
    assert seen == [(1, 0.0), (2, 1.0), (3, 2.5), (4, 4.75)]


def test_wait_until_ready_reports_a_session_that_vanished() -> None:
    service, time = FakeService(ready_after_polls=None), FakeTime()
    client = _client(service)
    sid = _new_session(client)

    def sleep_then_cancel(seconds: float) -> None:
        time.sleep(seconds)
        client.cancel(sid)  # someone else stops it while we wait

    result = wait_until_ready(client.get, sid, sleep=sleep_then_cancel, clock=time.clock)
    assert result == Failure(SessionGone(f"wait for session {sid}", sid))
    assert "nothing is running" in str(result.failure())


def test_wait_until_ready_gives_up_at_the_deadline() -> None:
    service, time = FakeService(ready_after_polls=None), FakeTime()
    client = _client(service)
    sid = _new_session(client)
    result = wait_until_ready(client.get, sid, timeout=5, sleep=time.sleep, clock=time.clock)
    error = result.failure()
    assert isinstance(error, NotReady)
    assert (error.session_id, error.waited, error.polls) == (sid, 5.0, 5)
    assert time.sleeps == [1.0, 1.5, 2.25, 0.25]  # the last pause is cut to the deadline
    assert [s.session_id for s in service.live_sessions()] == [sid]  # left as it was


def test_wait_until_ready_passes_other_failures_through() -> None:
    service, time = FakeService(keys={KEY: "alice"}), FakeTime()
    sid = _new_session(_client(service))
    result = wait_until_ready(
        _client(service, "revoked").get, sid, sleep=time.sleep, clock=time.clock
    )
    error = result.failure()
    assert isinstance(error, HttpError)
    assert error.status == 401
    assert time.sleeps == []


# -- the context manager -----------------------------------------------------------------------


def test_session_yields_a_ready_session_and_cancels_it_after() -> None:
    service = FakeService(ready_after_polls=0)
    client = _client(service)
    scope = client.session(BODY)
    with scope as started:
        assert isinstance(started, Success)
        opened = started.unwrap()
        assert isinstance(opened, OpenSession)
        assert opened.ready
        assert opened.details is not None
        assert [s.session_id for s in service.live_sessions()] == [opened.session_id]
        assert "modal" not in repr(opened)
    assert service.live_sessions() == ()
    assert scope.closed == Success("cancelled")
    assert scope.session_id == opened.session_id


def test_session_without_waiting_yields_at_once() -> None:
    service = FakeService(ready_after_polls=None)
    client = _client(service)
    with client.session(BODY, wait=False) as started:
        assert started.unwrap().url is None
        assert service.requests_handled == 1  # create only
    assert service.live_sessions() == ()


def test_wait_for_server_needs_no_polling() -> None:
    service = FakeService(ready_after_polls=None)
    body = CreateSessionBody(machine_id=DEFAULT_MACHINE_ID, wait_for_server=True)
    with _client(service).session(body) as started:
        assert started.unwrap().ready
        assert service.requests_handled == 1
    assert service.live_sessions() == ()


def _block_that_raises(scope: SessionScope, service: FakeService, error: BaseException) -> None:
    with scope as started:
        assert started.unwrap().session_id
        assert len(service.live_sessions()) == 1
        raise error


def test_session_is_cancelled_when_the_block_raises() -> None:
    service = FakeService(ready_after_polls=0)
    scope = _client(service).session(BODY)
    with pytest.raises(RuntimeError, match="user code failed"):
        _block_that_raises(scope, service, RuntimeError("user code failed"))
    assert service.live_sessions() == ()
    assert scope.closed == Success("cancelled")


def test_session_is_cancelled_on_keyboard_interrupt_in_the_block() -> None:
    service = FakeService(ready_after_polls=0)
    scope = _client(service).session(BODY)
    with pytest.raises(KeyboardInterrupt):
        _block_that_raises(scope, service, KeyboardInterrupt())
    assert service.live_sessions() == ()
    assert scope.closed == Success("cancelled")


def test_session_is_cancelled_on_keyboard_interrupt_while_waiting() -> None:
    service, time = FakeService(ready_after_polls=None), FakeTime()

    def interrupted(seconds: float) -> None:
        time.sleep(seconds)
        if len(time.sleeps) == 2:
            raise KeyboardInterrupt

    scope = SessionScope(_client(service), BODY, sleep=interrupted, clock=time.clock)
    with pytest.raises(KeyboardInterrupt), scope:
        pytest.fail("the block must not run")  # pragma: no cover
    assert service.live_sessions() == ()
    assert scope.closed == Success("cancelled")


def test_a_failed_create_is_a_value_and_nothing_to_cancel() -> None:
    service = FakeService()
    unknown = CreateSessionBody(machine_id="0b5e55ed-0000-4000-8000-000000000000")
    scope = _client(service).session(unknown)
    with scope as started:
        error = started.failure()
        assert isinstance(error, HttpError)
        assert (error.status, error.detail) == (404, "Machine not found")
    assert (scope.session_id, scope.closed) == (None, None)
    assert service.requests_handled == 1  # no cancel was sent


def test_not_ready_in_time_is_cancelled_before_the_block_runs() -> None:
    service, time = FakeService(ready_after_polls=None), FakeTime()
    scope = _scope(_client(service), time, ready_timeout=3)
    with scope as started:
        assert isinstance(started.failure(), NotReady)
        assert service.live_sessions() == ()  # already cancelled: no billing while we look
    assert scope.closed == Success("cancelled")


def test_not_ready_says_its_session_was_cancelled_not_to_cancel_it() -> None:
    """The scope has cancelled the session: its failure must not advise to do that again."""
    service, time = FakeService(ready_after_polls=None), FakeTime()
    with _scope(_client(service), time, ready_timeout=3) as started:
        error = started.failure()
    assert isinstance(error, NotReady)
    assert error.cancelled
    assert "the session was cancelled, so it is no longer billing" in str(error)
    assert "cancel it" not in str(error)


def test_not_ready_whose_cancel_failed_still_says_to_cancel_it() -> None:
    service, time = FakeService(ready_after_polls=None), FakeTime()
    service.answer_next("cancel", 500, times=10)
    with _scope(_client(service), time, ready_timeout=3) as started:
        error = started.failure()
    assert isinstance(error, NotReady)
    assert not error.cancelled
    assert "cancel it if you no longer need it" in str(error)


def test_early_cancel_400_counts_as_closed() -> None:
    service = FakeService(early_cancel_fails=True, ready_after_polls=None)
    scope = _client(service).session(BODY, wait=False)
    with scope:
        pass
    assert scope.closed == Success("already closed")
    assert service.live_sessions() == ()


def test_a_session_cancelled_in_the_block_counts_as_closed() -> None:
    service = FakeService(ready_after_polls=0)
    client = _client(service)
    scope = client.session(BODY)
    with scope as started:
        assert isinstance(client.cancel(started.unwrap().session_id), Success)
    assert scope.closed == Success("already closed")


def test_a_transient_cancel_failure_is_retried() -> None:
    service, time = FakeService(ready_after_polls=0), FakeTime()
    client = SessionsClient(KEY, transport=FailingDeletes(service, failures=2), retry=False)
    scope = _scope(client, time)
    with scope:
        pass
    assert scope.closed == Success("cancelled")
    assert time.sleeps == [0.5, 1.0]
    assert service.live_sessions() == ()


def test_a_cancel_that_keeps_failing_is_kept_and_logged(caplog: pytest.LogCaptureFixture) -> None:
    service, time = FakeService(ready_after_polls=0), FakeTime()
    client = SessionsClient(KEY, transport=FailingDeletes(service, failures=99), retry=False)
    scope = _scope(client, time)
    with caplog.at_level(logging.ERROR, logger="cdsessions.lifecycle"), scope as started:
        sid = started.unwrap().session_id
    error = scope.closed.failure() if scope.closed is not None else None
    assert isinstance(error, TransportFailed)
    assert [s.session_id for s in service.live_sessions()] == [sid]  # reported, not hidden
    (record,) = [r for r in caplog.records if r.name == "cdsessions.lifecycle"]
    assert sid in record.getMessage()
    assert f"cdsessions cancel {sid}" in record.getMessage()
    assert "modal" not in record.getMessage()
    assert KEY not in record.getMessage()


# -- the pure parts --------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("error", "closed"),
    [
        (HttpError("cancel", 404, "GPUEvent not found session_id: x"), True),
        (HttpError("cancel", 400, "Modal function id not found"), True),
        (HttpError("cancel", 400, "something else"), False),
        (HttpError("cancel", 500, None), False),
        (TransportFailed("cancel", "timeout", "slow", sent=True), False),
    ],
)
def test_counts_as_closed(error: ApiError, closed: bool) -> None:
    assert counts_as_closed(error) is closed


def test_cancel_until_closed_does_not_retry_what_will_not_change() -> None:
    calls: list[str] = []

    def refuse(session_id: str) -> Result[DeleteSessionResponse, ApiError]:
        calls.append(session_id)
        return Failure(HttpError("cancel", 401, "Invalid or missing token"))

    result = cancel_until_closed(refuse, "s-1", sleep=lambda _: None)
    assert isinstance(result.failure(), HttpError)
    assert calls == ["s-1"]


JSON = (("content-type", "application/json"),)


TUNNEL = "https://ta-01jsecretlabel.r5.modal.host"


def _unclosed_scope_logs(
    caplog: pytest.LogCaptureFixture, cancel_answer: HttpResponse
) -> list[logging.LogRecord]:
    service = FakeService()
    transport = Rewriting(service, {"DELETE": cancel_answer})
    client = SessionsClient(KEY, transport=transport)
    caplog.set_level(logging.DEBUG, logger="cdsessions")
    scope = SessionScope(client, BODY, wait=False, sleep=lambda _: None)
    with scope as started:
        assert isinstance(started, Success)
    closed = scope.closed
    assert isinstance(closed, Failure)
    assert scope.session_id is not None
    errors = [r for r in caplog.records if r.levelno == logging.ERROR]
    assert len(errors) == 1
    assert scope.session_id in errors[0].getMessage()
    return list(caplog.records)


def test_a_session_is_cancelled_when_the_get_after_create_answers_invalid_utf8() -> None:
    """From issue 10: the boundary never raises."""
    service = FakeService(ready_after_polls=3)
    transport = Rewriting(service, {"GET": HttpResponse(200, JSON, INVALID_UTF8)})
    client = SessionsClient(KEY, transport=transport, retry=False)
    scope = client.session(BODY)
    with scope as started:
        error = failure_of(started)
        assert isinstance(error, DecodeFailed)
        assert scope.session_id is not None
    assert scope.closed == Success("cancelled")
    assert service.live_sessions() == ()


@pytest.mark.parametrize("timeout", BAD_SECONDS, ids=repr)
def test_unusable_ready_timeouts_are_refused_with_nothing_sent(timeout: object) -> None:
    """From issue 10: the boundary never raises."""
    transport = Recording()  # answers every get with a ready session
    client = SessionsClient(KEY, transport=transport)
    aclient = AsyncSessionsClient(KEY, transport=InlineTransport(transport))
    waited = [
        client.wait_until_ready("s", timeout=timeout),  # type: ignore[arg-type]
        run(aclient.wait_until_ready("s", timeout=timeout)),  # type: ignore[arg-type]
    ]
    for result in waited:
        assert refused(result) == "timeout"
    with client.session(BODY, ready_timeout=timeout) as started:  # type: ignore[arg-type]
        assert refused(started) == "ready_timeout"

    async def scoped() -> str:
        async with aclient.session(BODY, ready_timeout=timeout) as started:  # type: ignore[arg-type]
            return refused(started)

    assert run(scoped()) == "ready_timeout"
    assert transport.sent == []  # no get, and above all no paid create


def test_wait_until_ready_with_nan_does_not_poll() -> None:
    """From issue 10: the boundary never raises."""
    polls: list[str] = []

    def get(session_id: str) -> Result[Session, ApiError]:
        polls.append(session_id)
        ready = msgspec.json.decode(samples.LIVE_SESSION_READY, type=Session)
        return (
            Success(ready) if len(polls) >= 3 else Success(msgspec.structs.replace(ready, url=None))
        )

    result = wait_until_ready(get, "s", timeout=math.nan, sleep=lambda _: None)
    assert isinstance(failure_of(result), InvalidRequest)
    assert polls == []


def test_a_ready_timeout_of_zero_looks_once_and_waits_for_nothing() -> None:
    """A ready timeout may be 0 (docs/reliability.md, "Timeouts are checked"): one look, no
    wait; the scope then cancels what it started. Written for the promise map (issue 23), which
    found no test of it."""
    clock = ManualClock()
    service = FakeService(clock=clock, ready_after_polls=None)
    client = SessionsClient(KEY, transport=FakeTransport(service), retry=False, clock=clock)
    session_id = _new_session(client)
    sent_before = len(service.requests_seen)
    error = client.wait_until_ready(session_id, timeout=0).failure()
    assert isinstance(error, NotReady)
    assert error.polls == 1
    looked = f"/session/{session_id}"
    assert [path for _, path in service.requests_seen[sent_before:]] == [looked, LOG_STREAM]
    with client.session(BODY, ready_timeout=0) as started:
        refused = started.failure()
    assert isinstance(refused, NotReady)
    assert (refused.polls, refused.cancelled) == (1, True)
    started_id = refused.session_id
    assert service.requests_seen[sent_before + 2 :] == (
        ("POST", "/session"),
        ("GET", f"/session/{started_id}"),
        ("GET", LOG_STREAM),  # why it is not ready: the last log lines
        ("DELETE", f"/session/{started_id}"),
    )
    assert clock.slept == 0
    assert [s.session_id for s in service.live_sessions()] == [session_id]


def test_the_ready_wait_gives_up_after_600_seconds_by_default() -> None:
    """docs/lifecycle.md: ``ready_timeout`` (seconds, default 600) bounds the wait, in the scope
    and in ``wait_until_ready``. Written for the promise map (issue 23): no test held the
    default."""
    clock = ManualClock()
    service = FakeService(clock=clock, ready_after_polls=None)
    client = SessionsClient(KEY, transport=FakeTransport(service), retry=False, clock=clock)
    waited = client.wait_until_ready(_new_session(client)).failure()
    with client.session(BODY) as started:
        in_scope = started.failure()
    for error in (waited, in_scope):
        assert isinstance(error, NotReady)
        assert error.waited == 600  # the clock only moves by the waits, up to the deadline
    assert clock.slept == 1200


def test_a_huge_ready_timeout_is_clamped() -> None:
    """From issue 10: the boundary never raises."""
    assert ready_timeout_from(1e300) == Success(MAX_SECONDS)
    assert ready_timeout_from(0) == Success(0.0)
    now = [0.0]

    def clock() -> float:
        now[0] += 1e6  # every look at the clock: another 11.6 days
        return now[0]

    starting = msgspec.json.decode(samples.LIVE_SESSION, type=Session)
    ready = msgspec.json.decode(samples.LIVE_SESSION_READY, type=Session)
    polls: list[str] = []

    def get(session_id: str) -> Result[Session, ApiError]:
        polls.append(session_id)  # unclamped, the deadline never comes: ready at poll 10
        return Success(ready if len(polls) >= 10 else starting)

    result = wait_until_ready(get, "s", timeout=1e300, sleep=lambda _: None, clock=clock)
    error = failure_of(result)
    assert isinstance(error, NotReady)
    assert error.waited <= MAX_SECONDS + 2e6


@pytest.mark.parametrize(
    "backoff",
    [Backoff(first=-1), Backoff(factor=math.nan), Backoff(cap=math.inf), Backoff(factor=0.5)],
    ids=repr,
)
def test_unusable_backoffs_are_refused_before_polling(backoff: Backoff) -> None:
    """From issue 10: the boundary never raises."""
    polled: list[str] = []

    def get(session_id: str) -> Result[Session, ApiError]:
        polled.append(session_id)
        return Success(msgspec.json.decode(samples.LIVE_SESSION, type=Session))

    result = wait_until_ready(get, "s", backoff=backoff, sleep=lambda _: None)
    assert refused(result) == "backoff"
    assert polled == []


@settings(max_examples=300, deadline=None)
@given(
    first=st.floats() | st.integers(-(10**400), 10**400),
    factor=st.floats() | st.integers(-3, 10**400),
    cap=st.floats() | st.integers(-(10**400), 10**400),
    attempt=st.integers(0, 10**6),
)
@example(first=0, factor=0, cap=0, attempt=0)
@example(first=float("nan"), factor=float("inf"), cap=-1, attempt=10**6)
@example(first=86401, factor=2, cap=10**400, attempt=0)
@example(first=-1, factor=-3, cap=float("-inf"), attempt=1)
def test_backoff_delays_are_always_sleepable(
    first: float, factor: float, cap: float, attempt: int
) -> None:
    """From issue 10: the boundary never raises."""
    delay = Backoff(first, factor, cap).delay(attempt)
    assert isinstance(delay, float)
    assert 0 <= delay <= MAX_SECONDS


def test_a_cancel_is_tried_whatever_its_attempts_and_backoff_hold() -> None:
    """From issue 10: the boundary never raises."""
    from cdsessions.lifecycle import cancel_until_closed
    from cdsessions.models import DeleteSessionResponse

    answers: list[Result[DeleteSessionResponse, ApiError]] = [
        Failure(TransportFailed("cancel", "broken", "reset", sent=True)),
        Success(DeleteSessionResponse(success=True)),
    ]
    sleeps: list[float] = []
    for attempts, backoff in (("3", Backoff(first=math.nan)), (None, Backoff(cap=-1))):
        calls = iter(list(answers))
        closed = cancel_until_closed(
            lambda _, calls=calls: next(calls),  # type: ignore[misc]
            "s",
            attempts=attempts,  # type: ignore[arg-type]
            backoff=backoff,
            sleep=sleeps.append,
        )
        assert closed == Success("cancelled")
    assert sleeps == [0.0, 0.0]  # what time.sleep accepts


@pytest.mark.parametrize("attempts", [0, -1, -(10**6)])
def test_a_cancel_with_no_attempts_left_is_still_sent_once(attempts: int) -> None:
    """Attempts of zero or less: the cancel is sent exactly once (never skipped, which would
    leave a session running; never looped). Added for a bug an outside review slipped past
    the suite (issue 23)."""
    from cdsessions.lifecycle import cancel_until_closed

    calls: list[str] = []
    broken = Failure(TransportFailed("cancel", "broken", "reset", sent=True))

    def cancel(session_id: str) -> Result[DeleteSessionResponse, ApiError]:
        calls.append(session_id)
        return broken if len(calls) == 1 else Success(DeleteSessionResponse(success=True))

    sleeps: list[float] = []
    closed = cancel_until_closed(cancel, "s-1", attempts=attempts, sleep=sleeps.append)
    assert (closed, calls, sleeps) == (broken, ["s-1"], [])


@pytest.mark.parametrize(
    "cancel_answer",
    [
        HttpResponse(307, (("Location", f"{TUNNEL}/session/x?token=abc"),), b""),
        HttpResponse(301, (("location", "http://10.0.0.1/x"),), b'{"detail": "moved"}'),
        HttpResponse(
            400, JSON, f'{{"detail": "tunnel {TUNNEL}/x failed, see HTTP://a.b/c"}}'.encode()
        ),
        HttpResponse(409, JSON, f'{{"detail": [{{"url": "{TUNNEL}"}}]}}'.encode()),
    ],
    ids=["307-location", "301-location", "400-detail", "409-nested"],
)
def test_the_unclosed_session_error_line_holds_no_url(
    caplog: pytest.LogCaptureFixture, cancel_answer: HttpResponse
) -> None:
    """From issue 10: the boundary never raises."""
    records = _unclosed_scope_logs(caplog, cancel_answer)
    for record in records:
        message = record.getMessage()
        assert not UNMASKED_URL.search(message), message
        assert "modal.host" not in message
        assert "10.0.0.1" not in message
        assert len(message) < 1000


def test_a_session_id_holding_a_url_is_masked_in_every_log_line(
    caplog: pytest.LogCaptureFixture,
) -> None:
    """From issue 10: the boundary never raises."""
    hostile_id = f"{TUNNEL}/session/3f0c"
    created = HttpResponse(200, JSON, msgspec.json.encode({"session_id": hostile_id}))
    refused = HttpResponse(400, JSON, b'{"detail": "no"}')
    transport = Rewriting(FakeService(), {"POST": created, "DELETE": refused})
    caplog.set_level(logging.DEBUG, logger="cdsessions")
    client = SessionsClient(KEY, transport=transport, retry=False)
    scope = SessionScope(client, BODY, sleep=lambda _: None)
    with scope as started:
        assert isinstance(started, Failure)  # the fake does not know that id: gone
    assert scope.session_id == hostile_id
    assert isinstance(scope.closed, Failure)
    messages = [record.getMessage() for record in caplog.records]
    assert any(record.levelno == logging.ERROR for record in caplog.records)
    assert any("%3A%2F%2F<masked>" in message for message in messages)  # the request path
    for message in messages:
        assert not UNMASKED_URL.search(message), message
        assert "modal.host" not in message


def test_a_huge_hostile_session_id_is_shown_bounded(caplog: pytest.LogCaptureFixture) -> None:
    """From issue 10: the boundary never raises."""
    hostile_id = "\x1b[2J" + "x" * 1_000_000
    created = HttpResponse(200, JSON, msgspec.json.encode({"session_id": hostile_id}))
    transport = Rewriting(FakeService(), {"POST": created})
    caplog.set_level(logging.DEBUG, logger="cdsessions")
    scope = SessionScope(SessionsClient(KEY, transport=transport), BODY, sleep=lambda _: None)
    with scope as started:
        assert isinstance(failure_of(started), InvalidRequest)  # no get can carry that id
    assert scope.session_id == hostile_id
    assert isinstance(scope.closed, Failure)  # nor a cancel: reported, not raised
    assert len(repr(scope)) < 2 * REPR_LIMIT
    [line] = [r.getMessage() for r in caplog.records if r.levelno == logging.ERROR]
    assert len(line) < 1000
    assert "\x1b" not in line


def test_a_session_ready_on_the_poll_at_the_deadline_is_ready_not_late() -> None:
    """Found by applying a deliberate bug the older tests let through."""
    # Polls at 0, 1, 2.5, 4.75 and 5.0 s (the last pause cut to the deadline); the url appears
    # on the fifth, taken exactly at the deadline: that answer is a ready session.
    service, time = FakeService(ready_after_polls=4), FakeTime(start=50.0)
    client = _client(service)
    sid = client.create(BODY).unwrap().session_id
    result = wait_until_ready(client.get, sid, timeout=5, sleep=time.sleep, clock=time.clock)
    assert isinstance(result, Success), result
    assert result.unwrap().url is not None
    assert time.now == 55.0


def test_the_unclosed_session_log_line_never_shows_a_url(
    caplog: pytest.LogCaptureFixture,
) -> None:
    """Found by applying a deliberate bug the older tests let through."""
    tunnel = "https://secret-label.r5.modal.host/prompt"
    failed = Failure(HttpError("cancel session s-1", 502, f"upstream {tunnel} failed"))
    with caplog.at_level(logging.ERROR, logger="cdsessions.lifecycle"):
        report_unclosed("s-1", failed)
    [record] = caplog.records
    assert record.levelno == logging.ERROR
    assert "s-1" in record.getMessage()
    assert "secret-label" not in record.getMessage()
    assert "r5.modal.host" not in record.getMessage()


def test_a_session_scope_is_entered_only_once_and_starts_one_session() -> None:
    """Found by applying a deliberate bug the older tests let through."""
    service = FakeService(ready_after_polls=0)
    client = _client(service)
    scope = client.session(BODY, wait=False)
    with scope as started:
        assert isinstance(started, Success)
    with pytest.raises(RuntimeError, match="only once"), scope:
        pass
    assert [m for m, _ in service.requests_seen].count("POST") == 1
    assert service.live_sessions() == ()


def test_extend_after_the_block_is_refused_and_sends_nothing() -> None:
    """Found by applying a deliberate bug the older tests let through."""
    service = FakeService(ready_after_polls=0)
    client = _client(service)
    scope = SessionScope(client, BODY, wait=False)
    with scope as started:
        assert isinstance(started, Success)
        assert isinstance(scope.extend(5), Success)  # inside the block: sent
    assert scope.closed == Success("cancelled")
    sent_before = service.requests_seen
    late = scope.extend(5)
    assert isinstance(late, Failure)
    assert isinstance(late.failure(), InvalidRequest)
    assert service.requests_seen == sent_before  # refused before anything was sent


def test_a_confirmed_cancel_logs_nothing_at_error(caplog: pytest.LogCaptureFixture) -> None:
    """Found by applying a deliberate bug the older tests let through."""
    # The ERROR line means "may still be billing": it must not cry wolf after a clean close.
    service = FakeService(ready_after_polls=0)
    with caplog.at_level(logging.DEBUG, logger="cdsessions.lifecycle"):
        scope = _client(service).session(BODY, wait=False)
        with scope:
            pass
        report_unclosed("s-2", Success("already closed"))
        report_unclosed("s-3", None)
    assert scope.closed == Success("cancelled")
    assert [r for r in caplog.records if r.levelno >= logging.ERROR] == []


def _response(
    body: bytes, status: int = 200, headers: tuple[tuple[str, str], ...] = JSON
) -> HttpResponse:
    return HttpResponse(status=status, headers=headers, body=body)


class DeletesAnswer:
    """The fake in memory, except that the next DELETEs get the given answers (a response, or
    an exception raised from ``send``) before reaching it."""

    def __init__(self, service: FakeService, answers: list[HttpResponse | BaseException]) -> None:
        self.inner = FakeTransport(service)
        self.answers = answers
        self.deletes = 0

    def send(self, request: HttpRequest) -> Result[HttpResponse, TransportFailed]:
        if request.method == "DELETE":
            self.deletes += 1
            if self.answers:
                answer = self.answers.pop(0)
                if isinstance(answer, BaseException):
                    raise answer
                return Success(answer)
        return self.inner.send(request)

    def close(self) -> None:
        return None


def _scope_over(transport: DeletesAnswer, sleeps: list[float]) -> SessionScope:
    client = SessionsClient(KEY, transport=transport, retry=False)
    return SessionScope(client, BODY, wait=False, sleep=sleeps.append)


def test_the_scopes_cancel_is_retried_after_a_500() -> None:
    """Bug: the scope's cancel retried only transport failures, not a 5xx answer.

    Found by an outside review's deliberate bug the suite missed (issue 14)."""
    service = FakeService()
    failing = _response(b'{"detail":"Internal Server Error"}', status=500)
    transport = DeletesAnswer(service, [failing, failing])
    sleeps: list[float] = []
    with _scope_over(transport, sleeps) as started:
        assert isinstance(started, Success)
    assert transport.deletes == 3
    assert sleeps == [0.5, 1.0]
    assert service.live_sessions() == ()


def test_the_scopes_cancel_is_not_retried_after_a_4xx_that_will_not_change() -> None:
    """Found by an outside review's deliberate bug the suite missed (issue 14)."""
    service = FakeService()
    refused = _response(b'{"detail":"Invalid or missing token"}', status=401)
    transport = DeletesAnswer(service, [refused])
    scope = _scope_over(transport, [])
    with scope:
        pass
    assert transport.deletes == 1
    assert isinstance(scope.closed, Failure)
    assert scope.closed.failure() == HttpError(
        f"cancel session {scope.session_id}", 401, "Invalid or missing token"
    )


def test_a_second_ctrl_c_during_the_scopes_cancel_still_cancels_once_more() -> None:
    """Bug: a KeyboardInterrupt during the scope's cancel (the user pressing Ctrl-C again)
    abandons the session: the scope must make one last plain try, then let the interrupt
    through.

    Found by an outside review's deliberate bug the suite missed (issue 14)."""
    service = FakeService()
    transport = DeletesAnswer(service, [KeyboardInterrupt()])
    scope = _scope_over(transport, [])

    def block() -> None:
        with scope as started:
            assert isinstance(started, Success)
            raise KeyboardInterrupt  # the first Ctrl-C, in the block

    with pytest.raises(KeyboardInterrupt):
        block()
    assert transport.deletes == 2
    assert service.live_sessions() == ()
    assert scope.closed == Success("cancelled")
