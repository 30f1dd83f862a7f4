"""The session flows, each written once as steps: the budgeted create, the ready wait, the
cancel until closed, the session scope (check its settings, budget, create, wait until ready,
cancel on every way out) and extending inside it, for either driver (see
:mod:`cdsessions._core.steps`).

They are built from the calls' own steps (:class:`Calls`, which
:class:`~cdsessions._core.calls.ClientCore` is; the ready wait and the cancel take the one call
they repeat as a function), so every flow yields only what a call yields (a request to send, or a
:class:`~cdsessions._core.retry.Wait`) plus, for the scope, two
:class:`~cdsessions._core.steps.Finish` regions: the create, which must not be abandoned half-way
(its session would run with an id nobody saw), and the cancel, which a second Ctrl-C or task
cancellation must not stop. An interruption is thrown into the steps by the driver, so "cancel on
every way out" is an ``except`` here, not a copy in each scope.

Pure: no sockets, threads or asyncio. Logging the session a scope could not close is the only
side effect, and it happens where the cancel ends, whichever driver runs it.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Generator
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, Any, Final, Never, Protocol, TypeVar

import msgspec
from returns.result import Failure, Result, Success

from cdsessions._core import builders
from cdsessions._core.builders import describe_id
from cdsessions._core.observe import mask_urls
from cdsessions._core.retry import Wait
from cdsessions._core.steps import Finish, Flow, Steps
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
    Machine,
    MachineGPU,
    Session,
)

if TYPE_CHECKING:
    from cdsessions._core.budget import Allowance
    from cdsessions._core.lease import LeaseRecord
    from cdsessions._core.pricing import GpuPricing

__all__ = [
    "CANCEL_ATTEMPTS",
    "CANCEL_BACKOFF",
    "DEFAULT_BACKOFF",
    "Backoff",
    "Calls",
    "Clock",
    "OnPoll",
    "OpenSession",
    "ScopeRecord",
    "ScopeSettings",
    "answered",
    "budget_check",
    "budgeted_create",
    "cancel_steps",
    "cap_problem",
    "capped_extend",
    "close_steps",
    "counts_as_closed",
    "extend_steps",
    "open_steps",
    "ready_steps",
    "ready_wait",
    "report_unclosed",
]

#: The platform stops every session's container 24 hours after it starts, whatever its
#: timeout says; the server accepts extensions past that (api-facts.md, increase-timeout).
SESSION_CAP: Final = timedelta(hours=24)

A = TypeVar("A")
R = TypeVar("R")
T = TypeVar("T")

# The scope's log line keeps the logger it always had: users filter on it.
logger = logging.getLogger("cdsessions.lifecycle")

_EARLY_CANCEL: Final = "Modal function id not found"

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


DEFAULT_BACKOFF: Final = Backoff()
#: How often, and how patiently, a scope's cancel is tried.
CANCEL_ATTEMPTS: Final = 3
CANCEL_BACKOFF: Final = Backoff(first=0.5, factor=2.0, cap=2.0)


class Calls(Protocol):
    """The calls the flows are built from, each as its steps (the arguments after the first are
    the call's ``timeout`` and ``retry``, None for the client's own):
    :class:`~cdsessions._core.calls.ClientCore` has them."""

    def get(
        self, session_id: str, timeout: object, retry: object
    ) -> Steps[Any, Any, Result[Session, ApiError]]: ...

    def cancel(
        self, session_id: str, wait_for_shutdown: bool, timeout: object, retry: object
    ) -> Steps[Any, Any, Result[DeleteSessionResponse, ApiError]]: ...

    def create(
        self, body: CreateSessionBody, timeout: object, retry: object
    ) -> Steps[Any, Any, Result[CreateSessionResponse, ApiError]]: ...

    def extend(
        self, session_id: str, minutes: int, timeout: object, retry: object
    ) -> Steps[Any, Any, Result[ExtendSessionResponse, ApiError]]: ...

    def gpu_pricing(
        self, refresh: bool, timeout: object, retry: object
    ) -> Steps[Any, Any, Result[GpuPricing, ApiError]]: ...

    def log_tail(self, session_id: str) -> Steps[Any, Any, tuple[str, ...]]: ...

    def machine(
        self, machine_id: str, timeout: object, retry: object
    ) -> Steps[Any, Any, Result[Machine, ApiError]]: ...


def _backoff_problem(backoff: object) -> str | None:
    return backoff.problem() if isinstance(backoff, Backoff) else "must be a Backoff"


def answered(call: Callable[[], T]) -> Generator[Never, object, T]:
    """A call answered by a plain function, as steps that yield nothing: lets a flow written
    for a client's call steps run on any function (``wait_until_ready(get, ...)``)."""
    return call()
    yield  # unreachable: it makes this a generator, so the call runs when the flow reaches it


