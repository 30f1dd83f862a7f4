"""The asyncio adapters over a blocking transport (``cdsessions/transports/_inline.py`` and
``_threaded.py``): every option passed on, closing only what they own, and time spent waiting for
a worker thread counted against the attempt's deadline."""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Callable, Generator
from typing import Final

import msgspec
import pytest
from returns.result import Failure, Result, Success

from cdsessions import Timeout, TransportFailed
from cdsessions._core.logs import Piece
from cdsessions._core.wire import HttpRequest, HttpResponse
from cdsessions.fake import ManualClock
from cdsessions.transports._inline import InlineTransport
from cdsessions.transports._threaded import ThreadedTransport
from tests.support.transports import Recorder, ok

WIRE_TIMEOUT: Final = Timeout(connect=2, read=2, total=5)
#: How long a test waits for what a bug would stop from happening (it happens at once, or never).
NEVER: Final = 10.0


class Closable(Recorder):
    closed = 0

    def close(self) -> None:
        self.closed += 1


class Held(Recorder):
    """Answers only once ``release`` is set: keeps the one worker thread busy. ``entered`` is set
    when a call has reached it (the worker is taken)."""

    def __init__(self) -> None:
        super().__init__(ok(b"[]"))
        self.entered = threading.Event()
        self.release = threading.Event()

    def send(self, request: HttpRequest) -> Result[HttpResponse, TransportFailed]:
        self.entered.set()
        self.release.wait(5)
        return super().send(request)


def test_the_inline_adapter_passes_every_option_on_and_closes_what_it_wraps() -> None:
    """Bugs: ``InlineTransport`` replacing the caller's size cap; ``aclose`` not closing.

    Found by applying a deliberate bug the older tests let through."""
    inner = Closable(ok(b"[]"))
    adapter = InlineTransport(inner)
    request = HttpRequest("GET", "/sessions")
    asyncio.run(
        adapter.send(
            msgspec.structs.replace(
                request, timeout=WIRE_TIMEOUT, max_response_bytes=1234, operation="list"
            )
        )
    )
    assert [(r.path, t, m) for r, t, m in inner.sent] == [(request.path, WIRE_TIMEOUT, 1234)]
    asyncio.run(adapter.aclose())
    assert inner.closed == 1


def test_the_threaded_adapter_closes_its_transport_only_when_it_owns_it() -> None:
    """Bug: ``ThreadedTransport.aclose`` leaving the wrapped transport (its pool) open.

    Found by applying a deliberate bug the older tests let through."""
    owned, shared = Closable(ok(b"[]")), Closable(ok(b"[]"))
    asyncio.run(ThreadedTransport(owned, max_workers=1).aclose())
    asyncio.run(ThreadedTransport(shared, max_workers=1, close_transport=False).aclose())
    assert (owned.closed, shared.closed) == (1, 0)


def test_time_waiting_for_a_worker_counts_against_the_attempts_deadline() -> None:
    """Bug: a call queued behind a busy worker given its whole ``total`` again once it runs.

    Found by applying a deliberate bug the older tests let through. The wait is timed on a
    manual clock: it lasts exactly 0.4 s, with no sleeping."""
    inner = Held()
    clock = ManualClock()
    threaded = ThreadedTransport(inner, max_workers=1, _clock=clock)
    timeout = Timeout(connect=1, read=1, total=2)

    async def two_calls() -> None:
        first = asyncio.ensure_future(threaded.send(_request("1", timeout)))
        await asyncio.to_thread(inner.entered.wait, 5)  # the only worker is busy
        second = asyncio.ensure_future(threaded.send(_request("2", timeout)))
        await _until(lambda: threaded._queued == 1)  # queued for the worker
        clock.advance(0.4)
        inner.release.set()
        await asyncio.gather(first, second)
        await threaded.aclose()

    asyncio.run(two_calls())
    totals = [sent_timeout.total for _, sent_timeout, _ in inner.sent]
    assert totals == [2, pytest.approx(2 - 0.4)]


def _request(operation: str, timeout: Timeout) -> HttpRequest:
    request = HttpRequest("GET", "/sessions", timeout=timeout, max_response_bytes=10)
    return msgspec.structs.replace(request, operation=operation)


async def _until(condition: Callable[[], bool]) -> None:
    """Let the event loop run until ``condition`` holds (a bounded number of turns)."""
    for _ in range(1000):
        if condition():
            return
        await asyncio.sleep(0)
    raise AssertionError("the condition never held")


def test_a_call_still_waiting_for_a_worker_at_its_deadline_fails_unsent() -> None:
    inner = Held()
    threaded = ThreadedTransport(inner, max_workers=1)

    async def scene() -> Result[HttpResponse, TransportFailed]:
        first = asyncio.ensure_future(threaded.send(_request("1", WIRE_TIMEOUT)))
        await asyncio.to_thread(inner.entered.wait, 5)
        quick = Timeout(connect=1, read=1, total=0.05)
        async with asyncio.timeout(NEVER):  # a bug that waits on would fail here, not hang
            late = await threaded.send(_request("2", quick))  # the worker stays busy meanwhile
        assert not first.done()  # it failed at its own deadline, not once the worker came free
        inner.release.set()
        await first
        await threaded.aclose()
        return late

    late = asyncio.run(scene())
    assert isinstance(late, Failure), late
    error = late.failure()
    assert (error.kind, error.sent) == ("timeout", False), error
    assert "no worker thread became free in time" in error.problem
    assert [request.operation for request, _, _ in inner.sent] == ["1"]


def test_a_call_waiting_for_a_worker_when_the_adapter_closes_fails_unsent() -> None:
    inner = Held()
    threaded = ThreadedTransport(inner, max_workers=1, close_transport=False)

    async def scene() -> Result[HttpResponse, TransportFailed]:
        first = asyncio.ensure_future(threaded.send(_request("1", WIRE_TIMEOUT)))
        await asyncio.to_thread(inner.entered.wait, 5)
        second = asyncio.ensure_future(threaded.send(_request("2", WIRE_TIMEOUT)))
        await _until(lambda: threaded._queued == 1)
        closing = asyncio.ensure_future(threaded.aclose())  # waits for the first
        await _until(lambda: threaded._closes == 1)
        inner.release.set()  # the worker comes free, to a call queued before the close
        await asyncio.gather(first, closing)
        return await second

    refused = asyncio.run(scene())
    assert isinstance(refused, Failure), refused
    error = refused.failure()
    assert (error.kind, error.sent) == ("connect", False), error
    assert "closed" in error.problem
    assert [request.operation for request, _, _ in inner.sent] == ["1"]


class Streaming(Recorder):
    """Streams two pieces, noting the name of the thread each read of the stream ran in."""

    def __init__(self) -> None:
        super().__init__(ok(b"[]"))
        self.readers: list[str] = []

    def stream(self, request: HttpRequest) -> Generator[Piece, None, None]:
        for piece in (b"a", b"b"):
            self.readers.append(threading.current_thread().name)
            yield Success(piece)


def test_a_stream_is_read_in_a_named_thread_of_its_own_not_a_pool_worker() -> None:
    inner = Streaming()
    threaded = ThreadedTransport(inner, max_workers=1)

    async def scene() -> list[Piece]:
        got = [piece async for piece in threaded.astream(_request("s", WIRE_TIMEOUT))]
        await threaded.aclose()
        return got

    assert asyncio.run(scene()) == [Success(b"a"), Success(b"b")]
    # Named, so a thread dump tells the stream's reader from the pool's workers.
    assert len(inner.readers) == 2
    assert all(name.startswith("cdsessions-stream") for name in inner.readers), inner.readers
