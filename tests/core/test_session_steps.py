"""The session flows as steps, with no client and no transport: every call is one step that names
itself, a script answers it, and the tests read the exact sequence of calls the flow asked for."""

from __future__ import annotations

import asyncio
import math
from collections.abc import Callable, Coroutine, Generator, Iterator
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Any

import pytest
from returns.result import Failure, Result, Success

from cdsessions._core.pricing import GpuPricing
from cdsessions._core.retry import Wait
from cdsessions._core.session_steps import (
    Backoff,
    OpenSession,
    ScopeRecord,
    ScopeSettings,
    budgeted_create,
    cap_problem,
    capped_extend,
    close_steps,
    extend_steps,
    open_steps,
    ready_steps,
)
from cdsessions._core.steps import Finish, Flow, drive, drive_async
from cdsessions.errors import (
    ApiError,
    HttpError,
    InvalidRequest,
    NotReady,
    OverBudget,
    SessionGone,
    TransportFailed,
)
from cdsessions.models import (
    CreateSessionBody,
    CreateSessionResponse,
    DeleteSessionResponse,
    Machine,
    MachineGPU,
    Session,
)

SID = "s-1"
BODY = CreateSessionBody(machine_id="m-1", gpu=MachineGPU.A10G, timeout=30)
PRICES = GpuPricing.from_table({"A10G": "0.000337"})  # 30 min: 0.6066 USD
CREATED: Result[CreateSessionResponse, ApiError] = Success(CreateSessionResponse(session_id=SID))
STARTING = Success(Session(session_id=SID, gpu_event_id="e"))
READY = Success(Session(session_id=SID, gpu_event_id="e", url="https://x.modal.host"))
CANCELLED = Success(DeleteSessionResponse(success=True))
GONE = Failure(HttpError("get", 404, "not found"))
BROKEN = Failure(TransportFailed("cancel", "broken", "reset", sent=True))

Asked = tuple[Any, ...]


class Scripted:
    """The calls a flow is built from, each one step ``(name, *arguments)``: what is asked of
    the driver, for the script to answer. Records nothing itself (the driver does)."""

    def _ask(self, *asked: Any) -> Generator[Asked, Any, Any]:
        answer = yield asked
        return answer

    def get(self, session_id: str, timeout: object, retry: object) -> Generator[Any, Any, Any]:
        return self._ask("get", session_id)

    def cancel(
        self, session_id: str, wait_for_shutdown: bool, timeout: object, retry: object
    ) -> Generator[Any, Any, Any]:
        return self._ask("cancel", session_id)

    def create(
        self, body: CreateSessionBody, timeout: object, retry: object
    ) -> Generator[Any, Any, Any]:
        return self._ask("create", body.machine_id)

    def extend(
        self, session_id: str, minutes: int, timeout: object, retry: object
    ) -> Generator[Any, Any, Any]:
        return self._ask("extend", session_id, minutes)

    def gpu_pricing(
        self, refresh: bool, timeout: object, retry: object
    ) -> Generator[Any, Any, Any]:
        return self._ask("gpu_pricing")

    def log_tail(self, session_id: str) -> Generator[Any, Any, tuple[str, ...]]:
        """No log here: the flows' own log reading is tested in tests/core/test_logs.py."""
        return ()
        yield  # a generator that asks nothing

    def machine(self, machine_id: str, timeout: object, retry: object) -> Generator[Any, Any, Any]:
        return self._ask("machine", machine_id)


class Script:
    """Answers each call by name, in order, and records every call and wait; a clock that only
    waiting moves. An answer that is an exception is raised instead (Ctrl-C mid-call)."""

    def __init__(self, **answers: list[Any]) -> None:
        self.answers = {name: iter(given) for name, given in answers.items()}
        self.asked: list[Asked] = []
        self.waits: list[float] = []
        self.now = 0.0

    def act(self, asked: Asked) -> Any:
        self.asked.append(asked)
        answer = next(self.answers[asked[0]])
        if isinstance(answer, BaseException):
            raise answer
        return answer

    def sleep(self, seconds: float) -> None:
        self.waits.append(seconds)
        self.now += seconds

    def clock(self) -> float:
        return self.now

    def run(self, steps: Flow[Asked, Any]) -> Any:
        return drive(steps, self.act, self.sleep)

    @property
    def names(self) -> list[str]:
        return [asked[0] for asked in self.asked]


def _settings(script: Script, **options: Any) -> ScopeSettings:
    return ScopeSettings(body=BODY, clock=script.clock, **options)


