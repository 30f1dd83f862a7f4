"""Session lifecycle helpers: wait until a session is ready, and never leave one running.

A session bills per second until it times out or is cancelled, so the helpers here are built
around one promise: **a session started by** :class:`SessionScope` (or
:class:`AsyncSessionScope`) **is cancelled when the block ends**, whether it ends normally, by an
exception, by Ctrl-C (``KeyboardInterrupt``) or by a cancelled task::

    with client.session(CreateSessionBody(machine_id=...)) as started:
        match started:
            case Success(session):
                use(session.url)
            case Failure(error):
                print(error)  # nothing is left running

What the context manager yields is a ``Result``, like every other call in cdsessions: an
anticipated failure (bad key, unknown machine, the session never became ready) comes back as a
``Failure`` value instead of an exception, so the ``with`` body decides what to do. When the
failure happens after the session was created (it vanished or was not ready in time), the
session is cancelled at once, before the body runs.

A cancel answered with 404, or with 400 ``"Modal function id not found"`` (the live server's
answer when a session is cancelled in its first moments; it is closed anyway), counts as closed.
A cancel that fails for a transient reason (connection, 5xx) is tried again, since cancelling
twice is harmless; if it still fails, the failure is kept on :attr:`SessionScope.closed` and
logged at ERROR level with the session id, so a running session is never silently forgotten.

One gap the blocking scope cannot close: if ``create`` itself is interrupted by Ctrl-C after the
request went out, the server may have started a session whose id never arrived (``cdsessions
list`` finds it). The asyncio scope closes it: a cancelled task lets the create finish in the
background and cancels the session it made.

Both scopes are thin: what they do is written once, as steps, in
:mod:`cdsessions._core.session_steps`, and each scope only drives those steps with its client.
"""

from __future__ import annotations

import time
from collections.abc import Awaitable, Callable, Mapping
from types import TracebackType
from typing import TYPE_CHECKING, Any, Final, Generic, Never, TypeVar

from returns.result import Failure, Result, Success

from cdsessions._client_base import ClientBase
from cdsessions._core.session_steps import (
    CANCEL_ATTEMPTS,
    CANCEL_BACKOFF,
    DEFAULT_BACKOFF,
    Backoff,
    Clock,
    OnPoll,
    OpenSession,
    ScopeRecord,
    ScopeSettings,
    answered,
    cancel_steps,
    close_steps,
    counts_as_closed,
    extend_steps,
    open_steps,
    ready_steps,
    report_unclosed,
)
from cdsessions._core.steps import Steps, drive
from cdsessions._core.timeouts import DEFAULT_READY_TIMEOUT
from cdsessions.errors import ApiError, InvalidRequest, NotReady, SessionGone
from cdsessions.models import (
    CreateSessionBody,
    DeleteSessionResponse,
    ExtendSessionResponse,
    Session,
)

if TYPE_CHECKING:
    from decimal import Decimal

    from cdsessions._core.lease import LeaseRecord, LeaseState, OnLeaseEnd

    # Named as strings in the scopes' bases below, which run before these could be imported.
    from cdsessions.async_client import AsyncSessionsClient  # noqa: F401
    from cdsessions.client import SessionsClient  # noqa: F401
    from cdsessions.comfy_models import RunResult

__all__ = [
    "CANCEL_ATTEMPTS",
    "CANCEL_BACKOFF",
    "DEFAULT_READY_TIMEOUT",
    "AsyncSessionScope",
    "Backoff",
    "NotReady",
    "OnPoll",
    "OpenSession",
    "SessionGone",
    "SessionScope",
    "cancel_until_closed",
    "counts_as_closed",
    "report_unclosed",
    "wait_until_ready",
]

Sleep = Callable[[float], None]
AsyncSleep = Callable[[float], Awaitable[None]]

ClientT = TypeVar("ClientT", bound="ClientBase[Any, Any]")
SleepT = TypeVar("SleepT")


def _no_action(action: Never) -> Never:  # the plain-function forms below send nothing
    raise AssertionError(f"unexpected action {action!r}")


