"""A run's cost, worked out once in the core (cdsessions/_core/pricing.py ``run_cost``): the
GPU's price per second x the run's seconds, exactly, or an ``Unknown`` saying why."""

from __future__ import annotations

import math
from decimal import Decimal

import pytest
from hypothesis import example, given, settings
from hypothesis import strategies as st

from cdsessions._core import money
from cdsessions._core.pricing import NO_TABLE, GpuPricing, Price, run_cost
from cdsessions.costs import Unknown

TABLE = GpuPricing.from_table({"A10G": "0.000337", "H100": "0.002778"})


def test_a_known_price_gives_the_exact_cost() -> None:
    assert run_cost(TABLE, "A10G", 12.5) == Decimal("0.0042125")
    assert run_cost(TABLE, "H100", 3600) == Decimal("10.000800")
    assert run_cost(TABLE, "A10G", 0.0) == 0


def test_the_time_counts_to_the_microsecond_not_through_a_float_product() -> None:
    # 0.1 s x 0.000337 in floats is 3.37e-05 plus noise; here it is exact.
    assert run_cost(TABLE, "A10G", 0.1) == Decimal("0.0000337")


def test_a_gpu_missing_from_the_table_is_unknown_naming_it() -> None:
    cost = run_cost(TABLE, "B200", 10.0)
    assert isinstance(cost, Unknown)
    assert "B200" in cost.reason
    assert "not in the price table" in cost.reason


def test_no_gpu_and_no_table_are_unknown_saying_why() -> None:
    assert isinstance(none := run_cost(TABLE, None, 10.0), Unknown)
    assert "no GPU named" in none.reason
    assert isinstance(failed := run_cost(NO_TABLE, "A10G", 10.0), Unknown)
    assert "fetch failed" in failed.reason


@pytest.mark.parametrize("seconds", [math.inf, -math.inf, math.nan, -1.0, 1e300])
def test_a_time_that_is_no_duration_is_unknown_never_an_exception(seconds: float) -> None:
    cost = run_cost(TABLE, "A10G", seconds)
    assert isinstance(cost, Unknown)
    assert "not a usable duration" in cost.reason


@pytest.mark.parametrize("absurd", ["9e999999", "1e-999999", "NaN", "Infinity", "-0.5"])
def test_an_absurd_price_in_a_hand_built_table_is_unknown_never_an_exception(
    absurd: str,
) -> None:
    table = GpuPricing((Price("A10G", Decimal(absurd)),))
    cost = run_cost(table, "A10G", 10.0)
    assert isinstance(cost, Unknown)
    assert "A10G" in cost.reason


@settings(max_examples=200, deadline=None)
@given(
    price=st.decimals(min_value=0, max_value=Decimal("9.99e29"), places=30, allow_nan=False),
    seconds=st.floats(min_value=0, max_value=8.6e13, allow_nan=False),
)
@example(price=Decimal(0), seconds=0.0)
@example(price=Decimal(0), seconds=8.6e13)
@example(price=Decimal("9.99e29"), seconds=8.6e13)
@example(price=Decimal("0.000337"), seconds=86401.0)
@example(price=Decimal("1e-30"), seconds=5e-324)
def test_any_checked_price_and_real_time_give_a_finite_cost_with_bounded_text(
    price: Decimal, seconds: float
) -> None:
    cost = run_cost(GpuPricing((Price("A10G", price),)), "A10G", seconds)
    assert isinstance(cost, Decimal)
    assert cost.is_finite()
    assert cost >= 0
    assert len(money.usd_text(cost)) <= money.TEXT_CHARS
