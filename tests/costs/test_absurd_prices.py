"""A hostile price table: arbitrary bytes, absurd numbers (``9e999999``, ``1e-999999``,
``1e70``), a GPU listed twice, and a table large enough to show a linear scan.

Through every consumer of prices: :func:`decode_gpu_pricing`, the budget guard on ``create`` and
``session`` (both clients, on the fake), :func:`costs_of`, the reaper's dry run, and the CLI's
``prices``/``list``/``reap`` as subprocesses. Each answers with a value, never an exception; the
guard never sends a create the true table would refuse; a selection by machine works whatever
the prices; every figure's text is bounded.
"""

from __future__ import annotations

import asyncio
import copy
import os
import pickle
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from fractions import Fraction
from typing import Final

import msgspec
import pytest
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st
from returns.result import Failure, Result, Success

from cdsessions import (
    ApiError,
    AsyncSessionsClient,
    CreateSessionBody,
    MachineGPU,
    Session,
    SessionsClient,
)
from cdsessions._core import money
from cdsessions._core.budget import check_create
from cdsessions._core.pricing import GpuPricing, NoPrice, Price, decode_gpu_pricing
from cdsessions._core.wire import HttpRequest, HttpResponse
from cdsessions.costs.figures import Unknown, costs_of
from cdsessions.costs.reaper import ReapReport, Selection, matches, reap, reap_async
from cdsessions.errors import DecodeFailed, OverBudget
from cdsessions.fake import (
    DEFAULT_MACHINE_ID,
    AsyncFakeTransport,
    FakeService,
    FakeTransport,
    ManualClock,
)
from cdsessions.fake.server import serve_in_thread
from tests.support.prices import GPUS, Pairs, body_of, table_pairs, true_price

KEY: Final = "sk-absurd-prices-0123456789"
T0: Final = datetime(2025, 11, 2, 12, 0, tzinfo=UTC)
PRICES_PATH: Final = "/platform/gpu-pricing"
CREATE: Final = ("POST", "/session")
PROPERTY: Final = settings(max_examples=200, deadline=None)
#: Each example builds a client and a fake: fewer of them.
ON_THE_FAKE: Final = settings(
    max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow]
)
#: What one CLI run may print in all, whatever the prices (a handful of short lines).
CLI_CHARS: Final = 2000
#: An error's text (OverBudget, DecodeFailed) is a sentence, not a megabyte.
MESSAGE_CHARS: Final = 600


def _response(body: bytes) -> HttpResponse:
    return HttpResponse(200, (("content-type", "application/json"),), body)


def _serving(body: bytes) -> FakeService:
    """The fake, answering its price route with exactly ``body``."""

    def prices(request: HttpRequest) -> HttpResponse | None:
        return _response(body) if request.path == PRICES_PATH else None

    return FakeService(clock=ManualClock(T0), intercept=prices)


# -- the decoder -------------------------------------------------------------------------------


def _check_decoded(decoded: Result[GpuPricing, ApiError]) -> None:
    if isinstance(decoded, Failure):
        assert len(str(decoded.failure())) <= MESSAGE_CHARS
        return
    table = decoded.unwrap()
    assert len(set(table.gpus)) == len(table.gpus)
    for price in table.prices:
        assert money.amount_problem(price.usd_per_second) is None
        assert len(str(price)) <= len(price.gpu) + money.TEXT_CHARS + 10


@PROPERTY
@given(body=st.binary(max_size=300))
@example(body=b'{"A10G": 9e999999}')
@example(body=b'{"A10G": 1e-999999}')
@example(body=b'{"A10G": "9e999999"}')
@example(body=b'{"A10G": 1' + b"0" * 5000 + b"}")
@example(body=b'{"T4": 0.1, "T4": 0.2}')
@example(body=b"\xff\xfe{}")
@example(body=b'{"A10G": 0}')
@example(body=b'{"A10G": -0.0, "T4": 0e5}')
@example(body=b"")
def test_any_bytes_decode_to_a_table_or_a_failure(body: bytes) -> None:
    _check_decoded(decode_gpu_pricing(_response(body), "get GPU prices"))


