"""Hostile price tables for tests: JSON number literals from everyday to absurd, tables as the
pairs written (a GPU may come twice), their bytes, and what a raw table truly says a GPU costs
(the oracle a guard is checked against), read independently of the client's decoder."""

from __future__ import annotations

import json
from decimal import Decimal
from fractions import Fraction
from typing import Final

from hypothesis import strategies as st

__all__ = [
    "EDGE_PRICES",
    "GPUS",
    "Pairs",
    "body_of",
    "number_literals",
    "price_bytes",
    "table_pairs",
    "true_price",
    "true_price_in",
    "values",
]

GPUS: Final = ("A10G", "T4", "H100", "X9")
EDGE_PRICES: Final = (
    "9e999999",
    "1e-999999",
    "1e70",
    "-9e999999",
    "0",
    "-0",
    "1e-30",
    "1e-31",
    "0.000337",
    "-0.5",
    "1" * 400,
    "0." + "0" * 29 + "1",
    "99999999999999999999999999999.9",
)

#: (GPU, JSON value text) in the order written: a name may come twice.
Pairs = list[tuple[str, str]]


def number_literals() -> st.SearchStrategy[str]:
    """JSON number literals, from everyday prices to absurd ones."""
    return st.one_of(
        st.sampled_from(EDGE_PRICES),
        st.decimals(min_value=0, max_value=10, places=6).map(str),
        st.builds(
            lambda mantissa, exponent: f"{mantissa}e{exponent}",
            st.integers(-(10**40), 10**40),
            st.integers(-(10**6), 10**6),
        ),
        st.integers(-(10**80), 10**80).map(str),
    )


def values() -> st.SearchStrategy[str]:
    """A price as the JSON text of a table's value: a number, a string, or something else."""
    return st.one_of(
        number_literals(),
        number_literals().map(json.dumps),  # msgspec reads a Decimal from a string too
        st.sampled_from(['"NaN"', '"Infinity"', "null", "true", "[]", "{}", '"a lot"']),
    )


def table_pairs() -> st.SearchStrategy[Pairs]:
    names = st.sampled_from(GPUS) | st.text(max_size=6)
    return st.lists(st.tuples(names, values()), max_size=6)


def body_of(written: Pairs) -> bytes:
    return ("{" + ",".join(f"{json.dumps(gpu)}:{value}" for gpu, value in written) + "}").encode()


def _spliced(body: bytes, at: int, noise: bytes) -> bytes:
    cut = at % (len(body) + 1)
    return body[:cut] + noise + body[cut:]


def price_bytes() -> st.SearchStrategy[bytes]:
    """Any bytes a price route may answer with: tables, tables with bytes spliced in or cut
    short, JSON that is not a table, and plain noise."""
    tables = table_pairs().map(body_of)
    return st.one_of(
        tables,
        st.builds(_spliced, tables, st.integers(0, 200), st.binary(min_size=1, max_size=4)),
        st.builds(lambda body, keep: body[:keep], tables, st.integers(0, 200)),
        st.sampled_from([b"[]", b"null", b'"A10G"', b'[["A10G", 1]]', b'{"A10G": {"usd": 1}}']),
        st.binary(max_size=200),
    )


def true_price(written: Pairs, gpu: str) -> Fraction | None:
    """What a table written as ``written`` says ``gpu`` costs, exactly, if one clear thing."""
    return true_price_in(body_of(written), gpu)


def _number(value: object) -> Fraction | None:
    if isinstance(value, bool) or not isinstance(value, Decimal | str):
        return None
    try:
        amount = Decimal(value)
    except ArithmeticError:
        return None
    return Fraction(amount) if amount.is_finite() else None


def true_price_in(body: bytes, gpu: str) -> Fraction | None:
    """What the raw ``body`` says ``gpu`` costs, exactly, if it says one clear thing: a JSON
    object naming ``gpu`` once (no name twice), with a finite number or numeric string. Read
    with the standard library, independently of the client's decoder; None means a careful
    client must not rely on this table for ``gpu``."""
    try:
        read = json.loads(
            body,
            object_pairs_hook=tuple,  # every object as its pairs, in order: repeats kept
            parse_float=Decimal,
            parse_int=Decimal,
            parse_constant=lambda _: None,
        )
    except (ValueError, RecursionError):
        return None
    if not isinstance(read, tuple):  # a JSON array is a list: only an object is a tuple
        return None
    names = [name for name, _ in read]
    if len(set(names)) != len(names):
        return None
    return next((_number(value) for name, value in read if name == gpu), None)