def _open(script: Script, record: ScopeRecord, **options: Any) -> Any:
    return script.run(open_steps(Scripted(), _settings(script, **options), record))


# -- the scope's entry -------------------------------------------------------------------------


@pytest.mark.parametrize(
    "options",
    [{"ready_timeout": math.nan}, {"backoff": Backoff(factor=0.5)}, {"backoff": "fast"}],
    ids=["nan-ready-timeout", "shrinking-backoff", "not-a-backoff"],
)
def test_unusable_settings_ask_for_nothing(options: dict[str, Any]) -> None:
    script, record = Script(), ScopeRecord()
    opened = _open(script, record, max_cost=100, **options)
    assert isinstance(opened.failure(), InvalidRequest)
    assert opened.failure().operation == "start session"
    assert script.asked == []


def test_a_budget_refused_sends_no_create() -> None:
    script, record = Script(gpu_pricing=[Success(PRICES)]), ScopeRecord()
    opened = _open(script, record, max_cost="0.60")
    error = opened.failure()
    assert isinstance(error, OverBudget)
    assert error.worst_case == Decimal("0.6066")
    assert script.names == ["gpu_pricing"]
    assert (record.session_id, record.allowance, record.closed) == (None, None, None)


def test_prices_that_cannot_be_had_are_the_answer_and_no_create() -> None:
    down = Failure(HttpError("get prices", 503, None))
    script = Script(gpu_pricing=[down])
    assert _open(script, ScopeRecord(), max_cost=5) == down
    assert script.names == ["gpu_pricing"]


@pytest.mark.parametrize(
    ("body", "max_cost"),
    [(BODY, "lots"), (CreateSessionBody(machine_id=""), 5)],
    ids=["unusable-budget", "unsendable-body"],
)
def test_an_unusable_budget_or_body_asks_for_nothing(
    body: CreateSessionBody, max_cost: object
) -> None:
    script = Script()
    settings = ScopeSettings(body=body, max_cost=max_cost)
    opened = script.run(open_steps(Scripted(), settings, ScopeRecord()))
    assert isinstance(opened.failure(), InvalidRequest)
    assert script.asked == []


def test_a_budget_allowed_creates_and_keeps_the_allowance() -> None:
    script = Script(gpu_pricing=[Success(PRICES)], create=[CREATED])
    record = ScopeRecord()
    opened = _open(script, record, max_cost=1, wait=False)
    assert opened == Success(OpenSession(SID, None))
    assert script.names == ["gpu_pricing", "create"]
    assert record.allowance is not None
    assert record.allowance.minutes == 30


def test_a_failed_create_is_the_answer_and_nothing_is_cancelled() -> None:
    refused = Failure(HttpError("create", 404, "Machine not found"))
    script, record = Script(create=[refused]), ScopeRecord()
    assert _open(script, record) == refused
    assert script.names == ["create"]
    assert (record.session_id, record.closed) == (None, None)


def test_ready_on_the_third_poll_backs_off_and_cancels_nothing() -> None:
    script, record = Script(create=[CREATED], get=[STARTING, STARTING, READY]), ScopeRecord()
    opened = _open(script, record)
    assert opened.unwrap().url == "https://x.modal.host"
    assert script.names == ["create", "get", "get", "get"]
    assert script.waits == [1.0, 1.5]
    assert (record.session_id, record.closed) == (SID, None)


def test_not_ready_in_time_sends_the_cancel_before_answering() -> None:
    script = Script(create=[CREATED], get=[STARTING] * 10, cancel=[CANCELLED])
    record = ScopeRecord()
    opened = _open(script, record, ready_timeout=3, backoff=Backoff(first=1, factor=1, cap=1))
    error = opened.failure()
    assert isinstance(error, NotReady)
    assert (error.polls, error.waited) == (4, 3.0)
    assert script.names == ["create", "get", "get", "get", "get", "cancel"]
    assert script.asked[-1] == ("cancel", SID)
    assert record.closed == Success("cancelled")


def test_a_session_gone_while_waiting_is_cancelled_and_counts_as_closed() -> None:
    script = Script(create=[CREATED], get=[STARTING, GONE], cancel=[GONE])
    record = ScopeRecord()
    opened = _open(script, record)
    assert opened == Failure(SessionGone(f"wait for session {SID}", SID))
    assert script.names == ["create", "get", "get", "cancel"]
    assert record.closed == Success("already closed")


def test_a_url_in_the_create_answer_needs_no_wait() -> None:
    created = Success(CreateSessionResponse(session_id=SID, url="https://x.modal.host"))
    script = Script(create=[created])
    assert _open(script, ScopeRecord()) == Success(OpenSession(SID, "https://x.modal.host"))
    assert script.names == ["create"]


