"""An asyncio session scope cancelled twice or three times, at every moment of its life, leaves no
session running once the client is closed, and its session is cancelled exactly once (issue
#18): before the create is sent, while it is in flight, just after it was answered, while
waiting for the session to be ready, in the block, and while cancelling it. Each test is a plain
``asyncio.run``; the fake counts the live sessions afterwards. Most run over the fake in
memory; two moments also over real HTTP with the default (urllib3) transport."""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Awaitable, Callable
from typing import Any

import pytest
from returns.result import Result, Success

from cdsessions import AsyncSessionsClient, CreateSessionBody
from cdsessions._core.wire import HttpRequest, HttpResponse
from cdsessions.errors import TransportFailed
from cdsessions.fake import DEFAULT_MACHINE_ID, AsyncFakeTransport, FakeService
from cdsessions.fake.server import FakeHTTPServer
from cdsessions.leases import AsyncLease
from cdsessions.lifecycle import AsyncSessionScope
from cdsessions.models import MachineGPU

KEY = "sk-cancel-twice-0123456789"
BODY = CreateSessionBody(machine_id=DEFAULT_MACHINE_ID, gpu=MachineGPU.A10G, timeout=10)
PRICES = "/platform/gpu-pricing"


class Gated(AsyncFakeTransport):
    """The fake in memory, with a gate in front of the requests ``held`` picks: they wait until
    ``gate`` opens, before reaching the fake (``before``) or after it acted, with the answer on
    its way back (a create that started a session whose id nobody has seen yet)."""

    def __init__(
        self, service: FakeService, held: Callable[[HttpRequest], bool], *, before: bool
    ) -> None:
        super().__init__(service)
        self.held = held
        self.before = before
        self.gate = asyncio.Event()
        self.arrived = asyncio.Event()
        self.created = asyncio.Event()  # a create's answer was handed back to the client

    async def send(
        self, request: HttpRequest, *args: Any, **kwargs: Any
    ) -> Result[HttpResponse, TransportFailed]:
        if not self.held(request):
            answer = await super().send(request, *args, **kwargs)
            if request.method == "POST":
                self.created.set()
            return answer
        self.arrived.set()
        if self.before:
            await self.gate.wait()
        answer = await super().send(request, *args, **kwargs)
        if not self.before:
            await self.gate.wait()
        return answer


def _method(method: str, path: str | None = None) -> Callable[[HttpRequest], bool]:
    return lambda request: request.method == method and (path is None or request.path == path)


def _polled(service: FakeService) -> bool:
    return any(m == "GET" and p.startswith("/session/") for m, p in service.requests_seen)


async def _until(condition: Callable[[], bool]) -> None:
    async with asyncio.timeout(10):
        while not condition():
            await asyncio.sleep(0.001)


class Moment:
    """One moment of a scope's life at which it is cancelled twice: how to set the fake up,
    when the first cancel lands, and when the second (None: right after the first)."""

    def __init__(
        self,
        *,
        held: Callable[[HttpRequest], bool] = lambda _: False,
        before: bool = True,
        ready_after_polls: int | None = None,
        max_cost: int | None = None,
        first: Callable[[Gated, asyncio.Event], Awaitable[object]],
        second: Callable[[Gated], Awaitable[object]] | None = None,
        creates: int = 1,
    ) -> None:
        self.held = held
        self.before = before
        self.ready_after_polls = ready_after_polls
        self.max_cost = max_cost
        self.first = first
        self.second = second
        self.creates = creates


def _arrived(transport: Gated, inside: asyncio.Event) -> Awaitable[object]:
    return transport.arrived.wait()


def _polling(transport: Gated, inside: asyncio.Event) -> Awaitable[object]:
    return _until(lambda: _polled(transport.service))


def _in_the_block(transport: Gated, inside: asyncio.Event) -> Awaitable[object]:
    return inside.wait()


def _create_answered(transport: Gated, inside: asyncio.Event) -> Awaitable[object]:
    return transport.created.wait()


