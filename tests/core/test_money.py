"""``cdsessions._core.money``: what an amount may be, the arithmetic on amounts, and the bounded
formatters. Properties over whatever a server or a caller may hand over, with the edges as
explicit examples: anything in gives a figure or a failure value, never an exception; text out
is bounded (:data:`~cdsessions._core.money.DISPLAY_CHARS`, 56 characters, for ``format_usd``;
:data:`~cdsessions._core.money.TEXT_CHARS`, 120, for ``usd_text`` and ``exact_text``); the
arithmetic is exact (checked against :class:`~fractions.Fraction`)."""

from __future__ import annotations

import decimal
from datetime import timedelta
from decimal import Decimal
from fractions import Fraction
from typing import Final

import pytest
from hypothesis import example, given, settings
from hypothesis import strategies as st
from returns.result import Failure, Success

from cdsessions._core import money

PROPERTY: Final = settings(max_examples=300, deadline=None)
#: A failure's message is one short sentence (it ends up in an InvalidRequest or DecodeFailed).
MESSAGE_CHARS: Final = 120


def _checked_amounts() -> st.SearchStrategy[Decimal]:
    """Every amount the money module accepts: below 1e30 in size, at most 30 places."""
    return st.builds(
        lambda n, places: Decimal(f"{n}e-{places}"),
        st.integers(-(10**30) + 1, 10**30 - 1),
        st.integers(0, 30),
    ).filter(lambda d: d.copy_abs() < money.LIMIT)


def _wild_decimals() -> st.SearchStrategy[Decimal]:
    """Decimals of any size and precision, NaN, sNaN and infinities included."""
    return st.decimals(allow_nan=True, allow_infinity=True) | st.builds(
        lambda digits, exponent, sign: Decimal((sign, tuple(int(c) for c in digits), exponent)),
        st.text("0123456789", min_size=1, max_size=300),
        st.integers(-(10**6), 10**6),
        st.integers(0, 1),
    )


def _anything() -> st.SearchStrategy[object]:
    """What a caller or a server may give as an amount."""
    number_text = st.builds(
        lambda mantissa, exponent, pad: f"{pad}{mantissa}e{exponent}{pad}",
        st.decimals(allow_nan=False, allow_infinity=False).map(str),
        st.integers(-(10**7), 10**7),
        st.sampled_from(["", " ", "\t"]),
    )
    return st.one_of(
        _wild_decimals(),
        st.integers(),
        st.integers(-(10**400), 10**400),
        st.floats(),
        st.text(max_size=50),
        number_text,
        st.booleans(),
        st.none(),
        st.lists(st.integers(), max_size=2),
    )


# -- reading ---------------------------------------------------------------------------------


@PROPERTY
@given(value=_anything())
@example(value=0)
@example(value="1e-999999")
@example(value="9e999999")
@example(value=Decimal("9e999999"))
@example(value=Decimal("1e-999999"))
@example(value="-0")
@example(value=Decimal("-0"))
@example(value="NaN")
@example(value=Decimal("sNaN"))
@example(value=float("nan"))
@example(value=float("inf"))
@example(value="Infinity")
@example(value="1e70")
@example(value=10**1000)
@example(value=-(10**4300))
@example(value=True)
@example(value=" 2.50 ")
@example(value="2 .5")
@example(value="1" * 5000)
@example(value="0E-999999")
@example(value=5e-324)
@example(value=1.7976931348623157e308)
def test_any_value_is_an_amount_or_a_reason_never_an_exception(value: object) -> None:
    for read in (money.amount_from, money.usd_from):
        result = read(value)
        if isinstance(result, Failure):
            assert isinstance(result.failure(), str)
            assert 0 < len(result.failure()) <= MESSAGE_CHARS
            continue
        amount = result.unwrap()
        assert type(amount) is Decimal
        assert money.amount_problem(amount) is None
        assert amount.is_finite()
        assert amount.copy_abs() < money.LIMIT
        exponent = amount.as_tuple().exponent
        assert isinstance(exponent, int)
        assert exponent >= -money.PLACES
        if read is money.usd_from:
            assert not amount.is_signed()  # never negative, never -0
        assert len(money.exact_text(amount)) <= money.TEXT_CHARS


@PROPERTY
@given(amount=_checked_amounts())
@example(amount=Decimal("0"))
@example(amount=Decimal("1e-30"))
@example(amount=Decimal("-999999999999999999999999999999.999999999999999999999999999999"))
def test_a_checked_amount_is_read_exactly_from_each_form(amount: Decimal) -> None:
    assert money.amount_from(amount) == Success(amount)
    assert money.amount_from(str(amount)) == Success(amount)
    assert money.amount_from(f"  {amount}  ") == Success(amount)
    written = money.exact_text(amount)
    assert "e" not in written.lower()
    assert Decimal(written) == amount
    if amount == amount.to_integral_value():
        assert money.amount_from(int(amount)) == Success(amount)


