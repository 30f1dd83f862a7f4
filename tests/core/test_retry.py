"""The retry policy as pure functions: delays, Retry-After, what is retried, and the planner."""

from __future__ import annotations

import email.utils
import math
from collections.abc import Callable
from datetime import UTC, datetime
from email.utils import formatdate
from typing import get_args

import pytest
from hypothesis import example, given, settings
from hypothesis import strategies as st
from returns.result import Failure, Success

from cdsessions import RetryPolicy, Timeout, TransportFailed
from cdsessions._core.retry import (
    DEFAULT_RETRY,
    NO_RETRY,
    Attempt,
    Done,
    OperationKind,
    Outcome,
    Retry,
    Stop,
    Wait,
    attempt_timeout,
    backoff_delay,
    decide,
    parse_retry_after,
    plan,
    policy_from,
    retry_reason,
)
from cdsessions._core.timeouts import MAX_SECONDS
from cdsessions._core.wire import HttpResponse

KINDS: tuple[OperationKind, ...] = get_args(OperationKind)
NOW = 1_800_000_000.0  # a fixed Unix time: HTTP-dates are measured from it

policies = st.builds(
    RetryPolicy,
    max_attempts=st.integers(1, 20),
    backoff=st.floats(0, 30, allow_nan=False),
    multiplier=st.floats(1, 10, allow_nan=False),
    max_delay=st.floats(0, 120, allow_nan=False),
    jitter=st.floats(0, 1, allow_nan=False),
    max_retry_after=st.floats(0, 300, allow_nan=False),
)
units = st.floats(0, 1, exclude_max=True, allow_nan=False)


def status(code: int, *headers: tuple[str, str]) -> Outcome:
    return Success(HttpResponse(code, headers))


def failed(kind: str, sent: bool) -> Outcome:
    return Failure(TransportFailed("op", kind, "problem", sent))  # type: ignore[arg-type]


# -- delays -----------------------------------------------------------------------------------


@settings(max_examples=300, deadline=None)
@given(policy=policies, attempt=st.integers(1, 10_000), unit=units)
@example(policy=RetryPolicy(max_attempts=1, backoff=0, jitter=0), attempt=1, unit=0.0)
@example(
    policy=RetryPolicy(backoff=30, multiplier=10, max_delay=120, jitter=1),
    attempt=10_000,
    unit=0.999,
)
def test_a_jittered_delay_stays_within_its_bounds(
    policy: RetryPolicy, attempt: int, unit: float
) -> None:
    # Stated as relations, not by computing the formula again (test_delays_follow_the_documented
    # formula pins its values): jitter only shortens, by exactly its share; nothing passes the
    # cap; no delay is shorter than the first one.
    delay = backoff_delay(policy, attempt, unit)
    full = backoff_delay(policy, attempt, 0.0)
    assert 0 <= delay <= full <= policy.max_delay
    assert delay == pytest.approx(full * (1 - policy.jitter * unit), rel=1e-9, abs=1e-12)
    first = backoff_delay(policy, 1, 0.0)
    assert first == pytest.approx(min(policy.backoff, policy.max_delay), rel=1e-9, abs=1e-12)
    assert full >= first - 1e-9


@settings(max_examples=200, deadline=None)
@given(policy=policies, attempt=st.integers(1, 50), unit=units)
def test_without_jitter_the_delay_grows_and_then_holds_at_the_cap(
    policy: RetryPolicy, attempt: int, unit: float
) -> None:
    steady = RetryPolicy(
        backoff=policy.backoff, multiplier=policy.multiplier, max_delay=policy.max_delay, jitter=0
    )
    first, second = backoff_delay(steady, attempt, unit), backoff_delay(steady, attempt + 1, unit)
    assert first <= second + 1e-9
    assert second <= steady.max_delay + 1e-9


