"""Scripting the fake in memory (``FakeService.answer_next``, ``fail_next``, ``never_ready``,
``end_session``), through ``FakeTransport`` and ``AsyncFakeTransport``, with both clients."""

from __future__ import annotations

import asyncio

import pytest
from returns.result import Failure, Success

from cdsessions import (
    AsyncSessionsClient,
    CreateSessionBody,
    HttpError,
    NotReady,
    RetryPolicy,
    SessionGone,
    SessionsClient,
    TransportFailed,
)
from cdsessions.fake import AsyncFakeTransport, FakeService, FakeTransport, ManualClock
from cdsessions.testing import expect_failure, expect_success

BODY = CreateSessionBody(machine_id=FakeService.DEFAULT_MACHINE_ID)


def _client(fake: FakeService, clock: ManualClock | None = None) -> SessionsClient:
    return SessionsClient("key", transport=FakeTransport(fake), clock=clock)


def test_answer_next_answers_the_matching_operation_once_with_status_body_and_headers() -> None:
    fake = FakeService()
    client = _client(fake)
    fake.answer_next("list", 503, {"detail": "down"}, headers=[("Retry-After", "0")], times=1)
    fake.answer_next("create", 418, b"teapot")
    # list retries the 503 (after Retry-After: 0) and gets the fake's own answer next.
    assert expect_success(client.list()) == []
    error = expect_failure(client.create(BODY), HttpError)
    assert (error.status, error.detail) == (418, "teapot")
    assert fake.live_sessions() == ()  # the scripted answer replaced the create: nothing started
    assert fake.requests_seen == (("GET", "/sessions"), ("GET", "/sessions"), ("POST", "/session"))
    assert fake.script.pending == 0


def test_a_scripted_json_body_is_served_as_json_and_decoded_by_the_client() -> None:
    fake = FakeService()
    fake.answer_next("list", 200, [])
    assert expect_success(_client(fake).list()) == []


def test_answer_next_by_method_and_path_with_a_wildcard_segment_and_times() -> None:
    fake = FakeService()
    client = _client(fake)
    fake.answer_next("GET /session/*", 404, times=2)
    assert expect_failure(client.get("a"), HttpError).detail == "Not Found"
    assert expect_failure(client.get("b"), HttpError).status == 404
    assert isinstance(client.list(), Success)  # /sessions is not /session/*
    created = expect_success(client.create(BODY))
    assert expect_success(client.get(created.session_id)).session_id == created.session_id


@pytest.mark.parametrize(
    ("fault", "kind"), [("timeout", "timeout"), ("reset", "broken"), ("no_answer", "broken")]
)
def test_fail_next_is_a_sent_transport_failure_and_only_no_answer_acts(
    fault: str, kind: str
) -> None:
    fake = FakeService()
    client = _client(fake)
    fake.fail_next("create", fault)  # type: ignore[arg-type]  # each kind, from the table
    error = expect_failure(client.create(BODY), TransportFailed)
    assert (error.kind, error.sent) == (kind, True)
    started = len(fake.live_sessions())
    assert started == (1 if fault == "no_answer" else 0)
    # The default policy never repeats a create that may have reached the server.
    assert fake.requests_seen == (("POST", "/session"),)


def test_a_get_that_timed_out_is_retried_and_then_answered_without_real_sleep(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    clock = ManualClock()
    fake = FakeService(clock=clock)
    client = _client(fake, clock)
    created = expect_success(client.create(BODY))
    fake.fail_next("get", "reset", times=2)
    monkeypatch.setattr("time.sleep", _no_real_sleep)
    assert expect_success(client.get(created.session_id)).session_id == created.session_id
    assert fake.requests_seen.count(("GET", f"/session/{created.session_id}")) == 3
    assert clock.slept > 0  # the two backoffs were waited on the test clock


def test_never_ready_ends_a_wait_in_not_ready_on_the_test_clock(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    clock = ManualClock()
    fake = FakeService(clock=clock)
    fake.never_ready()
    client = _client(fake, clock)
    monkeypatch.setattr("time.sleep", _no_real_sleep)
    with client.session(BODY, ready_timeout=120) as started:
        error = expect_failure(started, NotReady)
    assert error.waited >= 120
    assert error.polls > 5
    assert fake.live_sessions() == ()  # the scope cancelled what never became ready


def test_never_ready_leaves_ready_sessions_ready() -> None:
    fake = FakeService(ready_after_polls=0)
    client = _client(fake)
    created = expect_success(client.create(BODY))
    assert expect_success(client.get(created.session_id)).url is not None
    fake.never_ready()
    assert expect_success(client.get(created.session_id)).url is not None
    later = expect_success(client.create(BODY))
    assert expect_success(client.get(later.session_id)).url is None


def test_end_session_ends_it_as_a_server_side_timeout_would() -> None:
    clock = ManualClock()
    fake = FakeService(clock=clock)
    fake.never_ready()
    client = _client(fake, clock)
    created = expect_success(client.create(BODY))

    def end_it(polls: int, waited: float) -> None:
        if polls == 2:
            assert fake.end_session(created.session_id) is True

    gone = client.wait_until_ready(created.session_id, on_poll=end_it)
    expect_failure(gone, SessionGone)
    assert fake.end_session(created.session_id) is False
    assert expect_failure(client.cancel(created.session_id), HttpError).status == 404


@pytest.mark.parametrize(
    ("call", "problem"),
    [
        (lambda f: f.answer_next("create", 99), "status must be an HTTP status code"),
        (lambda f: f.answer_next("create", True), "status must be an HTTP status code"),
        (lambda f: f.answer_next("fetch", 500), "neither an operation"),
        (lambda f: f.answer_next("GET session", 500), "neither an operation"),
        (lambda f: f.answer_next("get", 500, {1j}), "body must be bytes or JSON"),
        (lambda f: f.answer_next("get", 500, times=0), "times must be"),
        (lambda f: f.fail_next("get", "slow"), "fault must be"),
    ],
)
def test_a_mistaken_script_fails_where_it_is_written(call: object, problem: str) -> None:
    fake = FakeService()
    with pytest.raises(ValueError, match=problem):
        call(fake)  # type: ignore[operator]
    assert fake.script.pending == 0


def test_the_async_client_obeys_the_script_and_waits_on_the_test_clock(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    clock = ManualClock()
    fake = FakeService(clock=clock)
    fake.answer_next("get", 500, times=2)
    fake.fail_next("list", "timeout")
    real_sleep = asyncio.sleep
    waits: list[float] = []

    async def counted(seconds: float, result: object = None) -> object:
        waits.append(seconds)
        await real_sleep(0)
        return result

    monkeypatch.setattr("asyncio.sleep", counted)

    async def run() -> None:
        async with AsyncSessionsClient(
            "key", transport=AsyncFakeTransport(fake), clock=clock
        ) as client:
            created = expect_success(await client.create(BODY))
            got = expect_success(await client.get(created.session_id))
            assert got.session_id == created.session_id
            listed = await client.list(retry=RetryPolicy(max_attempts=1))
            assert isinstance(listed, Failure)
            assert listed.failure().kind == "timeout"

    asyncio.run(run())
    assert clock.slept > 0
    assert all(seconds == 0 for seconds in waits), waits  # only yields, never a real wait


def _no_real_sleep(seconds: float) -> None:
    raise AssertionError(f"slept {seconds} s of real time")