# -- the ready wait ----------------------------------------------------------------------------


def ready_steps(
    get: Callable[[str], Steps[A, R, Result[Session, ApiError]]],
    session_id: str,
    *,
    timeout: float = DEFAULT_READY_TIMEOUT,
    backoff: Backoff = DEFAULT_BACKOFF,
    on_poll: OnPoll | None = None,
    clock: Clock = time.monotonic,
) -> Steps[A, R, Result[Session, ApiError]]:
    """Poll ``get(session_id)``'s steps until the session has a ``url``: ``Success(session)``;
    ``Failure(SessionGone)`` on a 404; ``Failure(NotReady)`` once ``timeout`` seconds passed
    (the session is left as it is); any other failure as it came. The first poll is immediate.
    An unusable ``timeout`` or ``backoff`` is an ``InvalidRequest`` before the first poll."""
    shown = describe_id(session_id) if isinstance(session_id, str) else "(not a string)"
    operation = f"wait for session {shown}"
    seconds = ready_timeout_from(timeout)
    if not isinstance(seconds, Success):  # NaN would poll forever: no deadline ever passes
        return Failure(InvalidRequest(operation, "timeout", seconds.failure()))
    unusable = _backoff_problem(backoff)
    if unusable:
        return Failure(InvalidRequest(operation, "backoff", unusable))
    started = clock()
    deadline = started + seconds.unwrap()
    polls = 0
    while True:
        answer = yield from get(session_id)
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


def ready_wait(
    core: Calls,
    session_id: str,
    *,
    timeout: float = DEFAULT_READY_TIMEOUT,
    backoff: Backoff = DEFAULT_BACKOFF,
    on_poll: OnPoll | None = None,
    clock: Clock = time.monotonic,
) -> Flow[Any, Result[Session, ApiError]]:
    """:func:`ready_steps` polling with ``core``'s ``get`` (the client's timeout and retry).
    When the wait fails with ``SessionGone`` or ``NotReady``, the session's last log lines are
    read then (never on the way to success: no cost when all goes well) and carried in the
    failure's ``last_log``: the server writes why a session failed there first."""
    waited = yield from ready_steps(
        lambda polled: core.get(polled, None, None),
        session_id,
        timeout=timeout,
        backoff=backoff,
        on_poll=on_poll,
        clock=clock,
    )
    if isinstance(waited, Success):
        return waited
    return Failure((yield from with_log_tail(core, waited.failure())))


def with_log_tail(core: Calls, error: ApiError) -> Flow[Any, ApiError]:
    """``error`` with the session's last log lines, if it is a ``SessionGone`` or ``NotReady``
    and the log stream has any; else ``error`` as it is."""
    if not isinstance(error, SessionGone | NotReady) or error.last_log:
        return error
    tail = yield from core.log_tail(error.session_id)
    return msgspec.structs.replace(error, last_log=tail) if tail else error


# -- the cancel until closed -------------------------------------------------------------------


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


def cancel_steps(
    cancel: Callable[[str], Steps[A, R, Result[DeleteSessionResponse, ApiError]]],
    session_id: str,
    *,
    attempts: int = CANCEL_ATTEMPTS,
    backoff: Backoff = CANCEL_BACKOFF,
) -> Steps[A, R, Result[str, ApiError]]:
    """Cancel until the server confirms the session is closed: ``Success("cancelled")`` or
    ``Success("already closed")`` (see :func:`counts_as_closed`); otherwise the last failure,
    after up to ``attempts`` tries for transient ones."""
    error: ApiError | None = None
    # A cancel must be tried whatever ``attempts`` holds: refusing would leave a session running.
    whole = isinstance(attempts, int) and not isinstance(attempts, bool)
    for attempt in range(max(1, attempts) if whole else CANCEL_ATTEMPTS):
        if attempt:
            yield Wait(backoff.delay(attempt - 1), "cancel failed")
        answer = yield from cancel(session_id)
        if isinstance(answer, Success):
            return Success("cancelled")
        error = answer.failure()
        if counts_as_closed(error):
            return Success("already closed")
        if not _worth_retrying(error):
            break
    assert error is not None  # the loop ran at least once and did not return
    return Failure(error)


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


