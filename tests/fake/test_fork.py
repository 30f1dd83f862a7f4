"""A child forked while another thread holds the fake's lock (answering a request), its
script's lock or a :class:`ManualClock`'s lock can use the fake, its clock and a client over it:
it never waits for a thread it does not have (issue #18). Each runs ``ROUNDS`` times; a child
that hangs is killed and fails the test, its stacks on stderr."""

from __future__ import annotations

import os
import threading
from datetime import datetime, timedelta
from typing import Final

import pytest
from returns.result import Success

from cdsessions import SessionsClient
from cdsessions._core.wire import HttpRequest
from cdsessions.fake import FakeService, FakeTransport
from cdsessions.fake.clock import ManualClock, system_clock
from tests.support.forking import HOLD_AT_MOST, Gate, assert_child_ok, fork_and_wait, in_thread

pytestmark = pytest.mark.skipif(not hasattr(os, "fork"), reason="os.fork() is POSIX only")

ROUNDS: Final = 20
KEY: Final = "sk-fork-fake"


def uses_the_fake(service: FakeService) -> int:
    """The child's part: calls through the fake in memory. 0, or what failed."""
    client = SessionsClient(KEY, transport=FakeTransport(service), retry=False)
    if not isinstance(client.list(), Success):
        return 3
    if len(service.requests_seen) == 0 or service.live_sessions() != ():
        return 4
    return 0


def test_a_child_forked_while_another_thread_is_inside_the_fake_can_use_it() -> None:
    # The fake asks its clock for the time while it holds its lock: that thread is held there.
    gate = Gate()

    def held_clock() -> datetime:
        gate.hold()
        return system_clock()

    for _ in range(ROUNDS):
        gate.reset()
        service = FakeService(clock=held_clock)
        answering = in_thread(lambda: service.handle(HttpRequest("GET", "/sessions")))  # noqa: B023
        gate.wait_until_held()
        code = fork_and_wait(lambda: uses_the_fake(service))  # noqa: B023
        gate.released.set()
        answering.join(HOLD_AT_MOST)
        assert_child_ok(code)
        assert not answering.is_alive()


def test_a_child_forked_while_another_thread_holds_a_manual_clock_can_read_and_move_it() -> None:
    # Holding the clock's lock from a thread is what a thread reading the clock at the moment
    # of the fork does, made to last.
    start = datetime(2025, 11, 2, 12, 0).astimezone()
    for _ in range(ROUNDS):
        clock = ManualClock(start)
        inside, released = threading.Event(), threading.Event()

        def hold(
            clock: ManualClock = clock,
            inside: threading.Event = inside,
            released: threading.Event = released,
        ) -> None:
            with clock._lock:
                inside.set()
                released.wait(HOLD_AT_MOST)

        holder = in_thread(hold)
        assert inside.wait(HOLD_AT_MOST)

        def child(clock: ManualClock = clock) -> int:
            moved = clock.advance(minutes=1)
            return 0 if clock() == moved == start + timedelta(minutes=1) else 3

        code = fork_and_wait(child)
        released.set()
        holder.join(HOLD_AT_MOST)
        assert_child_ok(code)
        assert clock() == start  # the parent's clock did not move


def test_a_child_forked_while_another_thread_holds_the_script_can_script_the_fake() -> None:
    for _ in range(ROUNDS):
        service = FakeService()
        inside, released = threading.Event(), threading.Event()

        def hold(
            service: FakeService = service,
            inside: threading.Event = inside,
            released: threading.Event = released,
        ) -> None:
            with service.script._lock:
                inside.set()
                released.wait(HOLD_AT_MOST)

        holder = in_thread(hold)
        assert inside.wait(HOLD_AT_MOST)

        def child(service: FakeService = service) -> int:
            service.answer_next("list", 503)
            client = SessionsClient(KEY, transport=FakeTransport(service), retry=False)
            return 0 if not isinstance(client.list(), Success) else 3

        code = fork_and_wait(child)
        released.set()
        holder.join(HOLD_AT_MOST)
        assert_child_ok(code)