def test_delays_follow_the_documented_formula() -> None:
    policy = RetryPolicy(backoff=0.5, multiplier=2, max_delay=3, jitter=0.5)
    assert [backoff_delay(policy, n, 0.0) for n in (1, 2, 3, 4)] == [0.5, 1.0, 2.0, 3.0]
    assert backoff_delay(policy, 2, 0.5) == pytest.approx(0.75)  # 1.0 shortened by a quarter
    assert backoff_delay(policy, 10**6, 0.0) == 3.0  # no overflow however many attempts
    assert backoff_delay(policy, 4, 0.999) == pytest.approx(3.0 * (1 - 0.5 * 0.999))
    slow = RetryPolicy(backoff=1, multiplier=3, max_delay=30, jitter=0)
    delays = [backoff_delay(slow, n, 0.7) for n in (1, 2, 3, 4, 5)]
    assert delays == pytest.approx([1, 3, 9, 27, 30])
    assert backoff_delay(RetryPolicy(backoff=5, max_delay=2, jitter=0), 1, 0.0) == 2.0


# -- Retry-After ------------------------------------------------------------------------------


@settings(max_examples=200, deadline=None)
@given(seconds=st.integers(0, 10**6))
@example(seconds=0)
@example(seconds=86401)
@example(seconds=10**6)
def test_retry_after_in_seconds(seconds: int) -> None:
    assert parse_retry_after(str(seconds), NOW) == seconds
    assert parse_retry_after(f" {seconds} ", NOW) == seconds


@settings(max_examples=200, deadline=None)
@given(offset=st.integers(-(10**6), 10**6))
@example(offset=0)
@example(offset=-1)
@example(offset=86401)
@example(offset=-(10**6))
def test_retry_after_as_an_http_date(offset: int) -> None:
    header = formatdate(NOW + offset, usegmt=True)  # "Wed, 15 Jan 2027 08:00:00 GMT"
    assert parse_retry_after(header, NOW) == pytest.approx(max(0, offset), abs=1)


@pytest.mark.parametrize(
    "header", [None, "", "soon", "-5", "1e3", "0x10", "Wed, 32 Foo 2027 99:00:00 GMT", "inf"]
)
def test_an_unreadable_retry_after_is_ignored(header: str | None) -> None:
    assert parse_retry_after(header, NOW) is None


@settings(max_examples=300, deadline=None)
@given(
    policy=policies,
    asked=st.integers(0, 400),
    as_date=st.booleans(),
    remaining=st.one_of(st.none(), st.floats(0, 500, allow_nan=False)),
    unit=units,
)
@example(policy=RetryPolicy(max_retry_after=0), asked=0, as_date=False, remaining=0.0, unit=0.0)
@example(policy=RetryPolicy(max_retry_after=300), asked=400, as_date=True, remaining=None, unit=0.5)
@example(policy=RetryPolicy(), asked=60, as_date=False, remaining=60.0, unit=0.0)
def test_retry_after_is_honoured_but_never_past_the_cap_or_the_deadline(
    policy: RetryPolicy, asked: int, as_date: bool, remaining: float | None, unit: float
) -> None:
    policy = RetryPolicy(max_attempts=2, max_retry_after=policy.max_retry_after)
    header = formatdate(NOW + asked, usegmt=True) if as_date else str(asked)
    decision = decide(
        policy,
        "get",
        1,
        status(503, ("Retry-After", header)),
        remaining=remaining,
        now=NOW,
        unit=unit,
    )
    fits = asked <= policy.max_retry_after and (remaining is None or asked < remaining)
    if fits:
        assert decision == Retry(asked, "503")
    else:
        assert isinstance(decision, Stop)


# -- what is retried --------------------------------------------------------------------------

RETRIED = {
    # outcome label: the operations whose default policy retries it
    "connect refused (not sent)": {"get", "list", "cancel", "create", "extend"},
    "connect timeout (not sent)": {"get", "list", "cancel", "create", "extend"},
    "read timeout (sent)": {"get", "list", "cancel"},
    "reset (sent)": {"get", "list", "cancel"},
    "too large": set(),
    "429": {"get", "list", "cancel", "create", "extend"},
    "500": {"get", "list"},
    "502": {"get", "list", "cancel"},
    "503": {"get", "list", "cancel"},
    "504": {"get", "list", "cancel"},
    "501": set(),
    "400": set(),
    "401": set(),
    "404": set(),
    "422": set(),
    "307": set(),
}
OUTCOMES: dict[str, Outcome] = {
    "connect refused (not sent)": failed("connect", False),
    "connect timeout (not sent)": failed("timeout", False),
    "read timeout (sent)": failed("timeout", True),
    "reset (sent)": failed("broken", True),
    "too large": failed("too_large", True),
    **{label: status(int(label)) for label in RETRIED if label.isdigit()},
}


