"""Timeouts (``cdsessions/_core/timeouts.py``): the documented defaults, what a plain number
means, how settings resolve or are refused naming the field, and the clamp to what the platform
can wait."""

from __future__ import annotations

import math
import threading

import pytest
from returns.result import Failure, Success

from cdsessions import (
    AsyncSessionsClient,
    CreateSessionBody,
    InvalidRequest,
    SessionsClient,
    Timeout,
)
from cdsessions._core.timeouts import DEFAULT_TIMEOUT, MAX_SECONDS, ready_timeout_from, timeout_from
from cdsessions.fake import DEFAULT_MACHINE_ID
from cdsessions.transports._inline import InlineTransport
from tests.support.checks import assert_renders_bounded, failure_of, run
from tests.support.samples import BAD_SECONDS
from tests.support.transports import Recording

KEY = "fake-key-boundary"


BODY = CreateSessionBody(machine_id=DEFAULT_MACHINE_ID)


@pytest.mark.parametrize(
    "timeout",
    [
        *(Timeout(connect=v) for v in BAD_SECONDS if v is not None),  # type: ignore[arg-type]
        *(Timeout(read=v) for v in BAD_SECONDS if v is not None),  # type: ignore[arg-type]
        *(Timeout(total=v) for v in BAD_SECONDS if v is not None),  # type: ignore[arg-type]
        *(v for v in BAD_SECONDS if v is not None),
        0,
    ],
    ids=repr,
)
def test_unusable_timeouts_are_refused_naming_the_field_with_nothing_sent(timeout: object) -> None:
    """From issue 10: the boundary never raises."""
    transport = Recording()
    per_client = SessionsClient(KEY, transport=transport, timeout=timeout)  # type: ignore[arg-type]
    per_call = SessionsClient(KEY, transport=transport)
    aclient = AsyncSessionsClient(KEY, transport=InlineTransport(transport))
    for result in (
        per_client.get("s"),
        per_client.create(BODY),
        per_call.list(timeout=timeout),  # type: ignore[arg-type]
        per_call.cancel("s", timeout=timeout),  # type: ignore[arg-type]
        run(aclient.extend("s", 5, timeout=timeout)),  # type: ignore[arg-type]
    ):
        error = failure_of(result)
        assert isinstance(error, InvalidRequest)
        assert error.field == "timeout"
        assert_renders_bounded(error)
    assert transport.sent == []


@pytest.mark.parametrize(
    "timeout",
    [1e10, 10**400, Timeout(connect=1e10, read=1e300, total=1e10), Timeout(total=None, read=1e12)],
    ids=repr,
)
def test_huge_timeouts_are_clamped_to_what_the_platform_can_wait(timeout: object) -> None:
    """From issue 10: the boundary never raises."""
    assert MAX_SECONDS < threading.TIMEOUT_MAX
    transport = Recording()
    client = SessionsClient(KEY, transport=transport, timeout=timeout)  # type: ignore[arg-type]
    aclient = AsyncSessionsClient(KEY, transport=InlineTransport(transport))
    assert isinstance(client.get("s"), Success)
    assert isinstance(
        client.create(CreateSessionBody(machine_id="m", wait_for_server=True)), Success
    )
    assert isinstance(run(aclient.get("s", timeout=timeout)), Success)  # type: ignore[arg-type]
    assert len(transport.sent) == 3
    for _, sent in transport.sent:
        parts = [sent.connect, sent.read] + ([] if sent.total is None else [sent.total])
        assert all(isinstance(p, float) and 0 < p <= MAX_SECONDS for p in parts), sent
        for seconds in parts:  # a timed wait accepts each (the lock is free: no actual wait)
            lock = threading.Lock()
            assert lock.acquire(timeout=seconds)
            lock.release()


def test_at_least_keeps_a_timeout_whose_read_is_already_long_enough() -> None:
    """Found by a mutant of ``nox -s mutation`` the rest of the suite let through."""
    timeout = Timeout(10, 660, total=100)
    assert timeout.at_least(660) is timeout  # equal is enough: nothing to raise
    assert timeout.at_least(600) is timeout
    assert timeout.at_least(661) == Timeout(10, 661, total=671)


