"""Arbitrary price-table bytes, as the price route's raw HTTP body, against every consumer of
prices: the budget guard (both clients, a plain create and a session scope; once over a raw
socket), the cost columns and the reaper. None of them raises; the guard never sends a create
the true table (read independently, :func:`tests.support.prices.true_price_in`) would refuse;
every figure's text is bounded. And the cost of pricing a session does not grow with the
table: counted in traced lines and in walks of the table, not in wall time.
"""

from __future__ import annotations

import asyncio
import sys
import time
from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from fractions import Fraction
from types import FrameType
from typing import Any, Final

from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st
from returns.result import Failure, Result, Success

from cdsessions import (
    AsyncSessionsClient,
    CreateSessionBody,
    MachineGPU,
    Session,
    SessionsClient,
)
from cdsessions._cli._output import money_text, span_text
from cdsessions._core import money
from cdsessions._core.pricing import NO_TABLE, GpuPricing, Price, decode_gpu_pricing
from cdsessions._core.wire import HttpRequest, HttpResponse
from cdsessions.costs.figures import Unknown, costs_of
from cdsessions.costs.reaper import Selection, reap, reap_async
from cdsessions.fake import (
    DEFAULT_MACHINE_ID,
    AsyncFakeTransport,
    FakeService,
    FakeTransport,
    ManualClock,
)
from tests.support.hostile import Request, answer, hostile, response
from tests.support.prices import GPUS, price_bytes, true_price_in

KEY: Final = "sk-price-bytes-0123456789"
T0: Final = datetime(2025, 11, 2, 12, 0, tzinfo=UTC)
PRICES_PATH: Final = "/platform/gpu-pricing"
#: An error's text is a sentence, not a megabyte.
MESSAGE_CHARS: Final = 600
#: Each example builds clients and a fake.
ON_THE_FAKE: Final = settings(
    max_examples=80, deadline=None, suppress_health_check=[HealthCheck.too_slow]
)
_TIMEOUTS: Final = st.none() | st.integers(0, 10**5) | st.sampled_from([10**30, 10**31])
_BUDGETS: Final = st.one_of(
    st.sampled_from(["0", "0.01", "1", "1e29", "9e999999", "NaN", "-1"]),
    st.decimals(min_value=0, max_value=10**4, places=4),
)


def _serving(body: bytes) -> FakeService:
    """The fake, answering its price route with exactly ``body``."""

    def prices(request: HttpRequest) -> HttpResponse | None:
        if request.path != PRICES_PATH:
            return None
        return HttpResponse(200, (("content-type", "application/json"),), body)

    return FakeService(clock=ManualClock(T0), intercept=prices)


def _allowed(body: bytes, gpu: str, timeout: int | None, budget: object) -> bool:
    """Whether the true table allows this create within this budget."""
    price = true_price_in(body, gpu)
    limit = money.usd_from(budget)
    if price is None or price < 0 or not isinstance(limit, Success):
        return False
    return (timeout or 15) * 60 * price <= Fraction(limit.unwrap())


def _budgeted(way: str, fake: FakeService, body: CreateSessionBody, budget: Any) -> object:
    if not way.startswith("async"):
        with SessionsClient(KEY, transport=FakeTransport(fake), retry=False) as client:
            if way == "create":
                return client.create(body, max_cost=budget)
            with client.session(body, wait=False, max_cost=budget) as opened:
                return opened

    async def run() -> object:
        transport = AsyncFakeTransport(fake)
        async with AsyncSessionsClient(KEY, transport=transport, retry=False) as client:
            if way == "async create":
                return await client.create(body, max_cost=budget)
            async with client.session(body, wait=False, max_cost=budget) as opened:
                return opened

    return asyncio.run(run())


# -- the budget guard ----------------------------------------------------------------------------