# -- the budgeted create -----------------------------------------------------------------------


def budget_check(
    core: Calls, body: CreateSessionBody, max_cost: object
) -> Flow[Any, Result[Allowance | None, ApiError]]:
    """Whether ``body`` may be created within ``max_cost`` USD (see
    :mod:`cdsessions._core.budget`): None without a budget, else what the budget allows (kept
    for extensions), or why the create must not be sent. The price table is fetched (once per
    client) only when there is a budget and the body could be sent; a body without ``gpu`` is
    priced at its machine's default GPU, read with one ``GET /machine/{id}`` (whose failure
    refuses the create: nothing is sent)."""
    if max_cost is None:
        return Success(None)
    from cdsessions._core import budget  # only budgeted creates load decimal arithmetic

    built = builders.build_create(body)  # a body that cannot be sent needs no prices
    if not isinstance(built, Success):
        return Failure(built.failure())
    operation = built.unwrap().operation
    limit = budget.budget_from(max_cost, operation)
    if not isinstance(limit, Success):
        return Failure(limit.failure())
    pricing = yield from core.gpu_pricing(False, None, None)
    if not isinstance(pricing, Success):
        return Failure(pricing.failure())
    priced = body
    if body.gpu is None:  # the server will use the machine's default GPU: price that one
        machine = yield from core.machine(body.machine_id, None, None)
        if not isinstance(machine, Success):
            why = f"{operation}: its machine's default GPU could not be read"
            return Failure(msgspec.structs.replace(machine.failure(), operation=why))
        default = machine.unwrap().gpu
        if default is not None and default.strip():
            priced = msgspec.structs.replace(body, gpu=MachineGPU(default))
    return budget.check_create(priced, pricing.unwrap(), limit.unwrap(), operation)


def budgeted_create(
    core: Calls, body: CreateSessionBody, max_cost: object, timeout: object, retry: object
) -> Flow[Any, Result[CreateSessionResponse, ApiError]]:
    """``create``, only if its worst case fits ``max_cost`` USD: the create is sent only once
    :func:`budget_check` has passed."""
    allowed = yield from budget_check(core, body, max_cost)
    if not isinstance(allowed, Success):
        return Failure(allowed.failure())
    return (yield from core.create(body, timeout, retry))


# -- the session scope -------------------------------------------------------------------------


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


class ScopeSettings(msgspec.Struct, frozen=True, kw_only=True):
    """What a scope starts, and whether and how it waits for it (see
    :class:`~cdsessions.lifecycle.SessionScope`)."""

    body: CreateSessionBody
    wait: bool = True
    ready_timeout: float = DEFAULT_READY_TIMEOUT
    on_poll: OnPoll | None = None
    backoff: Backoff = DEFAULT_BACKOFF
    clock: Clock = time.monotonic
    max_cost: object = None
    #: Lease the session (see :mod:`cdsessions._core.lease`): it is created with this many
    #: minutes, and ``on_leased(record.lease)`` is called right after the create, before the
    #: ready wait, for the shell to start extending it.
    lease: int | None = None
    on_leased: Callable[[LeaseRecord], None] | None = None


class ScopeRecord:
    """What a scope's steps have learnt, for the scope and its block to read: the session's id
    once created, what the budget still allows (None without one), how the cancel ended.
    Written by the steps only (a cancel finishing after its caller was cancelled included)."""

    __slots__ = ("allowance", "closed", "lease", "session_id")

    def __init__(self) -> None:
        self.session_id: str | None = None
        self.allowance: Allowance | None = None
        self.closed: Result[str, ApiError] | None = None
        #: The lease on the session, when the scope has one.
        self.lease: LeaseRecord | None = None


