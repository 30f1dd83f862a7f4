"""Forking with a thread of the parent held at a chosen point, and waiting for the child under a
deadline: a child that hangs is killed (its threads' stacks on stderr) and fails the test, it
never hangs the suite."""

from __future__ import annotations

import faulthandler
import os
import signal
import threading
import time
from collections.abc import Callable
from typing import Final

#: How long a child may take; far more than a few loopback calls need, even on a loaded machine.
CHILD_DEADLINE: Final = 30.0
#: How long a held thread waits to be let go (it always is, well before this).
HOLD_AT_MOST: Final = 30.0


class Gate:
    """Holds a thread of the parent process at one point until the test lets it go."""

    def __init__(self) -> None:
        self.parent = os.getpid()
        self.entered = threading.Event()
        self.released = threading.Event()

    def reset(self) -> None:
        self.entered.clear()
        self.released.clear()

    def hold(self) -> None:
        if os.getpid() != self.parent:  # the child passes: only the parent's thread is held
            return
        self.entered.set()
        self.released.wait(HOLD_AT_MOST)

    def wait_until_held(self) -> None:
        assert self.entered.wait(HOLD_AT_MOST), "the thread never reached the gate"


def fork_and_wait(
    child: Callable[[], int], meanwhile: Callable[[int], object] | None = None
) -> int:
    """Fork; the child runs ``child`` and exits with its status (2 if it raised, 1 if it hung
    for ``CHILD_DEADLINE / 2``, its threads' stacks on stderr). The parent first runs
    ``meanwhile(pid)`` if given (the child still alive, or not), then gets that status, or -1 if
    the child was still running at ``CHILD_DEADLINE`` (then killed)."""
    pid = os.fork()
    if pid == 0:  # the child: never return into pytest
        code = 2
        try:
            # A child that hangs says where, on stderr (the test's captured output), and exits.
            faulthandler.dump_traceback_later(CHILD_DEADLINE / 2, exit=True)
            code = child()
        finally:
            os._exit(code)
    ends = time.monotonic() + CHILD_DEADLINE
    if meanwhile is not None:
        try:
            meanwhile(pid)
        except BaseException:
            os.kill(pid, signal.SIGKILL)
            os.waitpid(pid, 0)
            raise
    while time.monotonic() < ends:
        done, status = os.waitpid(pid, os.WNOHANG)
        if done:
            return os.waitstatus_to_exitcode(status)
        time.sleep(0.01)
    os.kill(pid, signal.SIGKILL)
    os.waitpid(pid, 0)
    return -1


def in_thread(work: Callable[[], object]) -> threading.Thread:
    thread = threading.Thread(target=work, daemon=True)
    thread.start()
    return thread


def assert_child_ok(code: int) -> None:
    assert code == 0, f"the child failed with status {code} (1 or -1: it hung)"
