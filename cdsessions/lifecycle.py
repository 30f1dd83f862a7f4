"""Session lifecycle helpers: wait until a session is ready, and never leave one running.

A session bills per second until it times out or is cancelled, so the helpers here are built
around one promise: **a session started by** :class:`SessionScope` **is cancelled when the block
ends**, whether it ends normally, by an exception or by Ctrl-C (``KeyboardInterrupt``)::

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

One gap no client can close: if ``create`` itself is interrupted after the request went out,
the server may have started a session whose id never arrived. ``cdsessions list`` finds it.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from types import TracebackType
from typing import TYPE_CHECKING, Final, Protocol

import msgspec
from returns.result import Failure, Result, Success

from cdsessions._core import builders
from cdsessions._core.builders import describe_id
from cdsessions._core.observe import mask_urls
from cdsessions._core.retry import Wait
from cdsessions._core.steps import Steps, drive
from cdsessions._core.timeouts import DEFAULT_READY_TIMEOUT, clamp_seconds, ready_timeout_from
from cdsessions.errors import (
    ApiError,
    HttpError,
    InvalidRequest,
    NotReady,
    SessionGone,
    TransportFailed,
)
from cdsessions.models import (
    CreateSessionBody,
    CreateSessionResponse,
    DeleteSessionResponse,
    ExtendSessionResponse,
    Session,
)

if TYPE_CHECKING:
    from decimal import Decimal

    from cdsessions._core.budget import Allowance
    from cdsessions._core.pricing import GpuPricing

__all__ = [
    "DEFAULT_READY_TIMEOUT",
    "Backoff",
    "Cancel",
    "NotReady",
    "OpenSession",
    "Poll",
    "ScopeState",
    "SessionGone",
    "SessionOps",
    "SessionScope",
    "cancel_steps",
    "cancel_until_closed",
    "counts_as_closed",
    "ready_steps",
    "report_unclosed",
    "wait_until_ready",
]

logger = logging.getLogger("cdsessions.lifecycle")

_EARLY_CANCEL: Final = "Modal function id not found"

Sleep = Callable[[float], None]
Clock = Callable[[], float]
#: Called after every poll with (polls so far, seconds waited so far).
OnPoll = Callable[[int, float], None]


class Backoff(msgspec.Struct, frozen=True):
    """Poll delays: ``first`` seconds, growing by ``factor``, never above ``cap``."""

    first: float = 1.0
    factor: float = 1.5
    cap: float = 4.0

    def delay(self, attempt: int) -> float:
        """The pause before poll number ``attempt + 2`` (the first poll is immediate). Always
        something a sleep accepts, between 0 and :data:`~cdsessions._core.timeouts.MAX_SECONDS`:
        unusable fields (see :meth:`problem`) give 0 rather than an exception."""
        if self.problem() is not None:
            return 0.0
        try:
            pause = min(self.cap, self.first * self.factor ** min(attempt, 64))
        except OverflowError:  # grew past what a float holds: the cap applies
            pause = self.cap
        return clamp_seconds(pause)

    def problem(self) -> str | None:
        """Why these delays cannot be used, or None: each field must be a finite number ≥ 0
        (``factor`` ≥ 1)."""
        for name in ("first", "factor", "cap"):
            checked = ready_timeout_from(getattr(self, name))
            if not isinstance(checked, Success):
                return f"{name} {checked.failure()}"
        return "factor must be at least 1" if self.factor < 1 else None


_DEFAULT_BACKOFF: Final = Backoff()


class SessionOps(Protocol):
    """The calls the helpers need; :class:`~cdsessions.SessionsClient` has them."""

    def create(self, body: CreateSessionBody) -> Result[CreateSessionResponse, ApiError]: ...

    def get(self, session_id: str) -> Result[Session, ApiError]: ...

    def cancel(self, session_id: str) -> Result[DeleteSessionResponse, ApiError]: ...

    def extend(self, session_id: str, minutes: int) -> Result[ExtendSessionResponse, ApiError]: ...

    def gpu_pricing(self) -> Result[GpuPricing, ApiError]: ...


class Poll(msgspec.Struct, frozen=True):
    """Ask the server about ``session_id`` (a ``get``); send its ``Result`` back."""

    session_id: str


class Cancel(msgspec.Struct, frozen=True):
    """Cancel ``session_id``; send the ``Result`` back."""

    session_id: str


def ready_steps(
    session_id: str,
    *,
    timeout: float = DEFAULT_READY_TIMEOUT,
    backoff: Backoff = _DEFAULT_BACKOFF,
    on_poll: OnPoll | None = None,
    clock: Clock = time.monotonic,
) -> Steps[Poll, Result[Session, ApiError], Result[Session, ApiError]]:
    """The steps of :func:`wait_until_ready`, for any driver (see :mod:`cdsessions._core.steps`).
    An unusable ``timeout`` or ``backoff`` is an ``InvalidRequest`` before the first poll."""
    shown = describe_id(session_id) if isinstance(session_id, str) else "(not a string)"
    operation = f"wait for session {shown}"
    seconds = ready_timeout_from(timeout)
    if not isinstance(seconds, Success):  # NaN would poll forever: no deadline ever passes
        return Failure(InvalidRequest(operation, "timeout", seconds.failure()))
    unusable = backoff.problem() if isinstance(backoff, Backoff) else "must be a Backoff"
    if unusable:
        return Failure(InvalidRequest(operation, "backoff", unusable))
    started = clock()
    deadline = started + seconds.unwrap()
    polls = 0
    while True:
        answer = yield Poll(session_id)
        assert answer is not None, "the driver must send back the answer to each poll"
        polls += 1
        if not isinstance(answer, Success):
            error = answer.failure()
            if isinstance(error, HttpError) and error.status == 404:
                return Failure(SessionGone(operation, session_id))
            return Failure(error)
        session = answer.unwrap()
        now = clock()
        if on_poll is not None:
            on_poll(polls, now - started)
        if session.url is not None:
            return Success(session)
        if now >= deadline:
            return Failure(NotReady(operation, session_id, now - started, polls))
        yield Wait(min(backoff.delay(polls - 1), deadline - now), "not ready yet")


def wait_until_ready(
    get: Callable[[str], Result[Session, ApiError]],
    session_id: str,
    *,
    timeout: float = DEFAULT_READY_TIMEOUT,
    backoff: Backoff = _DEFAULT_BACKOFF,
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
    steps = ready_steps(session_id, timeout=timeout, backoff=backoff, on_poll=on_poll, clock=clock)
    return drive(steps, lambda poll: get(poll.session_id), sleep)


def counts_as_closed(error: ApiError) -> bool:
    """A cancel failure that means the session is closed anyway: 404 (already gone), or the
    live server's 400 for a session cancelled in its first moments."""
    if not isinstance(error, HttpError):
        return False
    return error.status == 404 or (error.status == 400 and error.detail == _EARLY_CANCEL)


