"""The price table through both clients, and the budget guard: over budget, or impossible to
price, nothing reaches the server (the fake's request log has no ``POST /session``)."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager
from decimal import Decimal
from typing import Any, Final

import pytest
from returns.result import Failure, Success

from cdsessions import CreateSessionBody, InvalidRequest, MachineGPU, OverBudget
from cdsessions._core.budget import Allowance, check_create, check_extend
from cdsessions._core.wire import HttpRequest, HttpResponse
from cdsessions.costs import GpuPricing, Price
from cdsessions.errors import HttpError
from cdsessions.fake import DEFAULT_GPU_PRICES, DEFAULT_MACHINE_ID, FakeService, FakeTransport
from cdsessions.fake.server import serve_in_thread
from tests.support.faces import FORMS, Face, open_face

KEY: Final = "sk-budget-0123456789"
A10G_30_MIN: Final = Decimal(30 * 60) * Decimal("0.000337")  # 0.6066
CREATE: Final = ("POST", "/session")
PRICES: Final = ("GET", "/platform/gpu-pricing")


def _body(gpu: str | None = "A10G", timeout: int | None = 30) -> CreateSessionBody:
    return CreateSessionBody(
        machine_id=DEFAULT_MACHINE_ID, gpu=None if gpu is None else MachineGPU(gpu), timeout=timeout
    )


@contextmanager
def _face(setup: tuple[str, bool], fake: FakeService) -> Iterator[Face]:
    form, over_http = setup
    if over_http:
        with serve_in_thread(fake) as base_url:
            face = open_face(form, KEY, server=base_url, retry=False)
            try:
                yield face
            finally:
                face.close()
        return
    face = open_face(form, KEY, transport=FakeTransport(fake), retry=False)
    try:
        yield face
    finally:
        face.close()


def _run(face: Face, work: Any) -> Any:
    """A scope method's answer: awaited on the face's loop for the asyncio client."""
    return work if face.loop is None else face.loop.run(work)


@pytest.fixture(params=[(form, http) for form in FORMS for http in (True, False)], ids=str)
def setup(request: pytest.FixtureRequest) -> tuple[str, bool]:
    form, over_http = request.param
    return str(form), bool(over_http)


Make = Callable[..., Any]


# -- prices ------------------------------------------------------------------------------------


def test_prices_are_fetched_once_and_again_on_refresh(setup: tuple[str, bool]) -> None:
    fake = FakeService()
    with _face(setup, fake) as face:
        first = face._call("gpu_pricing")
        again = face._call("gpu_pricing")
        assert fake.requests_seen.count(PRICES) == 1
        refreshed = face._call("gpu_pricing", refresh=True)
        assert fake.requests_seen.count(PRICES) == 2
    assert isinstance(first, Success)
    assert first == again == refreshed
    table = first.unwrap()
    assert isinstance(table, GpuPricing)
    assert table.price_per_second("A10G") == Price("A10G", Decimal("0.000337"))
    assert len(table.prices) == len(DEFAULT_GPU_PRICES)


def test_a_failed_price_fetch_is_a_value_and_is_not_kept() -> None:
    calls: list[int] = []

    def flaky(request: HttpRequest) -> HttpResponse | None:
        if request.path == "/platform/gpu-pricing" and not calls:
            calls.append(1)
            return HttpResponse(503, (("content-type", "application/json"),), b'{"detail":"x"}')
        return None

    fake = FakeService(intercept=flaky)
    with _face(("blocking", False), fake) as face:
        failed = face._call("gpu_pricing")
        assert isinstance(failed, Failure)
        assert isinstance(failed.failure(), HttpError)
        assert isinstance(face._call("gpu_pricing"), Success)  # asked again, not cached


# -- the guard on create -----------------------------------------------------------------------


@pytest.mark.parametrize(
    ("body", "max_cost", "fragment"),
    [
        (_body("A10G", 30), "0.6065", "0.6066"),  # one hundredth of a cent over
        (_body("H100", 0), 2, "15 min"),  # 0 minutes means the server's 15: 2.1042 USD
        (_body("H100", None), Decimal("2.10"), "2.1042"),
        (_body(None, 5), "0.1", "(A10G)"),  # priced at the machine's default GPU: 0.1011 USD
        (_body("T4", 5), 1000, "GPU T4 cannot be priced"),  # not in this fake's table
    ],
)
def test_over_budget_or_unpriceable_sends_no_create(
    setup: tuple[str, bool], body: CreateSessionBody, max_cost: object, fragment: str
) -> None:
    fake = FakeService(prices={k: v for k, v in DEFAULT_GPU_PRICES.items() if k != "T4"})
    with _face(setup, fake) as face:
        refused = face.create(body, max_cost=max_cost)
    assert isinstance(refused, Failure), refused
    error = refused.failure()
    assert isinstance(error, OverBudget)
    assert isinstance(error, InvalidRequest)
    assert fragment in str(error)
    assert str(Decimal(str(max_cost))) in str(error)
    assert CREATE not in fake.requests_seen
    assert fake.live_sessions() == ()


def test_within_budget_the_create_is_sent_after_the_check(setup: tuple[str, bool]) -> None:
    fake = FakeService()
    with _face(setup, fake) as face:
        created = face.create(_body("A10G", 30), max_cost=A10G_30_MIN)  # exactly the worst case
        assert isinstance(created, Success), created
        assert list(fake.requests_seen) == [PRICES, CREATE]
        again = face.create(_body("A10G", 30), max_cost=2.5)  # a float, read as 2.5
        assert isinstance(again, Success), again
        assert list(fake.requests_seen) == [PRICES, CREATE, CREATE]  # the table was kept
    assert len(fake.live_sessions()) == 2


@pytest.mark.parametrize("max_cost", [0, "0.00", Decimal("-0")])
def test_a_free_gpu_fits_a_budget_of_zero(setup: tuple[str, bool], max_cost: object) -> None:
    """A price of exactly zero is a price: its worst case is 0, within a budget of 0 (or any).
    Added for bugs an outside review slipped past the suite (issue 23)."""
    fake = FakeService(prices={**DEFAULT_GPU_PRICES, "A10G": 0})
    with _face(setup, fake) as face:
        created = face.create(_body("A10G", 30), max_cost=max_cost)
        assert isinstance(created, Success), created
        priced = face.create(_body("H100", 1), max_cost=max_cost)  # not free: over a zero budget
    error = priced.failure()
    assert isinstance(error, OverBudget)
    assert (error.budget, error.worst_case) == (Decimal(0), Decimal(60) * Decimal("0.002338"))
    assert fake.requests_seen.count(CREATE) == 1


def test_the_guard_at_zero_allows_zero_and_refuses_the_least_cost() -> None:
    free = Price("A10G", Decimal(0))
    allowed = check_create(
        _body("A10G", 30), GpuPricing.from_table({"A10G": 0}), Decimal(0), "create"
    )
    assert allowed == Success(Allowance(Decimal(0), free, 30))
    assert allowed.unwrap().worst_case == 0
    assert check_extend(allowed.unwrap(), 600, "extend") == Success(
        Allowance(Decimal(0), free, 630)
    )
    tiny = Allowance(Decimal(0), Price("A10G", Decimal("1e-28")), 1)
    refused = check_extend(tiny, 1, "extend")
    assert isinstance(refused, Failure)
    assert refused.failure().worst_case == Decimal("1.2e-26")


@pytest.mark.parametrize("max_cost", [-1, "-0.01", "NaN", float("nan"), float("inf"), True, "ten"])
def test_an_unusable_budget_is_refused_before_anything_is_sent(
    setup: tuple[str, bool], max_cost: object
) -> None:
    fake = FakeService()
    with _face(setup, fake) as face:
        refused = face.create(_body(), max_cost=max_cost)
    assert isinstance(refused, Failure)
    assert isinstance(refused.failure(), InvalidRequest)
    assert refused.failure().field == "max_cost"
    assert fake.requests_seen == ()


def test_when_the_prices_cannot_be_had_that_failure_comes_back_and_no_create(
    setup: tuple[str, bool],
) -> None:
    def no_prices(request: HttpRequest) -> HttpResponse | None:
        if request.path == "/platform/gpu-pricing":
            return HttpResponse(500, (("content-type", "text/plain"),), b"Internal Server Error")
        return None

    fake = FakeService(intercept=no_prices)
    with _face(setup, fake) as face:
        refused = face.create(_body(), max_cost=100)
    assert isinstance(refused, Failure)
    error = refused.failure()
    assert isinstance(error, HttpError)
    assert error.status == 500
    assert CREATE not in fake.requests_seen


def test_without_a_budget_no_prices_are_fetched(setup: tuple[str, bool]) -> None:
    fake = FakeService()
    with _face(setup, fake) as face:
        assert isinstance(face.create(_body(None, None)), Success)
    assert fake.requests_seen == (CREATE,)


# -- the guard on a session scope, and on extending inside it ----------------------------------


def test_a_budgeted_scope_over_budget_creates_nothing(setup: tuple[str, bool]) -> None:
    fake = FakeService()
    with _face(setup, fake) as face:
        with face.session(_body("H100", 60), max_cost=5) as started:
            assert isinstance(started, Failure)
            assert isinstance(started.failure(), OverBudget)
            assert "8.4168" in str(started.failure())
        assert face.scope.session_id is None
        assert face.scope.closed is None
    assert CREATE not in fake.requests_seen


def test_extend_in_a_budgeted_scope_is_checked_against_the_budget(
    setup: tuple[str, bool],
) -> None:
    fake = FakeService()
    extend = ("POST", "/session/{}/increase-timeout")
    with _face(setup, fake) as face:
        # 30 min of A10G is 0.6066; the budget allows 49 min (0.99078), not 50 (1.011).
        with face.session(_body("A10G", 30), max_cost=1, ready_timeout=5) as started:
            assert isinstance(started, Success), started
            sid = started.unwrap().session_id
            path = extend[1].format(sid)
            grown = _run(face, face.scope.extend(19))
            assert isinstance(grown, Success), grown
            assert fake.requests_seen.count(("POST", path)) == 1
            refused = _run(face, face.scope.extend(1))  # the whole session would be 50 min
            assert isinstance(refused, Failure)
            assert isinstance(refused.failure(), OverBudget)
            assert "50 min" in str(refused.failure())
            assert "1.011" in str(refused.failure())
            assert fake.requests_seen.count(("POST", path)) == 1  # nothing more was sent
            bad = _run(face, face.scope.extend(0))
            assert isinstance(bad, Failure)
            assert bad.failure().field == "minutes"
        after = _run(face, face.scope.extend(1))
        assert isinstance(after, Failure)  # the scope's session is closed
        assert isinstance(after.failure(), InvalidRequest)
    assert fake.live_sessions() == ()


def test_extend_in_a_scope_without_a_budget_just_extends(setup: tuple[str, bool]) -> None:
    fake = FakeService()
    with _face(setup, fake) as face, face.session(_body(None, 10), ready_timeout=5) as started:
        assert isinstance(started, Success)
        assert isinstance(_run(face, face.scope.extend(30)), Success)
    assert PRICES not in fake.requests_seen


def test_an_extension_too_long_to_price_is_over_budget_and_says_why() -> None:
    allowance = Allowance(Decimal("1.00"), Price("A10G", Decimal("0.000337")), 10)
    got = check_extend(allowance, 10**30, "extend session s")
    assert isinstance(got, Failure)
    error = got.failure()
    assert isinstance(error, OverBudget)
    assert (error.operation, error.field, error.worst_case) == (
        "extend session s",
        "max_cost",
        None,
    )
    assert error.problem == (
        "a timeout of more than 1e+30 minutes cannot be priced; the budget is 1 USD"
    )