@pytest.mark.parametrize(
    ("value", "fragment"),
    [
        ("9e999999", "too large"),
        (Decimal("9e999999"), "too large"),
        ("1e70", "too large"),
        (10**30, "too large"),
        ("1e-999999", "more than 30 decimal places"),
        ("1e-31", "more than 30 decimal places"),
        ("NaN", "finite"),
        (Decimal("-Infinity"), "finite"),
        (True, "not bool"),
        (None, "not NoneType"),
        ("1" * 2000, "2000 characters"),
        ("2 .5", "'2 .5' is not an amount"),
    ],
)
def test_absurd_values_are_refused_with_a_clear_message(value: object, fragment: str) -> None:
    refused = money.amount_from(value)
    assert isinstance(refused, Failure)
    assert fragment in refused.failure()


def test_the_edges_of_the_range_and_the_zeros() -> None:
    assert money.amount_from("-0") == Success(Decimal(0))
    assert not money.amount_from(Decimal("-0")).unwrap().is_signed()
    assert str(money.amount_from(Decimal("0E-999999")).unwrap()) == "0"
    assert money.amount_from("1e-30") == Success(Decimal("1e-30"))
    assert money.amount_from("1.000000000000000000000000000000000") == Success(Decimal(1))
    assert money.amount_from(10**30 - 1) == Success(Decimal(10**30 - 1))
    assert money.amount_from(0.1) == Success(Decimal("0.1"))  # the float's repr
    assert money.usd_from("-0.01") == Failure("must not be negative (-0.01 USD)")
    assert money.amount_from("-0.01") == Success(Decimal("-0.01"))


# -- arithmetic ------------------------------------------------------------------------------

_SPANS: Final = st.timedeltas(min_value=timedelta(days=-5), max_value=timedelta.max)


