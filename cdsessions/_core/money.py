"""Money: the one home of every amount of US dollars the client reads, computes or shows.

An amount is an exact :class:`~decimal.Decimal`, never a float, and always a *checked* one:
:func:`amount_from` (any sign: a price) and :func:`usd_from` (not negative: a budget) turn what
the server or the caller gives into one, or into the reason why not. A checked amount is finite,
below :data:`LIMIT` (``1e30`` USD) in size and has at most :data:`PLACES` (30) decimal places:
every absurd value (``9e999999``, ``1e-999999``, ``NaN``, a thousand digits) is refused at the
door with a clear message, so nothing inside needs to fear it.

The arithmetic the costs need (:func:`per_hour`, :func:`billed`, :func:`for_minutes`,
:func:`total`) runs in one context, :data:`CONTEXT`: 100 significant digits, which keeps every
product and sum of checked amounts and real durations exact, and no traps, so no input can make
it raise. Nothing else in the package does ``Decimal`` arithmetic or reads the thread's context.

Three formatters, each bounded in length whatever the value:

* :func:`format_usd` rounds for display, ``$1,234.50`` (at most :data:`DISPLAY_CHARS`);
* :func:`usd_text` writes an amount in a message, ``0.6066 USD``, ``> 1e+30 USD`` or
  ``< 0.000001 USD`` (at most :data:`TEXT_CHARS`);
* :func:`exact_text` writes the exact digits for machines (``--json``), ``"1.3143"``: never an
  exponent for the results of this module; anything else is rounded to the context's
  precision first and shown in scientific notation when long (at most :data:`TEXT_CHARS`).
"""

from __future__ import annotations

import decimal
from collections.abc import Iterable
from datetime import timedelta
from decimal import Decimal
from typing import Final

from returns.result import Failure, Result, Success

__all__ = [
    "CONTEXT",
    "DISPLAY_CHARS",
    "LIMIT",
    "MAX_MINUTES",
    "PLACES",
    "TEXT_CHARS",
    "amount_from",
    "amount_problem",
    "billed",
    "exact_text",
    "exceeds",
    "for_minutes",
    "format_usd",
    "minutes_problem",
    "per_hour",
    "seconds_of",
    "total",
    "usd_from",
    "usd_text",
    "within",
]

#: Every money calculation: 100 digits keep products of checked amounts (at most 60 digits)
#: and durations (at most 20) exact, and sums of them; no traps, so nothing raises out of it
#: (an impossible result is a NaN or an infinity, which the checks below never let in).
CONTEXT: Final = decimal.Context(
    prec=100,
    rounding=decimal.ROUND_HALF_EVEN,
    Emin=-999_999,
    Emax=999_999,
    traps=[],
    flags=[],
)
#: A checked amount is smaller than this in size...
LIMIT: Final = Decimal("1e30")
#: ...and has at most this many decimal places (the smallest step is 1e-30 USD).
PLACES: Final = 30
#: The most minutes a worst case is worked out for (priced exactly up to here).
MAX_MINUTES: Final = 10**30
#: The longest text :func:`format_usd` returns (``-$`` + 30 digits + 9 commas + ``.`` + 12).
DISPLAY_CHARS: Final = 56
#: The longest text :func:`usd_text` and :func:`exact_text` return.
TEXT_CHARS: Final = 120
#: Reading and writing only, never arithmetic: every digit and exponent kept (no rounding), and
#: a string that is not a number raises InvalidOperation (caught), whatever the thread's context.
_WHOLE: Final = decimal.Context(
    prec=decimal.MAX_PREC,
    Emin=decimal.MIN_EMIN,
    Emax=decimal.MAX_EMAX,
    traps=[decimal.InvalidOperation],
    flags=[],
)
#: Writing: 100 digits, any exponent, no traps.
_WRITING: Final = decimal.Context(
    prec=CONTEXT.prec, Emin=decimal.MIN_EMIN, Emax=decimal.MAX_EMAX, traps=[], flags=[]
)
#: A string longer than this is not read as an amount at all.
_LONGEST_INPUT: Final = 1000
_STEP: Final = Decimal(1).scaleb(-PLACES, CONTEXT)
_INT_LIMIT: Final = 10**30
_SECONDS_PER_HOUR: Final = Decimal(3600)
_SIXTY: Final = Decimal(60)
_MICRO: Final = Decimal("0.000001")
_MILLION: Final = Decimal(1_000_000)
_MOST_PLACES_SHOWN: Final = 12


