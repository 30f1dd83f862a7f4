"""The lease's decisions (cdsessions/_core/lease.py), driven without threads on the fake and a
ManualClock: the steps' waits move the clock, so a whole day of leasing takes milliseconds.

Each test drives ``lease_steps`` to its end and reads what the fake saw: the extensions it
got (none past the 24-hour cap, none past the budget), the cancel at the end, the owner told.
"""

from __future__ import annotations

from decimal import Decimal

import pytest
from returns.result import Success

from cdsessions import CreateSessionBody, SessionsClient
from cdsessions._core.budget import Allowance
from cdsessions._core.lease import (
    SESSION_CAP_SECONDS,
    LeaseRecord,
    LeaseState,
    extension_minutes,
    lease_steps,
    leased_session_steps,
    state_of,
)
from cdsessions._core.pricing import Price
from cdsessions._core.wire import HttpRequest
from cdsessions.errors import HttpError, InvalidRequest, OverBudget, SessionGone
from cdsessions.fake import FakeService, FakeTransport, ManualClock

KEY = "sk-lease-0123456789"
A10G = Decimal("0.000337")


def _setup(
    minutes: int = 4, *, allowance_budget: Decimal | None = None
) -> tuple[FakeService, ManualClock, SessionsClient, LeaseRecord]:
    clock = ManualClock()
    service = FakeService(clock=clock, ready_after_polls=0)  # started: extensions are taken
    client = SessionsClient(KEY, transport=FakeTransport(service), clock=clock)
    created = client.create(
        CreateSessionBody(machine_id=service.DEFAULT_MACHINE_ID, gpu=None, timeout=minutes)
    )
    assert isinstance(created, Success)
    record = LeaseRecord(minutes)
    record.session_id = created.unwrap().session_id
    record.created = clock.monotonic()
    record.end = record.created + minutes * 60
    if allowance_budget is not None:
        record.allowance = Allowance(allowance_budget, Price("A10G", A10G), minutes)
    return service, clock, client, record


def _extensions(service: FakeService) -> list[str]:
    return [path for method, path in service.requests_seen if path.endswith("/increase-timeout")]


def test_extensions_stop_at_the_24_hour_cap_and_the_session_is_cancelled_as_it_runs_out() -> None:
    service, clock, client, record = _setup(minutes=30)
    seen: list[LeaseState] = []
    client._run(lease_steps(client._core, record, clock.monotonic, seen.append))
    extended = _extensions(service)
    assert extended, "the lease never extended"
    assert record.end - record.created <= SESSION_CAP_SECONDS  # never past the cap
    assert record.end - record.created > SESSION_CAP_SECONDS - 30 * 60  # but up to it
    assert record.extensions == len(extended)
    assert [state.status for state in seen] == ["ending"]  # told once, when it stopped
    reason = seen[0].reason
    assert reason is not None
    assert reason.code == "invalid_request"
    assert getattr(reason, "why", None) == "session_cap"
    problem = "the session has reached the platform's 24-hour cap: no further extension"
    assert getattr(reason, "problem", None) == problem  # what the owner reads
    assert service.requests_seen[-1][0] == "DELETE"  # cancelled as its time ran out
    assert service.live_sessions() == ()
    assert record.status == "ended"
    assert record.closed == "cancelled"


def test_no_extension_is_sent_past_the_budget() -> None:
    # 0.50 USD at 0.000337 USD/s is 24 whole minutes: 4 to start, then what fits.
    budget = Decimal("0.50")
    service, clock, client, record = _setup(minutes=4, allowance_budget=budget)
    seen: list[LeaseState] = []
    client._run(lease_steps(client._core, record, clock.monotonic, seen.append))
    assert record.allowance is not None
    granted = record.allowance.minutes
    assert granted * 60 * A10G <= budget < (granted + 1) * 60 * A10G
    assert 4 + sum(1 for _ in _extensions(service)) <= granted
    assert seen
    assert isinstance(seen[0].reason, OverBudget)
    assert seen[0].status == "ending"
    assert service.live_sessions() == ()


def test_a_refused_extension_is_not_counted_against_the_budget() -> None:
    """Only the extensions the server took count: two refused ones (503) leave the allowance
    as it was, so the lease still gets every minute the budget pays for. Added for a bug an
    outside review slipped past the suite (issue 23): the allowance grown before the answer."""
    budget = Decimal("0.50")  # 24 whole minutes at 0.000337 USD/s
    service, clock, client, record = _setup(minutes=4, allowance_budget=budget)
    service.answer_next("extend", 503, times=2)
    seen: list[LeaseState] = []
    client._run(lease_steps(client._core, record, clock.monotonic, seen.append))
    assert record.allowance is not None
    granted = record.allowance.minutes
    # The allowance is exactly the session's minutes: the first ones and each accepted one.
    assert granted * 60 == record.end - record.created
    assert granted * 60 * A10G <= budget < (granted + 1) * 60 * A10G
    assert len(_extensions(service)) == record.extensions + 2  # the two refused were sent
    assert isinstance(seen[0].reason, OverBudget)


