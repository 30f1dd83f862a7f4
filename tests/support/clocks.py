"""Time in tests: a clock that moves only when the code under test sleeps, and a real-time wait
for a condition another thread makes true."""

from __future__ import annotations

import time
from collections.abc import Callable
from datetime import UTC, datetime


class FakeTime:
    """A monotonic clock that only sleeping moves; records every sleep."""

    def __init__(self, start: float = 100.0) -> None:
        self.now = start
        self.sleeps: list[float] = []

    def clock(self) -> float:
        return self.now

    def sleep(self, seconds: float) -> None:
        self.sleeps.append(seconds)
        self.now += seconds


def wait_until(condition: Callable[[], bool], seconds: float = 5.0) -> bool:
    """Whether ``condition`` holds within ``seconds`` (polled every 20 ms, in real time)."""
    ends = time.monotonic() + seconds
    while time.monotonic() < ends:
        if condition():
            return True
        time.sleep(0.02)
    return condition()


class ScaledClock:
    """Real time, run ``factor`` times faster: a client clock (``monotonic``, ``time``,
    ``sleep``, ``asleep``) and a fake's clock (called: an aware UTC datetime) at once. Two
    processes given the same ``factor`` and ``origin`` (real Unix seconds) agree on the time,
    so a client in a child process and a fake in the test see one accelerated world."""

    def __init__(self, factor: float, origin: float | None = None) -> None:
        self.factor = factor
        self.origin = time.time() if origin is None else origin

    def monotonic(self) -> float:
        return (time.time() - self.origin) * self.factor

    def time(self) -> float:
        return self.origin + self.monotonic()

    def sleep(self, seconds: float) -> None:
        if seconds > 0:
            time.sleep(seconds / self.factor)

    async def asleep(self, seconds: float) -> None:
        import asyncio

        await asyncio.sleep(max(0.0, seconds) / self.factor)

    def __call__(self) -> datetime:
        return datetime.fromtimestamp(self.time(), UTC)