@pytest.mark.parametrize("label", RETRIED)
@pytest.mark.parametrize("kind", KINDS)
def test_the_default_policy_retries_exactly_the_documented_cases(
    label: str, kind: OperationKind
) -> None:
    decision = decide(RetryPolicy(), kind, 1, OUTCOMES[label], remaining=60, now=NOW, unit=0)
    assert isinstance(decision, Retry) == (kind in RETRIED[label])


@pytest.mark.parametrize("label", ["read timeout (sent)", "reset (sent)", "502", "503", "504"])
@pytest.mark.parametrize("kind", ["create", "extend"])
def test_allow_duplicates_opts_create_and_extend_in(label: str, kind: OperationKind) -> None:
    opted_in = RetryPolicy(allow_duplicates=True)
    assert isinstance(
        decide(opted_in, kind, 1, OUTCOMES[label], remaining=60, now=NOW, unit=0), Retry
    )
    assert isinstance(
        decide(RetryPolicy(), kind, 1, OUTCOMES[label], remaining=60, now=NOW, unit=0), Stop
    )


@pytest.mark.parametrize("kind", KINDS)
def test_success_and_spent_attempts_stop(kind: OperationKind) -> None:
    policy = RetryPolicy(max_attempts=3)
    assert decide(policy, kind, 1, status(200), remaining=60, now=NOW, unit=0) == Stop("succeeded")
    refused = OUTCOMES["connect refused (not sent)"]
    assert isinstance(decide(policy, kind, 2, refused, remaining=60, now=NOW, unit=0), Retry)
    assert isinstance(decide(policy, kind, 3, refused, remaining=60, now=NOW, unit=0), Stop)
    assert isinstance(decide(NO_RETRY, kind, 1, refused, remaining=60, now=NOW, unit=0), Stop)


def test_a_backoff_that_would_pass_the_deadline_stops() -> None:
    policy = RetryPolicy(backoff=2, jitter=0)
    refused = OUTCOMES["connect refused (not sent)"]
    assert decide(policy, "get", 1, refused, remaining=2.5, now=NOW, unit=0) == Retry(
        2, "connect (not sent)"
    )
    assert isinstance(decide(policy, "get", 1, refused, remaining=1.9, now=NOW, unit=0), Stop)


# -- settings ---------------------------------------------------------------------------------


def test_retry_settings_resolve_to_policies() -> None:
    custom = RetryPolicy(max_attempts=7)
    assert policy_from(None, custom) == Success(custom)
    assert policy_from(False, custom) == Success(NO_RETRY)
    assert policy_from(True, custom) == Success(RetryPolicy())
    assert policy_from(custom, RetryPolicy()) == Success(custom)


@pytest.mark.parametrize(
    "value",
    [
        3,
        "yes",
        RetryPolicy(max_attempts=0),
        RetryPolicy(max_attempts=True),
        RetryPolicy(backoff=-1),
        RetryPolicy(backoff=math.nan),
        RetryPolicy(max_delay=math.inf),
        RetryPolicy(multiplier=0.5),
        RetryPolicy(jitter=1.5),
        RetryPolicy(statuses=frozenset({99})),
        RetryPolicy(statuses={503}),  # type: ignore[arg-type]
    ],
)
def test_unusable_retry_settings_are_explained(value: object) -> None:
    result = policy_from(value, RetryPolicy())
    assert isinstance(result, Failure)
    assert result.failure()


# -- the planner ------------------------------------------------------------------------------


class FakeClock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