def test_a_failing_extension_is_retried_then_the_owner_is_told_and_the_session_cancelled() -> None:
    service, clock, client, record = _setup(minutes=2)
    service.answer_next("extend", 503, times=1000)
    seen: list[LeaseState] = []
    client._run(lease_steps(client._core, record, clock.monotonic, seen.append))
    tries = _extensions(service)
    assert len(tries) >= 3  # retried within the time left
    assert clock.monotonic() - record.created < 2 * 60  # given up before the time ran out
    assert service.requests_seen[-1][0] == "DELETE"
    assert service.live_sessions() == ()
    assert len(seen) == 1
    assert seen[0].status == "ended"
    assert isinstance(seen[0].reason, HttpError)
    assert seen[0].reason.status == 503
    assert seen[0].closed == "cancelled"


def test_an_extension_answered_404_ends_the_lease_without_a_cancel() -> None:
    service, clock, client, record = _setup(minutes=2)
    assert record.session_id is not None
    service.end_session(record.session_id)
    seen: list[LeaseState] = []
    client._run(lease_steps(client._core, record, clock.monotonic, seen.append))
    assert not any(method == "DELETE" for method, _ in service.requests_seen)
    assert isinstance(seen[0].reason, SessionGone)
    assert seen[0].status == "ended"


def test_a_kept_lease_keeps_the_session_past_its_first_timeout() -> None:
    service, clock, client, record = _setup(minutes=2)
    steps = lease_steps(client._core, record, clock.monotonic, None)
    waits = 0
    step = next(steps)
    # Drive by hand for ten lease periods, then stop as an owner would.
    from cdsessions._core.retry import Wait

    while clock.monotonic() < 20 * 60:
        if isinstance(step, Wait):
            waits += 1
            clock.sleep(step.seconds)
            step = steps.send(None)
        else:
            assert isinstance(step, HttpRequest)
            step = steps.send(client._send(step, client._closes))
    steps.close()
    assert record.status == "released"
    assert len(service.live_sessions()) == 1
    left = (service.live_sessions()[0].timeout_end - clock()).total_seconds()
    assert 0 < left <= 2 * 60  # within one lease of its end


@pytest.mark.parametrize(
    ("lease", "left", "cap_left", "expected"),
    [
        (4, 120.0, 10_000.0, 2),  # back up to a full lease
        (1, 30.0, 10_000.0, 1),  # at least one minute
        (60, 1799.0, 10_000.0, 30),  # never more than 60 minutes on the clock
        (4, 120.0, 90.0, 1),  # the cap
        (4, 120.0, 59.0, 0),  # nothing left under the cap
    ],
)
def test_extension_minutes(lease: int, left: float, cap_left: float, expected: int) -> None:
    assert extension_minutes(lease, left, cap_left) == expected


def test_leasing_an_existing_session_learns_its_times_from_the_server() -> None:
    clock = ManualClock()
    service = FakeService(clock=clock, ready_after_polls=0)  # started: extensions are taken
    client = SessionsClient(KEY, transport=FakeTransport(service), clock=clock)
    created = client.create(CreateSessionBody(machine_id=service.DEFAULT_MACHINE_ID, timeout=10))
    assert isinstance(created, Success)
    clock.advance(minutes=3)
    record = LeaseRecord(5)
    steps = leased_session_steps(
        client._core, record, created.unwrap().session_id, None, clock.monotonic, clock.time
    )
    assert isinstance(client._run(steps), Success)
    state = state_of(record, clock.monotonic())
    assert state is not None
    assert state.time_left == pytest.approx(7 * 60)
    assert clock.monotonic() - record.created == pytest.approx(3 * 60)


def test_leasing_an_existing_session_over_budget_is_refused_before_any_extension() -> None:
    clock = ManualClock()
    service = FakeService(clock=clock, ready_after_polls=0)  # started: extensions are taken
    client = SessionsClient(KEY, transport=FakeTransport(service), clock=clock)
    body = CreateSessionBody(machine_id=service.DEFAULT_MACHINE_ID, timeout=60)
    created = client.create(body)
    assert isinstance(created, Success)
    record = LeaseRecord(5)
    steps = leased_session_steps(
        client._core, record, created.unwrap().session_id, "0.10", clock.monotonic, clock.time
    )
    refused = client._run(steps)
    assert not isinstance(refused, Success)
    assert isinstance(refused.failure(), OverBudget)
    assert _extensions(service) == []


