"""The reaper: the pure selection, then :func:`reap` against the fake over real HTTP.

The fake holds a mix of sessions on a :class:`ManualClock` (so ages and costs are fixed):
the account's old A10G sessions on the default machine (the ones a typical selection wants),
a young one, one on another machine, one on another GPU, and another account's old session.
"""

from __future__ import annotations

import argparse
import asyncio
from collections.abc import Callable
from datetime import datetime, timedelta
from decimal import Decimal
from typing import Final

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from returns.result import Failure, Result, Success

from cdsessions import (
    ApiError,
    AsyncSessionsClient,
    CreateSessionBody,
    InvalidRequest,
    MachineGPU,
    Session,
    SessionsClient,
)
from cdsessions._cli._parser import duration
from cdsessions._core.pricing import GpuPricing
from cdsessions._core.wire import HttpRequest, HttpResponse
from cdsessions.costs.figures import costs_of
from cdsessions.costs.reaper import (
    Reaped,
    ReapProgress,
    ReapReport,
    Selection,
    matches,
    reap,
    reap_async,
    select,
    selection_problem,
)
from cdsessions.errors import HttpError
from cdsessions.fake import (
    DEFAULT_GPU_PRICES,
    DEFAULT_MACHINE_ID,
    AsyncFakeTransport,
    FakeService,
    FakeTransport,
    ManualClock,
)
from cdsessions.fake.server import serve_in_thread
from tests.support.scenes import KEY, NOW, OTHER_KEY, OTHER_MACHINE, T0, scene

TABLE: Final = GpuPricing.from_table(DEFAULT_GPU_PRICES)
#: What a typical clean-up asks for: old A10G sessions on the default machine.
TYPICAL: Final = Selection(
    machine_id=DEFAULT_MACHINE_ID, older_than=timedelta(minutes=30), gpu="A10G"
)


# -- the pure selection ----------------------------------------------------------------------------


def _session(
    sid: str,
    *,
    machine: str = DEFAULT_MACHINE_ID,
    gpu: str | None = "A10G",
    created: datetime | None = T0,
    minutes: int = 60,
) -> Session:
    end = None if created is None else created + timedelta(minutes=minutes)
    return Session(
        session_id=sid,
        gpu_event_id=f"e-{sid}",
        gpu=gpu,
        created_at=created,
        timeout=minutes,
        timeout_end=end,
        machine_id=machine,
    )


MIX: Final = (
    _session("old"),
    _session("old-too", created=T0 + timedelta(minutes=1)),
    _session("young", created=T0 + timedelta(minutes=35)),
    _session("elsewhere", machine=OTHER_MACHINE, gpu="H100"),
    _session("t4", gpu="T4"),
    _session("no-start", created=None),
    _session("unpriced", gpu="X9"),
)


def _ids(selection: Selection, sessions: tuple[Session, ...] = MIX) -> list[str]:
    return [c.session.session_id for c in select(sessions, selection, TABLE, NOW)]


@pytest.mark.parametrize(
    ("selection", "expected"),
    [
        (TYPICAL, ["old", "old-too"]),
        (Selection(machine_id=OTHER_MACHINE), ["elsewhere"]),
        (Selection(gpu="T4"), ["t4"]),
        (
            Selection(older_than=timedelta(minutes=30)),
            ["old", "old-too", "elsewhere", "t4", "unpriced"],
        ),
        (Selection(older_than=timedelta(minutes=39)), ["old", "elsewhere", "t4", "unpriced"]),
        # 40 min of H100 is $5.61; of A10G $0.81 (39 min: $0.79); of T4 $0.43.
        (Selection(cost_over=Decimal("0.80")), ["old", "elsewhere"]),
        (Selection(cost_over=Decimal("5.61")), ["elsewhere"]),
        (Selection(cost_over=Decimal("5.6112")), []),  # exactly 2400 s x 0.002338: not over
        (Selection(machine_id=OTHER_MACHINE, gpu="A10G"), []),
        (Selection(), []),  # nothing given selects nothing
        (Selection(everything=True), [s.session_id for s in MIX]),
        (Selection(everything=True, gpu="T4"), ["t4"]),  # everything never widens a selector
    ],
)
def test_selection_is_every_given_selector_at_once(
    selection: Selection, expected: list[str]
) -> None:
    assert _ids(selection) == expected


def test_what_cannot_be_judged_is_not_selected() -> None:
    # No created_at: its age is unknown, so "older than" cannot be said of it.
    assert "no-start" not in _ids(Selection(older_than=timedelta(0)))
    # No price: its cost is unknown, so "cost over" cannot be said of it either.
    assert "unpriced" not in _ids(Selection(cost_over=Decimal(0)))
    assert "unpriced" in _ids(Selection(older_than=timedelta(minutes=30)))