@PROPERTY
@given(pairs=table_pairs())
@example(pairs=[("A10G", "9e999999")])
@example(pairs=[("A10G", "0.000337"), ("T4", "1e-999999")])
@example(pairs=[("T4", "0.1"), ("T4", "0.1")])
@example(pairs=[("A10G", "0")])
@example(pairs=[])
@example(pairs=[("", "0.1")])
@example(pairs=[("\U0001f600", "0.000")])
def test_a_table_decodes_only_when_every_price_is_one_clear_amount(pairs: Pairs) -> None:
    decoded = decode_gpu_pricing(_response(body_of(pairs)), "get GPU prices")
    _check_decoded(decoded)
    names = [gpu for gpu, _ in pairs]
    if len(set(names)) != len(names):
        assert isinstance(decoded, Failure)
        return
    if isinstance(decoded, Success):
        table = decoded.unwrap()
        assert sorted(table.gpus) == sorted(names)
        for gpu in names:
            found = table.price_per_second(gpu)
            price = found.usd_per_second if isinstance(found, Price) else None
            if price is not None:
                assert Fraction(price) == true_price(pairs, gpu)


@pytest.mark.parametrize(
    ("body", "gpu"),
    [
        (b'{"T4": 0.00018, "A10G": 0.000337, "T4": 0.5}', "T4"),
        (b'{"T4": 1, "T\\u0034": 2}', "T4"),  # the same name, escaped
        (b'{"A10G": 1, "H100": "2", "H100": 2}', "H100"),
    ],
)
def test_a_gpu_listed_twice_is_refused_naming_it(body: bytes, gpu: str) -> None:
    decoded = decode_gpu_pricing(_response(body), "get GPU prices")
    assert isinstance(decoded, Failure)
    error = decoded.failure()
    assert isinstance(error, DecodeFailed)
    assert error.where == f'$["{gpu}"]'
    assert "more than once" in error.problem


@pytest.mark.parametrize(
    ("price", "fragment"),
    [("9e999999", "too large"), ("1e70", "too large"), ("1e-999999", "decimal places")],
)
def test_an_absurd_price_is_refused_naming_the_gpu(price: str, fragment: str) -> None:
    decoded = decode_gpu_pricing(_response(body_of([("A10G", price)])), "get GPU prices")
    assert isinstance(decoded, Failure)
    error = decoded.failure()
    assert isinstance(error, DecodeFailed)
    assert error.where == '$["A10G"]'
    assert fragment in error.problem


def test_a_hand_built_table_with_a_name_twice_or_an_absurd_price_prices_nothing_there() -> None:
    table = GpuPricing(
        (
            Price("T4", Decimal("0.1")),
            Price("T4", Decimal("0.2")),
            Price("X", Decimal("9e999999")),
            Price("Y", Decimal("NaN")),
            Price("Z", Decimal("0.5")),
        )
    )
    assert isinstance(table.price_per_second("T4"), NoPrice)
    assert isinstance(table.price_per_second("X"), NoPrice)
    assert isinstance(table.price_per_second("Y"), NoPrice)
    assert table.price_per_second("Z") == Price("Z", Decimal("0.5"))
    assert len(repr(table)) < 1000


# -- the budget guard -------------------------------------------------------------------------

_TIMEOUTS: Final = st.none() | st.integers(0, 10**6) | st.sampled_from([10**30, 10**31, 10**400])
_BUDGETS: Final = st.one_of(
    st.sampled_from(["0", "0.01", "1e-30", "1e29", "9e999999", "1e-999999", "NaN", "-1"]),
    st.decimals(min_value=0, max_value=10**6, places=4),
    st.integers(0, 10**40),
)


def _refusal_is_safe(pairs: Pairs, gpu: str, timeout: int | None, budget: object) -> bool:
    """Whether the true table allows this create within this budget."""
    price = true_price(pairs, gpu)
    limit = money.usd_from(budget)
    if price is None or price < 0 or not isinstance(limit, Success):
        return False
    minutes = timeout or 15
    return minutes * 60 * price <= Fraction(limit.unwrap())


@PROPERTY
@given(pairs=table_pairs(), gpu=st.sampled_from(GPUS), timeout=_TIMEOUTS, budget=_BUDGETS)
@example(pairs=[("A10G", "9e999999")], gpu="A10G", timeout=30, budget="1e29")
@example(pairs=[("A10G", "0")], gpu="A10G", timeout=10**400, budget="0")
@example(pairs=[("A10G", "1e-30")], gpu="A10G", timeout=10**30, budget="0.00000000001")
@example(pairs=[("A10G", "0")], gpu="A10G", timeout=None, budget="0")
@example(pairs=[("A10G", "0.000337")], gpu="A10G", timeout=24 * 60 + 1, budget="0")
@example(pairs=[("T4", "0")], gpu="T4", timeout=0, budget=0)
def test_the_pure_guard_allows_only_what_the_true_table_allows(
    pairs: Pairs, gpu: str, timeout: int | None, budget: object
) -> None:
    decoded = decode_gpu_pricing(_response(body_of(pairs)), "p")
    limit = money.usd_from(budget)
    if not isinstance(decoded, Success) or not isinstance(limit, Success):
        return
    body = CreateSessionBody(machine_id=DEFAULT_MACHINE_ID, gpu=MachineGPU(gpu), timeout=timeout)
    checked = check_create(body, decoded.unwrap(), limit.unwrap(), "create session")
    if isinstance(checked, Success):
        assert _refusal_is_safe(pairs, gpu, timeout, budget)
    else:
        refused = checked.failure()
        assert isinstance(refused, OverBudget)
        assert len(refused.problem) <= MESSAGE_CHARS
        assert len(str(refused)) <= MESSAGE_CHARS