def _worth_retrying(error: ApiError) -> bool:
    # Cancelling is idempotent (a repeat gets 404, which counts as closed), so any failure
    # that might be transient is worth another try.
    if isinstance(error, TransportFailed):
        return True
    return isinstance(error, HttpError) and (error.status >= 500 or error.status == 429)


#: How often, and how patiently, a scope's cancel is tried.
CANCEL_ATTEMPTS: Final = 3
CANCEL_BACKOFF: Final = Backoff(first=0.5, factor=2.0, cap=2.0)


def cancel_steps(
    session_id: str,
    *,
    attempts: int = CANCEL_ATTEMPTS,
    backoff: Backoff = CANCEL_BACKOFF,
) -> Steps[Cancel, Result[DeleteSessionResponse, ApiError], Result[str, ApiError]]:
    """The steps of :func:`cancel_until_closed`, for any driver (see
    :mod:`cdsessions._core.steps`)."""
    error: ApiError | None = None
    # A cancel must be tried whatever ``attempts`` holds: refusing would leave a session running.
    whole = isinstance(attempts, int) and not isinstance(attempts, bool)
    for attempt in range(max(1, attempts) if whole else CANCEL_ATTEMPTS):
        if attempt:
            yield Wait(backoff.delay(attempt - 1), "cancel failed")
        answer = yield Cancel(session_id)
        assert answer is not None, "the driver must send back the answer to each cancel"
        if isinstance(answer, Success):
            return Success("cancelled")
        error = answer.failure()
        if counts_as_closed(error):
            return Success("already closed")
        if not _worth_retrying(error):
            break
    assert error is not None  # the loop ran at least once and did not return
    return Failure(error)


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
    steps = cancel_steps(session_id, attempts=attempts, backoff=backoff)
    return drive(steps, lambda order: cancel(order.session_id), sleep)


def report_unclosed(session_id: str, closed: Result[str, ApiError] | None) -> None:
    """Log, at ERROR, a session a scope could not confirm closed: it may still be billing.

    The line is bounded and holds no URL: the failure's text comes from the server (a
    redirect, an error detail) and may name the session's tunnel."""
    if closed is not None and not isinstance(closed, Success):
        shown = describe_id(session_id)
        line = (
            f"session {shown} may still be running: {closed.failure()}; "
            f"cancel it with `cdsessions cancel {shown}`"
        )
        logger.error("%s", mask_urls(line))


