"""The blocking and the asyncio session scope take the same arguments, and the same arguments
make them behave the same: the same polls and pauses on a manual clock, the same cancel backoff,
the same answer."""

from __future__ import annotations

import asyncio
import inspect
from collections.abc import Callable
from typing import Any

import pytest
from returns.result import Result, Success

from cdsessions import AsyncSessionsClient, CreateSessionBody, SessionsClient
from cdsessions._core.wire import HttpRequest, HttpResponse
from cdsessions.errors import ApiError, InvalidRequest, NotReady
from cdsessions.fake import DEFAULT_MACHINE_ID, AsyncFakeTransport, FakeService, FakeTransport
from cdsessions.lifecycle import AsyncSessionScope, Backoff, OpenSession, SessionScope

KEY = "sk-scope-arguments-0123456789"
BODY = CreateSessionBody(machine_id=DEFAULT_MACHINE_ID)


def _shape(function: Callable[..., Any]) -> list[tuple[str, Any, Any]]:
    """Each parameter's name, kind and default (annotations name each form's own types)."""
    parameters = inspect.signature(function).parameters.values()
    return [(p.name, p.kind, p.default) for p in parameters]


def test_both_scopes_accept_the_same_arguments() -> None:
    blocking, asynchronous = _shape(SessionScope), _shape(AsyncSessionScope)
    assert blocking == asynchronous
    names = [name for name, _, _ in blocking]
    assert names[:2] == ["client", "body"]
    assert {"backoff", "sleep", "clock", "max_cost", "ready_timeout"} <= set(names)


def test_both_clients_open_scopes_with_the_same_arguments() -> None:
    assert _shape(SessionsClient.session) == _shape(AsyncSessionsClient.session)


class ManualTime:
    """A clock only the scope's sleeps move; records every pause."""

    def __init__(self) -> None:
        self.now = 1000.0
        self.pauses: list[float] = []

    def clock(self) -> float:
        return self.now

    def sleep(self, seconds: float) -> None:
        self.pauses.append(seconds)
        self.now += seconds

    async def asleep(self, seconds: float) -> None:
        self.sleep(seconds)


def _first_deletes_fail(failures: int) -> Callable[[HttpRequest], HttpResponse | None]:
    left = [failures]

    def intercept(request: HttpRequest) -> HttpResponse | None:
        if request.method == "DELETE" and left[0] > 0:
            left[0] -= 1
            return HttpResponse(503, (("content-type", "text/plain"),), b"Service Unavailable")
        return None

    return intercept


Story = tuple[Result[OpenSession, ApiError], Result[str, ApiError] | None, list[float], int]


def _blocking(service: FakeService, time: ManualTime, **options: Any) -> Story:
    client = SessionsClient(KEY, transport=FakeTransport(service), retry=False)
    scope = SessionScope(client, BODY, sleep=time.sleep, clock=time.clock, **options)
    with scope as started:
        pass
    return started, scope.closed, time.pauses, len(service.requests_seen)


def _asyncio(service: FakeService, time: ManualTime, **options: Any) -> Story:
    async def scenario() -> Story:
        transport = AsyncFakeTransport(service)
        async with AsyncSessionsClient(KEY, transport=transport, retry=False) as client:
            scope = AsyncSessionScope(client, BODY, sleep=time.asleep, clock=time.clock, **options)
            async with scope as started:
                pass
            return started, scope.closed, time.pauses, len(service.requests_seen)

    return asyncio.run(scenario())


FORMS = {"blocking": _blocking, "asyncio": _asyncio}


@pytest.mark.parametrize("form", list(FORMS))
def test_backoff_and_clock_shape_the_wait_in_both_forms(form: str) -> None:
    service, time = FakeService(ready_after_polls=None), ManualTime()
    started, closed, pauses, requests = FORMS[form](
        service, time, ready_timeout=5, backoff=Backoff(first=2, factor=1, cap=2)
    )
    error = started.failure()
    assert isinstance(error, NotReady)
    assert (error.polls, error.waited) == (4, 5.0)
    assert pauses == [2.0, 2.0, 1.0]  # the last pause is cut to the deadline
    assert closed == Success("cancelled")
    assert requests == 1 + 4 + 1 + 1  # create, four polls, the log read for why, the cancel
    assert service.live_sessions() == ()


@pytest.mark.parametrize("form", list(FORMS))
def test_the_cancel_backs_off_on_the_scopes_own_sleep_in_both_forms(form: str) -> None:
    service = FakeService(ready_after_polls=0, intercept=_first_deletes_fail(2))
    time = ManualTime()
    started, closed, pauses, _ = FORMS[form](service, time, wait=False)
    assert isinstance(started, Success)
    assert closed == Success("cancelled")
    assert pauses == [0.5, 1.0]
    assert service.live_sessions() == ()


@pytest.mark.parametrize("form", list(FORMS))
def test_an_unusable_backoff_is_refused_before_anything_is_sent_in_both_forms(form: str) -> None:
    service, time = FakeService(), ManualTime()
    started, closed, pauses, requests = FORMS[form](service, time, backoff=Backoff(cap=-1))
    error = started.failure()
    assert isinstance(error, InvalidRequest)
    assert error.field == "backoff"
    assert (closed, pauses, requests) == (None, [], 0)