def drive(
    policy: RetryPolicy,
    kind: OperationKind,
    timeout: Timeout,
    outcomes: list[Outcome],
    clock: FakeClock,
    took: float = 0.0,
) -> tuple[list[Attempt | Wait], Done]:
    """Run the planner as a client would, each attempt taking ``took`` seconds."""
    steps = plan(policy, kind, timeout, clock=clock, wallclock=lambda: NOW, unit=lambda: 0.0)
    seen: list[Attempt | Wait] = []
    step = next(steps)
    while not isinstance(step, Done):
        seen.append(step)
        if isinstance(step, Wait):
            clock.now += step.seconds
            step = steps.send(None)
        else:
            clock.now += min(took, step.timeout.total or took)  # an attempt keeps its timeout
            step = steps.send(outcomes.pop(0))
    return seen, step


def test_the_planner_retries_then_returns_the_last_outcome() -> None:
    policy = RetryPolicy(max_attempts=3, backoff=1, jitter=0)
    seen, done = drive(
        policy, "get", Timeout(2, 5, total=60), [status(503), status(502), status(200)], FakeClock()
    )
    assert [type(step) for step in seen] == [Attempt, Wait, Attempt, Wait, Attempt]
    assert [step.seconds for step in seen if isinstance(step, Wait)] == [1, 2]
    assert done.attempts == 3
    assert done.outcome == status(200)


def test_each_attempt_gets_only_what_remains_of_the_deadline() -> None:
    policy = RetryPolicy(max_attempts=5, backoff=1, jitter=0)
    clock = FakeClock()
    seen, done = drive(
        policy, "list", Timeout(2, 5, total=10), [failed("timeout", True)] * 5, clock, took=5
    )
    sends = [step for step in seen if isinstance(step, Attempt)]
    assert sends[0].timeout == Timeout(2, 5, 10)
    assert sends[1].timeout == Timeout(2, 4, 4)  # 10 - 5 (attempt) - 1 (wait)
    assert done.attempts == 2  # a 2 s wait after the second would pass the deadline
    assert clock.now - 100 <= 10


def test_a_create_that_may_have_reached_the_server_is_sent_once() -> None:
    seen, done = drive(
        RetryPolicy(max_attempts=5), "create", Timeout(), [failed("timeout", True)], FakeClock()
    )
    assert seen == [Attempt(1, attempt_timeout(Timeout(), 120.0))]
    assert done.outcome == failed("timeout", True)
    assert done.reason == "not retryable"


def test_a_wait_that_overruns_the_deadline_ends_with_the_last_outcome() -> None:
    policy = RetryPolicy(max_attempts=5, backoff=1, jitter=0)
    clock = FakeClock()
    steps = plan(
        policy,
        "get",
        Timeout(1, 1, total=3),
        clock=clock,
        wallclock=lambda: NOW,
        unit=lambda: 0.0,
    )
    assert next(steps) == Attempt(1, Timeout(1, 1, 3))
    assert steps.send(status(503)) == Wait(1, "503; attempt 2 of 5")
    clock.now += 10  # the process was suspended while it slept
    done = steps.send(None)
    assert isinstance(done, Done)
    assert (done.outcome, done.attempts) == (status(503), 1)


# -- exact values at the edges (survivors of ``nox -s mutation``) ------------------------------


