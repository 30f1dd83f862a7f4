"""The time a client reads and waits on, as one object: so a test can hand both clients a clock
that sleeps by moving itself (the fake's :class:`~cdsessions.fake.ManualClock`), and a retry, a
ready wait or a cassette replay then takes no real time.

A clock is passed explicitly (``SessionsClient(..., clock=clock)``), never found through the
transport: a client on the real API could otherwise be handed a clock that does not wait.
"""

from __future__ import annotations

import time
from typing import Final, Protocol

__all__ = ["SYSTEM_CLOCK", "AsyncClock", "Clock", "SystemClock"]


class Clock(Protocol):
    """What :class:`~cdsessions.SessionsClient` reads and waits on: ``monotonic()`` seconds
    for deadlines, ``time()`` Unix seconds for ``Retry-After`` dates, and ``sleep(seconds)``
    for every backoff and poll interval."""

    def monotonic(self) -> float: ...

    def time(self) -> float: ...

    def sleep(self, seconds: float) -> None: ...


class AsyncClock(Clock, Protocol):
    """What :class:`~cdsessions.AsyncSessionsClient` needs besides: ``await asleep(seconds)``
    for its waits (``sleep`` is unused there: a blocking wait would stop the event loop)."""

    async def asleep(self, seconds: float) -> None: ...


class SystemClock:
    """The real time: ``time.monotonic``, ``time.time`` and ``time.sleep``. Its ``asleep`` is
    supplied by the async client (the core does not import asyncio)."""

    def monotonic(self) -> float:
        return time.monotonic()

    def time(self) -> float:
        return time.time()

    def sleep(self, seconds: float) -> None:
        time.sleep(seconds)

    def __repr__(self) -> str:
        return "SystemClock()"


SYSTEM_CLOCK: Final = SystemClock()
