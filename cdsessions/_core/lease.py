"""The lease, as steps: keep a session alive in small extensions while its owner lives, so that
an owner killed in a way Python never sees (SIGKILL, the OOM killer) leaves a session that ends
by itself within one lease period.

A leased session is created with a short ``timeout`` (the lease's minutes). The steps wait until
half of the lease is left, then extend it back to about a full lease: never past the platform's
24-hour cap counted from creation, and (with a budget) never past what ``max_cost`` allows, each
extension checked before it is sent. A failed extension is retried, backing off, while there is
time left; when none is, or the server says the session is gone, the lease is lost: the owner is
told and the session cancelled. When the budget or the cap forbids the next extension, the owner
is told at once, the session keeps the minutes it has, and it is cancelled as they run out
(rather than left to the server's clock).

Everything is decided here, for either driver (:mod:`cdsessions._core.steps`): the blocking
client runs these steps in a thread, the asyncio one in a task (:mod:`cdsessions.leases`). The
owner stopping the lease is an interruption thrown into the steps: they stop extending at once
(the owner's scope cancels the session). What the steps learn is kept on a :class:`LeaseRecord`;
:func:`state_of` turns it into the frozen :class:`LeaseState` a caller reads.

Times are seconds of the client's clock (``monotonic``); pure: no sockets, threads or asyncio.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from datetime import datetime
from decimal import Decimal
from typing import TYPE_CHECKING, Any, Final, Literal, TypeAlias

import msgspec
from returns.result import Failure, Result, Success

from cdsessions._core.builders import describe_id
from cdsessions._core.money import usd_text, within
from cdsessions._core.pricing import Price
from cdsessions._core.retry import Wait
from cdsessions._core.session_steps import SESSION_CAP, Backoff, Calls, cancel_steps
from cdsessions._core.steps import Finish, Flow
from cdsessions.errors import ApiError, HttpError, InvalidRequest, SessionGone
from cdsessions.models import DeleteSessionResponse, Session

if TYPE_CHECKING:
    from cdsessions._core.budget import Allowance
    from cdsessions._core.steps import Steps

__all__ = [
    "DEFAULT_LEASE_MINUTES",
    "MAX_LEASE_MINUTES",
    "SESSION_CAP_SECONDS",
    "LeaseRecord",
    "LeaseState",
    "LeaseStatus",
    "OnLeaseEnd",
    "extension_minutes",
    "lease_minutes_problem",
    "lease_steps",
    "leased_session_steps",
    "state_of",
]

DEFAULT_LEASE_MINUTES: Final = 5
#: The live server refuses an extension that leaves more than 60 minutes on the clock.
MAX_LEASE_MINUTES: Final = 60
#: The platform's cap (:data:`~cdsessions._core.session_steps.SESSION_CAP`) in seconds: the
#: lease judges it on its own clock, from the creation it recorded.
SESSION_CAP_SECONDS: Final = SESSION_CAP.total_seconds()
#: Under this many seconds left, a failing extension is given up and the session cancelled.
GIVE_UP_SECONDS: Final = 5.0
#: The pauses between tries of a failing extension (always within the time left).
RETRY_BACKOFF: Final = Backoff(first=1.0, factor=2.0, cap=10.0)

#: ``held``: extending; ``ending``: no more extensions (budget or cap), cancelled as its time
#: runs out; ``ended``: the session was cancelled or is gone; ``released``: the owner stopped
#: the lease (or this is a forked child, which never holds its parent's lease).
LeaseStatus: TypeAlias = Literal["held", "ending", "ended", "released"]
#: Told once, when the lease can no longer be kept (``ending`` or ``ended``).
OnLeaseEnd: TypeAlias = Callable[["LeaseState"], None]

_OPERATION: Final = "lease session"


class LeaseState(msgspec.Struct, frozen=True, kw_only=True):
    """What a lease is doing, as of one moment. ``time_left``: seconds until the session ends
    by itself unless extended; ``last_extension``: seconds ago (None: none yet);
    ``spent_usd``: its cost so far (known with a budget, else None); ``reason``: why the
    lease ended or is ending (None while held, or when its owner released it)."""

    session_id: str
    status: LeaseStatus
    lease_minutes: int
    time_left: float
    extensions: int
    minutes_granted: int
    last_extension: float | None
    spent_usd: Decimal | None
    reason: ApiError | None
    closed: str | None

    def __repr__(self) -> str:
        return (
            f"LeaseState(session_id={self.session_id[:80]!r}, status={self.status!r}, "
            f"time_left={self.time_left:.0f}, extensions={self.extensions}, "
            f"reason={self.reason!r})"
        )


class LeaseRecord:
    """What the lease's steps have learnt, written by the steps (and the shell, after a fork)
    only; read through :func:`state_of`. Times are the client clock's ``monotonic`` seconds."""

    __slots__ = (
        "allowance",
        "closed",
        "created",
        "end",
        "extended_at",
        "extensions",
        "minutes",
        "reason",
        "session_id",
        "status",
    )

    def __init__(self, minutes: int) -> None:
        self.minutes = minutes
        self.session_id: str | None = None
        self.status: LeaseStatus = "held"
        self.created = 0.0  # when the session was created (the 24-hour cap counts from it)
        self.end = 0.0  # when it ends unless extended
        self.allowance: Allowance | None = None
        self.extensions = 0
        self.extended_at: float | None = None
        self.reason: ApiError | None = None
        self.closed: str | None = None