@pytest.mark.parametrize(
    ("policy", "problem"),
    [
        (RetryPolicy(backoff=0, jitter=0, max_delay=0, max_retry_after=0), None),  # 0 is allowed
        (RetryPolicy(multiplier=1), None),
        (RetryPolicy(jitter=1), None),
        (RetryPolicy(statuses=frozenset({100, 599}), read_statuses=frozenset()), None),
        (RetryPolicy(max_attempts=1), None),
        (RetryPolicy(max_attempts=0), "max_attempts must be at least 1 (1 means no retries)"),
        # Issue 23: below zero too, however far (a check for == 0 alone would let these loop).
        (RetryPolicy(max_attempts=-1), "max_attempts must be at least 1 (1 means no retries)"),
        (
            RetryPolicy(max_attempts=-(10**9)),
            "max_attempts must be at least 1 (1 means no retries)",
        ),
        (RetryPolicy(max_attempts=2.0), "max_attempts must be a whole number"),  # type: ignore[arg-type]
        (RetryPolicy(max_attempts=True), "max_attempts must be a whole number"),
        (RetryPolicy(backoff=True), "backoff must be a number"),
        (RetryPolicy(jitter="0"), "jitter must be a number"),  # type: ignore[arg-type]
        (RetryPolicy(max_delay=-1), "max_delay must be a finite number ≥ 0, not -1"),
        (
            RetryPolicy(max_retry_after=math.nan),
            "max_retry_after must be a finite number ≥ 0, not nan",
        ),
        (RetryPolicy(multiplier=0.99), "multiplier must be at least 1"),
        (RetryPolicy(jitter=1.01), "jitter must be between 0 and 1"),
        (
            RetryPolicy(statuses=frozenset({600})),
            "statuses must be a frozenset of HTTP status codes",
        ),
        (
            RetryPolicy(statuses=frozenset({99})),
            "statuses must be a frozenset of HTTP status codes",
        ),
        (
            RetryPolicy(read_statuses={500}),  # type: ignore[arg-type]
            "read_statuses must be a frozenset of HTTP status codes",
        ),
        (RetryPolicy(allow_duplicates=1), "allow_duplicates must be True or False"),  # type: ignore[arg-type]
    ],
)
def test_policy_problems_are_exact_at_the_edges(policy: RetryPolicy, problem: str | None) -> None:
    assert policy.problem() == problem


def test_429_is_retried_only_when_the_policy_lists_it() -> None:
    without = RetryPolicy(statuses=frozenset({503}))
    assert retry_reason(without, "get", status(429)) is None
    assert retry_reason(RetryPolicy(), "create", status(429)) == "429"
    # A cassette miss, never sent, is not retried: the same request finds nothing again.
    assert retry_reason(RetryPolicy(), "get", failed("unmatched", False)) is None
    assert retry_reason(RetryPolicy(), "get", failed("no_cassette", False)) is None
    assert retry_reason(RetryPolicy(), "get", failed("connect", False)) == "connect (not sent)"


def test_a_3xx_is_not_a_success_and_is_not_retried() -> None:
    decision = decide(RetryPolicy(), "get", 1, status(300), remaining=None, now=NOW, unit=0.0)
    assert decision == Stop("not retryable")
    assert decide(RetryPolicy(), "get", 1, status(299), remaining=None, now=NOW, unit=0) == Stop(
        "succeeded"
    )


def test_stop_reasons_say_why() -> None:
    policy = RetryPolicy(max_attempts=2, backoff=1, jitter=0, max_retry_after=10)
    assert decide(policy, "get", 2, status(503), remaining=None, now=NOW, unit=0) == Stop(
        "503; no attempts left (2 made)"
    )
    late = status(503, ("Retry-After", "11"))
    assert decide(policy, "get", 1, late, remaining=None, now=NOW, unit=0) == Stop(
        "503; Retry-After 11s is over 10s"
    )
    # A wait exactly as long as what remains would end at the deadline: not started.
    assert decide(policy, "get", 1, status(503), remaining=1.0, now=NOW, unit=0) == Stop(
        "503; waiting 1.00s would pass the overall deadline"
    )
    assert decide(policy, "get", 1, status(503), remaining=1.01, now=NOW, unit=0) == Retry(
        1.0, "503"
    )


def test_an_attempt_never_outlasts_what_remains() -> None:
    timeout = Timeout(10, 30, total=120)
    assert attempt_timeout(timeout, None) is timeout
    assert attempt_timeout(timeout, 120) is timeout
    assert attempt_timeout(timeout, 50) == Timeout(10, 30, 50)
    assert attempt_timeout(timeout, 20) == Timeout(10, 20, 20)
    assert attempt_timeout(timeout, 5) == Timeout(5, 5, 5)
    assert attempt_timeout(Timeout(10, 200, total=120), 120) == Timeout(10, 120, 120)


def test_the_first_attempt_is_bounded_by_the_total_too() -> None:
    seen, _ = drive(RetryPolicy(), "get", Timeout(10, 200, total=120), [status(200)], FakeClock())
    assert seen == [Attempt(1, Timeout(10, 120, 120))]