def test_interrupted_while_waiting_the_cancel_is_sent_and_the_interruption_goes_on() -> None:
    script = Script(create=[CREATED], get=[STARTING, KeyboardInterrupt()], cancel=[CANCELLED])
    record = ScopeRecord()
    with pytest.raises(KeyboardInterrupt):
        _open(script, record)
    assert script.names == ["create", "get", "get", "cancel"]
    assert record.closed == Success("cancelled")


def test_interrupted_again_during_that_cancel_one_plain_try_then_it_goes_on() -> None:
    script = Script(
        create=[CREATED],
        get=[KeyboardInterrupt()],
        cancel=[KeyboardInterrupt(), CANCELLED],
    )
    record = ScopeRecord()
    with pytest.raises(KeyboardInterrupt):
        _open(script, record)
    assert script.names == ["create", "get", "cancel", "cancel"]
    assert script.waits == []  # the last try does not back off
    assert record.closed == Success("cancelled")


def test_a_ctrl_c_during_the_closing_cancel_cancels_then_goes_on() -> None:
    """The block ended normally and Ctrl-C comes while its session is being cancelled: one
    last plain try cancels it, and the KeyboardInterrupt still reaches the caller (swallowed,
    the program would carry on as if the user had not asked it to stop). Added for a bug an
    outside review slipped past the suite (issue 23)."""
    stop = KeyboardInterrupt()
    script, record = Script(cancel=[stop, CANCELLED]), ScopeRecord()
    record.session_id = SID
    with pytest.raises(KeyboardInterrupt) as raised:
        script.run(close_steps(Scripted(), record))
    assert raised.value is stop
    assert script.names == ["cancel", "cancel"]
    assert script.waits == []
    assert record.closed == Success("cancelled")


def test_interrupted_during_the_create_there_is_nothing_to_cancel() -> None:
    script, record = Script(create=[KeyboardInterrupt()]), ScopeRecord()
    with pytest.raises(KeyboardInterrupt):
        _open(script, record)
    assert script.names == ["create"]
    assert (record.session_id, record.closed) == (None, None)


# -- what the asyncio driver needs: regions that must finish -----------------------------------


def _finish_regions(steps: Flow[Asked, Any], script: Script) -> Iterator[Finish]:
    """Run ``steps`` as a driver would, yielding each Finish region before running it."""
    try:
        step = next(steps)
        while True:
            if isinstance(step, Finish):
                yield step
                step = steps.send(script.run(step.steps))
            elif isinstance(step, Wait):
                step = steps.send(None)
            else:
                step = steps.send(script.act(step))
    except StopIteration:
        return


def test_the_create_is_a_region_whose_abandoning_cancels_what_it_made() -> None:
    script, record = Script(create=[CREATED], cancel=[CANCELLED]), ScopeRecord()
    regions = _finish_regions(open_steps(Scripted(), _settings(script, wait=False), record), script)
    create = next(regions)
    assert create.abandoned is not None
    # The caller went away while the create was in flight: its answer goes to ``abandoned``.
    late = script.run(create.steps)
    script.run(create.abandoned(late))
    assert script.names == ["create", "cancel"]
    assert (record.session_id, record.closed) == (SID, Success("cancelled"))


def test_an_abandoned_create_that_failed_cancels_nothing() -> None:
    script, record = Script(), ScopeRecord()
    create = next(_finish_regions(open_steps(Scripted(), _settings(script), record), script))
    assert create.abandoned is not None
    script.run(create.abandoned(Failure(HttpError("create", 500, None))))
    assert script.asked == []
    assert record.closed is None


def test_the_cancel_is_a_region_too_and_is_sent_once() -> None:
    script, record = Script(cancel=[BROKEN, CANCELLED]), ScopeRecord()
    record.session_id = SID
    regions = list(_finish_regions(close_steps(Scripted(), record), script))
    assert len(regions) == 1
    assert regions[0].abandoned is None  # nothing to undo: it only has to finish
    assert script.names == ["cancel", "cancel"]  # a transient failure is tried again
    assert script.waits == [0.5]
    assert record.closed == Success("cancelled")
    script.run(close_steps(Scripted(), record))  # closed already: nothing more
    assert script.names == ["cancel", "cancel"]


# -- the budgeted create, and extending inside a scope -----------------------------------------