def state_of(record: LeaseRecord, now: float) -> LeaseState | None:
    """The lease as of ``now`` (None before it has a session)."""
    if record.session_id is None:
        return None
    allowance = record.allowance
    spent = None
    if allowance is not None:
        from datetime import timedelta

        from cdsessions._core import money

        elapsed = timedelta(seconds=max(0.0, now - record.created))
        spent = money.billed(elapsed, allowance.price.usd_per_second)
    live = record.status in ("held", "ending")
    return LeaseState(
        session_id=record.session_id,
        status=record.status,
        lease_minutes=record.minutes,
        time_left=max(0.0, record.end - now) if live else 0.0,
        extensions=record.extensions,
        minutes_granted=record.allowance.minutes
        if record.allowance is not None
        else _granted(record),
        last_extension=None if record.extended_at is None else now - record.extended_at,
        spent_usd=spent,
        reason=record.reason,
        closed=record.closed,
    )


def _granted(record: LeaseRecord) -> int:
    return max(0, round((record.end - record.created) / 60))


def lease_minutes_problem(minutes: object) -> str | None:
    """Why ``minutes`` cannot be a lease, or None: a whole number from 1 to 60 (the server
    refuses to leave more than an hour on the clock)."""
    if not isinstance(minutes, int) or isinstance(minutes, bool):
        return "must be a whole number of minutes"
    if not 1 <= minutes <= MAX_LEASE_MINUTES:
        return f"must be from 1 to {MAX_LEASE_MINUTES} minutes"
    return None


def extension_minutes(lease: int, left: float, cap_left: float) -> int:
    """How many minutes to extend by with ``left`` seconds of the session's time left: back up
    to at most one lease (at least one minute), and never past the 24-hour cap (``cap_left``
    seconds from the session's current end to it). 0: the cap allows no more."""
    wanted = max(1, math.floor((lease * 60 - left) / 60))
    return max(0, min(wanted, math.floor(cap_left / 60)))


def _cap_reached(session_id: str) -> InvalidRequest:
    problem = "the session has reached the platform's 24-hour cap: no further extension"
    return InvalidRequest(
        f"extend session {describe_id(session_id)}", "minutes", problem, "session_cap"
    )


def lease_steps(
    core: Calls, record: LeaseRecord, clock: Callable[[], float], on_end: OnLeaseEnd | None
) -> Flow[Any, None]:
    """Keep ``record``'s session alive until the owner interrupts the steps, or the lease is
    lost (see the module docs). ``record`` must have its session, times and allowance set."""
    session_id = record.session_id
    assert session_id is not None, "a lease starts with its session"
    failures = 0
    try:
        while record.status == "held":  # the owner's cancel releases it first
            now = clock()
            left = record.end - now
            if left <= 0:  # its time ran out before an extension could be made
                gone = SessionGone(_OPERATION, session_id)
                return (yield from _lost(core, record, gone, clock, on_end))
            renew_in = left - record.minutes * 60 / 2
            if renew_in > 0 and failures == 0:
                yield Wait(renew_in, "lease")
                continue
            minutes = extension_minutes(
                record.minutes, left, record.created + SESSION_CAP_SECONDS - record.end
            )
            refused = _refusal(record, session_id, minutes)
            if refused is not None:
                return (yield from _run_out(core, record, refused, clock, on_end))
            allowance = _allowed(record, minutes)
            answer = yield from core.extend(session_id, minutes, None, None)
            if isinstance(answer, Success):
                failures = 0
                record.end += minutes * 60
                record.extensions += 1
                record.extended_at = clock()
                record.allowance = allowance
                continue
            error = answer.failure()
            if isinstance(error, HttpError) and error.status == 404:
                gone = SessionGone(_OPERATION, session_id)
                return (yield from _lost(core, record, gone, clock, on_end))
            left = record.end - clock()
            if left <= GIVE_UP_SECONDS:
                return (yield from _lost(core, record, error, clock, on_end))
            yield Wait(min(RETRY_BACKOFF.delay(failures), left - GIVE_UP_SECONDS), "extend failed")
            failures += 1
    except BaseException:
        if record.status in ("held", "ending"):
            record.status = "released"  # the owner stopped it: the owner ends the session
        raise


def _refusal(record: LeaseRecord, session_id: str, minutes: int) -> ApiError | None:
    """Why the next extension must not be sent (the cap, the budget), or None."""
    if minutes <= 0:
        return _cap_reached(session_id)
    allowance = record.allowance
    if allowance is None:
        return None
    from cdsessions._core import budget

    checked = budget.check_extend(allowance, minutes, f"extend session {describe_id(session_id)}")
    return None if isinstance(checked, Success) else checked.failure()