@ON_THE_FAKE
@given(
    raw=price_bytes(),
    gpu=st.sampled_from(GPUS),
    timeout=_TIMEOUTS,
    budget=_BUDGETS,
    way=st.sampled_from(["create", "session", "async create", "async session"]),
)
@example(raw=b'{"A10G": 0.1, "A10G": 0}', gpu="A10G", timeout=1, budget="0", way="create")
@example(raw=b'{"A10G": 1e-999999}', gpu="A10G", timeout=1, budget="1", way="async session")
@example(raw=b'{"A10G": "9e999999"}', gpu="A10G", timeout=1, budget="1e29", way="session")
@example(raw=b'{"A10G": 0.000337}', gpu="A10G", timeout=60, budget="2", way="async create")
def test_no_create_is_sent_that_the_true_table_of_any_bytes_would_refuse(
    raw: bytes, gpu: str, timeout: int | None, budget: object, way: str
) -> None:
    fake = _serving(raw)
    body = CreateSessionBody(machine_id=DEFAULT_MACHINE_ID, gpu=MachineGPU(gpu), timeout=timeout)
    result = _budgeted(way, fake, body, budget)
    assert isinstance(result, Result)
    sent = ("POST", "/session") in fake.requests_seen
    allowed = _allowed(raw, gpu, timeout, budget)
    assert allowed or not sent, (way, result)
    # Not refusing everything: a table the client can read, within its range, is obeyed.
    if allowed and _table(raw) is not NO_TABLE and (timeout or 15) <= money.MAX_MINUTES:
        assert sent, (way, result)
    if isinstance(result, Failure):
        assert len(str(result.failure())) <= MESSAGE_CHARS


def _price_route_then_created(raw: bytes) -> Callable[[Request], bytes]:
    """The price route answers ``raw``; a create is answered as the server would (the test
    counts it: it must not have been sent)."""

    def answering(request: Request) -> bytes:
        if request.target.endswith(PRICES_PATH):
            return response(
                "200 OK", "Content-Type: application/json", f"Content-Length: {len(raw)}", body=raw
            )
        created = b'{"session_id": "5e550000-0000-4000-8000-000000000001"}'
        return response("200 OK", f"Content-Length: {len(created)}", body=created)

    return answering


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(raw=price_bytes(), gpu=st.sampled_from(GPUS), budget=_BUDGETS)
@example(raw=b'{"T4": 0.00018, "T4": 0}', gpu="T4", budget="0")
@example(raw=b'{"T4": 0.00018}', gpu="T4", budget="1")
@example(raw=b'{"T4": 0}', gpu="T4", budget="0")
def test_over_a_raw_socket_a_create_is_sent_only_when_the_true_table_allows_it(
    raw: bytes, gpu: str, budget: object
) -> None:
    body = CreateSessionBody(machine_id=DEFAULT_MACHINE_ID, gpu=MachineGPU(gpu), timeout=10)
    with hostile(answer(_price_route_then_created(raw), keep_alive=True)) as server:
        with SessionsClient(KEY, server=server.base_url, retry=False) as client:
            result = client.create(body, max_cost=budget)  # type: ignore[arg-type]  # any value
        methods = [request.method for request in server.requests]
    assert isinstance(result, Result)
    assert methods.count("GET") <= 1  # the price table, read once (none for a bad budget)
    allowed = _allowed(raw, gpu, 10, budget)
    assert allowed or "POST" not in methods, result
    if allowed and _table(raw) is not NO_TABLE:
        assert "POST" in methods, result


# -- the cost columns ------------------------------------------------------------------------------

_MOMENTS: Final = st.sampled_from(
    [
        datetime.min.replace(tzinfo=UTC),
        datetime(1970, 1, 1, tzinfo=UTC),
        T0,
        datetime(9999, 12, 31, 23, 59, 59, 999999, tzinfo=UTC),
    ]
) | st.datetimes(timezones=st.just(UTC))
_SPANS: Final = st.timedeltas(min_value=timedelta(days=-(10**5)), max_value=timedelta(days=10**5))


