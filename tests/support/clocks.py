"""Time in tests: a clock that moves only when the code under test sleeps, and a real-time wait
for a condition another thread makes true."""

from __future__ import annotations

import time
from collections.abc import Callable


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