class OpenSession(msgspec.Struct, frozen=True):
    """A session the scope started. ``url`` is None unless the scope waited (or the create
    used ``wait_for_server``); ``details`` is the last ``get`` answer when it waited."""

    session_id: str
    url: str | None
    details: Session | None = None

    @property
    def ready(self) -> bool:
        return self.url is not None

    def __repr__(self) -> str:
        shown = "None" if self.url is None else "'<redacted url>'"
        return f"OpenSession(session_id={self.session_id[:80]!r}, url={shown})"


class ScopeState:
    """What a session scope knows, in either form (this one, and the asyncio
    :class:`~cdsessions.async_client.AsyncSessionScope`): what to start, whether and how long to
    wait for it, and once known the session's id and how its cancel ended."""

    def __init__(
        self,
        body: CreateSessionBody,
        *,
        wait: bool = True,
        ready_timeout: float = DEFAULT_READY_TIMEOUT,
        on_poll: OnPoll | None = None,
        max_cost: object = None,
    ) -> None:
        self._body = body
        self._wait = wait
        self._ready_timeout = ready_timeout
        self._on_poll = on_poll
        self._max_cost = max_cost
        #: What the budget allows (None without a budget): price and minutes so far.
        self._allowance: Allowance | None = None
        self.session_id: str | None = None
        self.closed: Result[str, ApiError] | None = None

    def _unusable(self, backoff: Backoff | None = None) -> Result[OpenSession, ApiError] | None:
        """What the block gets when the scope's own settings cannot be used, else None. Checked
        before the create: a ready timeout of NaN must not start (and bill) a session."""
        seconds = ready_timeout_from(self._ready_timeout)
        if not isinstance(seconds, Success):
            problem = seconds.failure()
            return Failure(InvalidRequest("start session", "ready_timeout", problem))
        if backoff is None:
            return None
        unusable = backoff.problem() if isinstance(backoff, Backoff) else "must be a Backoff"
        return Failure(InvalidRequest("start session", "backoff", unusable)) if unusable else None

    # The budget guard (see cdsessions._core.budget): checked before the create and each extension.

    def _budget_limit(self) -> Result[Decimal | None, ApiError]:
        """The budget in USD (None without one), or why the create must not be sent."""
        if self._max_cost is None:
            return Success(None)
        from cdsessions._core import budget

        built = builders.build_create(self._body)  # a body that cannot be sent needs no prices
        if not isinstance(built, Success):
            return Failure(built.failure())
        return budget.budget_from(self._max_cost, built.unwrap().operation)

    def _allow(
        self, limit: Decimal, pricing: Result[GpuPricing, ApiError]
    ) -> Result[OpenSession, ApiError] | None:
        """Check the create against ``limit`` with the price table: what the block gets when it
        must not be sent, else None (and the allowance is kept for extensions)."""
        from cdsessions._core import budget

        if not isinstance(pricing, Success):
            return Failure(pricing.failure())
        operation = builders.build_create(self._body).unwrap().operation  # checked before
        checked = budget.check_create(self._body, pricing.unwrap(), limit, operation)
        if not isinstance(checked, Success):
            return Failure(checked.failure())
        self._allowance = checked.unwrap()
        return None

    def _extension(self, minutes: int) -> Result[tuple[str, Allowance | None], ApiError]:
        """The open session's id and its allowance after ``minutes`` more, or why the extension
        must not be sent (no open session, bad minutes, over budget)."""
        session_id = self.session_id
        if session_id is None or self.closed is not None:
            problem = "no session is open in this scope"
            return Failure(InvalidRequest("extend session", "session", problem))
        built = builders.build_extend(session_id, minutes)
        if not isinstance(built, Success):
            return Failure(built.failure())
        if self._allowance is None:
            return Success((session_id, None))
        from cdsessions._core import budget

        checked = budget.check_extend(self._allowance, minutes, built.unwrap().operation)
        return checked.map(lambda allowance: (session_id, allowance))

    def _extended(
        self, allowance: Allowance | None, answer: Result[ExtendSessionResponse, ApiError]
    ) -> Result[ExtendSessionResponse, ApiError]:
        if isinstance(answer, Success) and allowance is not None:
            self._allowance = allowance
        return answer

    def _created(
        self, created: Result[CreateSessionResponse, ApiError]
    ) -> Result[OpenSession, ApiError] | None:
        """Take in the create's answer. Returns what the block gets when there is nothing to
        wait for (the create failed, ``wait=False``, or the url came with it), else None."""
        if not isinstance(created, Success):
            return Failure(created.failure())
        response = created.unwrap()
        self.session_id = response.session_id
        if not self._wait or response.url is not None:
            return Success(OpenSession(response.session_id, response.url))
        return None

    def _ready(self, waited: Result[Session, ApiError]) -> Result[OpenSession, ApiError]:
        """What the block gets once waiting ended (a failure was cancelled by the caller)."""
        session_id = self.session_id
        assert session_id is not None  # only called once a session exists
        return waited.map(lambda session: OpenSession(session_id, session.url, session))

    def __repr__(self) -> str:
        # The id came from the server: shown bounded, like every failure's repr.
        shown = None if self.session_id is None else self.session_id[:80]
        return f"{type(self).__name__}(session_id={shown!r}, closed={self.closed!r})"


