"""``AsyncSessionsClient``: the asyncio shell over the same core as :class:`SessionsClient`.

Every decision (the request, the retry plan, the timeouts, what observers see, the decoded
``Result``) is made by the steps in :mod:`cdsessions._core.calls` and
:mod:`cdsessions._core.session_steps`; this shell only awaits an
:class:`~cdsessions.transports.base.AsyncTransport` and ``asyncio.sleep``, and finishes in the
background what must finish when a task is cancelled. So both clients send the same requests and
return the same values::

    async with AsyncSessionsClient() as client:
        found = await client.list()

By default requests go through :class:`~cdsessions.transports.Urllib3Transport` in a pool of
``max_connections`` worker threads (:class:`~cdsessions.transports._threaded.ThreadedTransport`).
"""

from __future__ import annotations

import asyncio
import builtins  # ``list`` is a method name below; annotations need the type
import os
from collections.abc import (
    AsyncGenerator,
    AsyncIterator,
    Awaitable,
    Callable,
    Coroutine,
    Iterable,
    Mapping,
)
from functools import cached_property
from types import TracebackType
from typing import TYPE_CHECKING, Any, TypeVar

import msgspec
from returns.result import Failure, Result, Success

from cdsessions import lifecycle
from cdsessions._client_base import ClientBase
from cdsessions._core import session_steps
from cdsessions._core.clocks import AsyncClock
from cdsessions._core.comfy import MAX_VIEW_BYTES
from cdsessions._core.lease import DEFAULT_LEASE_MINUTES
from cdsessions._core.logs import FOLLOW, SNAPSHOT, FetchLogs, LogReading, Mode, is_gone
from cdsessions._core.retry import Outcome, RetryPolicy
from cdsessions._core.steps import Flow, drive_async
from cdsessions._core.timeouts import Timeout
from cdsessions._core.wire import HttpRequest
from cdsessions.errors import ApiError
from cdsessions.lifecycle import AsyncSessionScope
from cdsessions.models import (
    CreateSessionBody,
    CreateSessionResponse,
    DeleteSessionResponse,
    ExtendSessionResponse,
    LogLine,
    Machine,
    Session,
)
from cdsessions.transports._inline import cannot_stream
from cdsessions.transports.base import AsyncStreamingTransport, AsyncTransport

if TYPE_CHECKING:
    from decimal import Decimal
    from pathlib import Path

    from cdsessions._core.comfy_run import Download
    from cdsessions._core.lease import OnLeaseEnd
    from cdsessions._core.pricing import GpuPricing
    from cdsessions.comfy import AsyncComfyUI
    from cdsessions.comfy_models import RunProgress, RunResult
    from cdsessions.leases import AsyncLease

__all__ = ["AsyncSessionsClient"]

T = TypeVar("T")