# -- reading ---------------------------------------------------------------------------------


def _decimal_of(value: object) -> Result[Decimal, str]:
    """``value`` as a Decimal, without rounding, or why it is not a number at all."""
    if isinstance(value, bool) or not isinstance(value, Decimal | int | str | float):
        return Failure(
            f"must be an amount of USD (Decimal, int or str), not {type(value).__name__}"
        )
    if isinstance(value, Decimal):
        return Success(value)
    if isinstance(value, int):  # compared as an int: a huge one is never converted
        if abs(value) >= _INT_LIMIT:
            return Failure("is too large: at least 1e+30 USD")
        return Success(Decimal(value))
    # A float is read through its shortest repr: 0.1 is "0.1", what was typed.
    text = (repr(value) if isinstance(value, float) else value).strip()
    if len(text) > _LONGEST_INPUT:
        return Failure(f"is not an amount of USD ({len(text)} characters)")
    try:
        return Success(_WHOLE.create_decimal(text))  # exact: this context never rounds
    except (decimal.InvalidOperation, ValueError):
        shown = repr(text[:24])  # escapes make a repr up to ten times longer: cut it too
        return Failure(f"{shown if len(shown) <= 50 else shown[:49] + '…'} is not an amount of USD")


def amount_problem(amount: Decimal) -> str | None:
    """Why ``amount`` is not a checked amount (see the module docs), or None."""
    if not amount.is_finite():
        return "must be a finite amount of USD, not NaN or an infinity"
    if amount.is_zero():
        return None
    if amount.adjusted() >= PLACES:
        return "is too large: at least 1e+30 USD"
    exponent = amount.as_tuple().exponent
    assert isinstance(exponent, int)  # finite
    if exponent < -PLACES and amount.quantize(_STEP, context=CONTEXT) != amount:
        return f"has more than {PLACES} decimal places (the smallest step is 1e-30 USD)"
    return None


def _checked(amount: Decimal) -> Decimal:
    """A checked amount in its plain form: zero is 0 (never -0 or 0E-999999), and at most
    :data:`PLACES` places (trailing zeros past them dropped)."""
    if amount.is_zero():
        return Decimal(0)
    exponent = amount.as_tuple().exponent
    assert isinstance(exponent, int)  # finite
    return amount.quantize(_STEP, context=CONTEXT) if exponent < -PLACES else amount


def amount_from(value: object) -> Result[Decimal, str]:
    """An amount of USD of any sign (a price as the server wrote it), exactly, or why ``value``
    is not one. ``Decimal``, ``int`` and ``str`` (``"2.50"``, surrounding spaces ignored) are
    taken exactly; a ``float`` through its shortest ``repr``; a bool is refused."""
    parsed = _decimal_of(value)
    if not isinstance(parsed, Success):
        return parsed
    amount = parsed.unwrap()
    problem = amount_problem(amount)
    return Failure(problem) if problem is not None else Success(_checked(amount))


def usd_from(value: object) -> Result[Decimal, str]:
    """An amount of USD that is not negative (a budget), exactly, or why not: as
    :func:`amount_from`, and a negative amount is refused."""
    parsed = amount_from(value)
    if isinstance(parsed, Success) and parsed.unwrap() < 0:
        return Failure(f"must not be negative ({usd_text(parsed.unwrap())})")
    return parsed


def minutes_problem(minutes: int) -> str | None:
    """Why a worst case cannot be worked out for ``minutes``, or None."""
    if isinstance(minutes, bool) or not isinstance(minutes, int) or minutes < 0:
        return "minutes must be a whole number, at least 0"
    if minutes > MAX_MINUTES:
        return "a timeout of more than 1e+30 minutes cannot be priced"
    return None


# -- arithmetic (exact for checked amounts) ----------------------------------------------------


def per_hour(usd_per_second: Decimal) -> Decimal:
    """The hourly rate of a price per second."""
    return CONTEXT.multiply(usd_per_second, _SECONDS_PER_HOUR)


