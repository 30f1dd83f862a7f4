"""Lifecycle helpers against the fake: waiting ends in distinct values, and a session started by
``client.session(...)`` never outlives its block (exceptions and Ctrl-C included)."""

from __future__ import annotations

import logging

import pytest
from returns.result import Failure, Result, Success

from cdsessions import (
    CreateSessionBody,
    DeleteSessionResponse,
    HttpError,
    SessionsClient,
    TransportFailed,
)
from cdsessions._core.wire import HttpRequest, HttpResponse
from cdsessions.errors import ApiError
from cdsessions.fake import DEFAULT_MACHINE_ID, FakeService, FakeTransport
from cdsessions.lifecycle import (
    Backoff,
    NotReady,
    OpenSession,
    SessionGone,
    SessionScope,
    cancel_until_closed,
    counts_as_closed,
    wait_until_ready,
)

KEY = "fake-key-alice"
BODY = CreateSessionBody(machine_id=DEFAULT_MACHINE_ID)


class FakeTime:
    """A monotonic clock that only sleeping moves; records every sleep."""

    def __init__(self) -> None:
        self.now = 100.0
        self.sleeps: list[float] = []

    def clock(self) -> float:
        return self.now

    def sleep(self, seconds: float) -> None:
        self.sleeps.append(seconds)
        self.now += seconds


class FailingDeletes:
    """A transport in front of the fake whose next ``failures`` DELETEs break in transit."""

    def __init__(self, service: FakeService, failures: int) -> None:
        self.inner = FakeTransport(service)
        self.failures = failures

    def send(self, request: HttpRequest) -> Result[HttpResponse, TransportFailed]:
        operation = request.operation
        if request.method == "DELETE" and self.failures > 0:
            self.failures -= 1
            return Failure(TransportFailed(operation, "broken", "connection reset", sent=True))
        return self.inner.send(request)

    def close(self) -> None:
        return None


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
