"""Prices, what a session costs, and the budget arithmetic: pure functions, exact money.

The property tests draw sessions from the live price table's GPUs (and some it lacks), creation
times, timeouts and ``now`` anywhere around them, and check the cost functions against an
independent computation in :class:`fractions.Fraction`.
"""

from __future__ import annotations

import decimal
import json
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from fractions import Fraction
from typing import Final

import pytest
from hypothesis import example, given, settings
from hypothesis import strategies as st
from returns.result import Failure, Success

from cdsessions import CreateSessionBody, MachineGPU, Session
from cdsessions._core.budget import Allowance, OverBudget, check_create, check_extend, worst_case
from cdsessions._core.money import format_usd, usd_from
from cdsessions._core.pricing import (
    GpuPricing,
    NoPrice,
    Price,
    decode_gpu_pricing,
    run_cost,
)
from cdsessions._core.wire import HttpRequest, HttpResponse
from cdsessions.costs.figures import (
    SessionCosts,
    Unknown,
    age,
    cost_so_far,
    costs_of,
    max_cost,
    remaining_cost,
    seconds_of,
    time_left,
)
from cdsessions.errors import DecodeFailed
from cdsessions.fake import DEFAULT_GPU_PRICES, FakeService

TABLE: Final = GpuPricing.from_table(DEFAULT_GPU_PRICES)
START: Final = datetime(2025, 11, 2, 12, 0, tzinfo=UTC)
PROPERTY: Final = settings(max_examples=300, deadline=None)


def _response(body: bytes, status: int = 200) -> HttpResponse:
    return HttpResponse(status, (("content-type", "application/json"),), body)


def _session(
    gpu: str | None = "A10G",
    created: datetime | None = START,
    minutes: int | None = 15,
) -> Session:
    end = None if created is None or minutes is None else created + timedelta(minutes=minutes)
    return Session(
        session_id="s-1",
        gpu_event_id="e-1",
        gpu=gpu,
        created_at=created,
        timeout=minutes,
        timeout_end=end,
        machine_id="m-1",
    )


# -- the price table -----------------------------------------------------------------------------


def test_the_live_table_decodes_to_exact_decimals_never_floats() -> None:
    body = b'{"T4": 0.00018, "A10G": 0.000337, "H100": 0.002338, "CPU": 4.2e-05}'
    decoded = decode_gpu_pricing(_response(body), "get GPU prices")
    assert isinstance(decoded, Success), decoded
    table = decoded.unwrap()
    assert table.price_per_second("A10G") == Price("A10G", Decimal("0.000337"))
    assert table.price_per_second("CPU") == Price("CPU", Decimal("0.000042"))
    assert all(type(price.usd_per_second) is Decimal for price in table.prices)
    # The exact text, not the binary float nearest to it.
    a10g = table.price_per_second("A10G")
    assert isinstance(a10g, Price)
    assert str(a10g.usd_per_second) == "0.000337"
    assert Fraction(0.000337) != Fraction("0.000337")  # what a float would have given instead
    assert table.gpus == ("A10G", "CPU", "H100", "T4")  # sorted, one entry each


def test_a_gpu_missing_from_the_table_has_no_price_as_a_value() -> None:
    assert TABLE.price_per_second("X9") == NoPrice("X9", "not in the price table")
    assert TABLE.price_per_second(MachineGPU("X9")) == NoPrice("X9", "not in the price table")
    assert TABLE.price_per_second(None) == NoPrice(None, "no GPU named")
    assert TABLE.price_per_second("a10g") == NoPrice("a10g", "not in the price table")
    assert TABLE.price_per_second(MachineGPU.H100) == Price("H100", Decimal("0.002338"))
    negative = GpuPricing.from_table({"Z": "-0.1"})
    assert isinstance(negative.price_per_second("Z"), NoPrice)


@pytest.mark.parametrize(
    ("body", "where"),
    [
        (b'{"T4": "NaN"}', '$["T4"]'),
        (b'{"T4": "Infinity"}', '$["T4"]'),
        (b'{"T4": null}', "$[...]"),
        (b'{"T4": true}', "$[...]"),
        (b"[0.1]", "$"),
        (b"null", "$"),
    ],
)
def test_a_table_that_is_not_numbers_fails_naming_where(body: bytes, where: str) -> None:
    decoded = decode_gpu_pricing(_response(body), "get GPU prices")
    assert isinstance(decoded, Failure)
    error = decoded.failure()
    assert isinstance(error, DecodeFailed)
    assert error.where == where