def test_timeout_values_and_problems_are_exact() -> None:
    """Found by a mutant of ``nox -s mutation`` the rest of the suite let through."""
    big = MAX_SECONDS * 10
    assert Timeout(big, 1, total=None).clamped() == Timeout(MAX_SECONDS, 1, None)
    assert Timeout(1, big, total=5).clamped() == Timeout(1, MAX_SECONDS, 5)
    assert Timeout(1, 2, total=big).clamped() == Timeout(1, 2, MAX_SECONDS)
    exact = Timeout(MAX_SECONDS, MAX_SECONDS, MAX_SECONDS)
    assert exact.clamped() is exact
    assert Timeout(1, -1).problem() == "read must be a finite number of seconds > 0, not -1"
    assert Timeout(1, 1, 0).problem() == "total must be a finite number of seconds > 0, not 0"
    assert Timeout(True, 1).problem() == "connect must be a number of seconds, not bool"
    assert Timeout(1, 1, None).problem() is None
    assert ready_timeout_from(0) == Success(0.0)
    assert ready_timeout_from(-1) == Failure("must be a finite number of seconds ≥ 0, not -1")
    assert ready_timeout_from(None) == Failure("must be a number of seconds, not NoneType")
    assert timeout_from(0, Timeout()) == Failure("must be a finite number of seconds > 0, not 0")
    assert timeout_from("5", Timeout()) == Failure(
        "must be a Timeout or a number of seconds, not str"
    )
    assert timeout_from(True, Timeout()) == Failure(
        "must be a Timeout or a number of seconds, not bool"
    )


def test_the_timeout_defaults_are_the_documented_ones() -> None:
    """Bugs: Timeout() connect 30, total 60.

    Found by applying a deliberate bug the older tests let through."""
    assert Timeout() == DEFAULT_TIMEOUT == Timeout(connect=10, read=30, total=120)


def test_a_plain_number_sets_connect_and_read_alike_and_keeps_room_for_one_attempt() -> None:
    """Bugs: ``timeout=5`` setting only read; the total not widened for a long number.

    Found by applying a deliberate bug the older tests let through."""
    assert timeout_from(5, DEFAULT_TIMEOUT) == Success(Timeout(connect=5, read=5, total=120))
    # 100 s to connect and 100 s to read do not fit in 120: the total never cuts one attempt.
    assert timeout_from(100, DEFAULT_TIMEOUT) == Success(Timeout(100, 100, 200))


def test_a_very_long_timeout_is_clamped_to_twenty_days() -> None:
    """Bug: the clamp raised past what every platform's timed waits accept (2**31 ms).

    Found by applying a deliberate bug the older tests let through."""
    twenty_days = 20 * 24 * 3600.0
    assert twenty_days == MAX_SECONDS
    assert timeout_from(10**9, DEFAULT_TIMEOUT) == Success(
        Timeout(twenty_days, twenty_days, twenty_days)
    )
    assert ready_timeout_from(10**12) == Success(twenty_days)
    assert MAX_SECONDS * 1000 < 2**31


def test_timeout_settings_resolve_to_timeouts() -> None:
    from cdsessions._core.timeouts import DEFAULT_TIMEOUT, timeout_from

    assert (DEFAULT_TIMEOUT.connect, DEFAULT_TIMEOUT.read, DEFAULT_TIMEOUT.total) == (10, 30, 120)
    assert timeout_from(None, DEFAULT_TIMEOUT) == Success(DEFAULT_TIMEOUT)
    assert timeout_from(5, DEFAULT_TIMEOUT) == Success(Timeout(5, 5, 120))  # a plain number
    assert timeout_from(90, DEFAULT_TIMEOUT) == Success(Timeout(90, 90, 180))  # room for both
    assert timeout_from(5, Timeout(total=None)) == Success(Timeout(5, 5, None))
    custom = Timeout(1, 2, 3)
    assert timeout_from(custom, DEFAULT_TIMEOUT) == Success(custom)


@pytest.mark.parametrize(
    "value", [0, -1, math.nan, math.inf, True, "5", Timeout(connect=-1), Timeout(total=0)]
)
def test_unusable_timeouts_are_explained(value: object) -> None:
    from cdsessions._core.timeouts import DEFAULT_TIMEOUT, timeout_from

    result = timeout_from(value, DEFAULT_TIMEOUT)
    assert isinstance(result, Failure)
    assert result.failure()