def wait_until_ready(
    get: Callable[[str], Result[Session, ApiError]],
    session_id: str,
    *,
    timeout: float = DEFAULT_READY_TIMEOUT,
    backoff: Backoff = DEFAULT_BACKOFF,
    on_poll: OnPoll | None = None,
    sleep: Sleep = time.sleep,
    clock: Clock = time.monotonic,
) -> Result[Session, ApiError]:
    """Poll ``get(session_id)`` until the session has a ``url``.

    The endings are distinct values: ``Success(session)`` once ready; ``Failure(SessionGone)``
    when get answers 404; ``Failure(NotReady)`` when ``timeout`` seconds pass first (the session
    is left as it is); any other failure of ``get`` is returned as it came (retrying transient
    ones is the client's retry policy's job). The first poll is immediate.
    """
    steps: Steps[Never, object, Result[Session, ApiError]] = ready_steps(
        lambda polled: answered(lambda: get(polled)),
        session_id,
        timeout=timeout,
        backoff=backoff,
        on_poll=on_poll,
        clock=clock,
    )
    return drive(steps, _no_action, sleep)


def cancel_until_closed(
    cancel: Callable[[str], Result[DeleteSessionResponse, ApiError]],
    session_id: str,
    *,
    attempts: int = CANCEL_ATTEMPTS,
    backoff: Backoff = CANCEL_BACKOFF,
    sleep: Sleep = time.sleep,
) -> Result[str, ApiError]:
    """Cancel until the server confirms the session is closed.

    ``Success("cancelled")`` or ``Success("already closed")`` (see :func:`counts_as_closed`);
    otherwise the last failure, after up to ``attempts`` tries for transient ones.
    """
    steps: Steps[Never, object, Result[str, ApiError]] = cancel_steps(
        lambda cancelled: answered(lambda: cancel(cancelled)),
        session_id,
        attempts=attempts,
        backoff=backoff,
    )
    return drive(steps, _no_action, sleep)


#: Why a scope's ``run`` is refused before its session is open and ready.
_NOT_OPEN: Final = "the scope has no ready session (enter it with wait=True first)"


class _Scope(Generic[ClientT, SleepT]):
    """What both scopes are: one constructor (so the two accept the same arguments), the steps
    they drive (:mod:`cdsessions._core.session_steps`), and what those steps have learnt."""

    def __init__(
        self,
        client: ClientT,
        body: CreateSessionBody,
        *,
        wait: bool = True,
        ready_timeout: float = DEFAULT_READY_TIMEOUT,
        on_poll: OnPoll | None = None,
        backoff: Backoff = DEFAULT_BACKOFF,
        sleep: SleepT | None = None,
        clock: Clock | None = None,
        max_cost: Decimal | int | str | float | None = None,
        lease: int | None = None,
        on_lease_end: OnLeaseEnd | None = None,
    ) -> None:
        self._client = client
        self._on_lease_end = on_lease_end
        self._lease: Any = None  # the shell's Lease or AsyncLease, once the session exists
        self._settings = ScopeSettings(
            body=body,
            wait=wait,
            ready_timeout=ready_timeout,
            on_poll=on_poll,
            backoff=backoff,
            # None: the client's clock, so a test clock given to the client times the scope too.
            clock=client._core.clock.monotonic if clock is None else clock,
            max_cost=max_cost,
            lease=lease,
            on_leased=self._leased,
        )
        #: None: the client's own (its clock's ``sleep`` or ``asleep``), looked up when used.
        self._sleep = sleep
        self._record = ScopeRecord()
        self._entered = False
        #: The session the scope opened (for ``run``), once entered.
        self._opened: OpenSession | None = None

    @property
    def session_id(self) -> str | None:
        """The id of the session the scope started, once known."""
        return self._record.session_id

    @property
    def closed(self) -> Result[str, ApiError] | None:
        """How the cancel ended; None while nothing was cancelled."""
        return self._record.closed

    @property
    def lease(self) -> LeaseState | None:
        """The session's lease now (time left, extensions, spent so far, status, reason it
        ended); None without ``lease=`` or before the session exists."""
        return None if self._lease is None else self._lease.state

    def _leased(self, record: LeaseRecord) -> None:
        """Called by the scope's steps right after the create: start extending."""
        raise NotImplementedError

    def _enter_once(self) -> None:
        # Once, whatever the first entry gave: a second entry after a failed create would
        # otherwise start a session the caller believes was refused.
        if self._entered:
            raise RuntimeError(f"a {type(self).__name__} can be entered only once")
        self._entered = True

    def __repr__(self) -> str:
        # The id came from the server: shown bounded, like every failure's repr.
        shown = None if self.session_id is None else self.session_id[:80]
        return f"{type(self).__name__}(session_id={shown!r}, closed={self.closed!r})"


