"""``ThreadedTransport``: a blocking transport, run for asyncio in a bounded pool of threads.

The default transport of :class:`~cdsessions.AsyncSessionsClient` is
:class:`~cdsessions.transports.Urllib3Transport` run this way: no second HTTP stack to install,
and exactly the TLS, timeout, size-cap and error behaviour of the blocking client. There are as
many worker threads as pooled connections (``max_connections``), so a call never holds a thread
while it waits for a connection, and never more connections are open than that.

Time spent waiting for a free worker counts against the attempt's overall deadline
(``timeout.total``): an attempt still waiting at its deadline fails as a ``timeout`` that was
never sent, like one that found no free pooled connection in time.
"""

from __future__ import annotations

import asyncio
import contextlib
import threading
from collections.abc import AsyncGenerator
from concurrent.futures import Future, ThreadPoolExecutor
from typing import Final

import msgspec
from returns.result import Failure, Result

from cdsessions._core.clocks import SYSTEM_CLOCK, Clock
from cdsessions._core.logs import Piece
from cdsessions._core.retry import attempt_timeout
from cdsessions._core.wire import HttpRequest, HttpResponse
from cdsessions.errors import TransportFailed
from cdsessions.transports._fork import register as register_for_fork
from cdsessions.transports._inline import cannot_stream
from cdsessions.transports.base import StreamingTransport, Transport

__all__ = ["ThreadedTransport"]

_QUEUED_TOO_LONG: Final = "no worker thread became free in time (max_connections are all busy)"


def _queued_too_long(request: HttpRequest) -> TransportFailed:
    return TransportFailed(request.operation, "timeout", _QUEUED_TOO_LONG, sent=False)


def _closed_meanwhile(request: HttpRequest) -> TransportFailed:
    return TransportFailed(request.operation, "connect", "the client was closed", sent=False)


def _release_on(loop: asyncio.AbstractEventLoop, free: asyncio.Semaphore) -> None:
    """Give a worker's permit back, from the worker thread; a closed loop needs none back."""
    with contextlib.suppress(RuntimeError):  # the loop closed while the job ran
        loop.call_soon_threadsafe(free.release)


class ThreadedTransport:
    """Runs ``transport`` (blocking) in at most ``max_workers`` threads, started on first use.

    :meth:`aclose` waits for the attempts still running, stops the threads and closes
    ``transport`` (pass ``close_transport=False`` to keep it open, when it is shared). After
    ``os.fork()`` the child starts its own threads (the parent's are not inherited).
    """

    def __init__(
        self,
        transport: Transport,
        *,
        max_workers: int = 10,
        close_transport: bool = True,
        _clock: Clock = SYSTEM_CLOCK,
    ) -> None:
        # Tests only: the clock that times a wait for a worker, so a test can make that wait
        # last exactly as long as it says without sleeping (the wait itself is asyncio's).
        self._clock = _clock
        self.transport = transport
        self._max_workers = max_workers
        self._close_transport = close_transport
        self._forget_threads()
        register_for_fork(self)

    def _after_fork_in_child(self) -> None:
        # The child of os.fork() has none of the parent's worker threads: an executor that
        # believes it has idle workers would queue every job forever, and aclose() would wait
        # for jobs that can never finish. Forget them; new threads start on demand.
        self._forget_threads()

    def _forget_threads(self) -> None:
        """No worker threads, no permits, no running jobs: the state before first use."""
        self._workers: ThreadPoolExecutor | None = None
        # One permit per worker thread, held from submission until the job is done (not until
        # its caller stops waiting), so a submitted job always finds a thread at once and the
        # wait for a permit is the whole wait: it can be bounded by the deadline.
        self._free: asyncio.Semaphore | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._running: set[Future[Result[HttpResponse, TransportFailed]]] = set()
        self._lock = threading.Lock()  # _running shrinks from the worker threads
        self._closes = 0  # aclose() calls: an attempt waiting for a worker meanwhile is refused
        self._queued = 0  # calls waiting for a worker now: a test waits for one to be queued

    async def send(self, request: HttpRequest) -> Result[HttpResponse, TransportFailed]:
        queued, began = self._clock.monotonic(), self._closes
        loop = asyncio.get_running_loop()
        if self._workers is None:
            self._workers = ThreadPoolExecutor(
                self._max_workers, thread_name_prefix="cdsessions-async"
            )
        if self._free is None or self._loop is not loop:
            # A semaphore belongs to one event loop; a client reused from another loop (a
            # second asyncio.run) gets a fresh one rather than an error.
            self._free, self._loop = asyncio.Semaphore(self._max_workers), loop
        free = self._free
        self._queued += 1
        try:
            async with asyncio.timeout(request.timeout.total):
                await free.acquire()
        except TimeoutError:
            return Failure(_queued_too_long(request))
        finally:
            self._queued -= 1
        workers = self._workers
        if workers is None or began != self._closes:  # aclose() began while this one waited
            free.release()
            return Failure(_closed_meanwhile(request))
        job = workers.submit(self._send, queued, request)
        with self._lock:
            self._running.add(job)
        job.add_done_callback(self._forget)
        job.add_done_callback(lambda _: _release_on(loop, free))
        # A cancelled caller stops waiting; the job ends by its own deadline and aclose()
        # waits for it.
        return await asyncio.wrap_future(job)

    def _send(self, queued: float, request: HttpRequest) -> Result[HttpResponse, TransportFailed]:
        timeout = request.timeout
        if timeout.total is not None:
            remaining = timeout.total - (self._clock.monotonic() - queued)
            if remaining <= 0:
                return Failure(_queued_too_long(request))
            shortened = attempt_timeout(timeout, remaining)
            if shortened is not timeout:
                request = msgspec.structs.replace(request, timeout=shortened)
        return self.transport.send(request)

    def _forget(self, job: Future[Result[HttpResponse, TransportFailed]]) -> None:
        with self._lock:
            self._running.discard(job)

    async def astream(self, request: HttpRequest) -> AsyncGenerator[Piece, None]:
        """The wrapped transport's stream, each read in a thread of the stream's own (a
        followed stream may last for hours: it must not hold one of the pool's workers). One
        read at a time, so nothing piles up however slowly the caller takes the pieces; the
        stream ends by its own deadline even if the caller goes away mid-read."""
        transport = self.transport
        if not isinstance(transport, StreamingTransport):
            yield Failure(cannot_stream(request, transport))
            return
        pieces = transport.stream(request)
        reader = ThreadPoolExecutor(1, thread_name_prefix="cdsessions-stream")
        loop = asyncio.get_running_loop()
        try:
            while True:
                piece = await loop.run_in_executor(reader, next, pieces, None)
                if piece is None:
                    return
                yield piece
        finally:
            # Closed in its thread, after any read under way: never two at once on one socket.
            reader.submit(pieces.close)
            reader.shutdown(wait=False)

    async def aclose(self) -> None:
        """Wait for running attempts, stop the worker threads, close the transport. The
        transport can be used again afterwards (new threads start on demand). An attempt still
        waiting for a worker when this begins fails as closed, never sent."""
        self._closes += 1
        with self._lock:
            running = [asyncio.wrap_future(job) for job in self._running]
        if running:
            await asyncio.wait(running)
        workers, self._workers, self._free = self._workers, None, None
        if workers is not None:
            # Every worker is idle now, so joining them is immediate.
            workers.shutdown(wait=True)
        if self._close_transport:
            self.transport.close()

    def __repr__(self) -> str:
        return f"ThreadedTransport({self.transport!r}, max_workers={self._max_workers})"