def test_without_an_overall_deadline_retries_still_run_and_retry_after_dates_count() -> None:
    policy = RetryPolicy(max_attempts=3, backoff=1, jitter=0)
    date = formatdate(NOW + 7, usegmt=True)
    outcomes = [status(503), status(503, ("Retry-After", date)), status(200)]
    seen, done = drive(policy, "get", Timeout(2, 5, total=None), outcomes, FakeClock())
    assert [step for step in seen if isinstance(step, Wait)] == [
        Wait(1, "503; attempt 2 of 3"),
        Wait(7, "503; attempt 3 of 3"),
    ]
    assert (done.outcome, done.attempts, done.reason) == (status(200), 3, "succeeded")


def test_a_wait_that_ends_exactly_at_the_deadline_ends_the_call() -> None:
    policy = RetryPolicy(max_attempts=5, backoff=1, jitter=0)
    clock = FakeClock()
    steps = plan(
        policy, "get", Timeout(1, 1, total=3), clock=clock, wallclock=lambda: NOW, unit=lambda: 0
    )
    next(steps)
    assert steps.send(status(503)) == Wait(1, "503; attempt 2 of 5")
    clock.now += 3  # the sleep overran to exactly the deadline
    assert steps.send(None) == Done(status(503), 1, "the overall deadline passed while waiting")


def test_a_3xx_ends_the_call_as_not_retryable_not_as_a_success() -> None:
    _, done = drive(RetryPolicy(), "get", Timeout(), [status(300)], FakeClock())
    assert (done.attempts, done.reason) == (1, "not retryable")


def test_a_wait_that_leaves_a_moment_of_the_deadline_tries_again() -> None:
    policy = RetryPolicy(max_attempts=5, backoff=1, jitter=0)
    clock = FakeClock()
    steps = plan(
        policy, "get", Timeout(1, 1, total=3), clock=clock, wallclock=lambda: NOW, unit=lambda: 0
    )
    next(steps)
    assert steps.send(status(503)) == Wait(1, "503; attempt 2 of 5")
    clock.now += 2.5  # half a second of the deadline is left: enough for another attempt
    assert steps.send(None) == Attempt(2, Timeout(0.5, 0.5, 0.5))


@pytest.mark.parametrize(
    ("value", "seconds"),
    [
        ("120", 120.0),
        (" 7 ", 7.0),
        ("1.5", 1.5),
        ("Wed, 21 Oct 2015 07:28:00 GMT", 0.0),
        ("Wed, 21 Oct 2015 07:28:00 -0000", 0.0),  # naive in the stdlib: still GMT
        ("Wed, 21 Oct 2015 07:28:10 -0000", 10.0),
        ("١٢٠", None),  # digits, but not ASCII ones
        ("nan", None),
        ("NaN", None),
        ("inf", None),
        ("-Infinity", None),
        ("-1", None),
        ("1e3", None),
        ("9" * 400, None),
        ("Fri, 31 Dec 99999 23:59:59 GMT", None),
        ("Wed, 21 Oct 2015 07:28:00 +99999999999999999999", None),
        ("Mon, 01 Jan 0001 00:00:00 +2359", 0.0),
        ("\x00", None),
        ("", None),
    ],
)
def test_retry_after_is_read_or_ignored(value: str, seconds: float | None) -> None:
    """From issue 10: the boundary never raises."""
    now = 1445412480.0  # Wed, 21 Oct 2015 07:28:00 GMT
    assert parse_retry_after(value, now) == seconds


@settings(max_examples=500, deadline=None)
@given(
    st.one_of(
        st.text(max_size=40),
        st.from_regex(
            r"[A-Za-z]{3}, \d{1,6} [A-Za-z]{3} -?\d{1,12} \d\d:\d\d:\d\d [-+A-Z0-9]{0,24}"
        ),
    ),
    st.floats(min_value=0, max_value=4e9),
)
@example("", 0.0)
@example("-1", 0.0)
@example("86401", 4e9)
@example("Mon, 01 Jan 999999 00:00:00 GMT", 4e9)
@example("\U0001f600", 1.0)
def test_retry_after_never_raises(value: str, now: float) -> None:
    """From issue 10: the boundary never raises."""
    seconds = parse_retry_after(value, now)
    assert seconds is None or 0 <= seconds < math.inf


