"""Running work written as steps: the two drivers, one blocking and one for asyncio.

Every decision cdsessions makes (what to send, whether to retry, how long to wait, when a session
is ready, when to cancel it) lives in generators that *yield* what should happen next and are
*sent* what came of it. They never sleep and never touch a socket, so the blocking
:class:`~cdsessions.SessionsClient` and the :class:`~cdsessions.AsyncSessionsClient` run exactly
the same logic: only the driver below differs. A step is one of three things:

- an action (a request to send): the driver performs it and sends back what it gave;
- a :class:`~cdsessions._core.retry.Wait`: the driver sleeps, and sends back None;
- a :class:`Finish`: a region of steps that must run to its end whatever happens to the caller.

Anything that interrupts the driver (Ctrl-C, a cancelled asyncio task, an exception from an
action) is thrown into the steps where they stand, so their own ``try``/``except`` decide what
to do about it (a session scope cancels what it created), and they may yield more steps, which
the driver runs as usual before the interruption goes on.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Coroutine, Generator
from typing import Any, TypeAlias, TypeVar

import msgspec

from cdsessions._core.retry import Wait

__all__ = ["Finish", "Finisher", "Flow", "Steps", "drive", "drive_async"]

A = TypeVar("A")  # what the steps ask the driver to do, besides waiting
R = TypeVar("R")  # what doing it gives back
T = TypeVar("T")  # the steps' final answer

#: Steps that yield actions ``A`` (or a :class:`Wait`), are sent ``R`` back for each action
#: (None after a wait), and return ``T``. One call is such steps.
Steps: TypeAlias = Generator[A | Wait, R | None, T]


class Finish(msgspec.Struct, frozen=True):
    """Run ``steps`` to their end and send back their answer, even if the caller goes away
    meanwhile. The blocking driver simply runs them (a blocking send cannot be left to finish).
    The asyncio driver, when its task is cancelled, finishes them apart from the task and then
    runs ``abandoned(answer)`` if given: the steps that undo what they did, since nobody is left
    to use the answer (a create whose caller was cancelled is followed by the cancel of the
    session it made)."""

    steps: Generator[Any, Any, Any]
    abandoned: Callable[[Any], Generator[Any, Any, Any]] | None = None


#: Steps that may also yield :class:`Finish` regions (a session scope), returning ``T``. What is
#: sent back depends on the step, so it is not typed here: each flow knows what it asked for.
Flow: TypeAlias = Generator[A | Wait | Finish, Any, T]

#: The asyncio driver's hook for a :class:`Finish` (the asyncio client supplies it): run the
#: region's coroutine to its end even if the awaiting task is cancelled, and then, only in that
#: case, ``then(answer)`` when given. Returns the region's answer to a caller still there.
Finisher: TypeAlias = Callable[
    [Coroutine[Any, Any, Any], Callable[[Any], Coroutine[Any, Any, Any]] | None],
    Awaitable[Any],
]


def drive(steps: Flow[A, T], act: Callable[[A], Any], sleep: Callable[[float], None]) -> T:
    """Run ``steps`` to the end, blocking: ``act`` performs each action, ``sleep`` each wait."""
    try:
        step = next(steps)
        while True:
            try:
                if isinstance(step, Wait):
                    sleep(step.seconds)
                    answer = None
                elif isinstance(step, Finish):
                    answer = drive(step.steps, act, sleep)
                else:
                    answer = act(step)
            except BaseException as interrupted:  # Ctrl-C included: the steps may clean up
                step = steps.throw(interrupted)
            else:
                step = steps.send(answer)
    except StopIteration as finished:
        result: T = finished.value
        return result
    finally:
        steps.close()  # whatever happened, nothing is left suspended


async def drive_async(
    steps: Flow[A, T],
    act: Callable[[A], Awaitable[Any]],
    sleep: Callable[[float], Awaitable[None]],
    finish: Finisher | None = None,
) -> T:
    """:func:`drive` for asyncio: ``act`` and ``sleep`` are awaited, and ``finish`` (when given)
    runs each :class:`Finish` region so that cancelling the task does not stop it. A cancelled
    task is an interruption like Ctrl-C: thrown into the steps, which may clean up."""
    try:
        step = next(steps)
        while True:
            try:
                if isinstance(step, Wait):
                    await sleep(step.seconds)
                    answer = None
                elif isinstance(step, Finish):
                    answer = await _finished(step, act, sleep, finish)
                else:
                    answer = await act(step)
            except BaseException as interrupted:  # the task was cancelled, or an action raised
                step = steps.throw(interrupted)
            else:
                step = steps.send(answer)
    except StopIteration as finished:
        result: T = finished.value
        return result
    finally:
        steps.close()


async def _finished(
    region: Finish,
    act: Callable[[Any], Awaitable[Any]],
    sleep: Callable[[float], Awaitable[None]],
    finish: Finisher | None,
) -> Any:
    """The answer of ``region``'s steps, run through ``finish`` when there is one."""
    running = drive_async(region.steps, act, sleep, finish)
    if finish is None:
        return await running
    abandoned = region.abandoned
    if abandoned is None:
        return await finish(running, None)

    def undo(answer: Any) -> Coroutine[Any, Any, Any]:
        return drive_async(abandoned(answer), act, sleep, finish)

    return await finish(running, undo)