@pytest.mark.parametrize(
    ("max_cost", "asked"),
    [("0.60", ["gpu_pricing"]), ("0.61", ["gpu_pricing", "create"]), ("x", [])],
)
def test_a_budgeted_create_is_sent_only_within_the_budget(max_cost: str, asked: list[str]) -> None:
    script = Script(gpu_pricing=[Success(PRICES)], create=[CREATED])
    answer = script.run(budgeted_create(Scripted(), BODY, max_cost, None, None))
    assert isinstance(answer, Success) is ("create" in asked)
    assert script.names == asked


NO_GPU = CreateSessionBody(machine_id="m-1", timeout=30)


@pytest.mark.parametrize(
    ("machine", "asked", "outcome"),
    [
        (Success(Machine(id="m-1", gpu="A10G")), ["gpu_pricing", "machine", "create"], Success),
        (Success(Machine(id="m-1", gpu="H100")), ["gpu_pricing", "machine"], OverBudget),
        (Success(Machine(id="m-1")), ["gpu_pricing", "machine"], OverBudget),
        (
            Failure(HttpError("get machine m-1", 404, "Machine not found")),
            ["gpu_pricing", "machine"],
            HttpError,
        ),
    ],
    ids=["default-a10g-fits", "default-h100-over", "no-default-gpu", "machine-unreadable"],
)
def test_a_budgeted_create_without_gpu_reads_the_machines_default_gpu_first(
    machine: Any, asked: list[str], outcome: type
) -> None:
    prices = GpuPricing.from_table({"A10G": "0.000337", "H100": "0.002338"})
    script = Script(gpu_pricing=[Success(prices)], machine=[machine], create=[CREATED])
    answer = script.run(budgeted_create(Scripted(), NO_GPU, "1", None, None))
    assert script.names == asked
    found = answer.unwrap() if isinstance(answer, Success) else answer.failure()
    assert isinstance(answer, Success) if outcome is Success else isinstance(found, outcome)
    if outcome is HttpError:
        assert "default GPU could not be read" in str(found)


def test_a_budgeted_create_that_names_its_gpu_reads_no_machine() -> None:
    script = Script(gpu_pricing=[Success(PRICES)], create=[CREATED])
    script.run(budgeted_create(Scripted(), BODY, "1", None, None))
    assert script.names == ["gpu_pricing", "create"]


def _extend(script: Script, record: ScopeRecord, minutes: int) -> Any:
    return script.run(extend_steps(Scripted(), record, minutes))


def test_extending_checks_the_whole_session_against_the_budget() -> None:
    script = Script(
        gpu_pricing=[Success(PRICES)], create=[CREATED], get=[STARTING], extend=[Success(None)] * 3
    )
    record = ScopeRecord()
    _open(script, record, max_cost=1, wait=False)
    assert isinstance(_extend(script, record, 19), Success)  # 49 min: 0.99078
    assert isinstance(_extend(script, record, 1).failure(), OverBudget)  # 50 min: 1.011
    assert script.names == ["gpu_pricing", "create", "get", "extend"]
    assert record.allowance is not None
    assert record.allowance.minutes == 49


def test_extending_a_scope_with_no_open_session_sends_nothing() -> None:
    script, record = Script(), ScopeRecord()
    assert isinstance(_extend(script, record, 5).failure(), InvalidRequest)
    record.session_id, record.closed = SID, Success("cancelled")
    assert isinstance(_extend(script, record, 5).failure(), InvalidRequest)
    assert script.asked == []


def test_a_failed_extension_leaves_the_allowance_as_it_was() -> None:
    refused = Failure(HttpError("extend", 500, None))
    script = Script(
        gpu_pricing=[Success(PRICES)], create=[CREATED], get=[STARTING], extend=[refused]
    )
    record = ScopeRecord()
    _open(script, record, max_cost=1, wait=False)
    assert _extend(script, record, 10) == refused
    assert record.allowance is not None
    assert record.allowance.minutes == 30


# -- extending within the 24-hour cap ----------------------------------------------------------

MADE = datetime(2026, 12, 1, 8, 0, tzinfo=UTC)


def _live(ends_after: timedelta) -> Session:
    return Session(session_id=SID, gpu_event_id="e", created_at=MADE, timeout_end=MADE + ends_after)


