"""``AsyncSessionsClient``: the asyncio shell over the same core as :class:`SessionsClient`.

Every decision (the request, the retry plan, the timeouts, what observers see, the decoded
``Result``) is made by the steps in :mod:`cdsessions._core.calls` and :mod:`cdsessions.lifecycle`;
this shell only awaits an :class:`~cdsessions.transports.base.AsyncTransport` and
``asyncio.sleep``. So both clients send the same requests and return the same values::

    async with AsyncSessionsClient() as client:
        found = await client.list()

By default requests go through :class:`~cdsessions.transports.Urllib3Transport` in a pool of
``max_connections`` worker threads (:class:`~cdsessions.transports._threaded.ThreadedTransport`).
"""

from __future__ import annotations

import asyncio
import builtins  # ``list`` is a method name below; annotations need the type
from collections.abc import Coroutine
from functools import cached_property
from types import TracebackType
from typing import TYPE_CHECKING, Any, TypeVar

from returns.result import Failure, Result, Success

from cdsessions import lifecycle
from cdsessions._client_base import ClientBase
from cdsessions._core.calls import CallSteps
from cdsessions._core.retry import Outcome, RetryPolicy
from cdsessions._core.steps import drive_async
from cdsessions._core.timeouts import Timeout
from cdsessions._core.wire import HttpRequest
from cdsessions.errors import ApiError
from cdsessions.lifecycle import OpenSession
from cdsessions.models import (
    CreateSessionBody,
    CreateSessionResponse,
    DeleteSessionResponse,
    ExtendSessionResponse,
    Session,
)
from cdsessions.transports.base import AsyncTransport

if TYPE_CHECKING:
    from decimal import Decimal

    from cdsessions._core.pricing import GpuPricing

__all__ = ["AsyncSessionScope", "AsyncSessionsClient"]

T = TypeVar("T")


class AsyncSessionsClient(ClientBase[AsyncTransport]):
    """The asyncio form of :class:`~cdsessions.SessionsClient`: the same options, the same
    operations (awaited), the same ``Result`` values, retries, timeouts and observers.

    ``transport`` is an :class:`~cdsessions.transports.base.AsyncTransport`. None (the
    default) means urllib3 in a pool of ``max_connections`` worker threads, created on first use
    and closed by :meth:`aclose`; a transport you pass in is yours, and is never closed here.
    Observers and a ``bearer`` callable are called on the event loop, so they must not block.

    Use it as ``async with AsyncSessionsClient(...) as client``, or call :meth:`aclose`: closing
    also finishes the cancels of sessions whose scope was interrupted (see :meth:`session`).
    """

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
            return await self._run(self._core.create_within(body, max_cost, timeout, retry))
        return await self._run(self._core.create(body, timeout, retry))

    async def extend(
        self,
        session_id: str,
        minutes: int,
        *,
        timeout: Timeout | float | None = None,
        retry: RetryPolicy | bool | None = None,
    ) -> Result[ExtendSessionResponse, ApiError]:
        """Add ``minutes`` to a live session's timeout (live server only)."""
        return await self._run(self._core.extend(session_id, minutes, timeout, retry))

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
        steps = lifecycle.ready_steps(session_id, timeout=timeout, on_poll=on_poll)
        return await drive_async(steps, lambda poll: self.get(poll.session_id), asyncio.sleep)

    async def _cancel_until_closed(self, session_id: str) -> Result[str, ApiError]:
        """Cancel until the server confirms the session is closed, as
        :func:`cdsessions.lifecycle.cancel_until_closed` does."""
        steps = lifecycle.cancel_steps(session_id)
        return await drive_async(steps, lambda order: self.cancel(order.session_id), asyncio.sleep)

    def session(
        self,
        body: CreateSessionBody,
        *,
        wait: bool = True,
        ready_timeout: float = lifecycle.DEFAULT_READY_TIMEOUT,
        on_poll: lifecycle.OnPoll | None = None,
        max_cost: Decimal | int | str | float | None = None,
    ) -> AsyncSessionScope:
        """An async context manager that creates a session, waits until it is ready (unless
        ``wait=False``) and always cancels it: on exit, on an exception, and when the task is
        cancelled or times out (the cancel is shielded). ``async with client.session(body) as
        started`` gives ``Result[OpenSession, ApiError]``.

        Cancelled while the create is still in flight, the scope lets the create finish in the
        background and cancels the session it made, so no session is left running with an id
        nobody saw; :meth:`aclose` waits for that.

        ``max_cost`` checks the create and every ``await scope.extend(minutes)`` against a
        budget, as :meth:`SessionsClient.session` does."""
        return AsyncSessionScope(
            self,
            body,
            wait=wait,
            ready_timeout=ready_timeout,
            on_poll=on_poll,
            max_cost=max_cost,
        )

    # -- the shell -------------------------------------------------------------------------

    async def _run(self, steps: CallSteps[T]) -> Result[T, ApiError]:
        """Drive a call's steps (:mod:`cdsessions._core.calls`): send with the transport, wait with
        ``asyncio.sleep``. Everything else was decided in the steps."""
        return await drive_async(steps, self._send, asyncio.sleep)

    async def _send(self, request: HttpRequest) -> Outcome:
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

    def _in_background(self, work: Coroutine[Any, Any, T]) -> asyncio.Task[T]:
        """Run ``work`` as a task this client holds until it is done (and aclose awaits)."""
        task = asyncio.ensure_future(work)
        self._background.add(task)
        task.add_done_callback(self._background.discard)
        return task

    # -- lifetime --------------------------------------------------------------------------

    async def aclose(self) -> None:
        """Finish the background cancels, then close the transport this client created (never
        one that was passed in): its worker threads and connections are gone on return."""
        while self._background:  # a finishing create may start a cancel: loop until none
            await asyncio.gather(*self._background, return_exceptions=True)
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


