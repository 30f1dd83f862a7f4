"""What only the asyncio client has to get right: task cancellation and timeouts around a
session, many calls at once on one event loop, and nothing (no session, thread or connection)
outliving the client. Each test runs its own event loop with ``asyncio.run``."""

from __future__ import annotations

import asyncio
import logging
import threading
import time
from collections.abc import Awaitable, Callable
from pathlib import Path

import pytest
from returns.result import Failure, Result, Success

from cdsessions import AsyncSessionsClient, CreateSessionBody, DecodeFailed, HttpError, Timeout
from cdsessions._core.wire import HttpRequest, HttpResponse
from cdsessions.async_client import AsyncSessionScope
from cdsessions.errors import InvalidRequest, TransportFailed
from cdsessions.fake import AsyncFakeTransport
from cdsessions.fake.service import DEFAULT_MACHINE_ID, FakeService
from cdsessions.transports._cassette import CassetteTransport
from cdsessions.transports._inline import AsyncCassetteTransport, InlineTransport
from tests.support.checks import failure_of, run
from tests.support.loopback import Reply, serve
from tests.support.samples import INVALID_UTF8, UNMASKED_URL
from tests.support.transports import FailingDeletes, Rewriting
from tests.test_concurrency import counting_server, wait_until

KEY = "sk-async-0123456789"
BODY = CreateSessionBody(machine_id=DEFAULT_MACHINE_ID)
CASSETTES = Path(__file__).parents[2] / "cassettes"


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

    async def send(
        self, request: HttpRequest, *, timeout: Timeout, max_response_bytes: int, operation: str
    ) -> Result[HttpResponse, TransportFailed]:
        if request.method != self.method:
            return await super().send(
                request, timeout=timeout, max_response_bytes=max_response_bytes, operation=operation
            )
        self.arrived.set()
        if self.before:
            await self.gate.wait()
        answer = await super().send(
            request, timeout=timeout, max_response_bytes=max_response_bytes, operation=operation
        )
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


def _library_threads(before: set[threading.Thread]) -> list[str]:
    return [t.name for t in threading.enumerate() if t not in before]


def test_a_hundred_concurrent_gets_share_max_connections_and_leave_nothing_behind() -> None:
    max_connections = 4
    with counting_server() as server:
        before = set(threading.enumerate())

        async def scenario() -> list[Result[object, object]]:
            async with AsyncSessionsClient(
                KEY, server=server.base_url, max_connections=max_connections
            ) as client:
                created = await client.create(BODY)
                session_id = created.unwrap().session_id
                return list(await asyncio.gather(*(client.get(session_id) for _ in range(100))))

        results = asyncio.run(scenario())
        assert len(results) == 100
        assert [r for r in results if not isinstance(r, Success)] == []
        # A hundred calls at once on 4 connections: the pool was used to the full, no further.
        assert len(server.peers) == max_connections
        assert wait_until(lambda: server.open == 0, 5), f"{server.open} connections left open"
        # Worker threads are joined by aclose; the urllib3 watchdog and the server's handler
        # threads end on their own once the connections are closed.
        assert wait_until(lambda: not _library_threads(before), 2), _library_threads(before)


def test_a_call_waiting_for_a_worker_gives_up_at_its_deadline_unsent() -> None:
    with serve(lambda _: Reply(200, b"[]", delay=1.0)) as server:

        async def scenario() -> tuple[Result[object, object], float]:
            async with AsyncSessionsClient(KEY, server=server.base_url, max_connections=1) as c:
                blocker = asyncio.create_task(c.list(timeout=Timeout(1, 2, total=3)))
                while not server.received:  # the only worker and connection are now busy
                    await asyncio.sleep(0.01)
                started = time.monotonic()
                result = await c.get("s", timeout=Timeout(0.3, 0.3, total=0.4), retry=False)
                elapsed = time.monotonic() - started
                assert isinstance(await blocker, Success)
                return result, elapsed

        result, elapsed = asyncio.run(scenario())
        assert len(server.received) == 1  # the waiting call never went out
    assert isinstance(result, Failure)
    error = result.failure()
    assert isinstance(error, TransportFailed)
    assert (error.kind, error.sent) == ("timeout", False)
    assert 0.35 <= elapsed <= 0.9