def _allowed(record: LeaseRecord, minutes: int) -> Allowance | None:
    allowance = record.allowance
    if allowance is None:
        return None
    from cdsessions._core.budget import Allowance

    return Allowance(allowance.budget, allowance.price, allowance.minutes + minutes)


def _tell(record: LeaseRecord, clock_now: float, on_end: OnLeaseEnd | None) -> None:
    if on_end is not None:
        state = state_of(record, clock_now)
        assert state is not None
        on_end(state)


def _run_out(
    core: Calls,
    record: LeaseRecord,
    reason: ApiError,
    clock: Callable[[], float],
    on_end: OnLeaseEnd | None,
) -> Flow[Any, None]:
    """No more extensions: tell the owner now, let the session use the minutes it has, and
    cancel it just before they run out."""
    record.status = "ending"
    record.reason = reason
    _tell(record, clock(), on_end)
    remaining = record.end - clock() - GIVE_UP_SECONDS
    if remaining > 0:
        yield Wait(remaining, "lease running out")
    if record.status == "ending":  # not released by its owner meanwhile
        yield from _cancel(core, record)


def _lost(
    core: Calls,
    record: LeaseRecord,
    reason: ApiError,
    clock: Callable[[], float],
    on_end: OnLeaseEnd | None,
) -> Flow[Any, None]:
    """The lease cannot be kept: cancel the session now (unless it is already gone), then tell
    the owner."""
    record.reason = reason
    if isinstance(reason, SessionGone):
        record.closed = "already closed"
    else:
        yield from _cancel(core, record)
    record.status = "ended"
    _tell(record, clock(), on_end)


def _cancel(core: Calls, record: LeaseRecord) -> Flow[Any, None]:
    session_id = record.session_id
    assert session_id is not None

    def cancel(cancelled: str) -> Steps[Any, Any, Result[DeleteSessionResponse, ApiError]]:
        return core.cancel(cancelled, False, None, None)

    closed = yield Finish(cancel_steps(cancel, session_id))
    record.closed = closed.unwrap() if isinstance(closed, Success) else None
    record.status = "ended"
    if record.closed is None:
        from cdsessions._core.session_steps import report_unclosed

        report_unclosed(session_id, closed)


# -- leasing a session that already exists -----------------------------------------------------


def leased_session_steps(
    core: Calls,
    record: LeaseRecord,
    session_id: str,
    max_cost: object,
    clock: Callable[[], float],
    wall: Callable[[], float],
) -> Flow[Any, Result[Session, ApiError]]:
    """Set ``record`` up for a session that already exists: ask the server when it was created
    and when it ends (``get``), and with ``max_cost``, price its GPU and check that the
    minutes it already has fit the budget. ``wall`` is Unix seconds, to compare with the
    server's dates. Nothing is extended here."""
    problem = lease_minutes_problem(record.minutes)
    if problem is not None:
        return Failure(InvalidRequest(_OPERATION, "lease", problem))
    answer = yield from core.get(session_id, None, None)
    if not isinstance(answer, Success):
        error = answer.failure()
        if isinstance(error, HttpError) and error.status == 404:
            return Failure(SessionGone(_OPERATION, session_id))
        return Failure(error)
    session: Session = answer.unwrap()
    created, ends = session.created_at, session.timeout_end
    if created is None or ends is None:
        why = "the server did not say when the session started and ends"
        return Failure(InvalidRequest(_OPERATION, "session_id", why))
    if max_cost is not None:
        allowance = yield from _allowance_for(core, session, created, ends, max_cost)
        if not isinstance(allowance, Success):
            return Failure(allowance.failure())
        record.allowance = allowance.unwrap()
    now, unix = clock(), wall()
    record.session_id = session.session_id
    record.created = now - (unix - created.timestamp())
    record.end = now + (ends.timestamp() - unix)
    return Success(session)


def _allowance_for(
    core: Calls, session: Session, created: datetime, ends: datetime, max_cost: object
) -> Flow[Any, Result[Allowance, ApiError]]:
    """What the budget allows a session that has all the minutes from its creation to its end:
    checked as a create of that many minutes would be."""
    from cdsessions._core import budget
    from cdsessions.errors import OverBudget

    minutes = max(1, math.ceil((ends - created).total_seconds() / 60))
    limit = budget.budget_from(max_cost, _OPERATION)
    if not isinstance(limit, Success):
        return Failure(limit.failure())
    pricing = yield from core.gpu_pricing(False, None, None)
    if not isinstance(pricing, Success):
        return Failure(pricing.failure())
    found = pricing.unwrap().price_per_second(session.gpu)
    usd = limit.unwrap()
    if not isinstance(found, Price):
        problem = f"the session's GPU cannot be priced ({found.reason})"
        return Failure(OverBudget(_OPERATION, "max_cost", problem, budget=usd, worst_case=None))
    allowance = budget.Allowance(usd, found, minutes)
    if not within(allowance.worst_case, usd):
        problem = f"the session already has {minutes} min, over the budget of {usd_text(usd)}"
        over = OverBudget(
            _OPERATION, "max_cost", problem, budget=usd, worst_case=allowance.worst_case
        )
        return Failure(over)
    return Success(allowance)