class AsyncSessionScope(lifecycle.ScopeState):
    """The async form of :class:`~cdsessions.lifecycle.SessionScope`: creates a session on
    entry and always cancels it. After the block, :attr:`closed` holds how the cancel ended
    (None when nothing was created) and :attr:`session_id` the id of the session started."""

    def __init__(
        self,
        client: AsyncSessionsClient,
        body: CreateSessionBody,
        *,
        wait: bool = True,
        ready_timeout: float = lifecycle.DEFAULT_READY_TIMEOUT,
        on_poll: lifecycle.OnPoll | None = None,
        max_cost: object = None,
    ) -> None:
        super().__init__(
            body, wait=wait, ready_timeout=ready_timeout, on_poll=on_poll, max_cost=max_cost
        )
        self._client = client
        self._entered = False
        self._closing: asyncio.Task[Result[str, ApiError]] | None = None

    async def __aenter__(self) -> Result[OpenSession, ApiError]:
        if self._entered:
            raise RuntimeError("an AsyncSessionScope can be entered only once")
        self._entered = True
        unusable = self._unusable()  # before the create: a bad ready_timeout starts nothing
        if unusable is not None:
            return unusable
        limit = self._budget_limit()
        if not isinstance(limit, Success):
            return Failure(limit.failure())
        usd = limit.unwrap()
        if usd is not None:
            refused = self._allow(usd, await self._client.gpu_pricing())
            if refused is not None:
                return refused
        creating = self._client._in_background(self._client.create(self._body))
        try:
            created = await asyncio.shield(creating)
        except asyncio.CancelledError:
            # The create may already be on the server: let it finish, then cancel what it made.
            self._client._in_background(self._cancel_once_created(creating))
            raise
        early = self._created(created)
        if early is not None:
            return early
        assert self.session_id is not None  # _created recorded it
        try:
            waited = await self._client.wait_until_ready(
                self.session_id, timeout=self._ready_timeout, on_poll=self._on_poll
            )
        except BaseException:
            # Cancelled (or timed out) while waiting: __aexit__ never runs when __aenter__
            # raises, so close here.
            await self._close()
            raise
        if not isinstance(waited, Success):
            await self._close()  # the body cannot use it: stop the billing now
        return self._ready(waited)

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        if self.session_id is not None:
            await self._close()

    async def extend(self, minutes: int) -> Result[ExtendSessionResponse, ApiError]:
        """Add ``minutes`` to the open session's timeout, checked against the scope's budget
        first, as :meth:`cdsessions.lifecycle.SessionScope.extend` does."""
        checked = self._extension(minutes)
        if not isinstance(checked, Success):
            return Failure(checked.failure())
        session_id, allowance = checked.unwrap()
        return self._extended(allowance, await self._client.extend(session_id, minutes))

    async def _close(self) -> None:
        """Cancel the session, shielded: cancelling the task again only stops the waiting, the
        cancel itself runs on (held by the client, which finishes it in aclose)."""
        if self._closing is None:
            assert self.session_id is not None  # only called once a session exists
            self._closing = self._client._in_background(self._cancel(self.session_id))
        await asyncio.shield(self._closing)

    async def _cancel(self, session_id: str) -> Result[str, ApiError]:
        self.closed = await self._client._cancel_until_closed(session_id)
        lifecycle.report_unclosed(session_id, self.closed)
        return self.closed

    async def _cancel_once_created(
        self, creating: asyncio.Task[Result[CreateSessionResponse, ApiError]]
    ) -> None:
        created = await creating
        if isinstance(created, Success):
            self.session_id = created.unwrap().session_id
            await self._close()
