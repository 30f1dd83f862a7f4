"""GPU prices as exact money: the table ``GET /platform/gpu-pricing`` answers, as a frozen value.

The server sends one flat JSON object, GPU name → USD per second (``{"A10G": 0.000337, …}``).
Every price is kept as the :class:`~decimal.Decimal` of the digits the server wrote, never a
float: ``0.000337`` stays ``Decimal("0.000337")``, so costs add up to the cent. A GPU the table
does not list (a new one, or none given) has no price: :meth:`GpuPricing.price_per_second` then
returns a :class:`NoPrice` value saying why, never a failure. A table that is not one clear
price per GPU (a price that is not a finite number, an absurd one such as ``9e999999`` or
``1e-999999``, or a GPU listed twice) is refused whole, naming the GPU: see
:mod:`cdsessions._core.money` for what an amount may be.
"""

from __future__ import annotations

import json
import math
from collections.abc import Mapping
from datetime import timedelta
from decimal import Decimal
from typing import Any, Final, TypeAlias

import msgspec
from returns.result import Failure, Result, Success

from cdsessions._core import decoding, money
from cdsessions._core.unknown import Unknown
from cdsessions._core.wire import HttpResponse
from cdsessions.errors import ApiError, DecodeFailed

__all__ = [
    "NO_TABLE",
    "PRICE_TABLE",
    "GpuPricing",
    "NoPrice",
    "Price",
    "PriceTable",
    "Unknown",
    "decode_gpu_pricing",
    "run_cost",
]


class Price(msgspec.Struct, frozen=True, gc=False):
    """What one GPU costs, exactly as the price table says."""

    gpu: str
    usd_per_second: Decimal

    @property
    def usd_per_hour(self) -> Decimal:
        return money.per_hour(self.usd_per_second)

    def __str__(self) -> str:
        return f"{self.gpu}: {money.exact_text(self.usd_per_second)} USD/s"


class NoPrice(msgspec.Struct, frozen=True, gc=False):
    """No price is known for ``gpu`` (None: no GPU was named); ``reason`` says why."""

    gpu: str | None
    reason: str

    def __str__(self) -> str:
        return (
            f"no price for {self.gpu if self.gpu is not None else 'an unnamed GPU'}: {self.reason}"
        )


def _usable(price: Price) -> Price | NoPrice:
    """``price``, or why it cannot be used (a table built by hand may hold anything)."""
    if not isinstance(price.usd_per_second, Decimal):
        return NoPrice(price.gpu, "the table's price is not a Decimal")
    problem = money.amount_problem(price.usd_per_second)
    if problem is not None:
        return NoPrice(price.gpu, f"the table's price {problem}")
    if price.usd_per_second < 0:
        return NoPrice(
            price.gpu, f"the table's price is negative ({money.usd_text(price.usd_per_second)})"
        )
    return price


class GpuPricing(msgspec.Struct, frozen=True, dict=True):
    """The price table: one :class:`Price` per GPU, sorted by GPU name.

    Build it with :meth:`from_table`; ask it with :meth:`price_per_second`, one dictionary
    look-up whatever the table's size. ``unavailable`` says why there is no table at all (see
    :data:`NO_TABLE`): every GPU's :class:`NoPrice` then gives that reason, not "not in the
    price table", which would be untrue.
    """

    prices: tuple[Price, ...] = ()
    unavailable: str | None = None

    def _by_gpu_index(self) -> dict[str, Price | NoPrice]:
        # Built on first use and kept beside the fields (``dict=True``): not compared, hashed,
        # encoded or copied, so any copy builds its own. A name listed twice (only a table
        # built by hand can) is ambiguous, so it has no price.
        index: dict[str, Price | NoPrice] | None = vars(self).get("_by_gpu")
        if index is None:
            index = {}
            for price in self.prices:
                seen = price.gpu in index
                index[price.gpu] = NoPrice(price.gpu, "listed twice") if seen else _usable(price)
            vars(self)["_by_gpu"] = index
        return index

    @classmethod
    def from_table(cls, table: Mapping[str, Decimal | int | str]) -> GpuPricing:
        """From a mapping GPU name → USD per second. Raises ``ValueError`` for a value that is
        not an amount of USD (see :func:`cdsessions._core.money.amount_from`; the decoder never
        passes one)."""
        prices = []
        for gpu, value in sorted(table.items()):
            amount = money.amount_from(value)
            if not isinstance(amount, Success):
                raise ValueError(f"the price of {gpu!r} {amount.failure()}")
            prices.append(Price(gpu, amount.unwrap()))
        return cls(tuple(prices))

    @property
    def gpus(self) -> tuple[str, ...]:
        return tuple(price.gpu for price in self.prices)

    def price_per_second(self, gpu: str | None) -> Price | NoPrice:
        """The price of ``gpu`` (a name or a :class:`~cdsessions.MachineGPU`), or why there is
        none. Names are case-sensitive, as on the server."""
        if gpu is None:
            return NoPrice(None, "no GPU named")
        name = str(gpu)  # a MachineGPU is a StrEnum: str() is its value
        found = self._by_gpu_index().get(name)
        if found is not None:
            return found
        return NoPrice(name, self.unavailable or "not in the price table")

    def __repr__(self) -> str:
        listed = ", ".join(f"{p.gpu}={money.exact_text(p.usd_per_second)}" for p in self.prices)
        return f"GpuPricing({listed})" if self.unavailable is None else "GpuPricing(unavailable)"


