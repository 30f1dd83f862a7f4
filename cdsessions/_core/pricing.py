"""GPU prices as exact money: the table ``GET /platform/gpu-pricing`` answers, as a frozen value.

The server sends one flat JSON object, GPU name → USD per second (``{"A10G": 0.000337, …}``).
Every price is kept as the :class:`~decimal.Decimal` of the digits the server wrote, never a
float: ``0.000337`` stays ``Decimal("0.000337")``, so costs add up to the cent. A GPU the table
does not list (a new one, or none given) has no price: :meth:`GpuPricing.price_per_second` then
returns a :class:`NoPrice` value saying why, never a failure.

:func:`usd_from` turns what a caller passes as an amount of money (``Decimal``, ``int``, ``str``,
or a ``float``, read through its shortest ``repr``) into an exact ``Decimal``, or says why not.
"""

from __future__ import annotations

import decimal
from collections.abc import Mapping
from decimal import Decimal
from typing import Final, TypeAlias

import msgspec
from returns.result import Failure, Result, Success

from cdsessions._core import decoding
from cdsessions._core.wire import HttpResponse
from cdsessions.errors import ApiError, DecodeFailed

__all__ = [
    "EXACT",
    "PRICE_TABLE",
    "GpuPricing",
    "NoPrice",
    "Price",
    "PriceTable",
    "decode_gpu_pricing",
    "format_usd",
    "usd_from",
]

#: The context every money calculation uses: wide enough that products of real prices and
#: durations are exact, and independent of whatever the caller set as the thread's context.
EXACT: Final = decimal.Context(prec=60, rounding=decimal.ROUND_HALF_EVEN, Emin=-999999, Emax=999999)
_SECONDS_PER_HOUR: Final = Decimal(3600)
_CENT: Final = Decimal("0.01")


class Price(msgspec.Struct, frozen=True, gc=False):
    """What one GPU costs, exactly as the price table says."""

    gpu: str
    usd_per_second: Decimal

    @property
    def usd_per_hour(self) -> Decimal:
        return EXACT.multiply(self.usd_per_second, _SECONDS_PER_HOUR)

    def __str__(self) -> str:
        return f"{self.gpu}: {self.usd_per_second} USD/s"


class NoPrice(msgspec.Struct, frozen=True, gc=False):
    """No price is known for ``gpu`` (None: no GPU was named); ``reason`` says why."""

    gpu: str | None
    reason: str

    def __str__(self) -> str:
        return (
            f"no price for {self.gpu if self.gpu is not None else 'an unnamed GPU'}: {self.reason}"
        )


class GpuPricing(msgspec.Struct, frozen=True):
    """The price table: one :class:`Price` per GPU, sorted by GPU name.

    Build it with :meth:`from_table`; ask it with :meth:`price_per_second`.
    """

    prices: tuple[Price, ...] = ()

    @classmethod
    def from_table(cls, table: Mapping[str, Decimal | int | str]) -> GpuPricing:
        """From a mapping GPU name → USD per second. Raises ``ValueError`` for a value that is
        not a finite number (the decoder never passes one)."""
        prices = []
        for gpu, value in sorted(table.items()):
            amount = Decimal(value) if not isinstance(value, Decimal) else value
            if not amount.is_finite():
                raise ValueError(f"the price of {gpu!r} is not a finite number")
            prices.append(Price(gpu, amount))
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
        for price in self.prices:  # a dozen entries: a scan beats keeping an index in sync
            if price.gpu == name:
                if price.usd_per_second < 0:
                    return NoPrice(name, f"the table's price is negative ({price.usd_per_second})")
                return price
        return NoPrice(name, "not in the price table")

    def __repr__(self) -> str:
        listed = ", ".join(f"{p.gpu}={p.usd_per_second}" for p in self.prices)
        return f"GpuPricing({listed})"


#: ``GET /platform/gpu-pricing`` on the wire: GPU name -> USD per second. Decimal, never float:
#: msgspec builds each Decimal from the digits of the JSON number (0.000337 stays 0.000337).
PriceTable: TypeAlias = dict[str, Decimal]
PRICE_TABLE: Final = msgspec.json.Decoder(PriceTable)


def decode_gpu_pricing(response: HttpResponse, operation: str) -> Result[GpuPricing, ApiError]:
    """The price table as a :class:`GpuPricing` of exact prices (see
    :func:`cdsessions._core.decoding.decode`). A price that is not a finite number fails naming its
    GPU: msgspec also reads a Decimal from a JSON string, ``"NaN"`` included."""
    decoded = decoding.decode(response, PRICE_TABLE, operation)
    if not isinstance(decoded, Success):
        return Failure(decoded.failure())
    table = decoded.unwrap()
    for gpu, price in table.items():
        if not price.is_finite():
            where = f"$[{msgspec.json.encode(gpu).decode()}]"
            problem = f"Expected a finite number, got {price}"
            return Failure(DecodeFailed(operation, response.status, where, problem))
    return Success(GpuPricing.from_table(table))


def usd_from(value: object) -> Result[Decimal, str]:
    """An amount of US dollars as an exact ``Decimal``, or why ``value`` is not one.

    ``Decimal``, ``int`` and ``str`` (``"2.50"``, parsed exactly) are taken as they are. A
    ``float`` is read through its shortest ``repr`` (``0.1`` → ``Decimal("0.1")``, what was
    typed, not the binary value ``0.1000000000000000055…``). Booleans, NaN, infinities and
    negative amounts are refused.
    """
    if isinstance(value, bool) or not isinstance(value, Decimal | int | str | float):
        return Failure(
            f"must be an amount of USD (Decimal, int or str), not {type(value).__name__}"
        )
    text = repr(value) if isinstance(value, float) else value
    try:
        amount = Decimal(text.strip() if isinstance(text, str) else text)
    except (decimal.InvalidOperation, ValueError):
        return Failure(f"{str(value)[:40]!r} is not an amount of USD")
    if not amount.is_finite():
        return Failure(f"must be a finite amount of USD, not {amount}")
    if amount < 0:
        return Failure(f"must not be negative ({amount} USD)")
    return Success(amount)


def format_usd(amount: Decimal, places: int = 2) -> str:
    """``amount`` rounded (half up) to ``places`` decimals for display: ``$1.21``. Only ever for
    display; every calculation keeps the exact value."""
    step = _CENT if places == 2 else Decimal(1).scaleb(-places)
    rounded = amount.quantize(step, rounding=decimal.ROUND_HALF_UP, context=EXACT)
    sign = "-" if rounded < 0 else ""
    return f"{sign}${abs(rounded):,.{places}f}"
