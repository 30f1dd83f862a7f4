"""Find the sessions a crashed job or a forgotten notebook left running, and stop them.

:func:`select` is the pure part: given the live sessions, the price table, a :class:`Selection`
and ``now``, which sessions match. Every selector given must match (they combine with "and"); a
selector that cannot be judged for a session (an age without ``created_at``, a cost without a
price) does not match it: a session is cancelled only when it is known to match. An empty
selection selects nothing, unless ``everything=True`` says, explicitly, every session.

:func:`reap` (and :func:`reap_async`) lists the account's sessions, selects, and cancels each
selected one, reporting each as cancelled, already gone, or failed with the reason; one failed
cancel does not stop the others. ``dry_run=True`` sends no cancel at all and reports what would
be cancelled. Both run the same steps (:func:`reap_steps`, built from the client's own calls).
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from datetime import datetime, timedelta
from decimal import Decimal
from typing import TYPE_CHECKING, Any, Final, Literal, TypeAlias

import msgspec
from returns.result import Failure, Result, Success

from cdsessions._core import money
from cdsessions._core.builders import check_id
from cdsessions._core.pricing import NO_TABLE, GpuPricing
from cdsessions._core.session_steps import counts_as_closed
from cdsessions._core.steps import Flow
from cdsessions.costs.figures import SessionCosts, Unknown, costs_of
from cdsessions.errors import ApiError, InvalidRequest
from cdsessions.ledger import Intent, Ledger, Owned, judge_owners, ownership
from cdsessions.models import Session

if TYPE_CHECKING:
    from cdsessions._core.calls import ClientCore
    from cdsessions.async_client import AsyncSessionsClient
    from cdsessions.client import SessionsClient

__all__ = [
    "Fate",
    "Known",
    "ReapProgress",
    "ReapReport",
    "Reaped",
    "Selection",
    "known_from",
    "matches",
    "reap",
    "reap_async",
    "reap_problem",
    "reap_steps",
    "select",
    "selection_problem",
]

_OPERATION: Final = "reap sessions"

#: What became of one selected session.
Fate: TypeAlias = Literal["would cancel", "cancelled", "already gone", "failed"]


class Selection(msgspec.Struct, frozen=True, kw_only=True):
    """Which sessions to stop. Each selector given must match; None means "any".

    ``machine_id``: on this machine. ``older_than``: created longer ago than this.
    ``gpu``: on this GPU (exact name). ``cost_over``: cost so far above this many USD.
    ``user_id``: started by this user (the API's ``user_id``: with an org key, a member).
    The owner selectors need the local ledger (:class:`~cdsessions.ledger.Ledger`) and match
    only sessions it recorded with certainty, never an unresolved create's candidates:
    ``mine``: recorded by this machine's ledger; ``label``: recorded with this label;
    ``owner_gone``: recorded by a process of this host that no longer runs (a pid reused by
    another process counts as gone). ``everything``: with no other selector, every session
    (never implied by an empty selection)."""

    machine_id: str | None = None
    older_than: timedelta | None = None
    gpu: str | None = None
    cost_over: Decimal | None = None
    user_id: str | None = None
    mine: bool = False
    label: str | None = None
    owner_gone: bool = False
    everything: bool = False

    @property
    def has_selector(self) -> bool:
        return self.needs_ledger or any(
            value is not None
            for value in (self.machine_id, self.older_than, self.gpu, self.cost_over, self.user_id)
        )

    @property
    def needs_ledger(self) -> bool:
        """Whether a selector here is judged from the ledger (``mine``, ``label``,
        ``owner_gone``)."""
        return self.mine is True or self.owner_gone is True or self.label is not None


def selection_problem(selection: object) -> tuple[str, str] | None:
    """The field of ``selection`` that cannot be used to cancel sessions, and why; or None.

    Checked here, when a reap is asked for, not by the constructor: like a
    :class:`~cdsessions.CreateSessionBody` or a :class:`~cdsessions.Timeout`, a Selection is a
    plain frozen value that holds whatever it is given, and the operation using it refuses it
    as a value (:class:`~cdsessions.errors.InvalidRequest`), so nothing raises and nothing is
    sent. Every field is checked for its type: a wrong one would otherwise raise ``TypeError``
    half-way, or quietly match nothing."""
    if not isinstance(selection, Selection):
        return "selection", f"must be a Selection, not {type(selection).__name__}"
    machine = selection.machine_id
    if machine is not None:
        checked = check_id(machine, "machine_id", _OPERATION)
        if not isinstance(checked, Success):
            return "machine_id", checked.failure().problem
    older = selection.older_than
    if older is not None:
        if not isinstance(older, timedelta):
            return "older_than", f"must be a timedelta, not {type(older).__name__}"
        if older < timedelta(0):
            return "older_than", "must not be negative"
    gpu = selection.gpu
    if gpu is not None and (not isinstance(gpu, str) or not gpu.strip()):
        return "gpu", "must be a MachineGPU or a non-blank GPU name"
    if selection.cost_over is not None:
        if not isinstance(selection.cost_over, Decimal):
            return "cost_over", (
                f"must be a Decimal amount of USD, not {type(selection.cost_over).__name__}"
            )
        amount = money.usd_from(selection.cost_over)
        if not isinstance(amount, Success):
            return "cost_over", amount.failure()
    for name in ("user_id", "label"):
        value = getattr(selection, name)
        if value is not None and (not isinstance(value, str) or not value.strip()):
            return name, "must be a non-blank string"
    for name in ("mine", "owner_gone", "everything"):
        value = getattr(selection, name)
        if not isinstance(value, bool):
            return name, f"must be True or False, not {type(value).__name__}"
    if not selection.has_selector and not selection.everything:
        return "selection", (
            "no selector given (machine, age, GPU, cost, user or owner); refusing to select "
            "every session unless that is asked for explicitly"
        )
    return None


def _now_problem(now: object) -> str | None:
    """Why ``now`` cannot judge ages and costs: it must be an aware datetime (a naive one
    cannot be compared with the server's times, and would be read in the wrong zone)."""
    if not isinstance(now, datetime):
        return f"must be an aware datetime, not {type(now).__name__}"
    if now.utcoffset() is None:
        return "must be an aware datetime (give a tzinfo, such as datetime.now(UTC))"
    return None


def reap_problem(
    selection: object, now: object, dry_run: object, known: object = None
) -> InvalidRequest | None:
    """Why a reap with these inputs cannot go ahead, or None: checked before anything is sent.
    ``known``: what the ledger holds (:class:`Known`), needed by the owner selectors."""
    problem = selection_problem(selection)
    if problem is not None:
        return InvalidRequest(_OPERATION, *problem)
    assert isinstance(selection, Selection)  # selection_problem says so
    if selection.needs_ledger and not isinstance(known, Known):
        return InvalidRequest(
            _OPERATION,
            "ledger",
            "mine, label and owner_gone are judged from the local ledger: give the client "
            "(or reap) a Ledger",
        )
    why_not_now = _now_problem(now)
    if why_not_now is not None:
        return InvalidRequest(_OPERATION, "now", why_not_now)
    if not isinstance(dry_run, bool):
        return InvalidRequest(_OPERATION, "dry_run", "must be True or False")
    return None


def matches(costs: SessionCosts, selection: Selection, owned: Owned | None = None) -> bool:
    """Whether the session ``costs`` describes is selected (see the module docs); ``owned``:
    what the ledger knows of it (see :func:`~cdsessions.ledger.ownership`)."""
    if not selection.has_selector:
        return selection.everything is True
    session = costs.session
    if selection.user_id is not None and session.user_id != selection.user_id:
        return False
    if selection.needs_ledger:
        # Only a session the ledger recorded for certain: a candidate is never reaped on a guess.
        if owned is None or not owned.certain:
            return False
        if selection.label is not None and owned.intent.label != selection.label:
            return False
        if selection.owner_gone is True and owned.gone is not True:
            return False
    if selection.machine_id is not None and session.machine_id != selection.machine_id:
        return False
    if selection.gpu is not None and session.gpu != selection.gpu:
        return False
    if selection.older_than is not None and (
        isinstance(costs.age, Unknown) or costs.age <= selection.older_than
    ):
        return False
    return selection.cost_over is None or (
        not isinstance(costs.cost_so_far, Unknown)
        and money.exceeds(costs.cost_so_far, selection.cost_over)
    )


class Known(msgspec.Struct, frozen=True):
    """What the ledger holds, read before a reap: its intents, and for each intent id whether
    its owner process is gone (:func:`~cdsessions.ledger.owner_gone`; None: not judged here)."""

    intents: tuple[Intent, ...] = ()
    gone: Mapping[int, bool | None] = msgspec.field(default_factory=dict)


def select(
    sessions: Iterable[Session],
    selection: Selection,
    pricing: GpuPricing,
    now: datetime,
    known: Known | None = None,
) -> tuple[SessionCosts, ...]:
    """The selected sessions, in the order given, each with its figures at ``now``."""
    listed = tuple(sessions)
    owners = ownership(listed, known.intents, known.gone) if known is not None else {}
    figured = (costs_of(session, pricing, now) for session in listed)
    return tuple(
        costs
        for costs in figured
        if matches(costs, selection, owners.get(costs.session.session_id))
    )


def known_from(ledger: Ledger) -> Known:
    """Read ``ledger`` and judge its owners (I/O: the file, and this host's processes)."""
    intents = ledger.intents()
    return Known(intents, judge_owners(intents))


class Reaped(msgspec.Struct, frozen=True):
    """One selected session and what became of it; ``error`` says why a cancel failed."""

    costs: SessionCosts
    outcome: Fate
    error: ApiError | None = None

    @property
    def session_id(self) -> str:
        return self.costs.session.session_id


class ReapReport(msgspec.Struct, frozen=True):
    """What :func:`reap` did: ``considered`` sessions listed, ``reaped`` the selected ones."""

    selection: Selection
    now: datetime
    dry_run: bool
    considered: int
    reaped: tuple[Reaped, ...]
    #: Why no prices were known (their fetch failed): the savings are then unknown.
    prices_failed: ApiError | None = None

    @property
    def failed(self) -> tuple[Reaped, ...]:
        return tuple(item for item in self.reaped if item.outcome == "failed")

    @property
    def ok(self) -> bool:
        """True when no cancel failed."""
        return not self.failed

    @property
    def saves(self) -> Decimal:
        """USD no longer to be billed (or, in a dry run, that would not be): each stopped
        session's cost from ``now`` to its timeout, where known (see :attr:`unpriced`)."""
        return money.total(
            item.costs.remaining_cost
            for item in self.reaped
            if item.outcome != "failed" and not isinstance(item.costs.remaining_cost, Unknown)
        )

    @property
    def unpriced(self) -> int:
        """How many stopped sessions have savings that cannot be known (not in :attr:`saves`)."""
        return sum(
            1
            for item in self.reaped
            if item.outcome != "failed" and isinstance(item.costs.remaining_cost, Unknown)
        )


class ReapProgress(msgspec.Struct, frozen=True):
    """How far a :func:`reap` has got: the ``selected`` sessions, and what became of the first
    ``len(reaped)`` of them. If the reap is interrupted (Ctrl-C, a cancelled task), the last
    progress says which were stopped, which cancel may have been in flight (``pending[0]``)
    and which were never attempted."""

    selected: tuple[SessionCosts, ...]
    reaped: tuple[Reaped, ...]

    @property
    def pending(self) -> tuple[SessionCosts, ...]:
        return self.selected[len(self.reaped) :]


#: Called with a :class:`ReapProgress` once the sessions are selected and after each cancel.
OnProgress: TypeAlias = Callable[[ReapProgress], None]


def reap_steps(
    core: ClientCore,
    selection: Selection,
    now: datetime,
    *,
    dry_run: bool = False,
    on_progress: OnProgress | None = None,
    known: Known | None = None,
) -> Flow[Any, Result[ReapReport, ApiError]]:
    """The steps of :func:`reap`, built from ``core``'s calls, for either client's driver.

    The price table is needed only to judge ``cost_over``; without it (the fetch failed) the
    other selectors still work and savings are reported as unknown, since stopping a forgotten
    session must not depend on the price endpoint."""
    problem = reap_problem(selection, now, dry_run, known)
    if problem is not None:
        return Failure(problem)
    listed = yield from core.list(selection.machine_id, None, None)
    if not isinstance(listed, Success):
        return Failure(listed.failure())
    priced = yield from core.gpu_pricing(False, None, None)
    prices_failed: ApiError | None = None
    if isinstance(priced, Success):
        pricing: GpuPricing = priced.unwrap()
    elif selection.cost_over is not None:
        return Failure(priced.failure())
    else:
        prices_failed = priced.failure()
        pricing = NO_TABLE
    sessions: list[Session] = listed.unwrap()
    chosen = select(sessions, selection, pricing, now, known)
    reaped: list[Reaped] = []
    tell = on_progress if on_progress is not None else _ignore
    tell(ReapProgress(chosen, ()))
    for costs in chosen:
        if dry_run:
            reaped.append(Reaped(costs, "would cancel"))
            continue
        answer = yield from core.cancel(costs.session.session_id, False, None, None)
        if isinstance(answer, Success):
            reaped.append(Reaped(costs, "cancelled"))
        elif counts_as_closed(answer.failure()):
            reaped.append(Reaped(costs, "already gone"))
        else:
            reaped.append(Reaped(costs, "failed", answer.failure()))
        tell(ReapProgress(chosen, tuple(reaped)))
    report = ReapReport(selection, now, dry_run, len(sessions), tuple(reaped), prices_failed)
    return Success(report)


def _ignore(progress: ReapProgress) -> None:
    """No one is watching."""


def _known(
    client: SessionsClient | AsyncSessionsClient, selection: object, ledger: Ledger | None
) -> Known | None:
    chosen = ledger if ledger is not None else client.ledger
    if chosen is None or not isinstance(selection, Selection) or not selection.needs_ledger:
        return None
    return known_from(chosen)


def reap(
    client: SessionsClient,
    selection: Selection,
    now: datetime,
    *,
    dry_run: bool = False,
    on_progress: OnProgress | None = None,
    ledger: Ledger | None = None,
) -> Result[ReapReport, ApiError]:
    """List, select (see :func:`select`) and cancel. ``now`` judges ages and costs (pass
    ``datetime.now(UTC)``). A failed cancel is reported in its :class:`Reaped` and the others
    go ahead; ``report.ok`` is False then. Failure only when nothing could be judged: a bad
    input (an ``InvalidRequest`` naming the field: a selector of the wrong type or value, a
    naive ``now``; nothing is sent), the list failed, or ``cost_over`` was given and the prices
    could not be had (without ``cost_over`` the prices only fill the savings, which are then
    unknown, and ``report.prices_failed`` says why). The owner selectors read ``ledger`` (by
    default the client's); without one they are an ``InvalidRequest`` (field ``ledger``).
    ``on_progress`` (see :class:`ReapProgress`) is told after the selection and each cancel."""
    known = _known(client, selection, ledger)
    steps = reap_steps(
        client._core, selection, now, dry_run=dry_run, known=known, on_progress=on_progress
    )
    return client._run(steps)


async def reap_async(
    client: AsyncSessionsClient,
    selection: Selection,
    now: datetime,
    *,
    dry_run: bool = False,
    on_progress: OnProgress | None = None,
    ledger: Ledger | None = None,
) -> Result[ReapReport, ApiError]:
    """:func:`reap` for the :class:`~cdsessions.AsyncSessionsClient` (cancels one at a time)."""
    known = _known(client, selection, ledger)
    steps = reap_steps(
        client._core, selection, now, dry_run=dry_run, known=known, on_progress=on_progress
    )
    return await client._run(steps)
