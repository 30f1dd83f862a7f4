"""What a session costs: pure functions of a :class:`~cdsessions.Session`, the price table and
an explicit ``now`` (an aware datetime; nothing here reads a clock).

Billing runs per second from the session's start to its end. The best start a client sees is
``created_at``; the end is ``timeout_end`` unless the session is cancelled first. So:

* **age**: ``now - created_at`` (never negative);
* **time left**: ``timeout_end - now`` (never negative);
* **cost so far**: the billed seconds, from ``created_at`` to ``now`` but never past
  ``timeout_end``, x the GPU's price per second;
* **most it will cost**: from ``created_at`` to ``timeout_end``, x the price (an extension
  raises it).

Money is an exact :class:`~decimal.Decimal`, worked out by :mod:`cdsessions._core.money`
(round it only to show it, with :func:`~cdsessions._core.money.format_usd`). When a figure
cannot be known, because the GPU has no price, the session has no ``created_at`` or no
``timeout_end``, the function returns an :class:`Unknown` value saying which, never a guess, a
None or an exception.
"""

from __future__ import annotations

from datetime import datetime, timedelta
from decimal import Decimal
from typing import Final, TypeAlias

import msgspec

from cdsessions._core import money
from cdsessions._core.money import seconds_of
from cdsessions._core.pricing import GpuPricing, NoPrice, Price
from cdsessions._core.unknown import Unknown
from cdsessions.models import Session

__all__ = [
    "Money",
    "SessionCosts",
    "Span",
    "Unknown",
    "age",
    "cost_so_far",
    "costs_of",
    "max_cost",
    "remaining_cost",
    "seconds_of",
    "time_left",
]

_ZERO: Final = timedelta(0)


#: USD, exactly, or why not.
Money: TypeAlias = Decimal | Unknown
#: A length of time, or why not.
Span: TypeAlias = timedelta | Unknown

_NO_START: Final = Unknown("the session has no created_at")
_NO_END: Final = Unknown("the session has no timeout_end")


def age(session: Session, now: datetime) -> Span:
    """How long ago the session was created (0 if ``now`` is before that)."""
    if session.created_at is None:
        return _NO_START
    return max(now - session.created_at, _ZERO)


def time_left(session: Session, now: datetime) -> Span:
    """How long until the session's timeout (0 once it has passed)."""
    if session.timeout_end is None:
        return _NO_END
    return max(session.timeout_end - now, _ZERO)


def _price(session: Session, pricing: GpuPricing) -> Price | Unknown:
    found = pricing.price_per_second(session.gpu)
    return Unknown(str(found)) if isinstance(found, NoPrice) else found


def _billed(span: timedelta, price: Price) -> Decimal:
    return money.billed(span, price.usd_per_second)


def cost_so_far(session: Session, pricing: GpuPricing, now: datetime) -> Money:
    """USD billed from ``created_at`` until ``now``, never past ``timeout_end``.

    Without a ``timeout_end`` the cost until ``now`` is still known (nothing caps it)."""
    price = _price(session, pricing)
    if isinstance(price, Unknown):
        return price
    if session.created_at is None:
        return _NO_START
    end = now if session.timeout_end is None else min(now, session.timeout_end)
    return _billed(end - session.created_at, price)


def max_cost(session: Session, pricing: GpuPricing) -> Money:
    """USD the session costs if it runs until its ``timeout_end``."""
    price = _price(session, pricing)
    if isinstance(price, Unknown):
        return price
    if session.created_at is None:
        return _NO_START
    if session.timeout_end is None:
        return _NO_END
    return _billed(session.timeout_end - session.created_at, price)


def remaining_cost(session: Session, pricing: GpuPricing, now: datetime) -> Money:
    """USD still to be billed if the session is left to its ``timeout_end``: what cancelling it
    at ``now`` saves."""
    price = _price(session, pricing)
    if isinstance(price, Unknown):
        return price
    left = time_left(session, now)
    if isinstance(left, Unknown):
        return left
    if session.created_at is not None and now < session.created_at:
        # Not started yet as of ``now``: everything up to the timeout is still to come.
        assert session.timeout_end is not None  # time_left found it
        return _billed(session.timeout_end - session.created_at, price)
    return _billed(left, price)


class SessionCosts(msgspec.Struct, frozen=True):
    """Every figure of one session at ``now``, as :func:`costs_of` works them out."""

    session: Session
    now: datetime
    price: Price | NoPrice
    age: Span
    time_left: Span
    cost_so_far: Money
    max_cost: Money
    remaining_cost: Money

    @property
    def usd_per_hour(self) -> Money:
        if isinstance(self.price, NoPrice):
            return Unknown(str(self.price))
        return self.price.usd_per_hour


def costs_of(session: Session, pricing: GpuPricing, now: datetime) -> SessionCosts:
    """All the figures of ``session`` at ``now`` in one value."""
    return SessionCosts(
        session=session,
        now=now,
        price=pricing.price_per_second(session.gpu),
        age=age(session, now),
        time_left=time_left(session, now),
        cost_so_far=cost_so_far(session, pricing, now),
        max_cost=max_cost(session, pricing),
        remaining_cost=remaining_cost(session, pricing, now),
    )
