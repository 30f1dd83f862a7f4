"""The asyncio client's session scope: task cancellation and timeouts around a session, and no
session outliving its block. Each test runs its own event loop with ``asyncio.run``."""

from __future__ import annotations

import asyncio
import logging

import pytest
from returns.result import Failure, Result, Success

from cdsessions import AsyncSessionsClient, CreateSessionBody, DecodeFailed, HttpError
from cdsessions._core.wire import HttpRequest, HttpResponse
from cdsessions.errors import InvalidRequest, TransportFailed
from cdsessions.fake import DEFAULT_MACHINE_ID, AsyncFakeTransport, FakeService
from cdsessions.lifecycle import AsyncSessionScope
from cdsessions.transports._inline import InlineTransport
from tests.support.checks import failure_of, run
from tests.support.samples import INVALID_UTF8, UNMASKED_URL
from tests.support.transports import FailingDeletes, Rewriting

KEY = "sk-async-0123456789"
BODY = CreateSessionBody(machine_id=DEFAULT_MACHINE_ID)


class Held(AsyncFakeTransport):
    """The fake in memory, with a gate in front of one method: such requests wait until
    ``gate`` opens, either before reaching the fake (``before=True``) or after it has acted,
    before its answer comes back (the create that reached the server, the reply still on the
    way)."""

    def __init__(self, service: FakeService, method: str, *, before: bool) -> None:
        super().__init__(service)
        self.method = method
        self.before = before
        self.gate = asyncio.Event()
        self.arrived = asyncio.Event()

    async def send(self, request: HttpRequest) -> Result[HttpResponse, TransportFailed]:
        if request.method != self.method:
            return await super().send(request)
        self.arrived.set()
        if self.before:
            await self.gate.wait()
        answer = await super().send(request)
        await self.gate.wait()
        return answer


async def _cancelled(task: asyncio.Task[None]) -> None:
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task


async def _inside_scope(
    client: AsyncSessionsClient, scopes: list[AsyncSessionScope], inside: asyncio.Event
) -> None:
    """Open a session and stay in the block; ``inside`` is set once the body runs, so a test
    can cancel provably inside the block and not during the readiness wait."""
    scope = client.session(BODY, ready_timeout=5)
    scopes.append(scope)
    async with scope as started:
        assert isinstance(started, Success), started
        inside.set()
        await asyncio.sleep(3600)
    raise AssertionError("the block ended without being cancelled")  # pragma: no cover


async def _until_inside(inside: asyncio.Event) -> None:
    await asyncio.wait_for(inside.wait(), 10)


def test_cancelling_the_task_inside_the_scope_cancels_the_session() -> None:
    service = FakeService(ready_after_polls=2)

    async def scenario() -> None:
        async with AsyncSessionsClient(KEY, transport=AsyncFakeTransport(service)) as client:
            scopes: list[AsyncSessionScope] = []
            inside = asyncio.Event()
            task = asyncio.create_task(_inside_scope(client, scopes, inside))
            await _until_inside(inside)  # the body runs: the cancel lands inside the block
            assert [s.session_id for s in service.live_sessions()] == [scopes[0].session_id]
            await _cancelled(task)
            # Cancelled when the task ended, not later on close.
            assert service.live_sessions() == ()
            assert scopes[0].closed == Success("cancelled")

    asyncio.run(scenario())


def test_a_timeout_inside_the_scope_cancels_the_session() -> None:
    service = FakeService(ready_after_polls=2)
    ran: list[str] = []

    async def scenario() -> None:
        async with AsyncSessionsClient(KEY, transport=AsyncFakeTransport(service)) as client:
            scope = client.session(BODY, ready_timeout=5)

            async def overrun() -> None:
                # No deadline while the scope opens; the body sets one, so it fires in the body.
                async with asyncio.timeout(None) as deadline, scope as started:
                    assert isinstance(started, Success), started
                    assert len(service.live_sessions()) == 1
                    ran.append("body")
                    deadline.reschedule(asyncio.get_running_loop().time() + 0.05)
                    await asyncio.sleep(3600)
                    ran.append("not cancelled")  # pragma: no cover

            with pytest.raises(TimeoutError):
                await overrun()
            assert ran == ["body"]
            assert service.live_sessions() == ()
            assert scope.closed == Success("cancelled")

    asyncio.run(scenario())


def test_an_exception_in_the_body_cancels_the_session_and_propagates() -> None:
    service = FakeService(ready_after_polls=2)
    ran: list[str] = []

    async def scenario() -> None:
        async with AsyncSessionsClient(KEY, transport=AsyncFakeTransport(service)) as client:
            scope = client.session(BODY, ready_timeout=5)

            async def fail_inside() -> None:
                async with scope as started:
                    assert isinstance(started, Success), started
                    assert len(service.live_sessions()) == 1
                    ran.append("body")
                    raise ZeroDivisionError

            with pytest.raises(ZeroDivisionError):
                await fail_inside()
            assert ran == ["body"]
            # Cancelled by the scope's exit, before the client closes.
            assert service.live_sessions() == ()
            assert scope.closed == Success("cancelled")

    asyncio.run(scenario())


