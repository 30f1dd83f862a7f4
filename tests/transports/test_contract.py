"""The transport contract: one request value in, a response or a failure out.

Every transport the library ships has ``send(request)`` and nothing more; a transport of one's
own written that way is accepted by both clients, and receives everything the attempt needs on
the request itself: its timeout, its body cap and its operation.
"""

from __future__ import annotations

import asyncio
import inspect
from typing import Any, Final

import pytest
from returns.result import Result, Success

from cdsessions import AsyncSessionsClient, SessionsClient
from cdsessions._core.calls import MAX_LIST_BYTES
from cdsessions._core.timeouts import Timeout
from cdsessions._core.wire import HttpRequest, HttpResponse
from cdsessions.errors import TransportFailed
from cdsessions.fake import AsyncFakeTransport, FakeTransport
from cdsessions.transports._cassette import CassetteTransport
from cdsessions.transports._inline import AsyncCassetteTransport, InlineTransport
from cdsessions.transports._threaded import ThreadedTransport
from cdsessions.transports._urllib3 import Urllib3Transport
from cdsessions.transports.base import AsyncTransport, Transport
from tests.support import samples

KEY: Final = "contract-test-key-0123456789"
JSON: Final = (("Content-Type", "application/json"),)

SHIPPED: Final = [
    Urllib3Transport,
    CassetteTransport,
    FakeTransport,
    ThreadedTransport,
    InlineTransport,
    AsyncCassetteTransport,
    AsyncFakeTransport,
]


@pytest.mark.parametrize("transport", SHIPPED, ids=lambda cls: cls.__name__)
def test_every_shipped_transport_sends_one_request_value(transport: Any) -> None:
    parameters = list(inspect.signature(transport.send).parameters)
    assert parameters == ["self", "request"]


def test_the_protocols_take_one_request_value() -> None:
    for protocol in (Transport, AsyncTransport):
        assert list(inspect.signature(protocol.send).parameters) == ["self", "request"]


class Minimal:
    """A transport of one's own, written against the contract and nothing else."""

    def __init__(self) -> None:
        self.sent: list[HttpRequest] = []

    def send(self, request: HttpRequest) -> Result[HttpResponse, TransportFailed]:
        self.sent.append(request)
        body = b"[]" if request.path == "/sessions" else samples.LIVE_SESSION.encode()
        return Success(HttpResponse(200, JSON, body))

    def close(self) -> None:
        """Nothing to release."""


class AsyncMinimal:
    def __init__(self) -> None:
        self.inner = Minimal()

    async def send(self, request: HttpRequest) -> Result[HttpResponse, TransportFailed]:
        return self.inner.send(request)

    async def aclose(self) -> None:
        """Nothing to release."""


def test_a_transport_written_against_the_contract_serves_the_blocking_client() -> None:
    mine = Minimal()
    usable: Transport = mine  # checked by mypy: the protocol is satisfied
    client = SessionsClient(KEY, transport=usable, timeout=Timeout(1, 2, 3))
    assert client.get(samples.SESSION_ID).unwrap().session_id == samples.SESSION_ID
    assert client.list().unwrap() == []
    got, listed = mine.sent
    assert (got.method, got.path, got.timeout) == (
        "GET",
        f"/session/{samples.SESSION_ID}",
        Timeout(1, 2, 3),
    )
    assert got.operation.startswith("get session")
    assert got.max_response_bytes == 1024 * 1024  # one session
    assert listed.max_response_bytes == MAX_LIST_BYTES  # a list has no pagination
    capped = SessionsClient(KEY, transport=mine, max_response_bytes=1234)
    capped.get(samples.SESSION_ID).unwrap()
    assert mine.sent[-1].max_response_bytes == 1234  # the client's own cap wins


def test_a_transport_written_against_the_contract_serves_the_async_client() -> None:
    mine = AsyncMinimal()
    usable: AsyncTransport = mine

    async def run() -> None:
        async with AsyncSessionsClient(KEY, transport=usable, timeout=Timeout(1, 2, 3)) as client:
            assert (await client.get(samples.SESSION_ID)).unwrap().session_id == samples.SESSION_ID

    asyncio.run(run())
    (got,) = mine.inner.sent
    assert got.timeout == Timeout(1, 2, 3)
    assert got.max_response_bytes == 1024 * 1024
    assert got.operation.startswith("get session")


def test_what_observers_see_is_the_request_sent_without_its_key() -> None:
    seen: list[object] = []
    mine = Minimal()
    SessionsClient(KEY, transport=mine, observers=[seen.append]).get(samples.SESSION_ID)
    (sent,) = mine.sent
    assert ("Authorization", f"Bearer {KEY}") in sent.headers
    assert seen
    for event in seen:
        shown = event.request  # type: ignore[attr-defined]
        assert KEY not in repr(shown.headers)
        assert (shown.timeout, shown.max_response_bytes) == (sent.timeout, sent.max_response_bytes)