def _table(raw: bytes) -> GpuPricing:
    response = HttpResponse(200, (("content-type", "application/json"),), raw)
    decoded = decode_gpu_pricing(response, "get GPU prices")
    return decoded.unwrap() if isinstance(decoded, Success) else NO_TABLE


def _moved(moment: datetime, span: timedelta) -> datetime | None:
    try:
        return moment + span
    except OverflowError:
        return None


@settings(max_examples=300, deadline=None)
@given(
    raw=price_bytes(),
    gpu=st.sampled_from(GPUS) | st.none() | st.text(max_size=50),
    created=_MOMENTS | st.none(),
    length=_SPANS,  # timeout_end - created_at: days, or negative (ended before it began)
    now=_MOMENTS,
)
@example(
    raw=b'{"A10G": 99999999999999999999999999999.9}',
    gpu="A10G",
    created=datetime.min.replace(tzinfo=UTC),
    length=timedelta(days=10**5),
    now=datetime(9999, 12, 31, tzinfo=UTC),
)
@example(raw=b'{"A10G": 1e-30}', gpu="A10G", created=T0, length=timedelta(-3), now=T0)
@example(
    raw=b'{"A10G": 0}',
    gpu="A10G",
    created=T0,
    length=timedelta(days=1, seconds=1),
    now=T0 + timedelta(days=400),
)
@example(
    raw=b'{"A10G": 0.000337}',
    gpu="A10G",
    created=T0,
    length=timedelta(days=400),
    now=T0 + timedelta(days=1),
)
def test_the_cost_columns_of_any_table_and_any_times_are_bounded_values(
    raw: bytes, gpu: str | None, created: datetime | None, length: timedelta, now: datetime
) -> None:
    end = None if created is None else _moved(created, length)
    session = Session(
        session_id="s", gpu_event_id="e", gpu=gpu, created_at=created, timeout_end=end
    )
    costs = costs_of(session, _table(raw), now)
    for span in (costs.age, costs.time_left):
        assert isinstance(span, Unknown) or span >= timedelta(0)  # never negative
        assert len(span_text(span)) <= 40
    figures = (costs.usd_per_hour, costs.cost_so_far, costs.max_cost, costs.remaining_cost)
    for figure in figures:
        assert len(money_text(figure)) <= money.DISPLAY_CHARS
        if isinstance(figure, Unknown):
            assert len(str(figure)) <= 200
            continue
        assert figure >= 0  # a price is never negative and spans are clamped
        assert len(money.usd_text(figure)) <= money.TEXT_CHARS
        assert len(money.exact_text(figure)) <= money.TEXT_CHARS


# -- the reaper ----------------------------------------------------------------------------------


_SELECTIONS: Final = st.sampled_from(
    [
        Selection(machine_id=DEFAULT_MACHINE_ID),
        Selection(older_than=timedelta(minutes=5)),
        Selection(gpu="A10G"),
        Selection(cost_over=Decimal(0)),
        Selection(everything=True),
    ]
)