def _cancel_arrived(transport: Gated) -> Awaitable[object]:
    return transport.arrived.wait()


MOMENTS = {
    # The budget's price fetch: no create has been sent, and none ever is.
    "fetching-prices": Moment(held=_method("GET", PRICES), max_cost=100, first=_arrived, creates=0),
    "create-not-yet-sent": Moment(held=_method("POST"), first=_arrived),
    "create-reply-on-its-way": Moment(held=_method("POST"), before=False, first=_arrived),
    "create-just-answered": Moment(first=_create_answered),
    "waiting-until-ready": Moment(first=_polling),
    "in-the-block": Moment(ready_after_polls=0, first=_in_the_block),
    "cancelling-after-the-wait": Moment(
        held=_method("DELETE"), first=_polling, second=_cancel_arrived
    ),
    "cancelling-after-the-block": Moment(
        held=_method("DELETE"), ready_after_polls=0, first=_in_the_block, second=_cancel_arrived
    ),
}


async def _use(scope: AsyncSessionScope, inside: asyncio.Event) -> None:
    async with scope as started:
        assert isinstance(started, Success), started
        inside.set()
        await asyncio.sleep(3600)


async def _cancel_repeatedly(
    task: asyncio.Task[Any], moment: Moment, transport: Gated, later: bool, times: int
) -> None:
    """Cancel ``task`` ``times`` times: the first at the moment, the second when the moment
    says (or right after the first), each further one after one turn of the loop."""
    task.cancel()
    if moment.second is not None:
        await moment.second(transport)
    elif later:
        for _ in range(3):  # let the first cancellation be under way
            await asyncio.sleep(0)
    task.cancel()
    for _ in range(times - 2):
        await asyncio.sleep(0)
        task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task


@pytest.mark.parametrize("times", [2, 3], ids=["twice", "three-times"])
@pytest.mark.parametrize("later", [False, True], ids=["back-to-back", "one-then-another"])
@pytest.mark.parametrize("name", list(MOMENTS))
def test_a_scope_cancelled_repeatedly_leaves_no_session_running(
    name: str, later: bool, times: int
) -> None:
    moment = MOMENTS[name]
    service = FakeService(ready_after_polls=moment.ready_after_polls)
    scopes: list[AsyncSessionScope] = []

    async def scenario() -> None:
        transport = Gated(service, moment.held, before=moment.before)
        client = AsyncSessionsClient(KEY, transport=transport)
        scope = client.session(BODY, ready_timeout=600, max_cost=moment.max_cost)
        scopes.append(scope)
        inside = asyncio.Event()
        task = asyncio.create_task(_use(scope, inside))
        await moment.first(transport, inside)
        await _cancel_repeatedly(task, moment, transport, later, times)
        transport.gate.set()
        await client.aclose()  # waits for what had to finish: the create, then its cancel

    asyncio.run(scenario())
    assert service.live_sessions() == ()
    methods = [m for m, _ in service.requests_seen]
    assert methods.count("POST") == moment.creates
    assert methods.count("DELETE") == moment.creates  # each session made cancelled, once
    expected = Success("cancelled") if moment.creates else None
    assert scopes[0].closed == expected  # known even when the cancel finished in the background


def test_a_wait_for_timeout_then_a_cancel_while_the_create_is_in_flight() -> None:
    service = FakeService()
    ended: list[BaseException] = []

    async def scenario() -> None:
        transport = Gated(service, _method("POST"), before=False)
        async with AsyncSessionsClient(KEY, transport=transport) as client:
            scope = client.session(BODY)
            task = asyncio.create_task(asyncio.wait_for(_use(scope, asyncio.Event()), 0.05))
            await transport.arrived.wait()
            await asyncio.sleep(0.1)  # the timeout fires while the create's reply is held
            task.cancel()
            try:
                await task
            except (TimeoutError, asyncio.CancelledError) as error:
                ended.append(error)
            assert len(service.live_sessions()) == 1  # made; its id not yet seen
            transport.gate.set()

    asyncio.run(scenario())
    assert len(ended) == 1
    assert service.live_sessions() == ()
    assert [m for m, _ in service.requests_seen].count("DELETE") == 1