def test_cancelled_while_waiting_for_ready_the_session_is_cancelled() -> None:
    service = FakeService(ready_after_polls=None)  # never ready

    async def scenario() -> None:
        async with AsyncSessionsClient(KEY, transport=AsyncFakeTransport(service)) as client:
            inside = asyncio.Event()
            scopes: list[AsyncSessionScope] = []
            task = asyncio.create_task(_inside_scope(client, scopes, inside))
            while not service.live_sessions():
                await asyncio.sleep(0.01)
            await _cancelled(task)
            assert not inside.is_set()  # cancelled in the readiness wait, not in the body
            assert service.live_sessions() == ()
            assert scopes[0].closed == Success("cancelled")

    asyncio.run(scenario())


def test_cancelled_again_during_the_cancel_the_cancel_still_finishes_by_close() -> None:
    service = FakeService()

    async def scenario() -> None:
        transport = Held(service, "DELETE", before=True)
        client = AsyncSessionsClient(KEY, transport=transport)
        inside = asyncio.Event()
        task = asyncio.create_task(_inside_scope(client, [], inside))
        await _until_inside(inside)
        task.cancel()
        await transport.arrived.wait()  # the scope's cancel is now held at the gate
        await _cancelled(task)  # a second cancellation: the task ends, the cancel goes on
        assert len(service.live_sessions()) == 1
        transport.gate.set()
        await client.aclose()
        assert service.live_sessions() == ()

    asyncio.run(scenario())


@pytest.mark.parametrize("reached_the_server", [True, False], ids=["reply-lost", "not-yet-sent"])
def test_cancelled_while_create_is_in_flight_no_session_is_left_once_closed(
    reached_the_server: bool,
) -> None:
    service = FakeService()

    async def scenario() -> None:
        transport = Held(service, "POST", before=not reached_the_server)
        client = AsyncSessionsClient(KEY, transport=transport)
        inside = asyncio.Event()
        task = asyncio.create_task(_inside_scope(client, [], inside))
        await transport.arrived.wait()
        await _cancelled(task)
        assert not inside.is_set()
        # The create is still held: its session, if any, has an id nobody has seen yet.
        assert len(service.live_sessions()) == (1 if reached_the_server else 0)
        transport.gate.set()
        await client.aclose()
        assert service.live_sessions() == ()
        assert service.requests_handled == 2  # the create, then the cancel of what it made

    asyncio.run(scenario())


JSON = (("content-type", "application/json"),)


TUNNEL = "https://ta-01jsecretlabel.r5.modal.host"


def test_the_async_scope_cancels_when_the_get_after_create_answers_invalid_utf8() -> None:
    """From issue 10: the boundary never raises."""
    service = FakeService(ready_after_polls=3)
    transport = Rewriting(service, {"GET": HttpResponse(200, JSON, INVALID_UTF8)})

    async def scenario() -> None:
        async with AsyncSessionsClient(KEY, transport=InlineTransport(transport)) as client:
            scope = client.session(BODY)
            async with scope as started:
                assert isinstance(failure_of(started), DecodeFailed)
                assert scope.session_id is not None
            assert scope.closed == Success("cancelled")

    run(scenario())
    assert service.live_sessions() == ()


def test_the_async_scope_error_line_holds_no_url(caplog: pytest.LogCaptureFixture) -> None:
    """From issue 10: the boundary never raises."""
    service = FakeService()
    moved = HttpResponse(307, (("Location", f"{TUNNEL}/session/x"),), b"")
    transport = Rewriting(service, {"DELETE": moved})
    caplog.set_level(logging.DEBUG, logger="cdsessions")

    async def scenario() -> None:
        async with AsyncSessionsClient(KEY, transport=InlineTransport(transport)) as client:
            scope = client.session(BODY, wait=False)
            async with scope as started:
                assert isinstance(started, Success)
            assert isinstance(scope.closed, Failure)

    run(scenario())
    errors = [r for r in caplog.records if r.levelno == logging.ERROR]
    assert len(errors) == 1
    for record in caplog.records:
        assert not UNMASKED_URL.search(record.getMessage())
        assert "modal.host" not in record.getMessage()


def _refuse_deletes(request: HttpRequest) -> HttpResponse | None:
    # A refusal no retry can change (the key was revoked mid-block): one try, no waiting.
    if request.method == "DELETE":
        return HttpResponse(
            401, (("content-type", "application/json"),), b'{"detail":"Revoked token"}'
        )
    return None


def test_an_async_session_scope_is_entered_only_once_and_starts_one_session() -> None:
    """Found by applying a deliberate bug the older tests let through."""
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


def test_async_extend_after_the_block_is_refused_and_sends_nothing() -> None:
    """Found by applying a deliberate bug the older tests let through."""
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


def test_an_async_scope_whose_cancel_fails_logs_the_session_at_error(
    caplog: pytest.LogCaptureFixture,
) -> None:
    """Found by applying a deliberate bug the older tests let through."""
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


def test_an_async_scope_retries_a_transient_cancel_failure_like_the_blocking_one(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Found by applying a deliberate bug the older tests let through."""
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
