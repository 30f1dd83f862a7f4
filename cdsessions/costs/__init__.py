"""Costs: what sessions cost, what they may cost, and cancelling those that should not run.

The price table (:class:`GpuPricing`, exact USD per second), the cost columns of a session
(:func:`costs_of`), and the reaper (:func:`reap`, :class:`Selection`), which selects live
sessions and cancels them. The budget guard itself (``max_cost=`` on a create or a session
scope) is part of the create flow and returns :class:`~cdsessions.errors.OverBudget`.
"""

from typing import TYPE_CHECKING, Any

from cdsessions._core.money import format_usd
from cdsessions._core.pricing import GpuPricing, NoPrice, Price
from cdsessions.costs.figures import SessionCosts, Unknown, costs_of

if TYPE_CHECKING:
    from cdsessions.costs.reaper import (
        Reaped,
        ReapProgress,
        ReapReport,
        Selection,
        reap,
        reap_async,
    )

__all__ = [
    "GpuPricing",
    "NoPrice",
    "Price",
    "ReapProgress",
    "ReapReport",
    "Reaped",
    "Selection",
    "SessionCosts",
    "Unknown",
    "costs_of",
    "format_usd",
    "reap",
    "reap_async",
]


def __getattr__(name: str) -> Any:
    # The reaper drives the clients: loaded only by those who reap.
    if name in ("Reaped", "ReapProgress", "ReapReport", "Selection", "reap", "reap_async"):
        from cdsessions.costs import reaper

        return getattr(reaper, name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