@pytest.mark.parametrize(
    ("ends_after", "minutes", "refused"),
    [
        (timedelta(hours=23), 60, False),  # exactly at the cap: allowed
        (timedelta(hours=23), 61, True),
        (timedelta(minutes=15), 24 * 60, True),
        (timedelta(hours=24, minutes=5), 1, True),  # already past it (moved by hand)
    ],
    ids=["up-to-the-cap", "one-minute-past", "a-day-more", "already-past"],
)
def test_an_extension_past_24_hours_from_creation_is_refused_before_sending(
    ends_after: timedelta, minutes: int, refused: bool
) -> None:
    script = Script(get=[Success(_live(ends_after))], extend=[Success(None)])
    answer = script.run(capped_extend(Scripted(), SID, minutes, None, None))
    if not refused:
        assert isinstance(answer, Success)
        assert script.names == ["get", "extend"]
        return
    error = answer.failure()
    assert isinstance(error, InvalidRequest)
    assert (error.field, error.why) == ("minutes", "session_cap")
    assert "24-hour cap" in str(error)
    assert "nothing was sent" in str(error)
    assert script.names == ["get"]


def test_the_refusal_says_how_many_minutes_still_take_effect() -> None:
    problem = cap_problem(_live(timedelta(hours=23, minutes=30)), 45)
    assert problem is not None
    assert "at most 30 more minutes" in problem
    assert "2026-12-02 08:00:00 UTC" in problem  # the cap itself


def test_an_extension_of_a_session_without_dates_is_left_to_the_server() -> None:
    # The seed's shape has no created_at or timeout_end: nothing to judge the cap on.
    script = Script(get=[STARTING], extend=[Success(None)])
    assert isinstance(script.run(capped_extend(Scripted(), SID, 10**6, None, None)), Success)
    assert cap_problem(_live(timedelta(minutes=15)), 10**12) is not None  # no OverflowError


def test_a_failed_read_or_a_bad_input_sends_no_extension() -> None:
    script = Script(get=[GONE])
    gone = script.run(capped_extend(Scripted(), SID, 5, None, None)).failure()
    assert gone == HttpError(f"extend session {SID}", 404, "not found")
    assert isinstance(
        script.run(capped_extend(Scripted(), SID, 0, None, None)).failure(), InvalidRequest
    )
    assert script.names == ["get"]


def test_a_scope_extension_past_the_cap_is_refused_and_keeps_the_allowance() -> None:
    script = Script(
        gpu_pricing=[Success(PRICES)], create=[CREATED], get=[Success(_live(timedelta(hours=23)))]
    )
    record = ScopeRecord()
    _open(script, record, max_cost=1000, wait=False)
    refused = _extend(script, record, 61)
    assert isinstance(refused.failure(), InvalidRequest)
    assert refused.failure().why == "session_cap"
    assert record.allowance is not None
    assert record.allowance.minutes == 30
    assert script.names == ["gpu_pricing", "create", "get"]


def test_the_asyncio_driver_hands_each_region_and_its_undo_to_the_hook() -> None:
    script, record = Script(create=[CREATED], cancel=[CANCELLED]), ScopeRecord()
    regions: list[bool] = []

    async def act(asked: Asked) -> Any:
        return script.act(asked)

    async def sleep(seconds: float) -> None:
        script.sleep(seconds)

    async def finish(
        work: Coroutine[Any, Any, Any], then: Callable[[Any], Coroutine[Any, Any, Any]] | None
    ) -> Any:
        # As if the awaiting task had been cancelled once the region was done: run the undo.
        regions.append(then is not None)
        answer = await work
        if then is not None:
            await then(answer)
        return answer

    steps = open_steps(Scripted(), _settings(script, wait=False), record)
    opened = asyncio.run(drive_async(steps, act, sleep, finish))
    assert opened == Success(OpenSession(SID, None))
    assert regions == [True, False]  # the create (undone by a cancel), then that cancel
    assert script.names == ["create", "cancel"]
    assert record.closed == Success("cancelled")


def test_a_budgeted_create_is_sent_with_the_calls_timeout_and_retry() -> None:
    class ShowsSettings(Scripted):
        def create(
            self, body: CreateSessionBody, timeout: object, retry: object
        ) -> Generator[Any, Any, Any]:
            return self._ask("create", body.machine_id, timeout, retry)

    script = Script(gpu_pricing=[Success(PRICES)], create=[CREATED])
    assert script.run(budgeted_create(ShowsSettings(), BODY, 1, 7, False)) == CREATED
    assert script.asked == [("gpu_pricing",), ("create", "m-1", 7, False)]


def test_an_unusable_ready_timeout_names_the_wait_and_polls_nothing() -> None:
    script = Script()
    waited = script.run(
        ready_steps(lambda sid: Scripted().get(sid, None, None), SID, timeout=math.nan)
    )
    error = waited.failure()
    assert isinstance(error, InvalidRequest)
    assert (error.operation, error.field) == ("wait for session s-1", "timeout")
    assert script.asked == []