@ON_THE_FAKE
@given(pairs=table_pairs(), gpu=st.sampled_from(GPUS), timeout=_TIMEOUTS, budget=_BUDGETS)
@example(pairs=[("A10G", "9e999999")], gpu="A10G", timeout=30, budget="1e29")
@example(pairs=[("A10G", "1e-999999")], gpu="A10G", timeout=30, budget="1")
@example(pairs=[("A10G", "1e-30")], gpu="A10G", timeout=None, budget="1")
@example(pairs=[("A10G", "0.1"), ("A10G", "0")], gpu="A10G", timeout=1, budget="0")
@example(pairs=[("A10G", "0")], gpu="A10G", timeout=30, budget="0")
@example(pairs=[("H100", "0.002338")], gpu="H100", timeout=1, budget="0")
def test_no_create_is_sent_that_the_true_table_would_refuse(
    pairs: Pairs, gpu: str, timeout: int | None, budget: object
) -> None:
    body = CreateSessionBody(machine_id=DEFAULT_MACHINE_ID, gpu=MachineGPU(gpu), timeout=timeout)
    for way in ("create", "session", "async create", "async session"):
        fake = _serving(body_of(pairs))
        answer = _budgeted(way, fake, body, budget)
        assert isinstance(answer, Result)
        if isinstance(answer, Failure):
            assert len(str(answer.failure())) <= MESSAGE_CHARS
        if CREATE in fake.requests_seen:
            assert _refusal_is_safe(pairs, gpu, timeout, budget), way


def _budgeted(way: str, fake: FakeService, body: CreateSessionBody, budget: object) -> object:
    """A budgeted create, ``way`` (either client, a plain create or a session scope)."""
    max_cost: Decimal | int | str = budget  # type: ignore[assignment]  # any value, on purpose
    if not way.startswith("async"):
        with SessionsClient(KEY, transport=FakeTransport(fake), retry=False) as client:
            if way == "create":
                return client.create(body, max_cost=max_cost)
            with client.session(body, wait=False, max_cost=max_cost) as opened:
                return opened

    async def run() -> object:
        async with AsyncSessionsClient(
            KEY, transport=AsyncFakeTransport(fake), retry=False
        ) as client:
            if way == "async create":
                return await client.create(body, max_cost=max_cost)
            async with client.session(body, wait=False, max_cost=max_cost) as opened:
                return opened

    return asyncio.run(run())


# -- figures and the reaper --------------------------------------------------------------------


@PROPERTY
@given(
    pairs=table_pairs(),
    gpu=st.sampled_from(GPUS) | st.none(),
    age=st.timedeltas(min_value=timedelta(0), max_value=timedelta(days=10**5)),
    minutes=st.integers(0, 10**7),
)
@example(
    pairs=[("A10G", "99999999999999999999999999999.9")],
    gpu="A10G",
    age=timedelta(days=10**5),
    minutes=10**7,
)
@example(pairs=[("A10G", "1e-30")], gpu="A10G", age=timedelta(microseconds=1), minutes=0)
@example(pairs=[("A10G", "0")], gpu="A10G", age=timedelta(days=1, seconds=1), minutes=24 * 60)
@example(pairs=[("A10G", "0.000337")], gpu="A10G", age=timedelta(days=400), minutes=0)
@example(pairs=[], gpu=None, age=timedelta(days=1), minutes=10**7)
def test_the_cost_figures_are_values_and_their_text_is_bounded(
    pairs: Pairs, gpu: str | None, age: timedelta, minutes: int
) -> None:
    decoded = decode_gpu_pricing(_response(body_of(pairs)), "p")
    table = decoded.unwrap() if isinstance(decoded, Success) else GpuPricing()
    created = datetime(2000, 1, 1, tzinfo=UTC)
    session = Session(
        session_id="s",
        gpu_event_id="e",
        gpu=gpu,
        created_at=created,
        timeout=minutes,
        timeout_end=created + timedelta(minutes=minutes),
    )
    costs = costs_of(session, table, created + age)
    for figure in (costs.usd_per_hour, costs.cost_so_far, costs.max_cost, costs.remaining_cost):
        if isinstance(figure, Unknown):
            continue
        assert len(money.format_usd(figure)) <= money.DISPLAY_CHARS
        assert len(money.usd_text(figure)) <= money.TEXT_CHARS
        written = money.exact_text(figure)
        assert "E" not in written  # what the CLI's --json writes: plain and exact
        assert Decimal(written) == figure


