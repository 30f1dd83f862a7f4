"""Sessions at known ages on the fake over HTTP, for the reaper and the cost commands: two
accounts, two machines and a ``ManualClock`` that stands at ``NOW`` once the scene is set."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Final

from cdsessions import (
    CreateSessionBody,
    MachineGPU,
    SessionsClient,
)
from cdsessions._core.wire import HttpRequest, HttpResponse
from cdsessions.fake import DEFAULT_MACHINE_ID, FakeMachine, FakeService, ManualClock
from cdsessions.fake.server import serve_in_thread

KEY: Final = "sk-reaper-mine-0123456789"


OTHER_KEY: Final = "sk-reaper-theirs-0123456789"


OTHER_MACHINE: Final = "fa4e0000-0000-4000-8000-0000000000b2"


T0: Final = datetime(2025, 11, 2, 12, 0, tzinfo=UTC)


NOW: Final = T0 + timedelta(minutes=40)


@dataclass
class Scene:
    fake: FakeService
    clock: ManualClock
    base_url: str
    ids: dict[str, str]
    failing: dict[str, HttpResponse]  # session id -> the answer its cancel gets instead

    def deletes(self) -> list[str]:
        return [path for method, path in self.fake.requests_seen if method == "DELETE"]

    def live(self, key: str = KEY) -> set[str]:
        return {s.session_id for s in self.fake.live_sessions(key)}


def _intercept(failing: dict[str, HttpResponse]) -> Callable[[HttpRequest], HttpResponse | None]:
    def answer(request: HttpRequest) -> HttpResponse | None:
        if request.method == "DELETE":
            return failing.get(request.path.rsplit("/", 1)[-1])
        return None

    return answer


@contextmanager
def scene() -> Iterator[Scene]:
    """The fake over HTTP, holding (at NOW = T0 + 40 min): ``old`` and ``old-too`` (A10G,
    default machine, 40 and 39 min old), ``young`` (5 min), ``elsewhere`` (another machine),
    ``t4`` (another GPU), and ``theirs`` (another account's old A10G session)."""
    clock = ManualClock(T0)
    failing: dict[str, HttpResponse] = {}
    fake = FakeService(
        clock=clock,
        machines=[DEFAULT_MACHINE_ID, FakeMachine(OTHER_MACHINE, "H100")],
        intercept=_intercept(failing),
    )
    ids: dict[str, str] = {}
    with serve_in_thread(fake) as base_url:
        with (
            SessionsClient(KEY, server=base_url) as mine,
            SessionsClient(OTHER_KEY, server=base_url) as theirs,
        ):

            def start(name: str, client: SessionsClient, **fields: object) -> None:
                made = CreateSessionBody(
                    machine_id=str(fields.get("machine", DEFAULT_MACHINE_ID)),
                    gpu=MachineGPU(str(fields.get("gpu", "A10G"))),
                    timeout=60,
                )
                ids[name] = client.create(made).unwrap().session_id

            start("old", mine)
            start("theirs", theirs)
            start("elsewhere", mine, machine=OTHER_MACHINE, gpu="H100")
            start("t4", mine, gpu="T4")
            clock.advance(minutes=1)
            start("old-too", mine)
            clock.advance(minutes=34)
            start("young", mine)
            clock.advance(minutes=5)
        assert clock() == NOW
        yield Scene(fake, clock, base_url, ids, failing)