class SessionScope(_Scope["SessionsClient", Sleep]):
    """Creates a session on entry and always cancels it on exit.

    ``with scope as started`` gives ``Result[OpenSession, ApiError]``. With ``wait`` (the
    default) entry polls until the url is set, up to ``ready_timeout`` seconds, ``backoff``
    apart; ``sleep`` and ``clock`` (the client's clock's ``sleep`` and ``monotonic`` unless
    given) are used for every wait of the scope. After the block, :attr:`closed` holds how the
    cancel ended (None when nothing was created), and :attr:`session_id` the id of the session
    that was started, if any.
    """

    def __enter__(self) -> Result[OpenSession, ApiError]:
        self._enter_once()
        steps = open_steps(self._client._core, self._settings, self._record)
        try:
            opened = self._client._run(steps, self._sleep)
        except BaseException:
            self._stop_lease()
            raise
        if not isinstance(opened, Success):
            self._stop_lease()  # the steps cancelled the session (if one was made)
        self._opened = opened.value_or(None)
        return opened

    def run(self, workflow: Mapping[str, Any], **options: Any) -> Result[RunResult, ApiError]:
        """:meth:`SessionsClient.run <cdsessions.SessionsClient.run>` on the scope's session
        (same options: ``outputs_to``, ``inputs``, ``timeout``...). Refused, with nothing sent,
        when the scope has no ready session (not entered, failed, or ``wait=False``)."""
        opened = self._opened
        if opened is None or opened.url is None:
            return Failure(InvalidRequest("run workflow", "session", _NOT_OPEN))
        return self._client.run(opened, workflow, **options)

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self._stop_lease()  # before the cancel: no extension is sent after it
        self._client._run(close_steps(self._client._core, self._record), self._sleep)

    def _leased(self, record: LeaseRecord) -> None:
        from cdsessions.leases import Lease

        self._lease = Lease(self._client, record, self._on_lease_end)
        self._lease._start()

    def _stop_lease(self) -> None:
        if self._lease is not None:
            self._lease.stop()

    def extend(self, minutes: int) -> Result[ExtendSessionResponse, ApiError]:
        """Add ``minutes`` to the open session's timeout. In a scope with ``max_cost``, refused
        (an :class:`~cdsessions.errors.OverBudget`, nothing sent) when the session's new worst
        case, all its minutes at its GPU's price, would be over the budget."""
        steps = extend_steps(self._client._core, self._record, minutes)
        return self._client._run(steps, self._sleep)


class AsyncSessionScope(_Scope["AsyncSessionsClient", AsyncSleep]):
    """The async form of :class:`SessionScope`, with the same arguments and steps: creates a
    session on entry and always cancels it, on exit, on an exception, and when the task is
    cancelled or times out. Cancelled while the create is in flight, it lets the create finish
    and cancels the session it made; cancelled again while cancelling, the cancel goes on (the
    client holds it, and :meth:`~cdsessions.AsyncSessionsClient.aclose` waits for it)."""

    async def __aenter__(self) -> Result[OpenSession, ApiError]:
        self._enter_once()
        steps = open_steps(self._client._core, self._settings, self._record)
        try:
            opened = await self._client._run(steps, self._sleep)
        except BaseException:
            if self._lease is not None:
                self._lease._abandon()  # a cancelled task: stop it without awaiting
            raise
        if not isinstance(opened, Success) and self._lease is not None:
            await self._lease.stop()
        self._opened = opened.value_or(None)
        return opened

    async def run(self, workflow: Mapping[str, Any], **options: Any) -> Result[RunResult, ApiError]:
        """:meth:`SessionScope.run` for asyncio."""
        opened = self._opened
        if opened is None or opened.url is None:
            return Failure(InvalidRequest("run workflow", "session", _NOT_OPEN))
        return await self._client.run(opened, workflow, **options)

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        if self._lease is not None:
            self._lease._abandon()  # at once, even if this task is cancelled again
            try:
                await self._lease.stop()
            finally:
                await self._client._run(close_steps(self._client._core, self._record), self._sleep)
            return
        await self._client._run(close_steps(self._client._core, self._record), self._sleep)

    def _leased(self, record: LeaseRecord) -> None:
        from cdsessions.leases import AsyncLease

        self._lease = AsyncLease(self._client, record, self._on_lease_end)
        self._lease._start()

    async def extend(self, minutes: int) -> Result[ExtendSessionResponse, ApiError]:
        """Add ``minutes`` to the open session's timeout, checked against the scope's budget
        first, as :meth:`SessionScope.extend` does."""
        steps = extend_steps(self._client._core, self._record, minutes)
        return await self._client._run(steps, self._sleep)