def _sessions_on(fake: FakeService, count: int) -> list[str]:
    with SessionsClient(KEY, transport=FakeTransport(fake), retry=False) as client:
        body = CreateSessionBody(machine_id=DEFAULT_MACHINE_ID, gpu=MachineGPU.A10G, timeout=60)
        return [client.create(body).unwrap().session_id for _ in range(count)]


def _dry_run(fake: FakeService, selection: Selection, form: str) -> Result[ReapReport, ApiError]:
    later = T0 + timedelta(minutes=40)
    if form == "blocking":
        with SessionsClient(KEY, transport=FakeTransport(fake), retry=False) as client:
            return reap(client, selection, later, dry_run=True)

    async def run() -> Result[ReapReport, ApiError]:
        transport = AsyncFakeTransport(fake)
        async with AsyncSessionsClient(KEY, transport=transport, retry=False) as client:
            return await reap_async(client, selection, later, dry_run=True)

    return asyncio.run(run())


@ON_THE_FAKE
@given(pairs=table_pairs(), form=st.sampled_from(["blocking", "asyncio"]))
@example(pairs=[("A10G", "9e999999")], form="blocking")
@example(pairs=[("A10G", "1e-999999")], form="asyncio")
@example(pairs=[("A10G", "1e70"), ("A10G", "1")], form="blocking")
@example(pairs=[("A10G", "0")], form="asyncio")
@example(pairs=[], form="blocking")
def test_a_selection_by_machine_or_age_works_whatever_the_prices(pairs: Pairs, form: str) -> None:
    fake = _serving(body_of(pairs))
    ids = _sessions_on(fake, 2)
    for selection in (
        Selection(machine_id=DEFAULT_MACHINE_ID),
        Selection(older_than=timedelta(minutes=30)),
    ):
        result = _dry_run(fake, selection, form)
        assert isinstance(result, Success), result
        report = result.unwrap()
        assert sorted(item.session_id for item in report.reaped) == sorted(ids)
        assert len(money.format_usd(report.saves)) <= money.DISPLAY_CHARS
    assert [method for method, _ in fake.requests_seen if method == "DELETE"] == []


@pytest.mark.parametrize("price", ["9e999999", "1e-999999", "1e70"])
def test_a_selection_by_cost_over_absurd_prices_fails_as_a_value(price: str) -> None:
    fake = _serving(body_of([("A10G", price)]))
    _sessions_on(fake, 1)
    result = _dry_run(fake, Selection(cost_over=Decimal(0)), "blocking")
    assert isinstance(result, Failure)
    assert isinstance(result.failure(), DecodeFailed)


# -- the CLI -----------------------------------------------------------------------------------


def _cli(*args: str, server: str) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if k != "COMFY_DEPLOY_API_KEY"}
    env["COMFY_DEPLOY_API_KEY"] = KEY
    return subprocess.run(
        [sys.executable, "-m", "cdsessions", *args, "--server", server],
        capture_output=True,
        text=True,
        env=env,
        timeout=60,
        check=False,
    )


@contextmanager
def _served(price: str) -> Iterator[str]:
    """The fake on 127.0.0.1 with one A10G session and the price table ``{"A10G": price}``."""
    fake = FakeService(clock=ManualClock(T0), prices={"A10G": price})
    with serve_in_thread(fake) as base_url:
        with SessionsClient(KEY, server=base_url, retry=False) as client:
            body = CreateSessionBody(machine_id=DEFAULT_MACHINE_ID, gpu=MachineGPU.A10G)
            client.create(body).unwrap()
        yield base_url


def _clear(result: subprocess.CompletedProcess[str]) -> str:
    everything = result.stdout + result.stderr
    assert "internal error" not in everything
    assert "Traceback" not in everything
    assert len(everything) <= CLI_CHARS
    return everything


