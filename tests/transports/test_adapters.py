"""The asyncio adapters over a blocking transport (``cdsessions/transports/_inline.py`` and
``_threaded.py``): every option passed on, closing only what they own, and time spent waiting for
a worker thread counted against the attempt's deadline."""

from __future__ import annotations

import asyncio
import threading
from typing import Final

import msgspec
from returns.result import Result

from cdsessions import Timeout, TransportFailed
from cdsessions._core.wire import HttpRequest, HttpResponse
from cdsessions.transports._inline import InlineTransport
from cdsessions.transports._threaded import ThreadedTransport
from tests.support.transports import Recorder, ok

WIRE_TIMEOUT: Final = Timeout(connect=2, read=2, total=5)


class Closable(Recorder):
    closed = 0

    def close(self) -> None:
        self.closed += 1


class Held(Recorder):
    """Answers only once ``release`` is set: keeps the one worker thread busy."""

    def __init__(self) -> None:
        super().__init__(ok(b"[]"))
        self.release = threading.Event()

    def send(self, request: HttpRequest) -> Result[HttpResponse, TransportFailed]:
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

    Found by applying a deliberate bug the older tests let through."""
    inner = Held()
    threaded = ThreadedTransport(inner, max_workers=1)
    request = HttpRequest("GET", "/sessions")
    timeout = Timeout(connect=1, read=1, total=2)

    async def two_calls() -> None:
        first = asyncio.ensure_future(
            threaded.send(
                msgspec.structs.replace(
                    request, timeout=timeout, max_response_bytes=10, operation="1"
                )
            )
        )
        second = asyncio.ensure_future(
            threaded.send(
                msgspec.structs.replace(
                    request, timeout=timeout, max_response_bytes=10, operation="2"
                )
            )
        )
        await asyncio.sleep(0.4)  # the second call waits for the only worker meanwhile
        inner.release.set()
        await asyncio.gather(first, second)
        await threaded.aclose()

    asyncio.run(two_calls())
    totals = [sent_timeout.total for _, sent_timeout, _ in inner.sent]
    assert len(totals) == 2
    assert totals[0] is not None
    assert totals[0] <= 2
    assert totals[1] is not None
    # It waited about 0.4 s of its 2 (counted from when it was queued, just after the sleep
    # began: a little less).
    assert totals[1] <= 2 - 0.3
