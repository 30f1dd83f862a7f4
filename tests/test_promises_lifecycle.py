"""Lifecycle promises the older tests left open (found by applying deliberate bugs): a session
ready on the poll at the deadline is ready, the "may still be running" log line never shows a
URL, and a scope is entered once and extends only the session it holds open."""

from __future__ import annotations

import asyncio
import logging

import pytest
from returns.result import Failure, Result, Success

from cdsessions import CreateSessionBody, HttpError, SessionsClient, TransportFailed
from cdsessions._core.wire import HttpRequest, HttpResponse
from cdsessions.async_client import AsyncSessionsClient
from cdsessions.errors import InvalidRequest
from cdsessions.fake import DEFAULT_MACHINE_ID, AsyncFakeTransport, FakeService, FakeTransport
from cdsessions.lifecycle import SessionScope, report_unclosed, wait_until_ready
from cdsessions.transports._inline import InlineTransport

KEY = "fake-key-promises"
BODY = CreateSessionBody(machine_id=DEFAULT_MACHINE_ID)


class FakeTime:
    """A monotonic clock that only sleeping moves."""

    def __init__(self) -> None:
        self.now = 50.0

    def clock(self) -> float:
        return self.now

    def sleep(self, seconds: float) -> None:
        self.now += seconds


def _client(service: FakeService) -> SessionsClient:
    return SessionsClient(KEY, transport=FakeTransport(service), retry=False)


def test_a_session_ready_on_the_poll_at_the_deadline_is_ready_not_late() -> None:
    # Polls at 0, 1, 2.5, 4.75 and 5.0 s (the last pause cut to the deadline); the url appears
    # on the fifth, taken exactly at the deadline: that answer is a ready session.
    service, time = FakeService(ready_after_polls=4), FakeTime()
    client = _client(service)
    sid = client.create(BODY).unwrap().session_id
    result = wait_until_ready(client.get, sid, timeout=5, sleep=time.sleep, clock=time.clock)
    assert isinstance(result, Success), result
    assert result.unwrap().url is not None
    assert time.now == 55.0


def test_the_unclosed_session_log_line_never_shows_a_url(
    caplog: pytest.LogCaptureFixture,
) -> None:
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
    service = FakeService(ready_after_polls=0)
    client = _client(service)
    scope = client.session(BODY, wait=False)
    with scope as started:
        assert isinstance(started, Success)
    with pytest.raises(RuntimeError, match="only once"), scope:
        pass
    assert [m for m, _ in service.requests_seen].count("POST") == 1
    assert service.live_sessions() == ()


def test_an_async_session_scope_is_entered_only_once_and_starts_one_session() -> None:
    service = FakeService(ready_after_polls=0)

    async def main() -> None:
        async with AsyncSessionsClient(KEY, transport=AsyncFakeTransport(service)) as client:
            scope = client.session(BODY, wait=False)
            async with scope as started:
                assert isinstance(started, Success)
            with pytest.raises(RuntimeError, match="only once"):
                async with scope:
                    pass

    asyncio.run(main())
    assert [m for m, _ in service.requests_seen].count("POST") == 1
    assert service.live_sessions() == ()


def test_extend_after_the_block_is_refused_and_sends_nothing() -> None:
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


def test_async_extend_after_the_block_is_refused_and_sends_nothing() -> None:
    service = FakeService(ready_after_polls=0)

    async def main() -> None:
        async with AsyncSessionsClient(KEY, transport=AsyncFakeTransport(service)) as client:
            scope = client.session(BODY, wait=False)
            async with scope as started:
                assert isinstance(started, Success)
            assert scope.closed == Success("cancelled")
            sent_before = service.requests_seen
            late = await scope.extend(5)
            assert isinstance(late, Failure)
            assert isinstance(late.failure(), InvalidRequest)
            assert service.requests_seen == sent_before

    asyncio.run(main())


def _refuse_deletes(request: HttpRequest) -> HttpResponse | None:
    # A refusal no retry can change (the key was revoked mid-block): one try, no waiting.
    if request.method == "DELETE":
        return HttpResponse(
            401, (("content-type", "application/json"),), b'{"detail":"Revoked token"}'
        )
    return None