def _settings_problem(settings: ScopeSettings) -> InvalidRequest | None:
    """Why the scope's own settings cannot be used, or None. Checked before the create: a
    ready timeout of NaN must not start (and bill) a session."""
    seconds = ready_timeout_from(settings.ready_timeout)
    if not isinstance(seconds, Success):
        return InvalidRequest("start session", "ready_timeout", seconds.failure())
    if settings.lease is not None:
        from cdsessions._core.lease import lease_minutes_problem

        problem = lease_minutes_problem(settings.lease)
        if problem is not None:
            return InvalidRequest("start session", "lease", problem)
    unusable = _backoff_problem(settings.backoff)
    return InvalidRequest("start session", "backoff", unusable) if unusable else None


def open_steps(
    core: Calls, settings: ScopeSettings, record: ScopeRecord
) -> Flow[Any, Result[OpenSession, ApiError]]:
    """A scope's entry: check its settings and budget, create the session, and (with ``wait``)
    wait until it is ready. A session that exists but cannot be used (it vanished, was not ready
    in time) is cancelled before this returns, and so is one whose wait is interrupted (Ctrl-C,
    a cancelled task): the block never runs then, so nothing else would cancel it."""
    problem = _settings_problem(settings)
    if problem is not None:
        return Failure(problem)
    body = settings.body
    if settings.lease is not None:  # a leased session starts with one lease of time
        body = msgspec.structs.replace(body, timeout=settings.lease)
    allowed = yield from budget_check(core, body, settings.max_cost)
    if not isinstance(allowed, Success):
        return Failure(allowed.failure())
    record.allowance = allowed.unwrap()
    began = settings.clock()  # the server counts the session's time from later: a safe start
    created = yield Finish(
        core.create(body, None, None),
        abandoned=lambda late: _close_created(core, record, late),
    )
    if not isinstance(created, Success):
        return Failure(created.failure())
    response: CreateSessionResponse = created.unwrap()
    session_id = record.session_id = response.session_id
    if settings.lease is not None:
        _leased(settings, record, session_id, settings.lease, began)
    if not settings.wait or response.url is not None:
        return Success(OpenSession(session_id, response.url))
    try:
        waited = yield from ready_wait(
            core,
            session_id,
            timeout=settings.ready_timeout,
            backoff=settings.backoff,
            on_poll=settings.on_poll,
            clock=settings.clock,
        )
    except BaseException:
        yield from close_steps(core, record)
        raise
    if not isinstance(waited, Success):
        yield from close_steps(core, record)  # the block cannot use it: stop the billing now
        failure = waited.failure()
        if isinstance(failure, NotReady) and isinstance(record.closed, Success):
            # Said once the cancel is confirmed: its text must not advise what was just done.
            return Failure(msgspec.structs.replace(failure, cancelled=True))
    return waited.map(lambda session: OpenSession(session_id, session.url, session))


def _leased(
    settings: ScopeSettings, record: ScopeRecord, session_id: str, minutes: int, began: float
) -> None:
    from cdsessions._core.lease import LeaseRecord

    lease = record.lease = LeaseRecord(minutes)
    lease.session_id = session_id
    lease.created = began
    lease.end = began + minutes * 60
    lease.allowance = record.allowance
    if settings.on_leased is not None:
        settings.on_leased(lease)


def close_steps(core: Calls, record: ScopeRecord) -> Flow[Any, None]:
    """Cancel the scope's session, if it has one not yet closed, as a region that finishes even
    if its caller is interrupted; ``record.closed`` says how it ended. A lease on it is released
    first, so it sends no extension from then on."""
    lease = record.lease
    if lease is not None and lease.status in ("held", "ending"):
        lease.status = "released"
    if record.session_id is not None and record.closed is None:
        yield Finish(_cancelled(core, record, record.session_id))


def _cancelled(core: Calls, record: ScopeRecord, session_id: str) -> Flow[Any, None]:
    def cancel(cancelled: str) -> Steps[Any, Any, Result[DeleteSessionResponse, ApiError]]:
        return core.cancel(cancelled, False, None, None)

    try:
        record.closed = yield from cancel_steps(cancel, session_id)
    except KeyboardInterrupt:
        # A second Ctrl-C during the cancel: one last plain try, then let it through.
        record.closed = yield from cancel_steps(cancel, session_id, attempts=1)
        raise
    finally:
        report_unclosed(session_id, record.closed)


