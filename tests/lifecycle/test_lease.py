"""The lease's shells (cdsessions/leases.py): the thread of the blocking client, the task of the
asyncio one, after a fork, and an owner killed with SIGKILL in a real child process.

On a ManualClock the lease waits for the test to move the clock (it never moves it itself), so
each test moves time on and waits, in real time, for the thread or task to react.
"""

from __future__ import annotations

import asyncio
import os
import queue
import signal
import subprocess
import sys
import textwrap
import threading
import time
from pathlib import Path

from returns.result import Success

from cdsessions import AsyncSessionsClient, CreateSessionBody, SessionsClient
from cdsessions._core.lease import LeaseState
from cdsessions._core.observe import AttemptFinished
from cdsessions.fake import AsyncFakeTransport, FakeService, FakeTransport, ManualClock
from cdsessions.fake.server import serve_in_thread
from cdsessions.leases import AsyncLease
from cdsessions.models import MachineGPU
from tests.support.clocks import ScaledClock, wait_until

KEY = "sk-lease-shell-0123456789"
REPO = Path(__file__).resolve().parents[2]


def _body(service: FakeService) -> CreateSessionBody:
    return CreateSessionBody(machine_id=service.DEFAULT_MACHINE_ID, gpu=MachineGPU.A10G)


def _methods(service: FakeService) -> list[str]:
    return [
        "EXTEND" if path.endswith("/increase-timeout") else method
        for method, path in service.requests_seen
    ]


def _extended(service: FakeService) -> int:
    return _methods(service).count("EXTEND")


def _walk(clock: ManualClock, seconds: float, step: float = 10.0) -> None:
    """Move the clock on by ``seconds``, a little at a time, giving the lease's thread real
    time to react at each step (its window to extend is half a lease)."""
    for _ in range(round(seconds / step)):
        clock.advance(step)
        time.sleep(0.02)


def test_a_scope_with_a_lease_extends_while_the_block_runs_and_not_after_its_cancel() -> None:
    clock = ManualClock()
    service = FakeService(clock=clock)
    with SessionsClient(KEY, transport=FakeTransport(service), clock=clock) as client:
        scope = client.session(_body(service), lease=2)
        with scope as started:
            assert isinstance(started, Success)
            assert service.live_sessions()[0].timeout == 2  # created with one lease of time
            _walk(clock, 6 * 60)
            assert service.live_sessions(), "the lease kept the session past its timeout"
            lease = scope.lease
            assert lease is not None
            assert lease.status == "held"
            assert lease.extensions >= 4
            assert 0 < lease.time_left <= 2 * 60
        # The thread was stopped (and joined) before the cancel, not left to notice later.
        assert not [t for t in threading.enumerate() if t.name == "cdsessions-lease"]
        methods = _methods(service)
        assert methods[-1] == "DELETE"
        assert "EXTEND" not in methods[methods.index("DELETE") :]
        assert service.live_sessions() == ()
        after = scope.lease
        assert after is not None
        assert after.status == "released"
        clock.advance(minutes=10)
        time.sleep(0.1)
        assert _methods(service) == methods  # the thread is gone: nothing more is sent


def test_the_owner_is_told_when_the_lease_is_lost() -> None:
    clock = ManualClock()
    service = FakeService(clock=clock)
    told: list[LeaseState] = []
    with SessionsClient(KEY, transport=FakeTransport(service), clock=clock) as client:
        scope = client.session(_body(service), lease=2, on_lease_end=told.append)
        with scope as started:
            assert isinstance(started, Success)
            service.answer_next("extend", 500, times=100)
            for _ in range(40):  # the retries wait on the clock: move it along
                clock.advance(seconds=5)
                time.sleep(0.01)
                if told:
                    break
            assert wait_until(lambda: bool(told))
            assert told[0].status == "ended"
            assert service.live_sessions() == ()  # the lease cancelled it
        assert scope.closed is not None


