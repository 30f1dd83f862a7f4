"""The budget guard: refuse a create (or an extension) whose worst case is over budget, before
anything is sent.

A session is billed per second until its timeout, so the most a new one can cost is the
requested minutes (the server's 15 when none or 0 is asked for) x 60 x its GPU's price per
second. :func:`check_create` compares that with a budget and answers with an :class:`Allowance`
(what was checked, kept for later extensions) or an :class:`OverBudget`, an
:class:`~cdsessions.errors.InvalidRequest` naming the numbers. A session that cannot be priced
(no GPU named, so the machine's default applies and the client cannot know it; or a GPU missing
from the price table) is refused too: a budget that cannot be checked is not a budget.
All pure: the caller fetches the price table. The numbers come from
:mod:`cdsessions._core.money` (exact, and every message bounded in length whatever they are).
"""

from __future__ import annotations

from decimal import Decimal
from typing import Final

import msgspec
from returns.result import Failure, Result, Success

from cdsessions._core import money
from cdsessions._core.pricing import GpuPricing, NoPrice, Price
from cdsessions.errors import InvalidRequest, OverBudget
from cdsessions.models import CreateSessionBody

__all__ = [
    "DEFAULT_MINUTES",
    "Allowance",
    "OverBudget",
    "budget_from",
    "check_create",
    "check_extend",
    "requested_minutes",
]

#: What the server makes of a timeout of None or 0.
DEFAULT_MINUTES: Final = 15
#: A GPU name in a message is cut to this many characters (names come from the server).
_NAME_CHARS: Final = 40


class Allowance(msgspec.Struct, frozen=True):
    """A session checked against ``budget``: billed at ``price``, for ``minutes`` minutes in all
    so far (the requested ones plus extensions)."""

    budget: Decimal
    price: Price
    minutes: int

    @property
    def worst_case(self) -> Decimal:
        """USD, if the session runs all its minutes."""
        return worst_case(self.minutes, self.price)


def requested_minutes(timeout: int | None) -> int:
    """The minutes a create asks for, as the server counts them (None or 0 mean 15)."""
    return timeout or DEFAULT_MINUTES


def worst_case(minutes: int, price: Price) -> Decimal:
    """``minutes`` x 60 x the price per second, exactly (see
    :func:`cdsessions._core.money.for_minutes`)."""
    return money.for_minutes(minutes, price.usd_per_second)


def budget_from(value: object, operation: str) -> Result[Decimal, InvalidRequest]:
    """A ``max_cost`` as exact USD (see :func:`cdsessions._core.money.usd_from`), or why not."""
    return money.usd_from(value).alt(lambda problem: InvalidRequest(operation, "max_cost", problem))


def _name(gpu: str) -> str:
    return gpu if len(gpu) <= _NAME_CHARS else gpu[: _NAME_CHARS - 1] + "…"


def _sum(minutes: int, price: Price) -> str:
    rate = money.exact_text(price.usd_per_second)
    return (
        f"{minutes} min x 60 s x {rate} USD/s ({_name(price.gpu)}) = "
        f"{money.usd_text(worst_case(minutes, price))}"
    )


def _unpriceable(operation: str, why: str, budget: Decimal) -> OverBudget:
    problem = f"{why}; the budget is {money.usd_text(budget)}"
    return OverBudget(operation, "max_cost", problem, budget=budget, worst_case=None)


def check_create(
    body: CreateSessionBody, pricing: GpuPricing, budget: Decimal, operation: str
) -> Result[Allowance, OverBudget]:
    """May ``body`` be created within ``budget`` USD? See the module docs."""
    minutes = requested_minutes(body.timeout)
    found = pricing.price_per_second(body.gpu)
    if isinstance(found, NoPrice):
        why = (
            "no GPU given and the machine names no default GPU (name the GPU)"
            if found.gpu is None
            else f"GPU {_name(found.gpu)} cannot be priced ({found.reason})"
        )
        return Failure(_unpriceable(operation, why, budget))
    unpriceable = money.minutes_problem(minutes)
    if unpriceable is not None:
        return Failure(_unpriceable(operation, unpriceable, budget))
    allowance = Allowance(budget, found, minutes)
    if not money.within(allowance.worst_case, budget):
        problem = (
            f"worst case {_sum(minutes, found)} is over the budget of {money.usd_text(budget)}"
        )
        over = OverBudget(
            operation, "max_cost", problem, budget=budget, worst_case=allowance.worst_case
        )
        return Failure(over)
    return Success(allowance)


def check_extend(
    allowance: Allowance, minutes: int, operation: str
) -> Result[Allowance, OverBudget]:
    """May a session checked as ``allowance`` get ``minutes`` more? The new worst case is the
    whole session's: all its minutes so far plus these, at its price."""
    extended = Allowance(allowance.budget, allowance.price, allowance.minutes + minutes)
    unpriceable = money.minutes_problem(extended.minutes)
    if unpriceable is not None:
        return Failure(_unpriceable(operation, unpriceable, allowance.budget))
    if not money.within(extended.worst_case, allowance.budget):
        problem = (
            f"worst case after the extension {_sum(extended.minutes, allowance.price)} is over "
            f"the budget of {money.usd_text(allowance.budget)}"
        )
        return Failure(
            OverBudget(
                operation,
                "max_cost",
                problem,
                budget=allowance.budget,
                worst_case=extended.worst_case,
            )
        )
    return Success(extended)
