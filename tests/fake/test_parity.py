"""One scripted scenario, two ways to reach the fake: in memory through ``FakeTransport``, and
over real HTTP through ``Urllib3Transport`` (against ``serve_in_thread`` and against the
``cdsessions fake-server`` command). The decoded results must be the same."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any

import msgspec
import pytest
from returns.result import Result, Success

from cdsessions import CreateSessionBody, MachineGPU, Session, SessionsClient
from cdsessions.errors import ApiError
from cdsessions.fake import DEFAULT_MACHINE_ID, FakeService, FakeTransport, ManualClock
from cdsessions.fake.server import serve_in_thread
from cdsessions.transports._urllib3 import Urllib3Transport
from tests.support.cli import start_fake_server

MACHINE = DEFAULT_MACHINE_ID
UNKNOWN = "0b5e55ed-0000-4000-8000-000000000000"
Advance = Callable[..., object] | None
Outcome = Result[Any, ApiError]


def scenario(alice: SessionsClient, bob: SessionsClient, advance: Advance) -> list[Outcome]:
    """Every operation, its failures, two accounts, the 5-session limit and (given a clock)
    expiry. Later steps use ids from earlier answers, as user code does."""
    out: list[Outcome] = []
    first = alice.create(CreateSessionBody(machine_id=MACHINE))
    second = alice.create(
        CreateSessionBody(machine_id=MACHINE, gpu=MachineGPU.H100, timeout=30, wait_for_server=True)
    )
    out += [first, second]
    s1, s2 = first.unwrap().session_id, second.unwrap().session_id
    out += [alice.get(s1), alice.get(s1), alice.get(s2)]
    out += [alice.list(), alice.list(MACHINE), alice.list(UNKNOWN)]
    out += [bob.get(s1), bob.list(), bob.cancel(s1), bob.extend(s1, 5)]
    out += [alice.extend(s1, 10), alice.extend(s1, 100)]
    out += [
        alice.create(CreateSessionBody(machine_id=UNKNOWN)),
        alice.create(CreateSessionBody(machine_id=MACHINE, gpu=MachineGPU("RTX4090"))),
        alice.create(CreateSessionBody(machine_id="not-a-uuid")),
    ]
    out += [alice.cancel(s1), alice.cancel(s1), alice.get(s1), alice.extend(s1, 5)]
    out += [bob.create(CreateSessionBody(machine_id=MACHINE)) for _ in range(6)]
    out += [alice.get("")]  # refused before sending, on both sides alike
    if advance is not None:
        advance(minutes=30)
        out += [alice.get(s2), alice.list(), bob.list()]
    return out


def _normalise(outcome: Outcome) -> Outcome:
    """Drop the timestamps: a separate process runs on the real clock."""

    def strip(value: Any) -> Any:
        if isinstance(value, Session):
            return msgspec.structs.replace(value, created_at=None, timeout_end=None)
        if isinstance(value, list):
            return [strip(item) for item in value]
        return value

    return outcome.map(strip)


def _pair(make: Callable[[str], SessionsClient]) -> tuple[SessionsClient, SessionsClient]:
    return make("fake-key-alice"), make("fake-key-bob")


@pytest.mark.parametrize("seed_shapes", [False, True], ids=["live", "seed"])
def test_in_memory_and_over_http_agree(seed_shapes: bool) -> None:
    memory_clock, http_clock = ManualClock(), ManualClock()
    memory = FakeService(clock=memory_clock, seed_shapes=seed_shapes)
    served = FakeService(clock=http_clock, seed_shapes=seed_shapes)

    def in_memory(key: str) -> SessionsClient:
        return SessionsClient(key, transport=FakeTransport(memory), retry=False)

    expected = scenario(*_pair(in_memory), memory_clock.advance)
    with serve_in_thread(served) as base_url:
        alice, bob = _pair(lambda key: SessionsClient(key, server=base_url, retry=False))
        with alice, bob:
            assert isinstance(alice._transport_for_use(), Urllib3Transport)
            actual = scenario(alice, bob, http_clock.advance)
    assert actual == expected
    assert memory.requests_handled == served.requests_handled
    assert [s.session_id for s in memory.live_sessions()] == [
        s.session_id for s in served.live_sessions()
    ]
    # The scenario reached every kind of ending, so the comparison means something.
    kinds = {type(o.failure()).__name__ for o in expected if not isinstance(o, Success)}
    assert {"HttpError", "ValidationFailed", "InvalidRequest"} <= kinds
    assert sum(isinstance(o, Success) for o in expected) >= 10


@pytest.fixture(params=[False, True], ids=["live", "seed"])
def fake_server_process(request: pytest.FixtureRequest) -> Iterator[tuple[str, bool]]:
    """``cdsessions fake-server`` in its own process, on a free port of 127.0.0.1."""
    seed_shapes: bool = request.param
    process, base_url = start_fake_server("--quiet", *(["--seed-shapes"] if seed_shapes else []))
    try:
        yield base_url, seed_shapes
    finally:
        process.terminate()
        process.wait(timeout=10)
        if process.stdout is not None:
            process.stdout.close()
        if process.stderr is not None:
            process.stderr.close()


def test_fake_server_command_agrees_with_fake_transport(
    fake_server_process: tuple[str, bool],
) -> None:
    base_url, seed_shapes = fake_server_process
    memory = FakeService(seed_shapes=seed_shapes)

    def in_memory(key: str) -> SessionsClient:
        return SessionsClient(key, transport=FakeTransport(memory), retry=False)

    expected = [_normalise(o) for o in scenario(*_pair(in_memory), None)]
    alice, bob = _pair(lambda key: SessionsClient(key, server=base_url, retry=False))
    with alice, bob:
        actual = [_normalise(o) for o in scenario(alice, bob, None)]
    assert actual == expected