@pytest.mark.parametrize(("price", "why"), [("1e70", "too large"), ("1e-999999", "decimal places")])
def test_the_cli_says_clearly_what_is_wrong_with_an_absurd_price(price: str, why: str) -> None:
    now = ("--now", (T0 + timedelta(minutes=10)).isoformat())
    with _served(price) as base_url:
        prices = _cli("prices", server=base_url)
        listed = _cli("list", *now, server=base_url)
        reaped = _cli("reap", "--machine-id", DEFAULT_MACHINE_ID, *now, server=base_url)
    said = _clear(prices)
    assert prices.returncode == 5  # "answered unexpectedly", never 1 (internal error)
    assert "A10G" in said
    assert why in said
    # Knowing what runs matters more than what it costs: the sessions are still listed.
    said = _clear(listed)
    assert listed.returncode == 0, said
    assert "costs unknown" in listed.stderr
    assert why in listed.stderr
    assert "total: 1 session" in listed.stdout
    assert "not in the price table" not in listed.stdout  # it is; the table was refused
    # A selection by machine needs no price: the dry run goes ahead.
    said = _clear(reaped)
    assert reaped.returncode == 0, said
    assert "would cancel 1 of 1" in reaped.stdout
    assert "savings unknown" in reaped.stderr
    assert why in reaped.stderr


@pytest.mark.parametrize("price", ["0.5", "1e-30", "99999999999999999999999999999"])
def test_an_over_budget_message_is_a_sentence_whatever_the_names_and_numbers(price: str) -> None:
    name = "G" * 100_000
    table = GpuPricing.from_table({name: price})
    body = CreateSessionBody(machine_id=DEFAULT_MACHINE_ID, gpu=MachineGPU(name), timeout=10**30)
    for budget in (Decimal(0), Decimal("1e-30"), Decimal("99999999999999999999999999999.9")):
        checked = check_create(body, table, budget, "create session")
        if isinstance(checked, Failure):  # 1e30 min at 1e-30 USD/s is within the largest
            assert len(checked.failure().problem) <= MESSAGE_CHARS
        missing = check_create(body, GpuPricing(), budget, "create session")
        assert isinstance(missing, Failure)
        assert len(missing.failure().problem) <= MESSAGE_CHARS


def test_a_timeout_too_long_to_price_is_refused_at_once() -> None:
    table = GpuPricing.from_table({"A10G": "0.000337"})
    for minutes in (money.MAX_MINUTES + 1, 10**200_000):
        body = CreateSessionBody(
            machine_id=DEFAULT_MACHINE_ID, gpu=MachineGPU.A10G, timeout=minutes
        )
        started = time.perf_counter()
        checked = check_create(body, table, Decimal("1e29"), "create session")
        assert time.perf_counter() - started < 1.0
        refused = checked.failure() if isinstance(checked, Failure) else None
        assert isinstance(refused, OverBudget)
        assert refused.worst_case is None
        assert "cannot be priced" in refused.problem


@pytest.mark.parametrize("limit", ["NaN", "sNaN", "-Infinity", "9e999999"])
def test_matching_a_hand_built_cost_selection_never_raises(limit: str) -> None:
    table = GpuPricing.from_table({"A10G": "0.000337"})
    session = Session(
        session_id="s",
        gpu_event_id="e",
        gpu="A10G",
        created_at=T0,
        timeout_end=T0 + timedelta(hours=1),
    )
    costs = costs_of(session, table, T0 + timedelta(minutes=10))
    chosen = matches(costs, Selection(cost_over=Decimal(limit)))
    assert chosen is (limit == "-Infinity")


def test_a_copied_or_rebuilt_table_looks_prices_up_the_same() -> None:
    table = GpuPricing.from_table({"A10G": "0.000337", "T4": "0.00018"})
    assert isinstance(table.price_per_second("A10G"), Price)  # its index is built
    copies = (
        copy.copy(table),
        copy.deepcopy(table),
        pickle.loads(pickle.dumps(table)),  # noqa: S301  # our own bytes
        msgspec.json.decode(msgspec.json.encode(table), type=GpuPricing),
        msgspec.structs.replace(table, prices=table.prices[:1]),
    )
    for other in copies[:4]:
        assert other == table
        assert hash(other) == hash(table)
        assert other.price_per_second("T4") == Price("T4", Decimal("0.00018"))
    assert isinstance(copies[4].price_per_second("T4"), NoPrice)  # its own index, not a copy
