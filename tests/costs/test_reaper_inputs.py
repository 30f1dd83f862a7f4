"""What the reaper is given: every input to :func:`reap`/:func:`reap_async` and every field of a
:class:`Selection` is checked before anything is sent, and a bad one is a
``Failure(InvalidRequest)`` naming it, never a ``TypeError``. And whatever the server lists
(sessions with odd times, names and types), a dry run sends nothing but GETs.

A Selection's constructor does not check: like ``CreateSessionBody`` and ``Timeout`` it is a
plain frozen value, and the operation refuses it as a value.
"""

from __future__ import annotations

import asyncio
import json
from datetime import UTC, date, datetime, timedelta, timezone
from decimal import Decimal
from typing import Any, Final

import pytest
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st
from returns.result import Failure, Result, Success

from cdsessions import AsyncSessionsClient, CreateSessionBody, MachineGPU, SessionsClient
from cdsessions._core.wire import HttpRequest, HttpResponse
from cdsessions.costs.reaper import ReapReport, Selection, reap, reap_async
from cdsessions.errors import ApiError, InvalidRequest
from cdsessions.fake import (
    DEFAULT_MACHINE_ID,
    AsyncFakeTransport,
    FakeService,
    FakeTransport,
    ManualClock,
)

KEY: Final = "sk-reaper-inputs-0123456789"
T0: Final = datetime(2025, 11, 2, 12, 0, tzinfo=UTC)


def _reap_both(
    fake: FakeService, selection: Any, now: Any, dry_run: Any
) -> list[Result[ReapReport, ApiError]]:
    with SessionsClient(KEY, transport=FakeTransport(fake), retry=False) as client:
        blocking = reap(client, selection, now, dry_run=dry_run)

    async def run() -> Result[ReapReport, ApiError]:
        transport = AsyncFakeTransport(fake)
        async with AsyncSessionsClient(KEY, transport=transport, retry=False) as aclient:
            return await reap_async(aclient, selection, now, dry_run=dry_run)

    return [blocking, asyncio.run(run())]


def _with_a_session() -> FakeService:
    fake = FakeService(clock=ManualClock(T0))
    with SessionsClient(KEY, transport=FakeTransport(fake), retry=False) as client:
        body = CreateSessionBody(machine_id=DEFAULT_MACHINE_ID, gpu=MachineGPU.A10G, timeout=60)
        client.create(body).unwrap()
    return fake


_OK: Final = Selection(machine_id=DEFAULT_MACHINE_ID)
_NAIVE: Final = datetime(2025, 11, 2, 12, 30)  # naive, on purpose


@pytest.mark.parametrize(
    ("selection", "now", "dry_run", "field"),
    [
        (_OK, _NAIVE, True, "now"),
        (_OK, _NAIVE, False, "now"),
        (_OK, date(2025, 11, 2), True, "now"),
        (_OK, "2025-11-02T12:30:00Z", True, "now"),
        (_OK, 1_762_000_000, True, "now"),
        (_OK, T0, "no", "dry_run"),
        (_OK, T0, 0, "dry_run"),
        (Selection(older_than=5), T0, True, "older_than"),  # type: ignore[arg-type]
        (Selection(older_than=300.0), T0, False, "older_than"),  # type: ignore[arg-type]
        (Selection(older_than=timedelta(-1)), T0, False, "older_than"),
        (Selection(cost_over="5"), T0, True, "cost_over"),  # type: ignore[arg-type]
        (Selection(cost_over=5), T0, True, "cost_over"),  # type: ignore[arg-type]
        (Selection(cost_over=10**5000), T0, True, "cost_over"),  # type: ignore[arg-type]
        (Selection(cost_over=True), T0, True, "cost_over"),  # type: ignore[arg-type]
        (Selection(cost_over=0.5), T0, True, "cost_over"),  # type: ignore[arg-type]
        (Selection(cost_over=Decimal("NaN")), T0, False, "cost_over"),
        (Selection(cost_over=Decimal("sNaN")), T0, False, "cost_over"),
        (Selection(cost_over=Decimal("Infinity")), T0, False, "cost_over"),
        (Selection(cost_over=Decimal("-0.01")), T0, False, "cost_over"),
        (Selection(cost_over=Decimal("9e999999")), T0, False, "cost_over"),
        (Selection(machine_id=5), T0, False, "machine_id"),  # type: ignore[arg-type]
        (Selection(machine_id=""), T0, False, "machine_id"),
        (Selection(machine_id=b"m"), T0, False, "machine_id"),  # type: ignore[arg-type]
        # The selection's own fields are judged first, the ledger and the time after them.
        (Selection(machine_id="", label="nightly"), T0, False, "machine_id"),
        (Selection(machine_id=""), _NAIVE, True, "machine_id"),
        (Selection(gpu=5), T0, False, "gpu"),  # type: ignore[arg-type]
        (Selection(gpu="  "), T0, False, "gpu"),
        (Selection(everything="yes"), T0, False, "everything"),  # type: ignore[arg-type]
        (Selection(everything=1), T0, False, "everything"),  # type: ignore[arg-type]
        (Selection(gpu="A10G", everything=None), T0, False, "everything"),  # type: ignore[arg-type]
        (Selection(user_id=""), T0, False, "user_id"),
        (Selection(user_id=5), T0, False, "user_id"),  # type: ignore[arg-type]
        (Selection(label="  "), T0, False, "label"),
        (Selection(label=b"x"), T0, False, "label"),  # type: ignore[arg-type]
        (Selection(mine="yes"), T0, False, "mine"),  # type: ignore[arg-type]
        (Selection(owner_gone=1), T0, False, "owner_gone"),  # type: ignore[arg-type]
        # The owner selectors are judged from a ledger: without one, refused up front.
        (Selection(mine=True), T0, False, "ledger"),
        (Selection(label="nightly"), T0, True, "ledger"),
        (Selection(owner_gone=True, gpu="A10G"), T0, False, "ledger"),
        (Selection(), T0, False, "selection"),
        (None, T0, False, "selection"),
        ({"machine_id": DEFAULT_MACHINE_ID}, T0, False, "selection"),
    ],
)
def test_a_bad_input_to_reap_is_an_invalid_request_naming_it_and_nothing_is_sent(
    selection: Any, now: Any, dry_run: Any, field: str
) -> None:
    fake = _with_a_session()
    seen = fake.requests_seen
    for result in _reap_both(fake, selection, now, dry_run):
        assert isinstance(result, Failure)
        error = result.failure()
        assert type(error) is InvalidRequest
        assert error.field == field
        assert "nothing was sent" in str(error)
    assert fake.requests_seen == seen  # not even the list
    assert len(fake.live_sessions()) == 1