def test_stop_and_close_can_be_called_any_number_of_times() -> None:
    clock = ManualClock()
    service = FakeService(clock=clock)
    with SessionsClient(KEY, transport=FakeTransport(service), clock=clock) as client:
        created = client.create(CreateSessionBody(machine_id=service.DEFAULT_MACHINE_ID, timeout=3))
        assert isinstance(created, Success)
        lease = client.lease(created.unwrap().session_id, 3)
        with lease as leased:
            assert isinstance(leased, Success)
            lease.stop()
            lease.stop()
        lease.close()
        lease.close()
        assert _methods(service).count("DELETE") == 1
        assert service.live_sessions() == ()


def test_a_forked_child_does_not_hold_the_lease_and_cancels_nothing() -> None:
    clock = ManualClock()
    service = FakeService(clock=clock)
    with SessionsClient(KEY, transport=FakeTransport(service), clock=clock) as client:
        scope = client.session(_body(service), lease=2)
        with scope as started:
            assert isinstance(started, Success)
            pid = os.fork()
            if pid == 0:  # the child: exit code 0 only if it does not think it holds the lease
                state = scope.lease
                ok = state is not None and state.status == "released"
                os._exit(0 if ok else 1)
            _, status = os.waitpid(pid, 0)
            assert os.waitstatus_to_exitcode(status) == 0
            held = scope.lease
            assert held is not None
            assert held.status == "held"  # the parent still holds it


def test_an_async_lease_under_task_cancellation_leaves_no_session_and_no_extension_after() -> None:
    clock = ManualClock()
    service = FakeService(clock=clock)

    async def main() -> None:
        client = AsyncSessionsClient(KEY, transport=AsyncFakeTransport(service), clock=clock)
        inside = asyncio.Event()

        async def owner() -> None:
            async with client.session(_body(service), lease=2) as started:
                assert isinstance(started, Success)
                inside.set()
                await asyncio.Event().wait()  # until cancelled

        task = asyncio.ensure_future(owner())
        await inside.wait()
        for _ in range(36):  # six minutes, ten seconds at a time
            clock.advance(10)
            await asyncio.sleep(0.02)
        assert _extended(service) >= 4
        assert service.live_sessions()
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)
        # The lease's task was stopped with its owner, not left to notice later.
        assert asyncio.all_tasks() == {asyncio.current_task()}
        await client.aclose()
        clock.advance(minutes=10)
        await asyncio.sleep(0.05)

    asyncio.run(main())
    methods = _methods(service)
    assert "DELETE" in methods
    assert "EXTEND" not in methods[methods.index("DELETE") :]
    assert service.live_sessions() == ()


_OWNER = textwrap.dedent(
    """
    import sys, time
    from cdsessions import CreateSessionBody, SessionsClient
    from cdsessions.models import MachineGPU
    from tests.support.clocks import ScaledClock

    url, origin, factor = sys.argv[1], float(sys.argv[2]), float(sys.argv[3])
    clock = ScaledClock(factor, origin)
    body = CreateSessionBody(machine_id=sys.argv[4], gpu=MachineGPU.A10G)
    with SessionsClient("sk-owner-0123456789", server=url, clock=clock) as client:
        with client.session(body, lease=2) as started:
            print(started.unwrap().session_id, flush=True)
            time.sleep(600)
    """
)