def test_retry_waits_are_clamped_to_what_a_sleep_accepts() -> None:
    """From issue 10: the boundary never raises."""
    patient = RetryPolicy(backoff=1e300, max_delay=1e300, max_retry_after=1e300, jitter=0)
    asked = HttpResponse(503, (("Retry-After", "9999999999"),), b"")
    for outcome in (Success(HttpResponse(503)), Success(asked)):
        decision = decide(patient, "get", 1, outcome, remaining=None, now=0.0, unit=0.0)
        assert not isinstance(decision, Stop)
        assert 0 < decision.delay <= MAX_SECONDS


def test_a_jitter_unit_past_one_is_held_at_one() -> None:
    """Found by a mutant of ``nox -s mutation`` the rest of the suite let through."""
    policy = RetryPolicy(backoff=2, jitter=0.5, max_delay=10)
    assert backoff_delay(policy, 1, 1.5) == backoff_delay(policy, 1, 1.0) == 1.0
    assert backoff_delay(policy, 1, -1.0) == 2.0


def test_the_retry_defaults_are_the_documented_ones() -> None:
    """Bugs: a default changed (max_attempts 4, max_retry_after 120, a status dropped).

    Found by applying a deliberate bug the older tests let through."""
    assert RetryPolicy() == DEFAULT_RETRY
    policy = RetryPolicy()
    assert policy.max_attempts == 3
    assert (policy.backoff, policy.multiplier, policy.max_delay) == (0.5, 2.0, 8.0)
    assert policy.jitter == 0.5
    assert policy.max_retry_after == 60.0
    assert policy.statuses == frozenset({429, 502, 503, 504})
    assert policy.read_statuses == frozenset({500})
    assert policy.allow_duplicates is False


def test_retry_after_in_other_scripts_digits_is_unreadable() -> None:
    """Bug: ``\\d`` without ASCII matching, which reads Arabic-Indic digits as seconds.

    Found by applying a deliberate bug the older tests let through."""
    assert parse_retry_after("\u0661\u0662\u0660", now=0.0) is None
    assert parse_retry_after("120", now=0.0) == 120.0


def test_a_retry_after_date_in_the_minus_0000_form_is_gmt(far_from_utc: None) -> None:
    """Bug: ``-0000`` parses as a naive date-time, then read as local time (14 h off here).

    Found by an outside review's deliberate bug the suite missed (issue 14)."""
    moment = datetime(2015, 10, 21, 7, 28, tzinfo=UTC).timestamp()
    assert parse_retry_after("Wed, 21 Oct 2015 07:28:00 -0000", moment - 30) == 30.0
    assert parse_retry_after("Wed, 21 Oct 2015 07:28:00 GMT", moment - 30) == 30.0
    assert parse_retry_after("Wed, 21 Oct 2015 07:28:00 +0100", moment - 30) == 0.0  # past
    assert parse_retry_after(email.utils.formatdate(moment + 5, usegmt=True), moment) == 5.0


def test_a_200_ends_the_call_without_reading_the_clocks_or_drawing_jitter() -> None:
    # The usual call's cost: one clock read for the deadline, none of the wall clock or jitter.
    reads: list[str] = []

    def reader(name: str, value: float) -> Callable[[], float]:
        def read() -> float:
            reads.append(name)
            return value

        return read

    steps = plan(
        RetryPolicy(),
        "get",
        Timeout(1, 1, total=3),
        clock=reader("clock", 0.0),
        wallclock=reader("wallclock", NOW),
        unit=reader("unit", 0.0),
    )
    next(steps)
    assert steps.send(status(200)) == Done(status(200), 1, "succeeded")
    assert reads == ["clock"]


def test_a_retry_setting_of_the_wrong_type_names_the_type_given() -> None:
    got = policy_from("often", DEFAULT_RETRY)
    assert got == Failure("must be a RetryPolicy, True or False, not str")
