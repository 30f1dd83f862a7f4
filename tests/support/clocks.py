"""Clocks for tests: time that moves only when the code under test sleeps."""

from __future__ import annotations


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