def test_the_price_table_is_a_frozen_value() -> None:
    with pytest.raises(AttributeError):
        TABLE.prices = ()  # type: ignore[misc]
    assert GpuPricing.from_table(DEFAULT_GPU_PRICES) == TABLE
    assert hash(GpuPricing.from_table(DEFAULT_GPU_PRICES)) == hash(TABLE)
    a10g = TABLE.price_per_second("A10G")
    assert isinstance(a10g, Price)
    assert a10g.usd_per_hour == Decimal("1.2132")


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        (Decimal("2.50"), Decimal("2.50")),
        (3, Decimal(3)),
        ("0.10", Decimal("0.10")),
        (" 7 ", Decimal(7)),
        (0.1, Decimal("0.1")),  # the float's repr, not 0.1000000000000000055511151231257827
        (2.675, Decimal("2.675")),
        (0, Decimal(0)),
    ],
)
def test_amounts_of_money_are_exact(value: object, expected: Decimal) -> None:
    parsed = usd_from(value)
    assert parsed == Success(expected)
    assert str(parsed.unwrap()) == str(expected)


@pytest.mark.parametrize(
    "value",
    [-1, "-0.01", "NaN", "nan", "Infinity", float("nan"), float("inf"), True, "", "1,5", None],
)
def test_what_is_not_an_amount_of_money_is_refused(value: object) -> None:
    assert isinstance(usd_from(value), Failure)


def test_money_is_rounded_only_for_display() -> None:
    assert format_usd(Decimal("1.2132")) == "$1.21"
    assert format_usd(Decimal("0.005")) == "$0.01"  # half up, not banker's
    assert format_usd(Decimal("1234.5")) == "$1,234.50"
    assert format_usd(Decimal("0")) == "$0.00"


# -- what a session costs: properties ------------------------------------------------------------

_GPUS: Final = st.sampled_from([*DEFAULT_GPU_PRICES, "X9"])
_NOW_OFFSET: Final = st.integers(-3600 * 1_000_000, 3 * 3600 * 1_000_000).map(
    lambda micros: timedelta(microseconds=micros)
)


@st.composite
def sessions(draw: st.DrawFn) -> Session:
    created = START + timedelta(seconds=draw(st.integers(0, 10**6)))
    return _session(draw(_GPUS), created, draw(st.integers(1, 24 * 60)))


def _exact_cost(session: Session, now: datetime) -> Fraction:
    """The cost computed independently: rational seconds x the table's decimal price."""
    assert session.created_at is not None
    assert session.timeout_end is not None
    assert session.gpu is not None
    end = min(max(now, session.created_at), session.timeout_end)
    micros = (end - session.created_at) // timedelta(microseconds=1)
    return Fraction(micros, 1_000_000) * Fraction(DEFAULT_GPU_PRICES[session.gpu])


@PROPERTY
@given(session=sessions())
@example(session=_session("A10G", START, 24 * 60))
@example(session=_session("X9", START, 1))
def test_cost_is_zero_at_creation(session: Session) -> None:
    assert session.created_at is not None
    cost = cost_so_far(session, TABLE, session.created_at)
    if session.gpu == "X9":
        assert isinstance(cost, Unknown)
        return
    assert cost == 0
    assert age(session, session.created_at) == timedelta(0)


@PROPERTY
@given(session=sessions(), offset=_NOW_OFFSET, later=_NOW_OFFSET)
def test_cost_is_never_negative_and_never_decreases(
    session: Session, offset: timedelta, later: timedelta
) -> None:
    assert session.created_at is not None
    now = session.created_at + offset
    then = now + abs(later)
    first, second = cost_so_far(session, TABLE, now), cost_so_far(session, TABLE, then)
    if session.gpu == "X9":
        assert isinstance(first, Unknown)
        assert isinstance(second, Unknown)
        return
    assert isinstance(first, Decimal)
    assert isinstance(second, Decimal)
    assert first >= 0
    assert second >= first
    left_now, left_then = time_left(session, now), time_left(session, then)
    assert isinstance(left_now, timedelta)
    assert isinstance(left_then, timedelta)
    assert timedelta(0) <= left_then <= left_now


