"""``ManualClock`` as a client's clock: ``sleep`` and ``asleep`` move it, exactly, at once."""

from __future__ import annotations

import asyncio
import math
from datetime import UTC, datetime, timedelta

from cdsessions.fake import ManualClock
from cdsessions.testing import AsyncClock, Clock

START = datetime(2025, 11, 2, 12, 0, tzinfo=UTC)


def test_sleep_moves_every_reading_of_the_clock_by_the_seconds_slept() -> None:
    clock = ManualClock(START)
    before = (clock.monotonic(), clock.time())
    clock.sleep(1.5)
    assert clock.monotonic() - before[0] == 1.5
    assert clock.time() - before[1] == 1.5
    assert clock() == START + timedelta(seconds=1.5)  # the fake sees the client's wait
    assert clock.slept == 1.5
    clock.advance(minutes=1)  # a test's own move is time, but not sleeping
    assert (clock.monotonic(), clock.slept) == (61.5, 1.5)


def test_a_wait_shorter_than_a_microsecond_still_moves_a_deadline_closer() -> None:
    """A datetime holds whole microseconds: a ready wait's last, tiny wait must not loop."""
    clock = ManualClock(START)
    clock.sleep(1e-7)
    assert clock.monotonic() == 1e-7


def test_nothing_moves_for_a_negative_or_nan_wait() -> None:
    clock = ManualClock(START)
    clock.sleep(-1)
    clock.sleep(math.nan)
    assert (clock.monotonic(), clock.slept, clock()) == (0.0, 0.0, START)


def test_asleep_moves_the_clock_and_lets_other_tasks_run() -> None:
    clock = ManualClock(START)
    ran: list[str] = []

    async def other() -> None:
        ran.append("other")

    async def main() -> None:
        task = asyncio.ensure_future(other())
        await clock.asleep(3)
        ran.append("after")
        await task

    asyncio.run(main())
    assert ran == ["other", "after"]
    assert clock.slept == 3


def test_it_is_a_client_clock_of_both_kinds() -> None:
    sync: Clock = ManualClock()
    both: AsyncClock = ManualClock()
    assert isinstance(sync.monotonic(), float)
    assert isinstance(both.time(), float)
