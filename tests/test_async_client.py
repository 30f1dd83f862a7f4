"""What only the asyncio client has to get right beyond the session scope: its connection pool
and worker threads under many concurrent calls, cassettes replayed alike in both forms, one
client used from one event loop after another, ``async with`` closing only what it opened, and
``import cdsessions`` loading no asyncio until the asyncio client is asked for."""

from __future__ import annotations

import asyncio
import threading
import time
from collections.abc import Awaitable, Callable
from pathlib import Path

from returns.result import Failure, Result, Success

from cdsessions import AsyncSessionsClient, CreateSessionBody, Timeout
from cdsessions._core.wire import HttpRequest, HttpResponse
from cdsessions.errors import TransportFailed
from cdsessions.fake import DEFAULT_MACHINE_ID, AsyncFakeTransport
from cdsessions.transports._cassette import CassetteTransport
from cdsessions.transports._inline import AsyncCassetteTransport
from tests.support.clocks import wait_until
from tests.support.counting import counting_server
from tests.support.loopback import Reply, serve

KEY = "sk-async-0123456789"


BODY = CreateSessionBody(machine_id=DEFAULT_MACHINE_ID)


CASSETTES = Path(__file__).parent.parent / "cassettes"


def _library_threads(before: set[threading.Thread]) -> list[str]:
    return [t.name for t in threading.enumerate() if t not in before]


def _replay(
    send: Callable[[AsyncSessionsClient], Awaitable[list[Result[object, object]]]],
    transport: AsyncCassetteTransport,
) -> list[Result[object, object]]:
    async def scenario() -> list[Result[object, object]]:
        async with AsyncSessionsClient(KEY, transport=transport) as client:
            return await send(client)

    return asyncio.run(scenario())


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


class _TwoGates(AsyncFakeTransport):
    """The fake in memory; a create and a cancel each wait at a gate of their own, and say
    when they arrived."""

    def __init__(self) -> None:
        super().__init__()
        self.gates = {"POST": asyncio.Event(), "DELETE": asyncio.Event()}
        self.arrived = {"POST": asyncio.Event(), "DELETE": asyncio.Event()}

    async def send(self, request: HttpRequest) -> Result[HttpResponse, TransportFailed]:
        if request.method in self.gates:
            self.arrived[request.method].set()
            await self.gates[request.method].wait()
        return await super().send(request)


async def _turns(count: int) -> None:
    """Let every ready task run ``count`` times: no timing, only the loop's order."""
    for _ in range(count):
        await asyncio.sleep(0)


def test_aclose_waits_for_background_work_that_began_while_it_waited() -> None:
    """A scope cancelled while ``aclose`` already waits for its create hands the session's
    cancel to the background then: ``aclose`` returns only once that cancel is done too, and
    no session is left running. Added for a bug an outside review slipped past the suite
    (issue 23): the background work awaited once, not until there is none."""

    async def scenario() -> None:
        transport = _TwoGates()
        client = AsyncSessionsClient(KEY, transport=transport, retry=False)

        async def scope() -> None:
            async with client.session(BODY, wait=False):
                pass

        user = asyncio.ensure_future(scope())
        await transport.arrived["POST"].wait()  # the create is in flight, in the background
        closing = asyncio.ensure_future(client.aclose())
        await _turns(5)  # aclose now waits for the create
        user.cancel()  # the scope's caller goes away: the cancel will follow the create
        await _turns(5)
        transport.gates["POST"].set()
        await transport.arrived["DELETE"].wait()
        await _turns(20)
        assert not closing.done()  # the cancel is still held at its gate
        transport.gates["DELETE"].set()
        await closing
        assert transport.service.live_sessions() == ()
        assert [m for m, _ in transport.service.requests_seen] == ["POST", "DELETE"]
        assert user.cancelled()

    asyncio.run(scenario())