def _close_created(
    core: Calls, record: ScopeRecord, created: Result[CreateSessionResponse, ApiError]
) -> Flow[Any, None]:
    """After a create whose caller went away: cancel the session it made, if any."""
    if isinstance(created, Success):
        record.session_id = created.unwrap().session_id
        yield from close_steps(core, record)


def extend_steps(
    core: Calls, record: ScopeRecord, minutes: int
) -> Flow[Any, Result[ExtendSessionResponse, ApiError]]:
    """Add ``minutes`` to the scope's open session. With a budget, refused (an
    :class:`~cdsessions.errors.OverBudget`, nothing sent) when the session's new worst case,
    all its minutes at its GPU's price, would be over it."""
    session_id = record.session_id
    if session_id is None or record.closed is not None:
        problem = "no session is open in this scope"
        return Failure(InvalidRequest("extend session", "session", problem))
    built = builders.build_extend(session_id, minutes)
    if not isinstance(built, Success):
        return Failure(built.failure())
    allowance = record.allowance
    if allowance is not None:
        from cdsessions._core import budget

        checked = budget.check_extend(allowance, minutes, built.unwrap().operation)
        if not isinstance(checked, Success):
            return Failure(checked.failure())
        allowance = checked.unwrap()
    answer = yield from capped_extend(core, session_id, minutes, None, None)
    if isinstance(answer, Success) and allowance is not None:
        record.allowance = allowance
    return answer


# -- extending within the platform's cap -------------------------------------------------------


def cap_problem(session: Session, minutes: int) -> str | None:
    """Why adding ``minutes`` to ``session`` would take it past :data:`SESSION_CAP` counted from
    its creation (the server answers 200 but the container stops at the cap anyway, so the
    caller would pay for, and count on, minutes that never come), or None. A session whose
    answer lacks ``created_at`` or ``timeout_end`` (the seed's shape) cannot be judged: None."""
    created, end = session.created_at, session.timeout_end
    if created is None or end is None:
        return None
    cap = created + SESSION_CAP
    try:
        wanted = end + timedelta(minutes=minutes)
    except OverflowError:
        wanted = datetime.max.replace(tzinfo=UTC)
    if wanted <= cap:
        return None
    left = max(0, int((cap - end).total_seconds() // 60))
    return (
        f"{minutes} more minutes would end the session at {_moment(wanted)}, past the "
        f"platform's 24-hour cap ({_moment(cap)}, 24 h after it was created at "
        f"{_moment(created)}); its container stops then whatever the timeout says, so at most "
        f"{left} more minutes can take effect"
    )


def _moment(when: datetime) -> str:
    return when.strftime("%Y-%m-%d %H:%M:%S UTC")


def capped_extend(
    core: Calls,
    session_id: str,
    minutes: int,
    timeout: object,
    retry: object,
    *,
    check_cap: bool = True,
) -> Flow[Any, Result[ExtendSessionResponse, ApiError]]:
    """``extend``, only if it keeps the session within :data:`SESSION_CAP`: the session is read
    first (one ``get``), and an extension past the cap is an ``InvalidRequest`` (field
    ``minutes``, why ``"session_cap"``) with nothing sent. A bad input is refused before the
    ``get``; a failed ``get`` is returned as it came (a 404 means the session is gone), and no
    extension is sent either (the failure is named for the extension). ``check_cap=False``
    sends the extension alone (one request)."""
    if check_cap is False:
        return (yield from core.extend(session_id, minutes, timeout, retry))
    built = builders.build_extend(session_id, minutes)
    if not isinstance(built, Success):
        return Failure(built.failure())
    operation = built.unwrap().operation
    read = yield from core.get(session_id, timeout, retry)
    if not isinstance(read, Success):  # named for what the caller asked: the extension
        return Failure(msgspec.structs.replace(read.failure(), operation=operation))
    problem = cap_problem(read.unwrap(), minutes)
    if problem is not None:
        return Failure(InvalidRequest(operation, "minutes", problem, "session_cap"))
    return (yield from core.extend(session_id, minutes, timeout, retry))