def test_an_owner_killed_with_sigkill_leaves_a_session_that_ends_within_one_lease() -> None:
    factor = 30.0  # one real second is half a minute: a 2-minute lease is 4 real seconds
    clock = ScaledClock(factor)
    service = FakeService(clock=clock)
    with serve_in_thread(service) as base_url:
        env = {**os.environ, "PYTHONPATH": str(REPO)}
        child = subprocess.Popen(
            [
                sys.executable,
                "-c",
                _OWNER,
                base_url,
                repr(clock.origin),
                repr(factor),
                service.DEFAULT_MACHINE_ID,
            ],
            stdout=subprocess.PIPE,
            text=True,
            env=env,
            cwd=REPO,
        )
        try:
            assert child.stdout is not None
            session_id = child.stdout.readline().strip()
            assert session_id, "the owner never started its session"
            # Alive past two leases: the owner's thread extends it.
            assert wait_until(lambda: _extended(service) >= 2, seconds=30)
            assert [s.session_id for s in service.live_sessions()] == [session_id]
            child.send_signal(signal.SIGKILL)
            child.wait(timeout=10)
            killed = clock()
        finally:
            if child.poll() is None:
                child.kill()
                child.wait()
        live = service.live_sessions()
        assert [s.session_id for s in live] == [session_id]
        # Within one lease, give or take a request's latency (seen 30 times slower here).
        assert (live[0].timeout_end - killed).total_seconds() <= 2 * 60 + 15
        assert wait_until(lambda: service.live_sessions() == (), seconds=2 * 60 / factor + 2)


def test_an_async_lease_on_an_existing_session_extends_it_and_cancels_it_at_the_end() -> None:
    clock = ManualClock()
    service = FakeService(clock=clock)

    async def main() -> None:
        async with AsyncSessionsClient(
            KEY, transport=AsyncFakeTransport(service), clock=clock
        ) as client:
            body = CreateSessionBody(machine_id=service.DEFAULT_MACHINE_ID, timeout=2)
            created = await client.create(body)
            assert isinstance(created, Success)
            lease = client.lease(created.unwrap().session_id, 2)
            async with lease as leased:
                assert isinstance(leased, Success)
                assert leased.unwrap().status == "held"
                for _ in range(24):  # four minutes, ten seconds at a time
                    clock.advance(10)
                    await asyncio.sleep(0.02)
                assert _extended(service) >= 2
                assert service.live_sessions()
            await lease.aclose()  # a second close sends nothing more

    asyncio.run(main())
    methods = _methods(service)
    assert methods.count("DELETE") == 1
    assert methods[-1] == "DELETE"
    assert service.live_sessions() == ()


#: Real seconds to wait for the lease to park on the clock (it does so at once).
PARK_WAIT = 10.0


def test_a_lease_on_a_manual_clock_waits_for_the_clock_and_never_moves_it() -> None:
    """The lease thread parks on the clock and extends only when the test moves it; at every
    park the clock reads exactly what the test made it (the lease never moved it, nor slept on
    it)."""
    clock = ManualClock()
    service = FakeService(clock=clock)
    parks: queue.Queue[float] = queue.Queue()
    with SessionsClient(KEY, transport=FakeTransport(service), clock=clock) as client:
        body = CreateSessionBody(machine_id=service.DEFAULT_MACHINE_ID, timeout=2)
        session_id = client.create(body).unwrap().session_id
        lease = client.lease(session_id, 2)
        lease._parked = parks.put
        with lease as leased:
            assert isinstance(leased, Success)
            now = clock.monotonic()
            for moves in range(4):
                until = parks.get(timeout=PARK_WAIT)  # the thread waits on the clock now
                assert clock.monotonic() == now  # and has not moved it
                assert until > now
                assert _extended(service) == moves  # one extension per move of the clock
                clock.advance(until - now)
                now = clock.monotonic()
            assert clock.slept == 0
            assert clock.monotonic() == now
    assert service.live_sessions() == ()


def test_an_async_lease_on_a_manual_clock_waits_for_the_clock_and_never_moves_it() -> None:
    """The asyncio form of the test above: the lease task parks on the clock, extends only
    when the test moves it, and never moves it itself."""
    clock = ManualClock()
    service = FakeService(clock=clock)

    async def main() -> None:
        parks: asyncio.Queue[float] = asyncio.Queue()
        async with AsyncSessionsClient(
            KEY, transport=AsyncFakeTransport(service), clock=clock
        ) as client:
            body = CreateSessionBody(machine_id=service.DEFAULT_MACHINE_ID, timeout=2)
            session_id = (await client.create(body)).unwrap().session_id
            lease = client.lease(session_id, 2)
            lease._parked = parks.put_nowait
            async with lease as leased:
                assert isinstance(leased, Success)
                now = clock.monotonic()
                for moves in range(4):
                    until = await asyncio.wait_for(parks.get(), PARK_WAIT)
                    assert clock.monotonic() == now
                    assert until > now
                    assert _extended(service) == moves
                    clock.advance(until - now)
                    now = clock.monotonic()
                assert clock.slept == 0
                assert clock.monotonic() == now

    asyncio.run(main())
    assert service.live_sessions() == ()