def test_cancelled_many_times_while_the_cancel_is_held_it_is_sent_once() -> None:
    service = FakeService(ready_after_polls=0)

    async def scenario() -> None:
        transport = Gated(service, _method("DELETE"), before=True)
        client = AsyncSessionsClient(KEY, transport=transport)
        inside = asyncio.Event()
        task = asyncio.create_task(_use(client.session(BODY), inside))
        await inside.wait()
        task.cancel()
        await transport.arrived.wait()
        for _ in range(5):
            task.cancel()
            await asyncio.sleep(0)
        with pytest.raises(asyncio.CancelledError):
            await task
        transport.gate.set()
        await client.aclose()

    asyncio.run(scenario())
    assert service.live_sessions() == ()
    assert [m for m, _ in service.requests_seen].count("DELETE") == 1


class HeldCreates(FakeService):
    """The fake over real HTTP, holding each create at ``gate`` until the test lets it go."""

    def __init__(self, **options: Any) -> None:
        super().__init__(**options)
        self.gate = threading.Event()
        self.arrived = threading.Event()

    def handle(self, request: HttpRequest) -> HttpResponse:
        if request.method == "POST":
            self.arrived.set()
            self.gate.wait(10)
        return super().handle(request)


@pytest.mark.parametrize("times", [2, 3], ids=["twice", "three-times"])
@pytest.mark.parametrize("moment", ["create-on-the-wire", "waiting-until-ready"])
def test_a_scope_over_real_http_cancelled_repeatedly_leaves_no_session_running(
    moment: str, times: int
) -> None:
    # The default transport (urllib3 in worker threads) against the fake HTTP server: the
    # create's request is on the wire (held by the server), or the session is being polled.
    service = HeldCreates(ready_after_polls=None if moment == "waiting-until-ready" else 1)
    if moment == "waiting-until-ready":
        service.gate.set()
    server = FakeHTTPServer(("127.0.0.1", 0), service, None)
    serving = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05})
    serving.start()

    async def scenario() -> None:
        client = AsyncSessionsClient(KEY, server=server.base_url)
        task = asyncio.create_task(_use(client.session(BODY, ready_timeout=600), asyncio.Event()))
        if moment == "create-on-the-wire":
            await asyncio.to_thread(service.arrived.wait, 10)
        else:
            await _until(lambda: _polled(service))
        task.cancel()
        for _ in range(times - 1):
            await asyncio.sleep(0)
            task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task
        service.gate.set()
        await client.aclose()

    try:
        asyncio.run(scenario())
    finally:
        service.gate.set()
        server.shutdown()
        server.server_close()
        serving.join(10)
    assert service.live_sessions() == ()
    methods = [m for m, _ in service.requests_seen]
    assert (methods.count("POST"), methods.count("DELETE")) == (1, 1)


def test_a_leased_scope_cancelled_again_while_its_lease_stops_still_cancels_its_session() -> None:
    service = FakeService()

    async def main() -> None:
        client = AsyncSessionsClient(KEY, transport=AsyncFakeTransport(service))
        inside = asyncio.Event()
        scopes: list[AsyncSessionScope] = []

        async def owner() -> None:
            scope = client.session(BODY, lease=2)
            scopes.append(scope)
            async with scope as started:
                assert isinstance(started, Success)
                inside.set()
                await asyncio.Event().wait()  # until cancelled

        task = asyncio.ensure_future(owner())
        await inside.wait()
        lease = scopes[0]._lease
        assert isinstance(lease, AsyncLease)
        task.cancel()
        # The owner's exit stops the lease at once (no await before), then waits for its task.
        while not lease._stopped:
            await asyncio.sleep(0)
        assert lease._task is not None
        assert not lease._task.done()  # the lease is still stopping: cancel the owner again now
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)
        await client.aclose()

    asyncio.run(main())
    assert [m for m, _ in service.requests_seen].count("DELETE") == 1
    assert service.live_sessions() == ()
