"""A child forked while another thread is inside a client starts afresh, and never hangs.

Each test holds a thread at one point inside a client (creating its transport, closing it, a
request the server has not answered, a host name being resolved) with an Event, forks at that
moment, and has the child make calls against the fake server on 127.0.0.1 and exit with a
status that says what went wrong. The parent waits for the child under a deadline: a child that
hangs is killed and fails the test, it never hangs the suite. Each runs ``ROUNDS`` times.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any, Final

import pytest
from returns.result import Failure, Success

from cdsessions import AsyncSessionsClient, CreateSessionBody, SessionsClient, Timeout
from cdsessions._core.wire import HttpRequest, HttpResponse
from cdsessions.errors import HttpError
from cdsessions.fake import FakeService
from cdsessions.fake.server import FakeHTTPServer
from cdsessions.transports import _urllib3
from cdsessions.transports._fork import register as register_for_fork
from tests.support.forking import HOLD_AT_MOST, Gate, assert_child_ok, fork_and_wait, in_thread

pytestmark = pytest.mark.skipif(not hasattr(os, "fork"), reason="os.fork() is POSIX only")

ROUNDS: Final = 20
KEY: Final = "sk-fork"
HELD: Final = "held-by-the-test"  # a session id whose request the server holds until released
#: The child's calls: every wait the client makes is bounded, so only a lock held by a thread
#: the child does not have can outlast CHILD_DEADLINE.
CHILD_TIMEOUT: Final = Timeout(connect=5, read=5, total=10)


class HoldingService(FakeService):
    """The default fake, except that a request for session ``HELD`` waits at ``gate`` first."""

    def __init__(self, gate: Gate) -> None:
        super().__init__()
        self.gate = gate

    def handle(self, request: HttpRequest) -> HttpResponse:
        if request.path.endswith("/" + HELD):
            self.gate.hold()
        return super().handle(request)


class CountingServer(FakeHTTPServer):
    """Records the peer (client address) of every TCP connection it accepts, and of every one
    that ended (the client closed it: no process holds it open any more)."""

    def __init__(self, service: FakeService) -> None:
        self.peers: list[tuple[str, int]] = []
        self.ended: list[tuple[str, int]] = []
        super().__init__(("127.0.0.1", 0), service, None)

    def process_request(self, request: Any, client_address: Any) -> None:
        self.peers.append(client_address)
        super().process_request(request, client_address)

    def shutdown_request(self, request: Any) -> None:
        with contextlib.suppress(OSError):
            self.ended.append(request.getpeername())
        super().shutdown_request(request)


@contextmanager
def serving(service: FakeService) -> Iterator[CountingServer]:
    server = CountingServer(service)
    thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05})
    thread.start()
    try:
        yield server
    finally:
        server.shutdown()
        server.server_close()
        thread.join(5)


def lists_and_closes(client: SessionsClient) -> int:
    """The child's part: a call that works, then close(). 0, or what failed."""
    if not isinstance(client.list(timeout=CHILD_TIMEOUT), Success):
        return 3
    client.close()
    return 0


# -- the blocking client ------------------------------------------------------------------------