@settings(max_examples=300, deadline=None)
@given(
    machine=st.sampled_from([None, DEFAULT_MACHINE_ID, OTHER_MACHINE]),
    gpu=st.sampled_from([None, "A10G", "H100", "T4", "X9"]),
    minutes=st.none() | st.integers(0, 60),
    cents=st.none() | st.integers(0, 700),
    picked=st.sampled_from(MIX),
)
def test_a_session_is_selected_only_if_it_matches_every_selector(
    machine: str | None, gpu: str | None, minutes: int | None, cents: int | None, picked: Session
) -> None:
    older = None if minutes is None else timedelta(minutes=minutes)
    cost = None if cents is None else Decimal(cents) / 100
    selection = Selection(machine_id=machine, gpu=gpu, older_than=older, cost_over=cost)
    costs = costs_of(picked, TABLE, NOW)
    expected = selection.has_selector and (
        (machine is None or picked.machine_id == machine)
        and (gpu is None or picked.gpu == gpu)
        and (older is None or (picked.created_at is not None and NOW - picked.created_at > older))
        and (cost is None or (isinstance(costs.cost_so_far, Decimal) and costs.cost_so_far > cost))
    )
    assert matches(costs, selection) == expected


# -- reap against the fake over HTTP ---------------------------------------------------------------


def _outcomes(report: ReapReport, ids: dict[str, str]) -> dict[str, str]:
    names = {sid: name for name, sid in ids.items()}
    return {names[item.session_id]: item.outcome for item in report.reaped}


def _reap(
    base_url: str,
    selection: Selection,
    *,
    dry_run: bool,
    form: str,
    on_progress: Callable[[ReapProgress], None] | None = None,
) -> ReapReport:
    if form == "blocking":
        with SessionsClient(KEY, server=base_url, retry=False) as client:
            result = reap(client, selection, NOW, dry_run=dry_run, on_progress=on_progress)
    else:

        async def run() -> Result[ReapReport, ApiError]:
            async with AsyncSessionsClient(KEY, server=base_url, retry=False) as client:
                return await reap_async(
                    client, selection, NOW, dry_run=dry_run, on_progress=on_progress
                )

        result = asyncio.run(run())
    assert isinstance(result, Success), result
    report = result.unwrap()
    assert isinstance(report, ReapReport)
    return report


FORMS: Final = ("blocking", "asyncio")


@pytest.mark.parametrize("form", FORMS)
def test_a_dry_run_sends_no_delete_at_all(form: str) -> None:
    with scene() as s:
        before = s.live() | s.live(OTHER_KEY)
        report = _reap(s.base_url, TYPICAL, dry_run=True, form=form)
        assert _outcomes(report, s.ids) == {"old-too": "would cancel", "old": "would cancel"}
        assert s.deletes() == []
        assert s.live() | s.live(OTHER_KEY) == before
        # What it would save: each one's cost from NOW to its timeout (20 and 21 min of A10G).
        assert report.saves == Decimal(41 * 60) * Decimal("0.000337")
        assert report.considered == 4  # the account's sessions on the machine, as listed
        # The report says what was asked, for whoever shows it.
        assert (report.selection, report.now, report.dry_run) == (TYPICAL, NOW, True)


@pytest.mark.parametrize("form", FORMS)
def test_yes_cancels_exactly_the_selected_and_leaves_every_other_running(form: str) -> None:
    with scene() as s:
        report = _reap(s.base_url, TYPICAL, dry_run=False, form=form)
        assert _outcomes(report, s.ids) == {"old-too": "cancelled", "old": "cancelled"}
        assert report.ok
        assert sorted(s.deletes()) == sorted(f"/session/{s.ids[n]}" for n in ("old", "old-too"))
        assert s.live() == {s.ids[n] for n in ("young", "elsewhere", "t4")}
        assert s.live(OTHER_KEY) == {s.ids["theirs"]}


@pytest.mark.parametrize("form", FORMS)
def test_progress_is_told_after_the_selection_and_after_each_cancel(form: str) -> None:
    """What an interrupted reap reports (issue 18): which were done, which were pending."""
    seen: list[ReapProgress] = []
    with scene() as s:
        report = _reap(s.base_url, TYPICAL, dry_run=False, form=form, on_progress=seen.append)
    selected = tuple(item.costs for item in report.reaped)
    assert len(selected) == 2
    assert [progress.selected for progress in seen] == [selected] * 3
    assert [progress.reaped for progress in seen] == [(), report.reaped[:1], report.reaped]
    assert [progress.pending for progress in seen] == [selected, selected[1:], ()]


