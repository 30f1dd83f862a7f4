"""Leases: a session kept alive in small extensions while its owner lives (see
:mod:`cdsessions._core.lease`, where every decision is made). This module is the thin shell
that runs those steps: a daemon thread for :class:`~cdsessions.SessionsClient`
(:class:`Lease`), a task for :class:`~cdsessions.AsyncSessionsClient` (:class:`AsyncLease`).

If the owner dies in any way, the thread or task dies with it, no more extensions are sent, and
the session ends by itself within one lease period.

The lease waits on the client's clock but never moves it: on a
:class:`~cdsessions.fake.ManualClock` it extends when the test has moved the clock far enough.

After ``os.fork()`` the child does not hold its parent's lease (only the parent's thread
extends it): in the child the lease reads ``released`` and leaving it cancels nothing, so a
forked worker cannot end its parent's session.
"""

from __future__ import annotations

import asyncio
import logging
import os
import threading
from collections.abc import Callable
from types import TracebackType
from typing import TYPE_CHECKING, Final

from returns.result import Failure, Result, Success

from cdsessions._core.lease import (
    DEFAULT_LEASE_MINUTES,
    LeaseRecord,
    LeaseState,
    OnLeaseEnd,
    lease_steps,
    leased_session_steps,
    state_of,
)
from cdsessions._core.session_steps import ScopeRecord, close_steps
from cdsessions._core.steps import drive, drive_async
from cdsessions._core.wire import HttpRequest
from cdsessions.errors import ApiError
from cdsessions.transports._fork import register as register_for_fork

if TYPE_CHECKING:
    from decimal import Decimal

    from cdsessions.async_client import AsyncSessionsClient
    from cdsessions.client import SessionsClient

__all__ = ["DEFAULT_LEASE_MINUTES", "AsyncLease", "Lease", "LeaseState", "OnLeaseEnd"]

logger = logging.getLogger("cdsessions.lifecycle")

#: How often (real seconds) a lease on a clock that is not the real time looks at it.
_POLL: Final = 0.005


def _nothing(_: float) -> None:
    pass


class _Stopped(Exception):
    """The owner stopped the lease: thrown into its steps at their next wait or request."""


class _LeaseBase:
    """What both leases share: the record their steps write, and what a caller reads."""

    def __init__(self, record: LeaseRecord, monotonic: Callable[[], float]) -> None:
        self._record = record
        self._monotonic = monotonic
        self._pid = os.getpid()
        # Tests only: called with the clock reading a wait on a caller's clock lasts until, as
        # the thread or task parks there, so a test moves the clock once the lease waits on it.
        self._parked: Callable[[float], None] = _nothing
        register_for_fork(self)

    @property
    def state(self) -> LeaseState | None:
        """The lease now: time left, extensions, spent so far, status and why it ended (None
        until it has a session)."""
        return state_of(self._record, self._monotonic())

    def _after_fork_in_child(self) -> None:
        # The child does not hold the lease: its parent's thread does (see the module docs).
        if self._record.status in ("held", "ending"):
            self._record.status = "released"
        self._forked()

    def _forked(self) -> None:
        """Forget the parent's thread or task (the subclass knows which)."""

    def _owner_here(self) -> bool:
        return os.getpid() == self._pid

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self.state!r})"


class Lease(_LeaseBase):
    """A lease held by a daemon thread of a :class:`~cdsessions.SessionsClient`. Made by
    ``client.lease(session_id, ...)`` (a context manager giving
    ``Result[LeaseState, ApiError]``, which cancels the session on exit) or inside
    ``client.session(body, lease=minutes)`` (read it as ``scope.lease``)."""

    def __init__(
        self,
        client: SessionsClient,
        record: LeaseRecord,
        on_end: OnLeaseEnd | None = None,
        *,
        session_id: str | None = None,
        max_cost: Decimal | int | str | float | None = None,
    ) -> None:
        super().__init__(record, client._core.clock.monotonic)
        self._client = client
        self._on_end = on_end
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._lease_id = session_id
        self._max_cost = max_cost
        self._entered = False

    def _start(self) -> None:
        self._thread = threading.Thread(target=self._hold, name="cdsessions-lease", daemon=True)
        self._thread.start()

    def _hold(self) -> None:
        began = self._client._closes
        core = self._client._core

        def act(request: HttpRequest) -> object:
            if self._stop.is_set() and request.method != "DELETE":
                raise _Stopped  # nothing but the lease's own cancel once stopped
            return self._client._send(request, began)

        steps = lease_steps(core, self._record, core.clock.monotonic, self._on_end)
        try:
            drive(steps, act, self._sleep)
        except _Stopped:
            pass
        except Exception as error:  # the owner's callback failed: the lease is still released
            logger.error("lease thread stopped: %s", type(error).__name__)

    def _sleep(self, seconds: float) -> None:
        if self._client._clock is None:  # the real time
            self._stop.wait(seconds)
        else:  # a clock of the caller's: wait until it has moved on by ``seconds``
            clock = self._client._core.clock
            until = clock.monotonic() + seconds
            self._parked(until)
            while clock.monotonic() < until and not self._stop.wait(_POLL):
                pass
        if self._stop.is_set():
            raise _Stopped

    def stop(self) -> None:
        """Stop extending (the session then ends by itself within one lease). Returns once
        the thread has sent its last request; any number of times, from any thread."""
        self._stop.set()
        thread = self._thread
        if thread is not None and thread is not threading.current_thread():
            thread.join()

    def wait(self, timeout: float | None = None) -> LeaseState | None:
        """Wait until the lease ends by itself (lost, or run out), up to ``timeout`` real
        seconds; the state then."""
        thread = self._thread
        if thread is not None:
            thread.join(timeout)
        return self.state

    def _forked(self) -> None:
        self._stop = threading.Event()
        self._stop.set()
        self._thread = None

    # -- leasing an existing session: ``with client.lease(session_id) as leased`` ------------

    def __enter__(self) -> Result[LeaseState, ApiError]:
        if self._entered or self._lease_id is None:
            raise RuntimeError("a Lease can be entered only once, from client.lease()")
        self._entered = True
        core = self._client._core
        clock = core.clock
        steps = leased_session_steps(
            core, self._record, self._lease_id, self._max_cost, clock.monotonic, clock.time
        )
        started = self._client._run(steps)
        if not isinstance(started, Success):
            return Failure(started.failure())
        self._start()
        state = self.state
        assert state is not None
        return Success(state)

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()

    def close(self) -> None:
        """Stop the lease and cancel its session (the owner is done with it). Any number of
        times; in a forked child it cancels nothing (the parent holds the lease)."""
        self.stop()
        if self._record.session_id is None or not self._owner_here():
            return
        scope = _scope_of(self._record)
        self._client._run(close_steps(self._client._core, scope))
        _closed(self._record, scope)