@ON_THE_FAKE
@given(raw=price_bytes(), selection=_SELECTIONS, dry_run=st.booleans(), form=st.booleans())
@example(raw=b'{"A10G": 9e999999}', selection=Selection(gpu="A10G"), dry_run=False, form=True)
@example(raw=b'{"A10G": 0}', selection=Selection(cost_over=Decimal(0)), dry_run=True, form=False)
@example(raw=b'{"A10G": 0}', selection=Selection(gpu="A10G"), dry_run=False, form=True)
def test_the_reaper_answers_any_price_bytes_with_a_value(
    raw: bytes, selection: Selection, dry_run: bool, form: bool
) -> None:
    fake = _serving(raw)
    with SessionsClient(KEY, transport=FakeTransport(fake), retry=False) as client:
        body = CreateSessionBody(machine_id=DEFAULT_MACHINE_ID, gpu=MachineGPU.A10G, timeout=60)
        client.create(body).unwrap()
        later = T0 + timedelta(minutes=30)
        if form:
            result = reap(client, selection, later, dry_run=dry_run)
        else:

            async def run() -> Any:
                transport = AsyncFakeTransport(fake)
                async with AsyncSessionsClient(KEY, transport=transport, retry=False) as aclient:
                    return await reap_async(aclient, selection, later, dry_run=dry_run)

            result = asyncio.run(run())
    priced = isinstance(decode_gpu_pricing(HttpResponse(200, (), raw), "p"), Success)
    if selection.cost_over is not None and not priced:
        assert isinstance(result, Failure)  # a cost cannot be judged: nothing is cancelled
        assert len(str(result.failure())) <= MESSAGE_CHARS
        assert len(fake.live_sessions()) == 1
        return
    report = result.unwrap()  # a selection that needs no price never depends on it
    if selection.cost_over is None:
        assert len(report.reaped) == 1  # the one session, 30 minutes old, on that machine
    assert (report.prices_failed is None) == priced
    if not priced:  # the savings are unknown, saying why (not "not in the price table")
        assert [str(item.costs.remaining_cost) for item in report.reaped] == [
            "unknown (no price for A10G: no price table (its fetch failed))"
        ]
    assert len(money.format_usd(report.saves)) <= money.DISPLAY_CHARS
    assert len(fake.live_sessions()) == (1 if dry_run else 1 - len(report.reaped))


# -- cost per session, whatever the table's size -------------------------------------------------


class _CountedPrices(tuple[Price, ...]):
    """The table's prices, counting every price any walk of them reaches."""

    walked = 0

    def __iter__(self) -> Iterator[Price]:
        for price in super().__iter__():
            _CountedPrices.walked += 1
            yield price


def _lines_run(work: Any) -> int:
    """How many lines of Python ``work()`` runs (every loop turn counts)."""
    count = 0

    def trace(frame: FrameType, event: str, arg: object) -> Any:
        nonlocal count
        if event == "line":
            count += 1
        return trace

    sys.settrace(trace)
    try:
        work()
    finally:
        sys.settrace(None)
    return count


def _table_of(size: int) -> GpuPricing:
    prices = (Price(f"GPU-{i:06d}", Decimal("0.0001")) for i in range(size - 1))
    everything = sorted([*prices, Price("A10G", Decimal("0.000337"))], key=lambda p: p.gpu)
    return GpuPricing(_CountedPrices(everything))


def test_pricing_a_session_runs_the_same_lines_whatever_the_tables_size() -> None:
    session = Session(
        session_id="s",
        gpu_event_id="e",
        gpu="A10G",
        created_at=T0,
        timeout_end=T0 + timedelta(hours=1),
    )
    later = T0 + timedelta(minutes=30)
    lines = {}
    walked = {}
    for size in (10, 100_000):
        table = _table_of(size)
        table.price_per_second("warm-up")  # the index is built once per table
        _CountedPrices.walked = 0
        lines[size] = _lines_run(lambda table=table: costs_of(session, table, later))
        walked[size] = _CountedPrices.walked
        assert costs_of(session, table, later).cost_so_far == Decimal("0.6066")
    assert walked == {10: 0, 100_000: 0}  # no look-up walks the table
    assert lines[10] == lines[100_000]


def test_the_index_is_built_by_one_walk_of_the_table() -> None:
    table = _table_of(1000)
    _CountedPrices.walked = 0
    for _ in range(50):
        table.price_per_second("A10G")
    assert _CountedPrices.walked == 1000


def _benchmark() -> None:  # pragma: no cover  # python -c 'from tests.costs... import _benchmark'
    session = Session(session_id="s", gpu_event_id="e", gpu="A10G", created_at=T0)
    for size in (10, 100_000):
        table = _table_of(size)
        table.price_per_second("A10G")
        started = time.perf_counter()
        for _ in range(10_000):
            costs_of(session, table, T0)
        print(size, f"{(time.perf_counter() - started) / 10_000 * 1e6:.1f} us/session")
