"""The fake's clocks: the real time, or a clock that moves only when a test says so."""

from __future__ import annotations

import threading
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import TypeAlias

from cdsessions.transports._fork import register as register_for_fork

__all__ = ["Clock", "ManualClock", "system_clock"]

#: What the fake asks for the time: an aware UTC datetime.
Clock: TypeAlias = Callable[[], datetime]


def system_clock() -> datetime:
    """The real time, timezone-aware UTC."""
    return datetime.now(UTC)


class ManualClock:
    """A clock that moves only when told to: ``clock.advance(minutes=16)``. Thread-safe."""

    def __init__(self, start: datetime = datetime(2025, 11, 2, 12, 0, tzinfo=UTC)) -> None:
        self._now = start if start.tzinfo is not None else start.replace(tzinfo=UTC)
        self._lock = threading.Lock()
        register_for_fork(self)

    def _after_fork_in_child(self) -> None:
        # A lock held by a thread of the parent would be held forever in a forked child.
        self._lock = threading.Lock()

    def __call__(self) -> datetime:
        with self._lock:
            return self._now

    def advance(self, seconds: float = 0.0, *, minutes: float = 0.0) -> datetime:
        with self._lock:
            self._now += timedelta(seconds=seconds, minutes=minutes)
            return self._now

    def __repr__(self) -> str:
        return f"ManualClock({self._now.isoformat()})"