@PROPERTY
@given(price=_checked_amounts(), span=_SPANS)
@example(price=Decimal("1e-30"), span=timedelta(microseconds=1))
@example(price=Decimal("9" * 30 + "e-1"), span=timedelta.max)
def test_billing_is_exact(price: Decimal, span: timedelta) -> None:
    seconds = Fraction(span // timedelta(microseconds=1), 10**6)
    assert Fraction(money.seconds_of(span)) == seconds
    assert Fraction(money.billed(span, price)) == max(seconds, Fraction(0)) * Fraction(price)
    assert Fraction(money.per_hour(price)) == 3600 * Fraction(price)


@PROPERTY
@given(minutes=st.integers(0, money.MAX_MINUTES), price=_checked_amounts())
@example(minutes=money.MAX_MINUTES, price=Decimal("-" + "9" * 30 + ".5"))
@example(minutes=0, price=Decimal("1e-30"))
def test_a_worst_case_is_exact_up_to_the_most_minutes(minutes: int, price: Decimal) -> None:
    assert money.minutes_problem(minutes) is None
    assert Fraction(money.for_minutes(minutes, price)) == minutes * 60 * Fraction(price)


@pytest.mark.parametrize(
    "minutes", [-1, money.MAX_MINUTES + 1, 10**5000], ids=["-1", "max+1", "huge"]
)
def test_minutes_that_cannot_be_priced_say_so(minutes: int) -> None:
    assert money.minutes_problem(minutes) is not None


@PROPERTY
@given(
    amounts=st.lists(
        _checked_amounts() | st.builds(money.billed, _SPANS, _checked_amounts()), max_size=40
    )
)
@example(amounts=[Decimal("1e29"), Decimal("1e-30"), Decimal("-1e29")])
def test_sums_are_exact(amounts: list[Decimal]) -> None:
    assert Fraction(money.total(amounts)) == sum((Fraction(a) for a in amounts), Fraction(0))
    written = money.exact_text(money.total(amounts))
    assert "e" not in written.lower()
    assert len(written) <= money.TEXT_CHARS


@PROPERTY
@given(a=_wild_decimals(), b=_wild_decimals())
@example(a=Decimal("NaN"), b=Decimal(1))
@example(a=Decimal("sNaN"), b=Decimal("sNaN"))
@example(a=Decimal("Infinity"), b=Decimal("9e999999"))
def test_comparisons_never_raise_and_nan_is_never_within(a: Decimal, b: Decimal) -> None:
    over, within = money.exceeds(a, b), money.within(a, b)
    if a.is_nan() or b.is_nan():
        assert (over, within) == (False, False)
    else:
        assert over == (a > b)
        assert within == (a <= b)


@PROPERTY
@given(values=st.lists(_wild_decimals(), max_size=5), minutes=st.integers(0, 10**40))
@example(values=[], minutes=0)
@example(values=[Decimal(0), Decimal("-0")], minutes=10**40)
@example(values=[Decimal("NaN"), Decimal("-Infinity")], minutes=24 * 60 + 1)
def test_the_arithmetic_never_raises_even_on_unchecked_values(
    values: list[Decimal], minutes: int
) -> None:
    # A hand-built Price may hold anything: the context has no traps.
    for value in values:
        money.per_hour(value)
        money.billed(timedelta.max, value)
        money.for_minutes(minutes, value)
    money.total(values)


# -- writing ---------------------------------------------------------------------------------


@PROPERTY
@given(amount=_wild_decimals() | _checked_amounts(), places=st.integers(-5, 50))
@example(amount=Decimal("1e-999999"), places=2)
@example(amount=Decimal("9e999999"), places=2)
@example(amount=Decimal("-9e999999"), places=12)
@example(amount=Decimal("NaN"), places=2)
@example(amount=Decimal("-0"), places=2)
@example(amount=Decimal("1e70"), places=2)
@example(amount=Decimal("-" + "9" * 30 + ".999"), places=12)
@example(amount=Decimal("1" * 300), places=2)
def test_every_text_is_bounded_whatever_the_value(amount: Decimal, places: int) -> None:
    assert 0 < len(money.format_usd(amount, places)) <= money.DISPLAY_CHARS
    assert 0 < len(money.usd_text(amount)) <= money.TEXT_CHARS
    assert 0 < len(money.exact_text(amount)) <= money.TEXT_CHARS


@PROPERTY
@given(amount=_checked_amounts(), places=st.integers(0, 12))
@example(amount=Decimal(0), places=0)
@example(amount=Decimal("-0.005"), places=2)
@example(amount=Decimal("0.005"), places=2)
@example(amount=Decimal("2.5"), places=0)
@example(amount=Decimal("0.0000005"), places=6)
def test_display_rounds_half_up_within_the_range(amount: Decimal, places: int) -> None:
    shown = money.format_usd(amount, places)
    digits = shown.replace("$", "").replace(",", "")
    exact = Fraction(amount) * 10**places
    magnitude = abs(exact)
    rounded = int(magnitude) + (1 if magnitude - int(magnitude) >= Fraction(1, 2) else 0)
    expected = Fraction(rounded if exact >= 0 else -rounded, 10**places)
    assert Fraction(Decimal(digits)) == expected


@pytest.mark.parametrize(
    ("amount", "display", "text"),
    [
        ("0", "$0.00", "0 USD"),
        ("1.2132", "$1.21", "1.2132 USD"),
        ("1234.5", "$1,234.50", "1234.5 USD"),
        ("-0.125", "-$0.13", "-0.125 USD"),
        ("-0.001", "$0.00", "-0.001 USD"),
        ("1e-999999", "$0.00", "< 0.000001 USD"),
        ("-1e-7", "$0.00", "> -0.000001 USD"),
        ("0.000001", "$0.00", "0.000001 USD"),
        ("9e999999", "> $1e+30", "> 1e+30 USD"),
        ("1e30", "> $1e+30", "> 1e+30 USD"),
        ("-1e70", "< -$1e+30", "< -1e+30 USD"),
        ("Infinity", "> $1e+30", "> 1e+30 USD"),
        ("NaN", "$?", "an unknown amount of USD"),
    ],
)
def test_the_formatters_at_the_edges(amount: str, display: str, text: str) -> None:
    assert money.format_usd(Decimal(amount)) == display
    assert money.usd_text(Decimal(amount)) == text


def test_the_exact_text_is_plain_for_amounts_and_scientific_only_when_absurd() -> None:
    assert money.exact_text(Decimal("1.31430")) == "1.3143"
    assert money.exact_text(Decimal("1E+5")) == "100000"
    assert money.exact_text(Decimal("-0")) == "0"
    assert money.exact_text(Decimal("9e999999")) == "9E+999999"
    assert money.exact_text(Decimal("1e-999999")) == "1E-999999"


def test_the_exact_text_of_what_is_not_an_amount_says_which() -> None:
    assert money.exact_text(Decimal("-Infinity")) == "-Infinity"
    assert money.exact_text(Decimal("Infinity")) == "Infinity"
    assert money.exact_text(Decimal("NaN")) == "NaN"


def test_nothing_depends_on_the_threads_decimal_context() -> None:
    with decimal.localcontext() as context:
        context.prec = 3
        context.traps[decimal.Inexact] = True
        context.traps[decimal.Rounded] = True
        context.traps[decimal.InvalidOperation] = False
        assert money.format_usd(Decimal("1234567.891")) == "$1,234,567.89"
        assert money.billed(timedelta(seconds=7), Decimal("0.000337")) == Decimal("0.002359")
        assert money.amount_from("abc") == Failure("'abc' is not an amount of USD")
        assert money.total([Decimal("1.001"), Decimal("1000")]) == Decimal("1001.001")