def test_an_async_lease_entered_a_second_time_is_a_programming_error_saying_so() -> None:
    clock = ManualClock()
    service = FakeService(clock=clock)

    async def main() -> str:
        async with AsyncSessionsClient(
            KEY, transport=AsyncFakeTransport(service), clock=clock
        ) as client:
            body = CreateSessionBody(machine_id=service.DEFAULT_MACHINE_ID, timeout=2)
            session_id = (await client.create(body)).unwrap().session_id
            lease = client.lease(session_id, 2)
            async with lease:
                pass
            try:
                async with lease:
                    pass
            except RuntimeError as error:
                return str(error)
            return "entered twice"

    said = asyncio.run(main())
    assert said == "an AsyncLease can be entered only once, from client.lease()"
    assert _methods(service).count("DELETE") == 1  # the second entry sent nothing


def test_an_async_lease_stopped_as_it_gives_up_still_cancels_its_session() -> None:
    # The lease's own cancel, begun when it could not extend in time, is sent even though
    # stop() comes meanwhile (here from an observer that sees the failed extension).
    clock = ManualClock()
    service = FakeService(clock=clock)
    leases: list[AsyncLease] = []
    stopping: list[asyncio.Future[None]] = []

    def observer(event: object) -> None:
        if isinstance(event, AttemptFinished) and event.request.path.endswith("increase-timeout"):
            stopping.append(asyncio.ensure_future(leases[0].stop()))

    async def main() -> None:
        async with AsyncSessionsClient(
            KEY, transport=AsyncFakeTransport(service), clock=clock, observers=[observer]
        ) as client:
            body = CreateSessionBody(machine_id=service.DEFAULT_MACHINE_ID, timeout=2)
            session_id = (await client.create(body)).unwrap().session_id
            lease = client.lease(session_id, 2)
            leases.append(lease)
            async with lease as leased:
                assert isinstance(leased, Success)
                service.answer_next("extend", 500)
                clock.advance(120 - 2)  # the extension is due with too little time to retry
                while not stopping:
                    await asyncio.sleep(0.01)
                await stopping[0]
                assert service.live_sessions() == ()  # before the scope's own close

    asyncio.run(main())
    assert service.live_sessions() == ()


def test_a_lease_closed_in_a_forked_child_cancels_nothing() -> None:
    # Parent and child both leave the block; the child has its own copy of the fake service
    # and exits 0 only if its leaving sent nothing (no cancel of the parent's session).
    clock = ManualClock()
    service = FakeService(clock=clock)
    with SessionsClient(KEY, transport=FakeTransport(service), clock=clock) as client:
        created = client.create(CreateSessionBody(machine_id=service.DEFAULT_MACHINE_ID, timeout=3))
        assert isinstance(created, Success)
        pid = -1
        try:
            with client.lease(created.unwrap().session_id, 3) as leased:
                assert isinstance(leased, Success)
                seen = len(service.requests_seen)
                pid = os.fork()
            if pid == 0:
                os._exit(0 if len(service.requests_seen) == seen else 1)
        finally:
            if pid == 0:  # the child never returns to pytest
                os._exit(2)
        _, status = os.waitpid(pid, 0)
        assert os.waitstatus_to_exitcode(status) == 0
        assert _methods(service).count("DELETE") == 1  # the parent's own close cancels it
        assert service.live_sessions() == ()
