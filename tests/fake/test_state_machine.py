"""Random operations against the fake, checked against a model small enough to trust.

Several accounts, several machines, cancels, extensions and the clock moving: after every step
the fake must hold exactly the sessions the model says exist, and every answer must decode to
``Success`` or to the one failure the model expects.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from datetime import datetime, timedelta

from hypothesis import settings
from hypothesis import strategies as st
from hypothesis.stateful import Bundle, RuleBasedStateMachine, invariant, multiple, rule
from returns.result import Failure, Result, Success

from cdsessions import CreateSessionBody, HttpError, SessionsClient
from cdsessions.errors import ApiError
from cdsessions.fake import DEFAULT_MACHINE_ID, FakeService, FakeTransport, ManualClock
from tests.support import live_facts

SECOND_MACHINE = "0c5e0000-0000-4000-8000-000000000002"
UNKNOWN_MACHINE = "0b5e55ed-0000-4000-8000-000000000000"
KEYS = ("key-alice", "key-bob", "key-carol")
READY_AFTER_POLLS = 2
# contracts/live-bodies.json; deliberately not imported from the fake.
LIVE_SESSIONS_PER_MACHINE = live_facts.limit("live_sessions_per_machine")


@dataclass(frozen=True)
class Expected:
    owner: str
    machine: str
    ends: datetime
    polls: int
    ready: bool


def _status(result: Result[object, ApiError]) -> int | None:
    """200 for a success, the HTTP status of an HttpError; anything else fails the test."""
    if isinstance(result, Success):
        return 200
    assert isinstance(result, Failure)
    error = result.failure()
    assert isinstance(error, HttpError), f"unexpected failure {error!r}"
    return error.status


class FakeVersusModel(RuleBasedStateMachine):
    sessions = Bundle("sessions")

    def __init__(self) -> None:
        super().__init__()
        self.clock = ManualClock()
        self.service = FakeService(
            machines=[DEFAULT_MACHINE_ID, SECOND_MACHINE],
            clock=self.clock,
            ready_after_polls=READY_AFTER_POLLS,
        )
        self.clients = {
            key: SessionsClient(key, transport=FakeTransport(self.service), retry=False)
            for key in KEYS
        }
        self.model: dict[str, Expected] = {}

    def _expire(self) -> None:
        now = self.clock()
        self.model = {sid: s for sid, s in self.model.items() if now < s.ends}

    def _mine(self, key: str, sid: str) -> Expected | None:
        found = self.model.get(sid)
        return found if found is not None and found.owner == key else None

    @rule(
        target=sessions,
        key=st.sampled_from(KEYS),
        machine=st.sampled_from([DEFAULT_MACHINE_ID, SECOND_MACHINE, UNKNOWN_MACHINE]),
        timeout=st.sampled_from([None, 0, 1, 5, 30]),
        wait=st.booleans(),
    )
    def create(self, key: str, machine: str, timeout: int | None, wait: bool) -> str:
        body = CreateSessionBody(machine_id=machine, timeout=timeout, wait_for_server=wait)
        result = self.clients[key].create(body)
        live_here = sum(1 for s in self.model.values() if (s.owner, s.machine) == (key, machine))
        if live_here >= LIVE_SESSIONS_PER_MACHINE:
            assert _status(result) == 400
            return "never-created"
        if machine == UNKNOWN_MACHINE:
            assert _status(result) == 404
            return "never-created"
        assert isinstance(result, Success), result
        created = result.unwrap()
        assert (created.url is not None) == wait
        assert created.session_id not in self.model
        ends = self.clock() + timedelta(minutes=timeout or 15)
        self.model[created.session_id] = Expected(key, machine, ends, 0, wait)
        session_id: str = created.session_id
        return session_id

    @rule(target=sessions, key=st.sampled_from(KEYS))
    def create_until_full(self, key: str) -> object:
        """Random creates rarely reach the limit: here one account fills a machine."""
        made = [
            self.create(key, DEFAULT_MACHINE_ID, 30, False)
            for _ in range(LIVE_SESSIONS_PER_MACHINE + 1)
        ]
        return multiple(*made)

    @rule(key=st.sampled_from(KEYS), sid=sessions)
    def get(self, key: str, sid: str) -> None:
        result = self.clients[key].get(sid)
        expected = self._mine(key, sid)
        if expected is None:
            assert _status(result) == 404
            return
        ready = expected.ready or expected.polls >= READY_AFTER_POLLS
        session = result.unwrap()
        assert (session.session_id, session.machine_id) == (sid, expected.machine)
        assert session.timeout_end == expected.ends
        assert (session.url is not None) == ready
        self.model[sid] = replace(expected, polls=expected.polls + 1, ready=ready)

    @rule(key=st.sampled_from(KEYS), sid=sessions)
    def cancel(self, key: str, sid: str) -> None:
        result = self.clients[key].cancel(sid)
        if self._mine(key, sid) is None:
            assert _status(result) == 404
            return
        assert result.unwrap().success is True
        del self.model[sid]

    @rule(key=st.sampled_from(KEYS), sid=sessions, minutes=st.integers(1, 70))
    def extend(self, key: str, sid: str, minutes: int) -> None:
        # The extension alone: the client's 24-hour check would read (and so poll) it first.
        result = self.clients[key].extend(sid, minutes, check_cap=False)
        expected = self._mine(key, sid)
        if expected is None:
            assert _status(result) == 404
            return
        new_end = expected.ends + timedelta(minutes=minutes)
        if not (expected.ready or expected.polls >= READY_AFTER_POLLS):
            assert _status(result) == 400  # "Session has not started yet"
            return
        assert _status(result) == 200
        self.model[sid] = replace(expected, ends=new_end)

    @rule(
        key=st.sampled_from(KEYS),
        machine=st.sampled_from([None, DEFAULT_MACHINE_ID, SECOND_MACHINE, UNKNOWN_MACHINE]),
    )
    def list_sessions(self, key: str, machine: str | None) -> None:
        result = self.clients[key].list(machine)
        assert isinstance(result, Success), result
        wanted = {
            sid for sid, s in self.model.items() if s.owner == key and machine in (None, s.machine)
        }
        assert {s.session_id for s in result.unwrap()} == wanted

    # Whole minutes now and then, so sessions are often looked at exactly at their end.
    @rule(minutes=st.integers(0, 20), seconds=st.sampled_from([0, 0, 1, 59]))
    def time_passes(self, minutes: int, seconds: int) -> None:
        self.clock.advance(seconds, minutes=minutes)
        self._expire()

    @invariant()
    def the_fake_holds_what_the_model_holds(self) -> None:
        live = {s.session_id: s for s in self.service.live_sessions()}
        assert set(live) == set(self.model)
        for sid, session in live.items():
            expected = self.model[sid]
            assert (session.machine_id, session.timeout_end) == (expected.machine, expected.ends)

    @invariant()
    def accounts_never_see_each_other(self) -> None:
        for key in KEYS:
            mine = {s.session_id for s in self.service.live_sessions(key)}
            assert mine == {sid for sid, s in self.model.items() if s.owner == key}


FakeVersusModel.TestCase.settings = settings(max_examples=60, stateful_step_count=40, deadline=None)
TestFakeVersusModel = FakeVersusModel.TestCase