class AsyncLease(_LeaseBase):
    """A lease held by a task of an :class:`~cdsessions.AsyncSessionsClient`: the same steps
    as :class:`Lease`. Cancelling the task that owns it (its scope, or ``async with
    client.lease(...)``) stops it first: no extension is sent once the cancel begins."""

    def __init__(
        self,
        client: AsyncSessionsClient,
        record: LeaseRecord,
        on_end: OnLeaseEnd | None = None,
        *,
        session_id: str | None = None,
        max_cost: Decimal | int | str | float | None = None,
    ) -> None:
        super().__init__(record, client._core.clock.monotonic)
        self._client = client
        self._on_end = on_end
        self._task: asyncio.Task[None] | None = None
        self._stopped = False
        self._lease_id = session_id
        self._max_cost = max_cost
        self._entered = False

    def _start(self) -> None:
        self._task = asyncio.ensure_future(self._hold())

    async def _hold(self) -> None:
        client = self._client
        core = client._core
        began = client._closes

        async def act(request: HttpRequest) -> object:
            if self._stopped and request.method != "DELETE":
                raise _Stopped
            return await client._send(request, began)

        steps = lease_steps(core, self._record, core.clock.monotonic, self._on_end)
        try:
            await drive_async(steps, act, self._sleep, client._finish)
        except _Stopped:
            pass
        except Exception as error:
            logger.error("lease task stopped: %s", type(error).__name__)

    async def _sleep(self, seconds: float) -> None:
        if self._client._clock is None:
            await asyncio.sleep(seconds)
        else:
            clock = self._client._core.clock
            until = clock.monotonic() + seconds
            self._parked(until)
            while clock.monotonic() < until and not self._stopped:
                await asyncio.sleep(_POLL)
        if self._stopped:
            raise _Stopped

    async def stop(self) -> None:
        """Stop extending and wait for the task to end (any number of times)."""
        self._stopped = True
        task = self._task
        if task is not None and not task.done():
            task.cancel()
            await asyncio.gather(task, return_exceptions=True)

    def _abandon(self) -> None:
        """Stop without waiting (the owner's task is being cancelled)."""
        self._stopped = True
        if self._task is not None:
            self._task.cancel()

    async def wait(self, timeout: float | None = None) -> LeaseState | None:
        """Wait until the lease ends by itself, up to ``timeout`` seconds; the state then."""
        task = self._task
        if task is not None:
            await asyncio.wait([task], timeout=timeout)
        return self.state

    def _forked(self) -> None:
        self._stopped = True
        self._task = None

    async def __aenter__(self) -> Result[LeaseState, ApiError]:
        if self._entered or self._lease_id is None:
            raise RuntimeError("an AsyncLease can be entered only once, from client.lease()")
        self._entered = True
        core = self._client._core
        clock = core.clock
        steps = leased_session_steps(
            core, self._record, self._lease_id, self._max_cost, clock.monotonic, clock.time
        )
        started = await self._client._run(steps)
        if not isinstance(started, Success):
            return Failure(started.failure())
        self._start()
        state = self.state
        assert state is not None
        return Success(state)

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.aclose()

    async def aclose(self) -> None:
        """Stop the lease, then cancel its session (shielded: a second cancellation does not
        stop it). Any number of times."""
        await self.stop()
        if self._record.session_id is None or not self._owner_here():
            return
        scope = _scope_of(self._record)
        await self._client._run(close_steps(self._client._core, scope))
        _closed(self._record, scope)


def _scope_of(record: LeaseRecord) -> ScopeRecord:
    """A scope record for the cancel of a leased session (what :func:`close_steps` reads);
    a session the lease already closed is not cancelled again."""
    scope = ScopeRecord()
    scope.session_id = record.session_id
    scope.lease = record
    if record.closed is not None:
        scope.closed = Success(record.closed)
    return scope


def _closed(record: LeaseRecord, scope: ScopeRecord) -> None:
    """Keep how the owner's cancel ended on the lease, so a second close sends nothing."""
    closed = scope.closed
    if isinstance(closed, Success):
        record.closed = closed.unwrap()
        record.status = "ended"
