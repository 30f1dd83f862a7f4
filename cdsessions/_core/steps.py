"""Running a call written as steps: the two drivers, one blocking and one for asyncio.

Every decision cdsessions makes (what to send, whether to retry, how long to wait, when a session
is ready) lives in generators that *yield* what should happen next and are *sent* what came of it.
They never sleep and never touch a socket, so the blocking :class:`~cdsessions.SessionsClient` and
the :class:`~cdsessions.AsyncSessionsClient` run exactly the same logic: only the driver below
differs, and all a driver does is perform an action, sleep through a :class:`Wait`, and send the
outcome back until the generator returns its answer.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Generator
from typing import TypeAlias, TypeVar

from cdsessions._core.retry import Wait

__all__ = ["Steps", "drive", "drive_async"]

A = TypeVar("A")  # what the steps ask the driver to do, besides waiting
R = TypeVar("R")  # what doing it gives back
T = TypeVar("T")  # the steps' final answer

#: Steps that yield actions ``A`` (or a :class:`Wait`), are sent ``R`` back for each action
#: (None after a wait), and return ``T``.
Steps: TypeAlias = Generator[A | Wait, R | None, T]


def drive(steps: Steps[A, R, T], act: Callable[[A], R], sleep: Callable[[float], None]) -> T:
    """Run ``steps`` to the end, blocking: ``act`` performs each action, ``sleep`` each wait."""
    try:
        step = next(steps)
        while True:
            if isinstance(step, Wait):
                sleep(step.seconds)
                step = steps.send(None)
            else:
                step = steps.send(act(step))
    except StopIteration as finished:
        answer: T = finished.value
        return answer
    finally:
        steps.close()  # interrupted (Ctrl-C): nothing is left suspended


async def drive_async(
    steps: Steps[A, R, T],
    act: Callable[[A], Awaitable[R]],
    sleep: Callable[[float], Awaitable[None]],
) -> T:
    """:func:`drive` for asyncio: ``act`` and ``sleep`` are awaited. If the task is cancelled
    mid-way the steps are closed, as :func:`drive` closes them on Ctrl-C."""
    try:
        step = next(steps)
        while True:
            if isinstance(step, Wait):
                await sleep(step.seconds)
                step = steps.send(None)
            else:
                step = steps.send(await act(step))
    except StopIteration as finished:
        answer: T = finished.value
        return answer
    finally:
        steps.close()