class AsyncSessionsClient(ClientBase[AsyncTransport, AsyncClock]):
    """The asyncio form of :class:`~cdsessions.SessionsClient`: the same options, the same
    operations (awaited), the same ``Result`` values, retries, timeouts and observers.

    ``transport`` is an :class:`~cdsessions.transports.base.AsyncTransport`. None (the
    default) means urllib3 in a pool of ``max_connections`` worker threads, created on first use
    and closed by :meth:`aclose`; a transport you pass in is yours, and is never closed here.
    Observers and a ``bearer`` callable are called on the event loop, so they must not block.

    Use it as ``async with AsyncSessionsClient(...) as client``, or call :meth:`aclose`: closing
    also finishes the cancels of sessions whose scope was interrupted (see :meth:`session`).
    """

    #: The close under way, if any: every aclose() meanwhile waits for it rather than return
    #: while it is still closing (the transport is taken at its start).
    _closing: asyncio.Task[None] | None = None

    @cached_property
    def _background(self) -> set[asyncio.Task[Any]]:
        """Work that must finish though nobody awaits it any more (a create whose caller was
        cancelled, a cancel shielded from its caller's cancellation). Holding the tasks keeps
        them from being garbage-collected mid-way; :meth:`aclose` awaits them."""
        return set()

    # -- operations (see SessionsClient for what each one does) -----------------------------

    async def get(
        self,
        session_id: str,
        *,
        timeout: Timeout | float | None = None,
        retry: RetryPolicy | bool | None = None,
    ) -> Result[Session, ApiError]:
        """One session. A 404 means unknown, ended, or another account's."""
        return await self._run(self._core.get(session_id, timeout, retry))

    async def cancel(
        self,
        session_id: str,
        wait_for_shutdown: bool = False,
        *,
        timeout: Timeout | float | None = None,
        retry: RetryPolicy | bool | None = None,
    ) -> Result[DeleteSessionResponse, ApiError]:
        """Stop a session (and its billing). ``wait_for_shutdown`` waits for the machine to stop."""
        return await self._run(self._core.cancel(session_id, wait_for_shutdown, timeout, retry))

    async def list(
        self,
        machine_id: str | None = None,
        *,
        timeout: Timeout | float | None = None,
        retry: RetryPolicy | bool | None = None,
    ) -> Result[builtins.list[Session], ApiError]:
        """Live sessions of the account, or of one machine, always as :class:`Session`."""
        return await self._run(self._core.list(machine_id, timeout, retry))

    async def create(
        self,
        body: CreateSessionBody,
        *,
        timeout: Timeout | float | None = None,
        retry: RetryPolicy | bool | None = None,
        max_cost: Decimal | int | str | float | None = None,
    ) -> Result[CreateSessionResponse, ApiError]:
        """Start a paid session; never repeated once it may have reached the server, unless
        ``retry=RetryPolicy(allow_duplicates=True)``. Cancelling the awaiting task does not
        stop a create already sent: prefer :meth:`session`, which cancels what it made."""
        if max_cost is not None:
            steps = session_steps.budgeted_create(self._core, body, max_cost, timeout, retry)
            return await self._run(steps)
        return await self._run(self._core.create(body, timeout, retry))

    async def extend(
        self,
        session_id: str,
        minutes: int,
        *,
        timeout: Timeout | float | None = None,
        retry: RetryPolicy | bool | None = None,
        check_cap: bool = True,
    ) -> Result[ExtendSessionResponse, ApiError]:
        """Add ``minutes`` to a live session's timeout (live server only); one past the
        24-hour cap is refused before sending, as :meth:`SessionsClient.extend` says."""
        return await self._run(
            session_steps.capped_extend(
                self._core, session_id, minutes, timeout, retry, check_cap=check_cap
            )
        )

    async def gpu_pricing(
        self,
        refresh: bool = False,
        *,
        timeout: Timeout | float | None = None,
        retry: RetryPolicy | bool | None = None,
    ) -> Result[GpuPricing, ApiError]:
        """The GPU price table (USD per second, exact), fetched once and kept for the client's
        lifetime; ``refresh=True`` fetches it again. See :meth:`SessionsClient.gpu_pricing`."""
        return await self._run(self._core.gpu_pricing(refresh, timeout, retry))

    # -- the session's log ------------------------------------------------------------------

    async def logs(
        self, session_id: str, *, level: str | None = None, timeout: Timeout | float | None = None
    ) -> Result[builtins.list[LogLine], ApiError]:
        """The session's log as it is now; see :meth:`SessionsClient.logs`."""
        return await self._run(self._core.logs(session_id, level, timeout))

    async def follow_logs(
        self, session_id: str, *, level: str | None = None, timeout: Timeout | float | None = None
    ) -> AsyncGenerator[Result[LogLine, ApiError], None]:
        """The session's log lines as they come; see :meth:`SessionsClient.follow_logs`."""
        fetch = self._core.log_stream(session_id, level, timeout, FOLLOW)
        if not isinstance(fetch, Success):
            yield Failure(fetch.failure())
            return
        async for line in self._read_logs(fetch.unwrap(), FOLLOW, self._closes, session_id):
            yield line

    async def _read_logs(
        self, fetch: FetchLogs, mode: Mode, began: int, session_id: str = ""
    ) -> AsyncIterator[Result[LogLine, ApiError]]:
        """:meth:`SessionsClient._read_logs` for asyncio: the same :class:`LogReading`."""
        request = fetch.request
        refused = self._refused(request, began)
        if refused is not None:
            yield Failure(refused)
            return
        transport = self._transport_for_use()
        if not isinstance(transport, AsyncStreamingTransport):
            yield Failure(cannot_stream(request, transport))
            return
        reading = LogReading(request.operation, mode, fetch.key_forms)
        pieces = transport.astream(request)
        try:
            async for piece in pieces:
                for result in reading.take(piece):
                    yield result
                if reading.done:
                    break
            else:
                for result in reading.end():
                    yield result
        finally:
            await pieces.aclose()
        if reading.stalled is not None:  # a follower's stall: over if the session is gone
            for result in reading.after_check(is_gone(await self.get(session_id))):
                yield result

    async def _collect_logs(self, fetch: FetchLogs, began: int) -> object:
        lines: builtins.list[LogLine] = []
        async for result in self._read_logs(fetch, SNAPSHOT, began):
            if not isinstance(result, Success):
                return result
            lines.append(result.unwrap())
        return Success(lines)

    async def machine(
        self,
        machine_id: str,
        *,
        timeout: Timeout | float | None = None,
        retry: RetryPolicy | bool | None = None,
    ) -> Result[Machine, ApiError]:
        """One machine, its default ``gpu`` included, never its ``auth_token``; see
        :meth:`SessionsClient.machine`."""
        return await self._run(self._core.machine(machine_id, timeout, retry))

    async def machines(
        self,
        search: str | None = None,
        *,
        timeout: Timeout | float | None = None,
        retry: RetryPolicy | bool | None = None,
    ) -> Result[builtins.list[Machine], ApiError]:
        """The account's machines, filtered by name when ``search`` is given."""
        return await self._run(self._core.machines(search, timeout, retry))

    # -- lifecycle (see cdsessions.lifecycle) ----------------------------------------------

    async def wait_until_ready(
        self,
        session_id: str,
        *,
        timeout: float = lifecycle.DEFAULT_READY_TIMEOUT,
        on_poll: lifecycle.OnPoll | None = None,
    ) -> Result[Session, ApiError]:
        """Poll :meth:`get` until the session's ``url`` is set, exactly as
        :meth:`SessionsClient.wait_until_ready` does (``SessionGone``, ``NotReady``)."""
        steps = session_steps.ready_wait(
            self._core,
            session_id,
            timeout=timeout,
            on_poll=on_poll,
            clock=self._core.clock.monotonic,
        )
        return await self._run(steps)

    def session(
        self,
        body: CreateSessionBody,
        *,
        wait: bool = True,
        ready_timeout: float = lifecycle.DEFAULT_READY_TIMEOUT,
        on_poll: lifecycle.OnPoll | None = None,
        max_cost: Decimal | int | str | float | None = None,
        lease: int | None = None,
        on_lease_end: OnLeaseEnd | None = None,
    ) -> AsyncSessionScope:
        """An async context manager that creates a session, waits until it is ready (unless
        ``wait=False``) and always cancels it: on exit, on an exception, and when the task is
        cancelled or times out (the cancel is shielded). ``async with client.session(body) as
        started`` gives ``Result[OpenSession, ApiError]``.

        Cancelled while the create is still in flight, the scope lets the create finish in the
        background and cancels the session it made, so no session is left running with an id
        nobody saw; :meth:`aclose` waits for that.

        ``max_cost`` checks the create and every ``await scope.extend(minutes)`` against a
        budget, as :meth:`SessionsClient.session` does.

        ``lease`` and ``on_lease_end`` as for :meth:`SessionsClient.session`: the lease is a
        task, stopped before the scope's cancel, so no extension follows it."""
        return AsyncSessionScope(
            self,
            body,
            wait=wait,
            ready_timeout=ready_timeout,
            on_poll=on_poll,
            max_cost=max_cost,
            lease=lease,
            on_lease_end=on_lease_end,
        )

    def comfy(self, session: object) -> AsyncComfyUI:
        """The ComfyUI of ``session`` (a :class:`Session` or create response with its ``url``,
        or the URL itself): queue workflows, read history, move files. The URL is a secret and
        the API key is never sent to it."""
        from cdsessions.comfy import AsyncComfyUI

        return AsyncComfyUI(self, session)

    async def run(
        self,
        session: object,
        workflow: Mapping[str, Any],
        *,
        outputs_to: str | os.PathLike[str],
        inputs: Iterable[str | os.PathLike[str]] | Mapping[str, str | os.PathLike[str]] = (),
        timeout: float = 600.0,
        poll_every: float = 1.0,
        max_file_bytes: int = MAX_VIEW_BYTES,
        on_progress: Callable[[RunProgress], None] | None = None,
    ) -> Result[RunResult, ApiError]:
        """:meth:`SessionsClient.run <cdsessions.SessionsClient.run>` for asyncio: the same
        steps; a cancelled task interrupts ComfyUI before the cancellation goes on."""
        from cdsessions import _runs
        from cdsessions._core.comfy_run import Download

        prepared = _runs.prepare_run(
            self._core,
            session,
            workflow,
            outputs_to,
            inputs,
            timeout,
            poll_every,
            max_file_bytes,
            on_progress,
        )
        if not isinstance(prepared, Success):
            return Failure(prepared.failure())
        flow, directory = prepared.unwrap()
        began = self._closes
        sleep = asyncio.sleep if self._clock is None else self._clock.asleep

        async def act(action: Any) -> object:
            if isinstance(action, Download):
                return await self._download(action, directory, began)
            return await self._send(action, began)

        return await drive_async(flow, act, sleep, self._finish)

    async def _download(self, action: Download, directory: Path, began: int) -> object:
        from cdsessions import _runs

        request = action.request
        refused = self._refused(request, began)
        if refused is not None:
            return Failure(refused)
        transport = self._transport_for_use()
        with _runs.DownloadWriter(directory, action) as writer:
            if isinstance(transport, AsyncStreamingTransport):
                pieces = transport.astream(request)
                try:
                    async for piece in pieces:
                        if not writer.take(piece):
                            break
                finally:
                    await pieces.aclose()
            else:  # a transport that cannot stream: the whole body, under the cap
                answer = await transport.send(request)
                if not isinstance(answer, Success):
                    return answer
                response = answer.unwrap()
                writer.take(Success(msgspec.structs.replace(response, body=b"")))
                writer.take(Success(response.body))
            return writer.finish()

    def lease(
        self,
        session_id: str,
        minutes: int = DEFAULT_LEASE_MINUTES,
        *,
        max_cost: Decimal | int | str | float | None = None,
        on_end: OnLeaseEnd | None = None,
    ) -> AsyncLease:
        """Hold a lease on a session that already exists: ``async with client.lease(session_id)
        as leased`` gives ``Result[LeaseState, ApiError]`` and cancels the session when the
        block ends. Meanwhile a task extends it whenever half of ``minutes`` is left,
        back up to ``minutes``: never past 24 hours from its creation, nor (with ``max_cost``,
        USD) past the budget, each extension checked before it is sent. A failing extension is
        retried within the time left; if the lease cannot be kept, ``on_end(state)`` is told
        and the session cancelled. If this process dies, the session ends by itself within
        ``minutes``."""
        from cdsessions._core.lease import LeaseRecord
        from cdsessions.leases import AsyncLease

        return AsyncLease(
            self, LeaseRecord(minutes), on_end, session_id=session_id, max_cost=max_cost
        )

    # -- the shell -------------------------------------------------------------------------

    async def _run(
        self,
        steps: Flow[HttpRequest | FetchLogs, T],
        sleep: Callable[[float], Awaitable[None]] | None = None,
    ) -> T:
        """Drive steps (a call's, or a flow of them) as :meth:`SessionsClient._run` does, with
        ``sleep`` (the clock's ``asleep``, or ``asyncio.sleep`` on the real time, unless given); a
        region that must finish is finished by
        :meth:`_finish` whatever happens to the awaiting task."""
        if sleep is None:
            sleep = asyncio.sleep if self._clock is None else self._clock.asleep
        began = self._closes  # an aclose() meanwhile fails this call's later requests

        async def send(request: Any) -> object:  # HttpRequest | FetchLogs
            if isinstance(request, FetchLogs):  # a snapshot of a log stream
                return await self._collect_logs(request, began)
            return await self._send(request, began)

        return await drive_async(steps, send, sleep, self._finish)

    async def _send(self, request: HttpRequest, began: int) -> Outcome:
        refused = self._refused(request, began)
        if refused is not None:
            return Failure(refused)
        return await self._transport_for_use().send(request)

    def _transport_for_use(self) -> AsyncTransport:
        if self._transport is None:  # one event loop, one thread: no lock needed
            from cdsessions.transports._threaded import ThreadedTransport
            from cdsessions.transports._urllib3 import Urllib3Transport

            connections = self._core.max_connections
            self._transport = ThreadedTransport(
                Urllib3Transport(max_connections=connections), max_workers=connections
            )
        return self._transport

    async def _finish(
        self,
        work: Coroutine[Any, Any, T],
        then: Callable[[T], Coroutine[Any, Any, object]] | None,
    ) -> T:
        """The driver's hook for a region that must finish (a
        :class:`~cdsessions._core.steps.Finish`): ``work`` runs as a task this client holds, so
        cancelling the awaiting task stops only the waiting. When it is cancelled,
        ``then(answer)`` runs once ``work`` is done (the cancel of a session whose create was in
        flight); :meth:`aclose` waits for both."""
        task = self._in_background(work)
        try:
            return await asyncio.shield(task)
        except asyncio.CancelledError:
            if then is not None:
                self._in_background(_after(task, then))
            raise

    def _in_background(self, work: Coroutine[Any, Any, T]) -> asyncio.Task[T]:
        """Run ``work`` as a task this client holds until it is done (and aclose awaits)."""
        task = asyncio.ensure_future(work)
        self._background.add(task)
        task.add_done_callback(self._background.discard)
        return task

    # -- lifetime --------------------------------------------------------------------------

    async def aclose(self) -> None:
        """Finish the background cancels, then close the transport this client created (never
        one that was passed in): its worker threads and connections are gone on return. Calls
        still under way end with ``TransportFailed(kind="connect", sent=False)`` for every
        request they had not yet sent (a cancel is still sent); an attempt already running
        gets its answer. New calls may use the client again.

        Every call returns only once the client is fully closed: one close runs at a time, as a
        task, and a concurrent call waits for it. Cancelling a call stops only its own wait; the
        close goes on, and the next call waits for it too."""
        closing = self._closing
        if closing is None:
            closing = self._closing = asyncio.ensure_future(self._close())
            closing.add_done_callback(self._closed)
        await asyncio.shield(closing)

    def _after_fork_in_child(self) -> None:
        super()._after_fork_in_child()
        # A close and background work under way at the fork are the parent's: their tasks
        # belong to the parent's loop (awaiting them from another raises) and wait for worker
        # threads the child does not have. The parent finishes them; the child closes its own.
        self._closing = None
        vars(self).pop("_background", None)  # the cached set: a fresh one on next use

    def _closed(self, closing: asyncio.Task[None]) -> None:
        if self._closing is closing:  # the next aclose() starts a close of its own
            self._closing = None

    async def _close(self) -> None:
        while self._background:  # a finishing create may start a cancel: loop until none
            await asyncio.gather(*self._background, return_exceptions=True)
        self._closes += 1  # after the background work, which must still reach the server
        if self._owns_transport and self._transport is not None:
            transport, self._transport = self._transport, None
            await transport.aclose()

    async def __aenter__(self) -> AsyncSessionsClient:
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.aclose()


async def _after(task: asyncio.Task[T], then: Callable[[T], Coroutine[Any, Any, object]]) -> None:
    await then(await task)
