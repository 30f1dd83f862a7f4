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
    """A clock that moves only when told to: ``clock.advance(minutes=16)``. Thread-safe.

    It is also a client clock (``SessionsClient(..., clock=clock)``, ``AsyncSessionsClient``
    alike): ``sleep(seconds)`` and ``await asleep(seconds)`` move it by ``seconds`` instead of
    waiting, and ``monotonic()``/``time()`` read it. Given to the fake and the client both, a
    retry's backoff or a ready wait then passes in test time only: no real sleeping, and the
    fake sees the time the client waited. :attr:`slept` is the total the client waited.
    """

    def __init__(self, start: datetime = datetime(2025, 11, 2, 12, 0, tzinfo=UTC)) -> None:
        self._start = start if start.tzinfo is not None else start.replace(tzinfo=UTC)
        self._now = self._start
        # Seconds moved since ``start``, as an exact float sum: a datetime keeps only whole
        # microseconds, and a wait shorter than one would then never move a client's deadline.
        self._elapsed = 0.0
        self._slept = 0.0
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
            self._move(seconds + 60 * minutes)
            return self._now

    def _move(self, seconds: float) -> None:
        self._elapsed += seconds
        self._now = self._start + timedelta(seconds=self._elapsed)

    # -- as a client's clock (cdsessions._core.clocks.Clock / AsyncClock) -------------------

    def time(self) -> float:
        """Unix seconds of the clock's present."""
        with self._lock:
            return self._start.timestamp() + self._elapsed

    def monotonic(self) -> float:
        """Seconds the clock has moved since it was made (exact, never going back)."""
        with self._lock:
            return self._elapsed

    def sleep(self, seconds: float) -> None:
        """Move the clock on by ``seconds`` (nothing for a negative or NaN wait), at once."""
        if seconds > 0:  # also false for NaN
            with self._lock:
                self._move(seconds)
                self._slept += seconds

    async def asleep(self, seconds: float) -> None:
        """:meth:`sleep` for the asyncio client. It still lets other tasks run once, as any
        ``await`` would, so a waiting task cannot starve the loop."""
        import asyncio  # only async users pay for it

        self.sleep(seconds)
        await asyncio.sleep(0)

    @property
    def slept(self) -> float:
        """Seconds the clients using this clock have slept on it in all."""
        with self._lock:
            return self._slept

    def __repr__(self) -> str:
        return f"ManualClock({self._now.isoformat()})"