def test_the_in_memory_transports_start_no_thread() -> None:
    before = set(threading.enumerate())
    seen: list[list[str]] = []

    async def scenario() -> None:
        client = AsyncSessionsClient(KEY, transport=AsyncFakeTransport())
        async with client, client.session(BODY) as started:
            assert isinstance(started, Success)
            await asyncio.gather(*(client.list() for _ in range(20)))
            seen.append(_library_threads(before))

    asyncio.run(scenario())
    assert seen == [[]]


def _replay(
    send: Callable[[AsyncSessionsClient], Awaitable[list[Result[object, object]]]],
    transport: AsyncCassetteTransport,
) -> list[Result[object, object]]:
    async def scenario() -> list[Result[object, object]]:
        async with AsyncSessionsClient(KEY, transport=transport) as client:
            return await send(client)

    return asyncio.run(scenario())


def test_a_cassette_replays_the_same_answers_in_both_forms() -> None:
    path = CASSETTES / "get_ok.yaml"
    loaded = AsyncCassetteTransport.load(path)
    assert isinstance(loaded, Success), loaded
    replayed = loaded.unwrap()

    async def story(client: AsyncSessionsClient) -> list[Result[object, object]]:
        created = await client.create(CreateSessionBody(machine_id=DEFAULT_MACHINE_ID, timeout=5))
        session_id = created.unwrap().session_id
        return [created, await client.get(session_id), await client.get(session_id)]

    answers = _replay(story, replayed)
    assert all(isinstance(answer, Success) for answer in answers), answers

    from cdsessions import SessionsClient

    blocking = CassetteTransport.load(path).unwrap()
    with SessionsClient(KEY, transport=blocking) as client:
        created = client.create(CreateSessionBody(machine_id=DEFAULT_MACHINE_ID, timeout=5))
        session_id = created.unwrap().session_id
        assert [created, client.get(session_id), client.get(session_id)] == answers
    assert replayed.cassette.unplayed == blocking.unplayed


def test_a_missing_cassette_is_a_value() -> None:
    loaded = AsyncCassetteTransport.load(CASSETTES / "no-such-cassette.yaml")
    assert isinstance(loaded, Failure)
    assert loaded.failure().where == "file"


def test_one_client_serves_one_event_loop_after_another() -> None:
    # asyncio.run twice with the same client, with calls queueing for the two workers each
    # time: nothing from the first run's loop may get in the way of the second's.
    with serve(lambda _: Reply(200, b"[]", delay=0.05)) as server:
        client = AsyncSessionsClient(KEY, server=server.base_url, max_connections=2)

        async def crowd() -> list[Result[object, object]]:
            return list(await asyncio.gather(*(client.list() for _ in range(6))))

        assert asyncio.run(crowd()) == [Success([])] * 6
        assert asyncio.run(crowd()) == [Success([])] * 6
        asyncio.run(client.aclose())
        assert len(server.received) == 12


def test_async_with_closes_only_what_it_opened() -> None:
    class Recording(AsyncFakeTransport):
        closed = 0

        async def aclose(self) -> None:
            self.closed += 1

    mine = Recording()

    async def scenario() -> None:
        async with AsyncSessionsClient(KEY, transport=mine) as client:
            assert isinstance(await client.list(), Success)
            assert KEY not in repr(client)

    asyncio.run(scenario())
    assert mine.closed == 0


def test_import_cdsessions_loads_no_asyncio_until_the_async_client_is_asked_for() -> None:
    import subprocess
    import sys

    check = (
        "import sys, cdsessions; loaded = 'asyncio' in sys.modules; "
        "cdsessions.AsyncSessionsClient; print(loaded, 'asyncio' in sys.modules)"
    )
    shown = subprocess.run(
        [sys.executable, "-c", check], capture_output=True, text=True, check=True
    ).stdout.split()
    assert shown == ["False", "True"]


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