#: No prices, because fetching the table failed: what a caller uses when costs are a column to
#: fill, not a condition to check (listing, the reaper's savings). The failure itself is the
#: caller's to report, once; each unknown price only says there was no table.
NO_TABLE: Final = GpuPricing(unavailable="no price table (its fetch failed)")


#: ``GET /platform/gpu-pricing`` on the wire: GPU name -> USD per second. Decimal, never float:
#: msgspec builds each Decimal from the digits of the JSON number (0.000337 stays 0.000337).
PriceTable: TypeAlias = dict[str, Decimal]
PRICE_TABLE: Final = msgspec.json.Decoder(PriceTable)


def _ignored(text: str) -> None:
    return None


def _repeated_key(body: bytes) -> str | None:
    """The first name a JSON object lists twice, or None. (A dict keeps only the last value:
    only the raw pairs show an ambiguous table.) Numbers are not even converted."""
    seen: set[str] = set()
    repeated: list[str] = []

    def pairs(items: list[tuple[str, Any]]) -> None:
        for key, _ in items:
            if key in seen and not repeated:
                repeated.append(key)
            seen.add(key)

    try:
        json.loads(
            body,
            object_pairs_hook=pairs,
            parse_int=_ignored,
            parse_float=_ignored,
            parse_constant=_ignored,
        )
    except (ValueError, RecursionError):  # msgspec read it already: never expected
        return None
    return repeated[0] if repeated else None


def _at(gpu: str) -> str:
    return f"$[{msgspec.json.encode(gpu).decode()}]"


def decode_gpu_pricing(response: HttpResponse, operation: str) -> Result[GpuPricing, ApiError]:
    """The price table as a :class:`GpuPricing` of exact prices (see
    :func:`cdsessions._core.decoding.decode`). A price that is not an amount of USD (not a
    finite number, ``"NaN"`` included, or an absurd one) fails naming its GPU, as does a GPU
    listed twice."""
    decoded = decoding.decode(response, PRICE_TABLE, operation)
    if not isinstance(decoded, Success):
        return Failure(decoded.failure())
    table = decoded.unwrap()
    twice = _repeated_key(response.body)
    if twice is not None:
        problem = "the GPU is listed more than once: an ambiguous price table"
        return Failure(DecodeFailed(operation, response.status, _at(twice), problem))
    prices = []
    for gpu, value in sorted(table.items()):
        amount = money.amount_from(value)
        if not isinstance(amount, Success):
            problem = f"Expected a price in USD per second: the price {amount.failure()}"
            return Failure(DecodeFailed(operation, response.status, _at(gpu), problem))
        prices.append(Price(gpu, amount.unwrap()))
    return Success(GpuPricing(tuple(prices)))


#: The longest run priced: what a timedelta can hold (about 2.7 million years).
_LONGEST_RUN: Final = timedelta.max.total_seconds() - 1


def run_cost(pricing: GpuPricing, gpu: str | None, seconds: float) -> Decimal | Unknown:
    """What a run of ``seconds`` (the client's clock) cost on ``gpu``: its price per second x
    the seconds, to the microsecond, exactly; :class:`Unknown` saying why when the GPU has no
    usable price (a failed fetch: a table with ``unavailable`` set) or the time is not a real
    duration. Never raises, whatever the price or the time."""
    price = pricing.price_per_second(gpu)
    if isinstance(price, NoPrice):
        return Unknown(str(price))
    if isinstance(seconds, bool) or not isinstance(seconds, int | float):
        return Unknown("the run's time is not a number of seconds")
    if not math.isfinite(seconds) or not 0 <= seconds <= _LONGEST_RUN:
        return Unknown(f"the run's time is not a usable duration ({seconds!r:.30})")
    # price_per_second only gives checked prices: below 1e30 USD, so the product is exact.
    return money.billed(timedelta(seconds=seconds), price.usd_per_second)