@pytest.mark.parametrize(
    ("minutes", "problem"),
    [
        (0, "must be from 1 to 60 minutes"),
        (-1, "must be from 1 to 60 minutes"),
        (-(10**6), "must be from 1 to 60 minutes"),
        (61, "must be from 1 to 60 minutes"),
        (True, "must be a whole number of minutes"),
        (1, None),
        (60, None),
    ],
)
def test_a_lease_of_zero_minutes_or_less_is_refused_before_anything_is_sent(
    minutes: int, problem: str | None
) -> None:
    """Added for a bug an outside review slipped past the suite (issue 23): attempt counts and
    lengths of zero or less. A refused lease sends nothing: no extension, no cancel."""
    service, _clock, client, record = _setup(minutes=5)
    assert record.session_id is not None
    seen = len(service.requests_seen)
    with client.lease(record.session_id, minutes) as leased:
        if problem is None:
            assert isinstance(leased, Success)
            return
        error = leased.failure()
    assert isinstance(error, InvalidRequest)
    assert (error.field, error.problem) == ("lease", problem)
    assert service.requests_seen[seen:] == ()
    assert len(service.live_sessions()) == 1


def test_the_state_is_a_frozen_account_of_the_lease_at_one_moment() -> None:
    """What ``scope.lease`` reads (docs/lifecycle.md): status, time left, the last extension,
    the extensions and minutes granted, the cost so far with a budget, and nothing can change
    it afterwards. Written for the promise map (issue 23), which found no test of its fields."""
    record = LeaseRecord(5)
    assert state_of(record, 0.0) is None  # no session yet: nothing to tell
    record.session_id = "s"
    record.created, record.end = 100.0, 100.0 + 10 * 60
    record.extensions, record.extended_at = 2, 300.0
    state = state_of(record, 400.0)
    assert state is not None
    assert (state.session_id, state.status, state.lease_minutes) == ("s", "held", 5)
    assert (state.time_left, state.last_extension) == (300.0, 100.0)
    assert (state.extensions, state.minutes_granted, state.spent_usd) == (2, 10, None)
    with pytest.raises(AttributeError):
        state.status = "ended"  # type: ignore[misc]  # frozen: the test is that it refuses
    record.allowance = Allowance(Decimal("1.00"), Price("A10G", A10G), 12)
    budgeted = state_of(record, 400.0)
    assert budgeted is not None
    assert budgeted.spent_usd == 300 * A10G  # from the session's creation, exact
    assert budgeted.minutes_granted == 12  # what the budget has allowed so far
    record.status = "released"
    released = state_of(record, 400.0)
    assert released is not None
    assert released.time_left == 0.0  # no longer the lease's to keep


def test_leasing_an_existing_session_with_a_budget_grants_the_minutes_it_already_has() -> None:
    clock = ManualClock()
    service = FakeService(clock=clock, ready_after_polls=0)
    client = SessionsClient(KEY, transport=FakeTransport(service), clock=clock)
    created = client.create(CreateSessionBody(machine_id=service.DEFAULT_MACHINE_ID, timeout=90))
    assert isinstance(created, Success)
    record = LeaseRecord(5)
    session_id = created.unwrap().session_id
    steps = leased_session_steps(
        client._core, record, session_id, "100", clock.monotonic, clock.time
    )
    leased = client._run(steps)
    assert isinstance(leased, Success)
    assert leased.unwrap().session_id == session_id  # the session, as the server told it
    state = state_of(record, clock.monotonic())
    assert state is not None
    assert state.minutes_granted == 90


def test_a_lease_of_bad_minutes_names_the_lease_operation_and_sends_nothing() -> None:
    service, clock, client, record = _setup(minutes=5)
    assert record.session_id is not None
    seen = len(service.requests_seen)
    steps = leased_session_steps(
        client._core, LeaseRecord(0), record.session_id, None, clock.monotonic, clock.time
    )
    refused = client._run(steps)
    assert not isinstance(refused, Success)
    error = refused.failure()
    assert isinstance(error, InvalidRequest)
    assert (error.operation, error.field) == ("lease session", "lease")
    assert service.requests_seen[seen:] == ()


def test_a_lease_that_is_ending_still_has_its_time_left() -> None:
    record = LeaseRecord(5)
    record.session_id = "s"
    record.created, record.end = 100.0, 100.0 + 10 * 60
    record.status = "ending"
    state = state_of(record, 400.0)
    assert state is not None
    assert state.time_left == 300.0  # the session runs until its end even as the lease stops
