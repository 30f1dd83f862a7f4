"""Cost promises the older tests left open (found by applying deliberate bugs): an age is never
negative, ``--older-than`` reads every combination of units, and a reap report counts only
the sessions it stopped."""

from __future__ import annotations

import argparse
import asyncio
from datetime import UTC, datetime, timedelta
from decimal import Decimal

import pytest

from cdsessions._cli._parser import duration
from cdsessions._core.pricing import GpuPricing, format_usd
from cdsessions._core.wire import HttpRequest, HttpResponse
from cdsessions.async_client import AsyncSessionsClient
from cdsessions.client import SessionsClient
from cdsessions.costs.figures import age, costs_of, time_left
from cdsessions.costs.reaper import (
    Reaped,
    ReapReport,
    Selection,
    reap,
    reap_async,
    selection_problem,
)
from cdsessions.errors import HttpError, InvalidRequest
from cdsessions.fake import (
    DEFAULT_GPU_PRICES,
    DEFAULT_MACHINE_ID,
    AsyncFakeTransport,
    FakeService,
    FakeTransport,
)
from cdsessions.models import CreateSessionBody, MachineGPU, Session

T0 = datetime(2025, 11, 2, 12, 0, tzinfo=UTC)
TABLE = GpuPricing.from_table(DEFAULT_GPU_PRICES)
SESSION = Session(
    session_id="s-1",
    gpu_event_id="e-1",
    gpu="A10G",
    created_at=T0,
    timeout=15,
    timeout_end=T0 + timedelta(minutes=15),
)


def test_age_before_the_creation_is_zero_not_negative() -> None:
    # A ``--now`` a little before created_at (or a client clock behind the server's).
    earlier = T0 - timedelta(minutes=3)
    assert age(SESSION, earlier) == timedelta(0)
    assert costs_of(SESSION, TABLE, earlier).age == timedelta(0)
    assert age(SESSION, T0 + timedelta(seconds=90)) == timedelta(seconds=90)


def test_time_left_after_the_timeout_is_zero_not_negative() -> None:
    assert time_left(SESSION, T0 + timedelta(hours=2)) == timedelta(0)
    assert time_left(SESSION, T0) == timedelta(minutes=15)


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("90s", timedelta(seconds=90)),
        ("30m", timedelta(minutes=30)),
        ("2h", timedelta(hours=2)),
        ("1h30m", timedelta(hours=1, minutes=30)),
        ("1d", timedelta(days=1)),
        ("1d2h", timedelta(days=1, hours=2)),
        ("2h15m30s", timedelta(hours=2, minutes=15, seconds=30)),
        ("1d0h5m", timedelta(days=1, minutes=5)),
        ("1m30s", timedelta(minutes=1, seconds=30)),
        (" 1H30M ", timedelta(hours=1, minutes=30)),
    ],
)
def test_older_than_reads_every_combination_of_units(text: str, expected: timedelta) -> None:
    assert duration(text) == expected


@pytest.mark.parametrize("text", ["", "  ", "h", "30", "30x", "1m1h", "-5m", "1.5h", "1h 30m"])
def test_older_than_refuses_what_is_not_a_duration(text: str) -> None:
    with pytest.raises(argparse.ArgumentTypeError, match="not a duration"):
        duration(text)


def test_a_reap_report_counts_savings_and_unpriced_only_for_stopped_sessions() -> None:
    now = T0 + timedelta(minutes=5)
    priced = costs_of(SESSION, TABLE, now)
    unpriced = costs_of(SESSION, GpuPricing(), now)  # no price table: savings unknown
    refused = HttpError("cancel session s-1", 500, "Internal Server Error")
    report = ReapReport(
        Selection(everything=True),
        now,
        False,
        4,
        (
            Reaped(priced, "cancelled"),
            Reaped(priced, "failed", refused),
            Reaped(unpriced, "already gone"),
            Reaped(unpriced, "failed", refused),
        ),
    )
    assert report.saves == priced.remaining_cost  # 10 min of A10G, once: the failed one runs on
    assert report.unpriced == 1  # the failed unpriced session saved nothing, known or not
    assert len(report.failed) == 2
    assert not report.ok


@pytest.mark.parametrize(
    "selection",
    [
        Selection(older_than=timedelta(minutes=-5)),  # would select every session
        Selection(cost_over=Decimal("-0.01")),  # would select every priced session
        Selection(cost_over=Decimal("NaN")),
    ],
)
def test_a_selection_that_would_match_everything_by_accident_is_refused_unsent(
    selection: Selection,
) -> None:
    assert selection_problem(selection) is not None
    service = FakeService()
    with SessionsClient("sk-promises", transport=FakeTransport(service)) as client:
        client.create(CreateSessionBody(machine_id=DEFAULT_MACHINE_ID)).unwrap()
        seen = service.requests_seen
        result = reap(client, selection, T0)
    assert isinstance(result.failure(), InvalidRequest)
    assert service.requests_seen == seen  # nothing listed, nothing cancelled
    assert len(service.live_sessions()) == 1


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
    assert format_usd(Decimal(amount), places) == shown


def _with_sessions(client: SessionsClient, *gpus: str) -> None:
    for gpu in gpus:
        body = CreateSessionBody(machine_id=DEFAULT_MACHINE_ID, gpu=MachineGPU(gpu))
        client.create(body).unwrap()


def test_reap_matches_the_gpu_name_exactly_and_counts_what_it_listed() -> None:
    other = "fa4e0000-0000-4000-8000-0000000000c3"
    service = FakeService(machines=(DEFAULT_MACHINE_ID, other))
    with SessionsClient("sk-promises", transport=FakeTransport(service)) as client:
        _with_sessions(client, "A10G", "A10G", "T4")
        client.create(CreateSessionBody(machine_id=other, gpu=MachineGPU.T4)).unwrap()
        lower = reap(client, Selection(gpu="a10g"), T0, dry_run=True).unwrap()
        exact = reap(client, Selection(gpu="A10G"), T0, dry_run=True).unwrap()
        here = reap(client, Selection(machine_id=DEFAULT_MACHINE_ID), T0, dry_run=True).unwrap()
    assert lower.reaped == ()  # names are case-sensitive, as on the server
    assert len(exact.reaped) == 2
    assert exact.considered == 4
    assert (here.considered, len(here.reaped)) == (3, 3)  # listed on that machine only


def test_both_reapers_send_the_same_cancels() -> None:
    queries: list[tuple[tuple[str, str], ...]] = []

    def record(request: HttpRequest) -> HttpResponse | None:
        if request.method == "DELETE":
            queries.append(tuple(request.query))
        return None

    service = FakeService(intercept=record)
    with SessionsClient("sk-promises", transport=FakeTransport(service)) as client:
        _with_sessions(client, "A10G")
        reap(client, Selection(gpu="A10G"), T0).unwrap()
        _with_sessions(client, "A10G")

    async def main() -> None:
        transport = AsyncFakeTransport(service)
        async with AsyncSessionsClient("sk-promises", transport=transport) as aclient:
            (await reap_async(aclient, Selection(gpu="A10G"), T0)).unwrap()

    asyncio.run(main())
    assert len(queries) == 2
    assert queries[0] == queries[1]  # the async form sends what the blocking one sends
    assert ("wait_for_shutdown", "true") not in queries[1]
    assert service.live_sessions() == ()