@PROPERTY
@given(session=sessions(), beyond=st.integers(0, 10**7))
@example(session=_session("A10G", START, 24 * 60), beyond=86401)
@example(session=_session("H100", START, 1), beyond=0)
@example(session=_session("X9", START, 24 * 60), beyond=10**7)
def test_cost_is_capped_at_timeout_end(session: Session, beyond: int) -> None:
    assert session.timeout_end is not None
    now = session.timeout_end + timedelta(seconds=beyond)
    cost = cost_so_far(session, TABLE, now)
    most = max_cost(session, TABLE)
    if session.gpu == "X9":
        assert isinstance(most, Unknown)
        return
    assert cost == most
    assert cost == cost_so_far(session, TABLE, session.timeout_end)
    assert time_left(session, now) == timedelta(0)
    assert remaining_cost(session, TABLE, now) == 0


@PROPERTY
@given(session=sessions(), offset=_NOW_OFFSET)
def test_cost_is_exact_to_the_cent_for_the_tables_prices(
    session: Session, offset: timedelta
) -> None:
    assert session.created_at is not None
    now = session.created_at + offset
    costs = costs_of(session, TABLE, now)
    if session.gpu == "X9":
        assert isinstance(costs.cost_so_far, Unknown)
        assert isinstance(costs.max_cost, Unknown)
        assert isinstance(costs.price, NoPrice)
        return
    exact = _exact_cost(session, now)
    assert isinstance(costs.cost_so_far, Decimal)
    assert Fraction(costs.cost_so_far) == exact  # no rounding at all in the value
    cents = Fraction(round(exact * 100))  # half-even, as Fraction rounds; ties are exact here
    shown = costs.cost_so_far.quantize(Decimal("0.01"), rounding=decimal.ROUND_HALF_EVEN)
    assert Fraction(shown) * 100 == cents
    # So far plus what is left is the most it can cost, to the last digit.
    assert isinstance(costs.remaining_cost, Decimal)
    assert isinstance(costs.max_cost, Decimal)
    assert costs.cost_so_far + costs.remaining_cost == costs.max_cost


@PROPERTY
@given(session=sessions(), offset=_NOW_OFFSET, precision=st.integers(1, 6))
def test_costs_do_not_depend_on_the_callers_decimal_context(
    session: Session, offset: timedelta, precision: int
) -> None:
    assert session.created_at is not None
    now = session.created_at + offset
    expected = costs_of(session, TABLE, now)
    with decimal.localcontext(prec=precision):
        assert costs_of(session, TABLE, now) == expected


def test_unknown_start_end_or_price_are_said_not_guessed() -> None:
    now = START + timedelta(minutes=5)
    no_start = costs_of(_session(created=None, minutes=None), TABLE, now)
    assert no_start.age == Unknown("the session has no created_at")
    assert no_start.cost_so_far == Unknown("the session has no created_at")
    assert no_start.max_cost == Unknown("the session has no created_at")
    no_end = Session(session_id="s", gpu_event_id="e", gpu="A10G", created_at=START)
    figures = costs_of(no_end, TABLE, now)
    assert figures.time_left == Unknown("the session has no timeout_end")
    assert figures.max_cost == Unknown("the session has no timeout_end")
    assert figures.cost_so_far == Decimal("0.1011")  # 300 s x 0.000337: known without an end
    unpriced = costs_of(_session(gpu="X9"), TABLE, now)
    assert unpriced.cost_so_far == Unknown("no price for X9: not in the price table")
    assert unpriced.usd_per_hour == Unknown("no price for X9: not in the price table")
    assert unpriced.age == timedelta(minutes=5)  # what is known is still said
    assert isinstance(costs_of(_session(gpu=None), TABLE, now).cost_so_far, Unknown)


def test_known_figures_of_one_session() -> None:
    session = _session("H100", START, 30)
    figures = costs_of(session, TABLE, START + timedelta(minutes=10))
    assert isinstance(figures, SessionCosts)
    assert figures.cost_so_far == Decimal("1.40280")  # 600 s x 0.002338
    assert figures.max_cost == Decimal("4.20840")  # 1800 s x 0.002338
    assert figures.remaining_cost == Decimal("2.80560")
    assert figures.time_left == timedelta(minutes=20)
    assert seconds_of(timedelta(seconds=1, microseconds=5)) == Decimal("1.000005")