def test_an_async_scope_whose_cancel_fails_logs_the_session_at_error(
    caplog: pytest.LogCaptureFixture,
) -> None:
    service = FakeService(ready_after_polls=0, intercept=_refuse_deletes)

    async def main() -> str:
        async with AsyncSessionsClient(KEY, transport=AsyncFakeTransport(service)) as client:
            scope = client.session(BODY, wait=False)
            async with scope as started:
                sid = started.unwrap().session_id
            closed = scope.closed
            assert isinstance(closed, Failure)
            assert isinstance(closed.failure(), HttpError)
            return sid

    with caplog.at_level(logging.ERROR, logger="cdsessions.lifecycle"):
        sid = asyncio.run(main())
    assert [s.session_id for s in service.live_sessions()] == [sid]  # still running: reported
    (record,) = [r for r in caplog.records if r.name == "cdsessions.lifecycle"]
    assert record.levelno == logging.ERROR
    assert f"cdsessions cancel {sid}" in record.getMessage()


class FailingDeletes:
    """In front of the fake: the next ``failures`` DELETEs break in transit."""

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


def test_an_async_scope_retries_a_transient_cancel_failure_like_the_blocking_one(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    service = FakeService(ready_after_polls=0)
    pauses: list[float] = []
    real_sleep = asyncio.sleep

    async def quick_sleep(seconds: float) -> None:  # records the backoff, skips the waiting
        pauses.append(seconds)
        await real_sleep(0)

    monkeypatch.setattr(asyncio, "sleep", quick_sleep)

    async def main() -> Result[str, object] | None:
        transport = InlineTransport(FailingDeletes(service, failures=2))
        async with AsyncSessionsClient(KEY, transport=transport, retry=False) as client:
            scope = client.session(BODY, wait=False)
            async with scope:
                pass
            return scope.closed

    assert asyncio.run(main()) == Success("cancelled")
    assert pauses == [0.5, 1.0]  # the blocking scope's cancel backoff
    assert service.live_sessions() == ()


def _exit_in_a_blocking_block(client: SessionsClient) -> None:
    with client.session(BODY, wait=False) as started:
        assert isinstance(started, Success)
        raise SystemExit(3)


async def _exit_in_an_async_block(client: AsyncSessionsClient) -> None:
    async with client, client.session(BODY, wait=False) as started:
        assert isinstance(started, Success)
        raise SystemExit(4)


def test_sys_exit_in_the_block_cancels_the_session_in_both_forms() -> None:
    # sys.exit() in a script's block is neither an Exception nor a KeyboardInterrupt.
    service = FakeService(ready_after_polls=0)
    with pytest.raises(SystemExit):
        _exit_in_a_blocking_block(_client(service))
    assert service.live_sessions() == ()
    aclient = AsyncSessionsClient(KEY, transport=AsyncFakeTransport(service))
    with pytest.raises(SystemExit):
        asyncio.run(_exit_in_an_async_block(aclient))
    assert service.live_sessions() == ()
    assert [m for m, _ in service.requests_seen].count("DELETE") == 2


def test_both_clients_report_each_poll_of_wait_until_ready() -> None:
    service = FakeService(ready_after_polls=0)  # ready on the first poll: no waiting at all
    client = _client(service)
    sid = client.create(BODY).unwrap().session_id
    polls: list[int] = []
    waited = client.wait_until_ready(sid, timeout=30, on_poll=lambda n, _: polls.append(n))
    assert isinstance(waited, Success)
    assert polls == [1]

    async def main() -> None:
        async with AsyncSessionsClient(KEY, transport=AsyncFakeTransport(service)) as aclient:
            ready = await aclient.wait_until_ready(
                sid, timeout=30, on_poll=lambda n, _: polls.append(10 + n)
            )
            assert isinstance(ready, Success)

    asyncio.run(main())
    assert polls == [1, 11]


def test_a_confirmed_cancel_logs_nothing_at_error(caplog: pytest.LogCaptureFixture) -> None:
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


def test_a_scope_whose_create_failed_is_not_entered_again_in_either_form() -> None:
    # The first entry was refused (unknown machine): a second ``with`` must not try again and
    # start a session behind the caller's back, in either form.
    service = FakeService()
    gone = CreateSessionBody(machine_id="fa4e0000-0000-4000-8000-00000000dead")
    scope = _client(service).session(gone, wait=False)
    with scope as started:
        assert isinstance(started, Failure)
    with pytest.raises(RuntimeError, match="only once"), scope:
        pass

    async def main() -> None:
        async with AsyncSessionsClient(KEY, transport=AsyncFakeTransport(service)) as client:
            ascope = client.session(gone, wait=False)
            async with ascope as begun:
                assert isinstance(begun, Failure)
            with pytest.raises(RuntimeError, match="only once"):
                async with ascope:
                    pass

    asyncio.run(main())
    assert [m for m, _ in service.requests_seen].count("POST") == 2