class SessionScope(ScopeState):
    """Creates a session on entry and always cancels it on exit.

    ``with scope as started`` gives ``Result[OpenSession, ApiError]``. With ``wait`` (the
    default) entry polls until the url is set, up to ``ready_timeout`` seconds. After the block,
    :attr:`closed` holds how the cancel ended (None when nothing was created), and
    :attr:`session_id` the id of the session that was started, if any.
    """

    def __init__(
        self,
        ops: SessionOps,
        body: CreateSessionBody,
        *,
        wait: bool = True,
        ready_timeout: float = DEFAULT_READY_TIMEOUT,
        on_poll: OnPoll | None = None,
        backoff: Backoff = _DEFAULT_BACKOFF,
        sleep: Sleep = time.sleep,
        clock: Clock = time.monotonic,
        max_cost: object = None,
    ) -> None:
        super().__init__(
            body, wait=wait, ready_timeout=ready_timeout, on_poll=on_poll, max_cost=max_cost
        )
        self._ops = ops
        self._backoff = backoff
        self._sleep = sleep
        self._clock = clock
        self._entered = False

    def __enter__(self) -> Result[OpenSession, ApiError]:
        # Once, whatever the first entry gave (as the async scope): a second ``with`` after a
        # failed create would otherwise start a session the caller believes was refused.
        if self._entered:
            raise RuntimeError("a SessionScope can be entered only once")
        self._entered = True
        unusable = self._unusable(self._backoff)
        if unusable is not None:
            return unusable
        limit = self._budget_limit()
        if not isinstance(limit, Success):
            return Failure(limit.failure())
        usd = limit.unwrap()
        if usd is not None:
            refused = self._allow(usd, self._ops.gpu_pricing())
            if refused is not None:
                return refused
        early = self._created(self._ops.create(self._body))
        if early is not None:
            return early
        assert self.session_id is not None  # _created recorded it
        try:
            waited = wait_until_ready(
                self._ops.get,
                self.session_id,
                timeout=self._ready_timeout,
                backoff=self._backoff,
                on_poll=self._on_poll,
                sleep=self._sleep,
                clock=self._clock,
            )
        except BaseException:
            # Ctrl-C while waiting: __exit__ never runs when __enter__ raises, so close here.
            self._close()
            raise
        if not isinstance(waited, Success):
            self._close()  # the body cannot use it: stop the billing now
        return self._ready(waited)

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        if self.session_id is not None and self.closed is None:
            self._close()

    def extend(self, minutes: int) -> Result[ExtendSessionResponse, ApiError]:
        """Add ``minutes`` to the open session's timeout. In a scope with ``max_cost``, refused
        (an :class:`~cdsessions._core.budget.OverBudget`, nothing sent) when the session's new worst
        case, all its minutes at its GPU's price, would be over the budget."""
        checked = self._extension(minutes)
        if not isinstance(checked, Success):
            return Failure(checked.failure())
        session_id, allowance = checked.unwrap()
        return self._extended(allowance, self._ops.extend(session_id, minutes))

    def _close(self) -> None:
        session_id = self.session_id
        assert session_id is not None  # only called once a session exists
        try:
            self.closed = cancel_until_closed(self._ops.cancel, session_id, sleep=self._sleep)
        except KeyboardInterrupt:
            # A second Ctrl-C during the cancel: one last plain try, then let it through.
            self.closed = cancel_until_closed(self._ops.cancel, session_id, attempts=1)
            raise
        finally:
            report_unclosed(session_id, self.closed)