# -- the budget arithmetic -----------------------------------------------------------------------

OP: Final = "create session on machine m"


def test_worst_case_is_requested_minutes_times_sixty_times_the_price() -> None:
    body = CreateSessionBody(machine_id="m", gpu=MachineGPU.A10G, timeout=30)
    allowed = check_create(body, TABLE, Decimal("0.6066"), OP)  # exactly 1800 x 0.000337
    assert allowed == Success(Allowance(Decimal("0.6066"), TABLE.prices[2], 30))
    refused = check_create(body, TABLE, Decimal("0.6065"), OP)
    assert isinstance(refused, Failure)
    error = refused.failure()
    assert isinstance(error, OverBudget)
    assert error.worst_case == Decimal("0.6066")
    for number in ("30 min", "0.000337", "0.6066", "0.6065", "A10G"):
        assert number in str(error)


@pytest.mark.parametrize("timeout", [None, 0])
def test_no_timeout_means_the_servers_fifteen_minutes(timeout: int | None) -> None:
    body = CreateSessionBody(machine_id="m", gpu=MachineGPU.H100, timeout=timeout)
    fifteen = Decimal(15 * 60) * Decimal("0.002338")
    assert check_create(body, TABLE, fifteen, OP).unwrap().worst_case == fifteen
    assert isinstance(check_create(body, TABLE, fifteen - Decimal("0.0001"), OP), Failure)


@pytest.mark.parametrize("gpu", [None, MachineGPU("X9")])
def test_what_cannot_be_priced_is_refused(gpu: MachineGPU | None) -> None:
    body = CreateSessionBody(machine_id="m", gpu=gpu, timeout=5)
    refused = check_create(body, TABLE, Decimal(1000), OP)
    assert isinstance(refused, Failure)
    assert refused.failure().worst_case is None
    assert "1000" in str(refused.failure())


def test_an_extension_is_checked_as_the_whole_sessions_new_worst_case() -> None:
    price = Price("A10G", Decimal("0.000337"))
    allowance = Allowance(Decimal("1"), price, 30)
    extended = check_extend(allowance, 19, OP)  # 49 min: 0.99078
    assert extended == Success(Allowance(Decimal("1"), price, 49))
    refused = check_extend(extended.unwrap(), 1, OP)  # 50 min: 1.011
    assert isinstance(refused, Failure)
    assert refused.failure().worst_case == worst_case(50, price) == Decimal("1.011")


@settings(max_examples=200, deadline=None)
@given(
    minutes=st.integers(0, 7 * 24 * 60),
    gpu=st.sampled_from(sorted(DEFAULT_GPU_PRICES)),
    budget=st.decimals(min_value=0, max_value=500, places=4),
)
@example(minutes=0, gpu="A10G", budget=Decimal(0))
@example(minutes=1, gpu="T4", budget=Decimal(0))
@example(minutes=24 * 60 + 1, gpu="H100", budget=Decimal(500))
@example(minutes=7 * 24 * 60, gpu="T4", budget=Decimal("108.8640"))
@example(minutes=30, gpu="A10G", budget=Decimal("0.6066"))
@example(minutes=30, gpu="A10G", budget=Decimal("0.6065"))
def test_the_guard_allows_exactly_what_fits(minutes: int, gpu: str, budget: Decimal) -> None:
    body = CreateSessionBody(machine_id="m", gpu=MachineGPU(gpu), timeout=minutes)
    exact = Fraction(minutes or 15) * 60 * Fraction(DEFAULT_GPU_PRICES[gpu])
    allowed = isinstance(check_create(body, TABLE, budget, OP), Success)
    assert allowed == (exact <= Fraction(budget))


def test_the_fakes_table_is_todays_live_table() -> None:
    assert json.loads(json.dumps({k: float(v) for k, v in DEFAULT_GPU_PRICES.items()})) == {
        "T4": 0.00018,
        "L4": 0.00032,
        "A10G": 0.000337,
        "L40S": 0.000596,
        "A100": 0.00114,
        "A100-80GB": 0.001708,
        "H100": 0.002338,
        "H200": 0.001891,
        "B200": 0.002604,
        "CPU": 0.000042,
    }