def test_a_child_forked_while_another_thread_creates_the_transport_can_use_the_client(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # The first call creates the transport holding the client's lock; that thread is held there.
    gate = Gate()

    class HeldWhileCreated(_urllib3.Urllib3Transport):
        def __init__(self, **options: Any) -> None:
            super().__init__(**options)
            gate.hold()

    monkeypatch.setattr(_urllib3, "Urllib3Transport", HeldWhileCreated)
    with serving(FakeService()) as server:
        for _ in range(ROUNDS):
            gate.reset()
            client = SessionsClient(KEY, server=server.base_url, retry=False)
            first = in_thread(client.list)
            gate.wait_until_held()
            code = fork_and_wait(lambda: lists_and_closes(client))  # noqa: B023
            gate.released.set()
            first.join(HOLD_AT_MOST)
            assert_child_ok(code)
            assert isinstance(client.list(), Success)  # the parent is unharmed
            client.close()


def test_a_child_forked_while_another_thread_closes_the_client_can_use_and_close_it(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    gate = Gate()

    class HeldWhileClosed(_urllib3.Urllib3Transport):
        def close(self) -> None:
            gate.hold()
            super().close()

    monkeypatch.setattr(_urllib3, "Urllib3Transport", HeldWhileClosed)
    with serving(FakeService()) as server:
        for _ in range(ROUNDS):
            gate.reset()
            client = SessionsClient(KEY, server=server.base_url, retry=False)
            assert isinstance(client.list(), Success)
            closing = in_thread(client.close)
            gate.wait_until_held()
            code = fork_and_wait(lambda: lists_and_closes(client))  # noqa: B023
            gate.released.set()
            closing.join(HOLD_AT_MOST)
            assert_child_ok(code)
            assert not closing.is_alive()


def test_a_child_forked_mid_request_uses_its_own_connections_and_the_parent_gets_its_answer() -> (
    None
):
    gate = Gate()
    with serving(HoldingService(gate)) as server:
        for _ in range(ROUNDS):
            gate.reset()
            client = SessionsClient(KEY, server=server.base_url, retry=False)
            assert isinstance(client.list(), Success)  # one connection, idle in the pool
            answers: list[object] = []
            held = in_thread(lambda: answers.append(client.get(HELD, timeout=60)))  # noqa: B023
            gate.wait_until_held()  # the pooled connection is now busy with the held request
            before = len(server.peers)
            code = fork_and_wait(lambda: lists_and_closes(client))  # noqa: B023
            child_peers = server.peers[before:]
            gate.released.set()
            held.join(HOLD_AT_MOST)
            assert_child_ok(code)
            # The parent's held request got its own answer (the fake's 404), not the child's.
            [answer] = answers
            assert isinstance(answer, Failure)
            assert isinstance(answer.failure(), HttpError)
            assert answer.failure().status == 404
            assert len(child_peers) == 1  # the child connected afresh
            client.close()


def test_a_connection_checked_out_by_another_thread_at_the_fork_is_not_kept_open_by_the_child() -> (
    None
):
    # The child closes its copy of the socket the held request uses: once the parent closes it,
    # the server sees the connection end, while the child still runs. A copy left open in the
    # child (a file descriptor leaked) would keep the connection open until the child exits.
    gate = Gate()
    with serving(HoldingService(gate)) as server:
        for _ in range(5):
            gate.reset()
            client = SessionsClient(KEY, server=server.base_url, retry=False)
            assert isinstance(client.list(), Success)
            held_peer = server.peers[-1]
            held = in_thread(lambda: client.get(HELD, timeout=60))  # noqa: B023
            gate.wait_until_held()
            go_on, let_go = os.pipe()

            def child() -> int:
                code = lists_and_closes(client)  # noqa: B023
                os.read(go_on, 1)  # noqa: B023  (stay alive until the parent has looked)
                return code

            def meanwhile(pid: int) -> None:
                try:
                    gate.released.set()
                    held.join(HOLD_AT_MOST)  # noqa: B023
                    client.close()  # noqa: B023  (the parent closes its connection)
                    ends = time.monotonic() + 5
                    while held_peer not in server.ended and time.monotonic() < ends:  # noqa: B023
                        time.sleep(0.01)
                    assert held_peer in server.ended, "the child kept the connection open"  # noqa: B023
                finally:
                    os.write(let_go, b"x")  # noqa: B023

            assert_child_ok(fork_and_wait(child, meanwhile))
            os.close(go_on)
            os.close(let_go)


def test_a_child_forked_with_an_idle_pooled_connection_opens_its_own() -> None:
    # Sharing the parent's keep-alive socket, parent and child would read each other's answers.
    with serving(FakeService()) as server:
        for _ in range(ROUNDS):
            client = SessionsClient(KEY, server=server.base_url, retry=False)
            assert isinstance(client.list(), Success)
            before = len(server.peers)
            assert_child_ok(fork_and_wait(lambda: lists_and_closes(client)))  # noqa: B023
            assert len(server.peers) == before + 1  # the child's own connection
            assert isinstance(client.list(), Success)
            assert len(server.peers) == before + 1  # the parent kept its connection
            client.close()


def test_a_child_forked_while_a_host_name_is_being_resolved_resolves_it_itself(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # The parent's lookup runs in a resolver thread the child does not have: a child waiting
    # for its answer would wait until its deadline and fail. The stand-in resolver answers
    # 127.0.0.1 itself: what the C library's resolver does after a fork is not under test.
    gate = Gate()

    def held_lookup(host: str, port: int) -> list[tuple[str, int]]:
        gate.hold()
        return [("127.0.0.1", port)]

    monkeypatch.setattr(_urllib3, "_addresses", held_lookup)
    with serving(FakeService()) as server:
        by_name = server.base_url.replace("127.0.0.1", "localhost")
        for _ in range(ROUNDS):
            gate.reset()
            monkeypatch.setattr(_urllib3._resolver, "_known", {})  # nothing cached: look it up
            client = SessionsClient(KEY, server=by_name, retry=False)
            first = in_thread(client.list)
            gate.wait_until_held()
            code = fork_and_wait(lambda: lists_and_closes(client))  # noqa: B023
            gate.released.set()
            first.join(HOLD_AT_MOST)
            assert_child_ok(code)
            client.close()


# -- the async client ---------------------------------------------------------------------------


def test_an_async_client_forked_while_its_worker_threads_are_busy_works_in_the_child() -> None:
    # The parent's event loop runs in another thread, its request held by the server; the
    # child has neither that loop nor the worker thread, and runs its own loop.
    gate = Gate()

    async def child_part(client: AsyncSessionsClient) -> int:
        if not isinstance(await client.list(timeout=CHILD_TIMEOUT), Success):
            return 3
        await client.aclose()  # waits for nothing the child does not have
        return 0

    with serving(HoldingService(gate)) as server:
        for _ in range(ROUNDS):
            gate.reset()
            client = AsyncSessionsClient(KEY, server=server.base_url, retry=False)
            answers: list[object] = []
            busy = in_thread(lambda: answers.append(asyncio.run(client.get(HELD, timeout=60))))  # noqa: B023
            gate.wait_until_held()
            code = fork_and_wait(lambda: asyncio.run(child_part(client)))  # noqa: B023
            gate.released.set()
            busy.join(HOLD_AT_MOST)
            assert_child_ok(code)
            [answer] = answers
            assert isinstance(answer, Failure)
            assert isinstance(answer.failure(), HttpError)
            asyncio.run(client.aclose())


def test_an_async_client_forked_while_another_thread_creates_its_transport_works_in_the_child(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # Another thread's event loop makes the client's first call: held while the transport is
    # built. The child runs a fresh asyncio.run with the same client.
    gate = Gate()

    class HeldWhileCreated(_urllib3.Urllib3Transport):
        def __init__(self, **options: Any) -> None:
            super().__init__(**options)
            gate.hold()

    monkeypatch.setattr(_urllib3, "Urllib3Transport", HeldWhileCreated)
    with serving(FakeService()) as server:
        for _ in range(ROUNDS):
            gate.reset()
            client = AsyncSessionsClient(KEY, server=server.base_url, retry=False)
            first = in_thread(lambda: asyncio.run(client.list()))  # noqa: B023
            gate.wait_until_held()
            code = fork_and_wait(lambda: asyncio.run(async_lists_and_closes(client)))  # noqa: B023
            gate.released.set()
            first.join(HOLD_AT_MOST)
            assert_child_ok(code)
            asyncio.run(client.aclose())


def test_an_async_client_forked_while_another_thread_closes_it_works_in_the_child(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    gate = Gate()

    class HeldWhileClosed(_urllib3.Urllib3Transport):
        def close(self) -> None:
            gate.hold()
            super().close()

    monkeypatch.setattr(_urllib3, "Urllib3Transport", HeldWhileClosed)
    with serving(FakeService()) as server:
        for _ in range(ROUNDS):
            gate.reset()
            client = AsyncSessionsClient(KEY, server=server.base_url, retry=False)
            assert isinstance(asyncio.run(client.list()), Success)
            closing = in_thread(lambda: asyncio.run(client.aclose()))  # noqa: B023
            gate.wait_until_held()
            code = fork_and_wait(lambda: asyncio.run(async_lists_and_closes(client)))  # noqa: B023
            gate.released.set()
            closing.join(HOLD_AT_MOST)
            assert_child_ok(code)
            assert not closing.is_alive()


class HoldingCreates(FakeService):
    """The default fake, except that a create waits at ``gate`` first."""

    def __init__(self, gate: Gate) -> None:
        super().__init__()
        self.gate = gate

    def handle(self, request: HttpRequest) -> HttpResponse:
        if request.method == "POST" and request.path.endswith("/session"):
            self.gate.hold()
        return super().handle(request)


def test_an_async_client_forked_while_another_loop_finishes_a_create_closes_in_the_child() -> None:
    # A scope's create runs as the client's background work (it must finish whatever happens
    # to its caller) on another thread's loop, held by the server. That work is the parent's:
    # the child's aclose() must not wait for a task of a loop it does not run (it raised
    # RuntimeError, "attached to a different loop").
    gate = Gate()
    service = HoldingCreates(gate)
    body = CreateSessionBody(machine_id=FakeService.DEFAULT_MACHINE_ID)

    async def scope(client: AsyncSessionsClient, started: list[object]) -> None:
        async with client.session(body, wait=False) as created:
            started.append(created)

    with serving(service) as server:
        for _ in range(ROUNDS):
            gate.reset()
            client = AsyncSessionsClient(KEY, server=server.base_url, retry=False)
            started: list[object] = []
            in_scope = in_thread(lambda: asyncio.run(scope(client, started)))  # noqa: B023
            gate.wait_until_held()
            code = fork_and_wait(lambda: asyncio.run(async_lists_and_closes(client)))  # noqa: B023
            gate.released.set()
            in_scope.join(HOLD_AT_MOST)
            assert_child_ok(code)
            [created] = started
            assert isinstance(created, Success)
            assert service.live_sessions() == ()  # the parent's scope cancelled its session
            asyncio.run(client.aclose())


async def async_lists_and_closes(client: AsyncSessionsClient) -> int:
    """The child's part for the async client: a call that works, then aclose(). 0, or what
    failed."""
    if not isinstance(await client.list(timeout=CHILD_TIMEOUT), Success):
        return 3
    await client.aclose()
    return 0


# -- the registry -------------------------------------------------------------------------------


class _Resets:
    def __init__(self, fails: bool) -> None:
        self.fails = fails
        self.done = False

    def _after_fork_in_child(self) -> None:
        self.done = True
        if self.fails:
            raise RuntimeError("this reset fails")


def test_a_reset_that_fails_does_not_keep_the_others_from_running() -> None:
    # Ten owners in whatever order the registry keeps them: some working ones come after a
    # failing one. (They are garbage after the test, and so leave the registry.)
    owners = [_Resets(fails=n % 2 == 0) for n in range(10)]
    for owner in owners:
        register_for_fork(owner)
    code = fork_and_wait(lambda: 0 if all(owner.done for owner in owners) else 3)
    assert_child_ok(code)
    assert not any(owner.done for owner in owners)  # the parent is never touched