@pytest.mark.parametrize("form", FORMS)
def test_a_failed_cancel_is_reported_and_the_others_still_go_ahead(form: str) -> None:
    with scene() as s:
        # The list is newest first: old-too's cancel is tried first, and fails.
        s.failing[s.ids["old-too"]] = HttpResponse(
            500, (("content-type", "text/plain"),), b"Internal Server Error"
        )
        report = _reap(
            s.base_url, Selection(older_than=timedelta(minutes=30)), dry_run=False, form=form
        )
        outcomes = _outcomes(report, s.ids)
        assert outcomes == {
            "old-too": "failed",
            "t4": "cancelled",
            "elsewhere": "cancelled",
            "old": "cancelled",
        }
        assert not report.ok
        (failed,) = report.failed
        assert "500" in str(failed.error)
        assert s.live() == {s.ids["young"], s.ids["old-too"]}  # the failed one still runs
        assert s.live(OTHER_KEY) == {s.ids["theirs"]}
        # Only the cancelled ones count as saved.
        # old, elsewhere and t4 each had 20 minutes left.
        saved = 20 * 60 * (Decimal("0.000337") + Decimal("0.002338") + Decimal("0.00018"))
        assert report.saves == saved


@pytest.mark.parametrize("form", FORMS)
def test_a_session_already_gone_is_reported_as_such(form: str) -> None:
    with scene() as s:
        gone = b'{"detail":"GPUEvent not found session_id: x, the event might be already closed"}'
        s.failing[s.ids["old"]] = HttpResponse(404, (("content-type", "application/json"),), gone)
        report = _reap(s.base_url, TYPICAL, dry_run=False, form=form)
        assert _outcomes(report, s.ids) == {"old-too": "cancelled", "old": "already gone"}
        assert report.ok


def test_no_selector_is_refused_before_anything_is_sent() -> None:
    with scene() as s:
        seen = len(s.fake.requests_seen)
        with SessionsClient(KEY, server=s.base_url) as client:
            refused = reap(client, Selection(), NOW)
        assert isinstance(refused, Failure)
        assert isinstance(refused.failure(), InvalidRequest)
        assert len(s.fake.requests_seen) == seen
        assert s.deletes() == []


def test_cost_over_needs_the_prices_and_the_rest_does_not() -> None:
    def no_prices(request: HttpRequest) -> HttpResponse | None:
        if request.path == "/platform/gpu-pricing":
            return HttpResponse(503, (("content-type", "application/json"),), b'{"detail":"x"}')
        return None

    fake = FakeService(clock=ManualClock(T0), intercept=no_prices)
    with serve_in_thread(fake) as base_url, SessionsClient(KEY, server=base_url, retry=False) as c:
        c.create(CreateSessionBody(machine_id=DEFAULT_MACHINE_ID)).unwrap()
        later = T0 + timedelta(minutes=10)
        refused = reap(c, Selection(cost_over=Decimal(0)), later)
        assert isinstance(refused, Failure)
        assert "503" in str(refused.failure())
        report = reap(c, Selection(older_than=timedelta(minutes=5)), later).unwrap()
        assert [item.outcome for item in report.reaped] == ["cancelled"]
        assert (report.saves, report.unpriced) == (Decimal(0), 1)
        assert fake.live_sessions() == ()


SESSION = Session(
    session_id="s-1",
    gpu_event_id="e-1",
    gpu="A10G",
    created_at=T0,
    timeout=15,
    timeout_end=T0 + timedelta(minutes=15),
)


def _with_sessions(client: SessionsClient, *gpus: str) -> None:
    for gpu in gpus:
        body = CreateSessionBody(machine_id=DEFAULT_MACHINE_ID, gpu=MachineGPU(gpu))
        client.create(body).unwrap()


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
    """Found by applying a deliberate bug the older tests let through."""
    assert duration(text) == expected


@pytest.mark.parametrize("text", ["", "  ", "h", "30", "30x", "1m1h", "-5m", "1.5h", "1h 30m"])
def test_older_than_refuses_what_is_not_a_duration(text: str) -> None:
    """Found by applying a deliberate bug the older tests let through."""
    with pytest.raises(argparse.ArgumentTypeError, match="not a duration"):
        duration(text)


def test_a_reap_report_counts_savings_and_unpriced_only_for_stopped_sessions() -> None:
    """Found by applying a deliberate bug the older tests let through."""
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
    selection: Selection, cdsessions_fake: FakeService, cdsessions_client: SessionsClient
) -> None:
    """Found by applying a deliberate bug the older tests let through."""
    assert selection_problem(selection) is not None
    cdsessions_client.create(CreateSessionBody(machine_id=DEFAULT_MACHINE_ID)).unwrap()
    seen = cdsessions_fake.requests_seen
    result = reap(cdsessions_client, selection, T0)
    assert isinstance(result.failure(), InvalidRequest)
    assert cdsessions_fake.requests_seen == seen  # nothing listed, nothing cancelled
    assert len(cdsessions_fake.live_sessions()) == 1


def test_reap_matches_the_gpu_name_exactly_and_counts_what_it_listed() -> None:
    """Found by applying a deliberate bug the older tests let through."""
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
    """Found by applying a deliberate bug the older tests let through."""
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