@pytest.mark.parametrize(
    "now",
    [
        datetime(2025, 11, 2, 12, 30, tzinfo=timezone(timedelta(hours=14))),
        datetime.max.replace(tzinfo=UTC),
        datetime.min.replace(tzinfo=UTC),
    ],
)
def test_any_aware_now_is_taken_even_at_the_ends_of_time(now: datetime) -> None:
    fake = _with_a_session()
    for result in _reap_both(fake, Selection(older_than=timedelta(days=1)), now, True):
        assert isinstance(result, Success)


# -- whatever the server lists, a dry run only reads -----------------------------------------

_TIMES: Final = st.one_of(
    st.none(),
    st.sampled_from(
        [
            "0001-01-01T00:00:00Z",
            "9999-12-31T23:59:59.999999Z",
            "2025-11-02T11:00:00",  # no offset
            "2025-11-02T11:00:00+14:00",
            "2025-11-02T11:00:00-23:59",
            "2025-11-02",
            "not a time",
        ]
    ),
    st.datetimes(timezones=st.none() | st.just(UTC)).map(datetime.isoformat),
    st.integers(-(10**20), 10**20),
    st.floats(allow_nan=False),
)
_NAMES: Final = st.none() | st.sampled_from(["A10G", "T4", "", " ", "-rf"]) | st.text(max_size=8)


def _listed_session(index: int, draw: Any) -> dict[str, object]:
    return {
        "session_id": draw(st.sampled_from([f"5e55{index:04d}-0000-4000-8000-0", "-x", "a/b"])),
        "gpu_event_id": "e",
        "gpu": draw(_NAMES | st.integers()),
        "machine_id": draw(st.sampled_from([DEFAULT_MACHINE_ID, "other", None])),
        "created_at": draw(_TIMES),
        "timeout_end": draw(_TIMES),
        "timeout": draw(st.none() | st.integers(-(10**30), 10**30)),
    }


@st.composite
def _listings(draw: Any) -> bytes:
    """What ``GET /sessions`` may answer: odd sessions, or odd JSON."""
    if draw(st.integers(0, 9)) == 0:
        odd: bytes = draw(st.binary(max_size=60) | st.sampled_from([b"{}", b"null", b"[1]"]))
        return odd
    count = draw(st.integers(0, 4))
    return json.dumps([_listed_session(i, draw) for i in range(count)]).encode()


_SELECTIONS: Final = st.sampled_from(
    [
        Selection(everything=True),
        Selection(machine_id=DEFAULT_MACHINE_ID),
        Selection(older_than=timedelta(0)),
        Selection(gpu="A10G"),
        Selection(cost_over=Decimal(0)),
    ]
)


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(listing=_listings(), selection=_SELECTIONS)
@example(
    listing=b'[{"session_id":"s","gpu_event_id":"e","gpu":"A10G",'
    b'"created_at":"0001-01-01T00:00:00Z","timeout_end":"9999-12-31T23:59:59.999999Z"}]',
    selection=Selection(everything=True),
)
def test_a_dry_run_over_any_listing_sends_nothing_but_gets(
    listing: bytes, selection: Selection
) -> None:
    def lists(request: HttpRequest) -> HttpResponse | None:
        if request.method == "GET" and request.path == "/sessions":
            return HttpResponse(200, (("content-type", "application/json"),), listing)
        return None

    fake = FakeService(clock=ManualClock(T0), intercept=lists)
    for result in _reap_both(fake, selection, T0 + timedelta(minutes=30), True):
        assert isinstance(result, Result)
        if isinstance(result, Success):
            assert all(item.outcome == "would cancel" for item in result.unwrap().reaped)
    assert {method for method, _ in fake.requests_seen} <= {"GET"}
