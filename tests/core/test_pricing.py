"""The price table's lookups (cdsessions/_core/pricing.py): a table built by hand may hold
anything, and a price that cannot be used is a :class:`NoPrice` saying why."""

from __future__ import annotations

from decimal import Decimal

from cdsessions._core.pricing import GpuPricing, NoPrice, Price


def test_a_hand_built_price_that_is_not_a_decimal_is_no_price_saying_so() -> None:
    table = GpuPricing((Price("A10G", 0.000337), Price("T4", Decimal("0.0002"))))  # type: ignore[arg-type]
    assert table.price_per_second("A10G") == NoPrice("A10G", "the table's price is not a Decimal")
    assert table.price_per_second("T4") == Price("T4", Decimal("0.0002"))