def seconds_of(span: timedelta) -> Decimal:
    """A timedelta as exact seconds (microseconds included): no float in between."""
    # A division, not x 0.000001: its result keeps no trailing zeros (2700, not 2700.000000).
    return CONTEXT.divide(Decimal(span // timedelta(microseconds=1)), _MILLION)


def billed(span: timedelta, usd_per_second: Decimal) -> Decimal:
    """What ``span`` costs at ``usd_per_second`` (a negative span bills nothing)."""
    return CONTEXT.multiply(seconds_of(max(span, timedelta(0))), usd_per_second)


def for_minutes(minutes: int, usd_per_second: Decimal) -> Decimal:
    """``minutes`` x 60 x ``usd_per_second``: exact when :func:`minutes_problem` finds none."""
    return CONTEXT.multiply(CONTEXT.multiply(Decimal(minutes), _SIXTY), usd_per_second)


def exceeds(amount: Decimal, limit: Decimal) -> bool:
    """Whether ``amount`` is more than ``limit``: False, never an exception, if either is NaN
    (``>`` would raise through the thread's context)."""
    return CONTEXT.compare(amount, limit) == 1


def within(amount: Decimal, limit: Decimal) -> bool:
    """Whether ``amount`` is at most ``limit``: False if either is NaN, so a guard refuses."""
    return CONTEXT.compare(amount, limit) in (-1, 0)


def total(amounts: Iterable[Decimal]) -> Decimal:
    """The sum of ``amounts`` (0 for none)."""
    result = Decimal(0)
    for amount in amounts:
        result = CONTEXT.add(result, amount)
    return result


# -- writing (bounded) -----------------------------------------------------------------------


def _out_of_range(amount: Decimal) -> int:
    """1 (or -1) for an amount too large to write, in that direction; else 0. NaN is 0."""
    if amount.is_nan() or not (amount.is_infinite() or amount.adjusted() >= PLACES):
        return 0
    return -1 if amount.is_signed() else 1


def exact_text(amount: Decimal) -> str:
    """The exact digits, no exponent, no trailing zeros: ``"1.3143"``, ``"0"``. What this
    module computes always fits; any other value is rounded to 100 digits first, and written
    in scientific notation (``"9E+999999"``) if its plain form would be too long."""
    if not amount.is_finite():
        return (
            ("-Infinity" if amount.is_signed() else "Infinity") if amount.is_infinite() else "NaN"
        )
    if amount.is_zero():
        return "0"
    reduced = amount.normalize(_WRITING)  # at most 100 digits
    exponent = reduced.as_tuple().exponent
    assert isinstance(exponent, int)  # finite
    if reduced.adjusted() < TEXT_CHARS - 10 and exponent > 10 - TEXT_CHARS:
        plain = f"{reduced:f}"
        if len(plain) <= TEXT_CHARS:
            return plain
    return f"{reduced:E}"


def usd_text(amount: Decimal) -> str:
    """An amount for a message: ``0.6066 USD`` (exact), ``> 1e+30 USD`` beyond that range,
    ``< 0.000001 USD`` below a millionth of a dollar (not zero), ``-`` in front if negative."""
    if amount.is_nan():
        return "an unknown amount of USD"
    direction = _out_of_range(amount)
    if direction:
        return "> 1e+30 USD" if direction > 0 else "< -1e+30 USD"
    if not amount.is_zero() and amount.copy_abs() < _MICRO:
        return "> -0.000001 USD" if amount.is_signed() else "< 0.000001 USD"
    return f"{exact_text(amount)} USD"


def format_usd(amount: Decimal, places: int = 2) -> str:
    """``amount`` rounded (half up) to ``places`` decimals (0 to 12) for display: ``$1.21``,
    ``$1,234.50``; ``> $1e+30`` beyond the range of amounts. Only ever for display; every
    calculation keeps the exact value."""
    if amount.is_nan():
        return "$?"
    direction = _out_of_range(amount)
    if direction:
        return "> $1e+30" if direction > 0 else "< -$1e+30"
    shown = min(max(places, 0), _MOST_PLACES_SHOWN)
    step = Decimal(1).scaleb(-shown, CONTEXT)
    rounded = amount.quantize(step, rounding=decimal.ROUND_HALF_UP, context=CONTEXT)
    sign = "-" if rounded < 0 else ""  # -0.001 rounds to 0.00: no sign
    # copy_abs and format never round: the thread's context plays no part.
    return f"{sign}${rounded.copy_abs():,.{shown}f}"