# -- the fake's price route ----------------------------------------------------------------------


def test_the_fake_serves_its_table_with_the_exact_digits() -> None:
    def get(fake: FakeService, method: str = "GET", key: str = "k") -> HttpResponse:
        headers = (("Authorization", f"Bearer {key}"),) if key else ()
        return fake.handle(HttpRequest(method, "/platform/gpu-pricing", headers=headers))

    answer = get(FakeService())
    assert answer.status == 200
    assert b'"A10G":0.000337' in answer.body  # written as given, never through a float
    assert json.loads(answer.body) == {k: float(v) for k, v in DEFAULT_GPU_PRICES.items()}
    custom = FakeService(prices={"A10G": "0.0004", "Z1": 1})
    table = decode_gpu_pricing(get(custom), "prices").unwrap()
    assert table == GpuPricing.from_table({"A10G": "0.0004", "Z1": 1})
    assert get(FakeService(), "POST").status == 405
    assert get(FakeService(), key="").status == 200  # the server's auth skips this route
    assert get(FakeService(keys={"k": "a"}), key="other").status == 200
    with pytest.raises(ValueError, match="not a JSON number"):
        FakeService(prices={"A10G": "0.1; DROP"})


T0 = datetime(2025, 11, 2, 12, 0, tzinfo=UTC)


SESSION = Session(
    session_id="s-1",
    gpu_event_id="e-1",
    gpu="A10G",
    created_at=T0,
    timeout=15,
    timeout_end=T0 + timedelta(minutes=15),
)


def test_age_before_the_creation_is_zero_not_negative() -> None:
    """Found by applying a deliberate bug the older tests let through."""
    # A ``--now`` a little before created_at (or a client clock behind the server's).
    earlier = T0 - timedelta(minutes=3)
    assert age(SESSION, earlier) == timedelta(0)
    assert costs_of(SESSION, TABLE, earlier).age == timedelta(0)
    assert age(SESSION, T0 + timedelta(seconds=90)) == timedelta(seconds=90)


def test_time_left_after_the_timeout_is_zero_not_negative() -> None:
    """Found by applying a deliberate bug the older tests let through."""
    assert time_left(SESSION, T0 + timedelta(hours=2)) == timedelta(0)
    assert time_left(SESSION, T0) == timedelta(minutes=15)


@pytest.mark.parametrize(
    ("amount", "places", "shown"),
    [
        ("1.23456", 4, "$1.2346"),
        ("0.000337", 6, "$0.000337"),
        ("1234.5", 0, "$1,235"),
        ("2.5", 0, "$3"),  # half up, for display
        ("-0.125", 2, "-$0.13"),
        ("1.005", 2, "$1.01"),
    ],
)
def test_format_usd_rounds_to_the_places_asked_for(amount: str, places: int, shown: str) -> None:
    """Found by applying a deliberate bug the older tests let through."""
    assert format_usd(Decimal(amount), places) == shown


# -- a price of exactly zero ---------------------------------------------------------------------
# Added for bugs an outside review slipped past the suite (issue 23): a free GPU taken for one
# with no price, or its zero cost for an unknown one.

FREE: Final = GpuPricing.from_table({"A10G": 0, "T4": "0.000"})


@pytest.mark.parametrize("gpu", ["A10G", "T4"])
def test_a_price_of_zero_is_a_price_not_a_missing_one(gpu: str) -> None:
    assert FREE.price_per_second(gpu) == Price(gpu, Decimal(0))
    assert decode_gpu_pricing(_response(b'{"A10G": 0}'), "prices") == Success(
        GpuPricing.from_table({"A10G": Decimal(0)})
    )


def test_every_cost_figure_of_a_free_gpu_is_zero_not_unknown() -> None:
    session = _session("A10G", START, 30)
    later = START + timedelta(minutes=10)
    costs = costs_of(session, FREE, later)
    assert costs.price == Price("A10G", Decimal(0))
    assert costs.usd_per_hour == 0
    assert costs.cost_so_far == 0
    assert costs.max_cost == 0
    assert costs.remaining_cost == 0
    assert costs.age == timedelta(minutes=10)  # the times are known as for any price
    assert costs.time_left == timedelta(minutes=20)
    assert run_cost(FREE, "A10G", 3600.0) == 0
