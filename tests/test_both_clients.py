"""One behavioural suite for both clients, so ``SessionsClient`` and ``AsyncSessionsClient``
cannot drift apart.

Every test here runs twice, through the ``form`` fixture: against the blocking client, and
against the asyncio client behind :class:`Face`, which runs its coroutines on a private event
loop in a thread and hands back what they return. The fault suite (``tests/test_client_faults.py``)
and the wire suite (``tests/test_client.py``) are collected here too, unchanged, with
their ``clients`` / ``client_for`` fixtures answered by the asyncio form (their own modules run
them on the blocking form): the same scripted servers, the same expected failures, retry counts
and time bounds. The tests written here add what those
do not cover: both forms side by side on one server (byte-identical requests, equal results),
the fake ComfyDeploy over HTTP and in memory, configuration problems and the session scope.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any

import pytest
from returns.result import Failure, Result, Success

from cdsessions import AsyncSessionsClient, CreateSessionBody, DecodeFailed, SessionsClient, Timeout
from cdsessions._core.wire import HttpResponse
from cdsessions.errors import ApiError, HttpError, InvalidRequest
from cdsessions.fake import DEFAULT_MACHINE_ID, FakeService, FakeTransport, ManualClock
from cdsessions.fake.server import serve_in_thread
from cdsessions.lifecycle import NotReady, OpenSession, SessionGone
from cdsessions.models import ExtendSessionResponse as Extended
from cdsessions.transports._inline import InlineTransport
from tests import test_client as wire_suite
from tests import test_client_faults as fault_suite
from tests.support import samples
from tests.support.checks import assert_renders_bounded, run
from tests.support.faces import FORMS, Face, open_face
from tests.support.loopback import Received, Reply, json_reply, serve
from tests.support.samples import INVALID_UTF8
from tests.support.transports import Rewriting

# The two suites' tests, collected again here to run against both forms (see the module doc).
# Left out: the pooled-connection test runs threads on one blocking client; its asyncio
# counterpart is in test_async_lifecycle.py.
from tests.test_client import (  # noqa: F401
    test_error_answers_become_typed_failures,
    test_malformed_json_is_decode_failed,
    test_success_sends_the_documented_request,
    test_success_values_are_decoded,
)
from tests.test_client_faults import (  # noqa: F401
    test_429_is_retried_for_every_operation_after_its_retry_after,
    test_a_connection_left_with_extra_bytes_is_not_reused,
    test_a_create_after_500_or_read_timeout_is_sent_exactly_once_even_with_many_attempts,
    test_a_plain_number_timeout_sets_connect_and_read,
    test_a_redirect_is_not_followed_and_the_key_goes_nowhere_else,
    test_allow_duplicates_lets_a_create_be_repeated,
    test_connection_refused_is_retried_for_every_operation_and_nothing_arrives,
    test_debug_logs_show_method_path_status_attempt_and_time,
    test_every_attempt_carries_the_key,
    test_every_fault_is_a_typed_failure_within_bounds,
    test_observers_see_each_attempt_before_and_after,
    test_one_overall_deadline_bounds_every_attempt_and_wait_together,
    test_retry_after_is_waited_for_in_both_forms,
    test_retry_false_per_call_turns_retries_off,
    test_unusable_settings_are_refused_before_anything_is_sent,
)

KEY = "sk-both-forms-0123456789"
BODY = CreateSessionBody(machine_id=DEFAULT_MACHINE_ID)


@pytest.fixture(params=FORMS)
def form(request: pytest.FixtureRequest) -> str:
    return str(request.param)


@contextmanager
def _faces_of(form: str) -> Iterator[Callable[..., Face]]:
    made: list[Face] = []

    def make(key: str | None = KEY, **options: Any) -> Face:
        face = open_face(form, key, **options)
        made.append(face)
        return face

    yield make
    for face in made:
        face.close()


@pytest.fixture
def faces(form: str) -> Iterator[Callable[..., Face]]:
    """``faces(key, **options)``: clients of this test's form, closed after the test."""
    with _faces_of(form) as make:
        yield make


@pytest.fixture
def async_faces() -> Iterator[Callable[..., Face]]:
    """Asyncio clients only: for the re-collected suites, whose own modules cover blocking."""
    with _faces_of("asyncio") as make:
        yield make


@pytest.fixture
def clients(async_faces: Callable[..., Face]) -> Callable[..., Face]:
    """The fault suite's fixture, answered by the asyncio client."""
    defaults = {"timeout": fault_suite.TIMEOUT, "retry": fault_suite.POLICY}
    return lambda base_url, **options: async_faces(
        fault_suite.KEY, server=base_url, **{**defaults, **options}
    )


@pytest.fixture
def client_for(async_faces: Callable[..., Face]) -> Callable[..., Face]:
    """The wire suite's fixture, answered by the asyncio client (defaults as in that suite)."""
    return lambda server, **options: async_faces(
        wire_suite.KEY,
        server=server.base_url,
        **{"timeout": Timeout(connect=2, read=2), "retry": False, **options},
    )


# -- both forms side by side ------------------------------------------------------------------

CALLS: dict[str, Callable[[Face], Result[Any, ApiError]]] = {
    "get": lambda c: c.get(samples.SESSION_ID),
    "list": lambda c: c.list(samples.MACHINE_ID),
    "cancel": lambda c: c.cancel(samples.SESSION_ID, wait_for_shutdown=True),
    "create": lambda c: c.create(CreateSessionBody(machine_id=samples.MACHINE_ID, timeout=9)),
    "create and wait": lambda c: c.create(
        CreateSessionBody(machine_id=samples.MACHINE_ID, wait_for_server=True)
    ),
    "extend": lambda c: c.extend(samples.SESSION_ID, 5, check_cap=False),
}


def _answer(request: Received) -> Reply:
    if request.method == "DELETE":
        return json_reply(200, samples.DELETED)
    if request.method == "POST" and request.target.endswith("/increase-timeout"):
        return json_reply(200, '{"message": "Timeout increased successfully"}')
    if request.method == "POST":
        return json_reply(200, samples.CREATED)
    if request.target.startswith("/api/sessions"):
        return json_reply(200, f"[{samples.LIVE_SESSION}, {samples.LIVE_SESSION_READY}]")
    return json_reply(200, samples.LIVE_SESSION_READY)


def _wire(received: Received) -> tuple[str, str, dict[str, str], Any]:
    """What a request carried, peer aside (each client has its own connection)."""
    body = json.loads(received.body) if received.body else None
    return received.method, received.target, received.headers, body


@pytest.mark.parametrize("name", CALLS)
def test_both_forms_send_identical_requests_and_return_equal_values(name: str) -> None:
    results: dict[str, Result[Any, ApiError]] = {}
    with serve(_answer) as server:
        for form in FORMS:
            face = open_face(form, KEY, server=server.base_url)
            try:
                results[form] = CALLS[name](face)
            finally:
                face.close()
        blocking, asynchronous = server.received
    assert _wire(blocking) == _wire(asynchronous)
    assert blocking.headers["Authorization"] == f"Bearer {KEY}"
    assert isinstance(results["blocking"], Success), results
    assert results["blocking"] == results["asyncio"]


@pytest.mark.parametrize(
    ("status", "body", "retries"),
    [(404, samples.NOT_FOUND, False), (422, samples.UNPROCESSABLE_ENUM, False), (503, "{}", True)],
)
def test_both_forms_fail_with_equal_values_after_equal_attempts(
    status: int, body: str, retries: bool
) -> None:
    results: dict[str, Result[Any, ApiError]] = {}
    counts: dict[str, int] = {}
    with serve(lambda _: json_reply(status, body)) as server:
        for form in FORMS:
            before = len(server.received)
            face = open_face(form, KEY, server=server.base_url, retry=fault_suite.POLICY)
            try:
                results[form] = face.get(samples.SESSION_ID)
            finally:
                face.close()
            counts[form] = len(server.received) - before
    assert isinstance(results["blocking"], Failure)
    assert results["blocking"] == results["asyncio"]
    assert counts == dict.fromkeys(FORMS, fault_suite.ATTEMPTS if retries else 1)


# -- configuration problems are values, the same in both forms ---------------------------------


def _broken_bearer() -> str:
    raise RuntimeError(f"the vault is sealed for {KEY}")


@pytest.mark.parametrize(
    ("key", "options", "field"),
    [
        ("", {}, "bearer"),
        ("key\r\nX-Evil: 1", {}, "bearer"),
        (_broken_bearer, {}, "bearer"),
        (KEY, {"server": "ftp://x"}, "server"),
        (KEY, {"server": "http://api.example.invalid/api"}, "server"),
        (KEY, {"timeout": "soon"}, "timeout"),
        (KEY, {"retry": 3}, "retry"),
        (KEY, {"max_connections": 0}, "max_connections"),
        (KEY, {"max_connections": "4"}, "max_connections"),
    ],
)
def test_configuration_problems_are_the_same_invalid_request_in_both_forms(
    key: Any, options: dict[str, Any], field: str
) -> None:
    errors: list[ApiError] = []
    for form in FORMS:
        face = open_face(form, key, **{"server": "http://127.0.0.1:9/api", **options})
        try:
            result = face.get(samples.SESSION_ID)
        finally:
            face.close()
        assert isinstance(result, Failure), result
        errors.append(result.failure())
    assert isinstance(errors[0], InvalidRequest)
    assert errors[0].field == field
    assert KEY not in str(errors[0])
    assert errors[0] == errors[1]


def test_a_missing_key_is_refused_before_sending(
    faces: Callable[..., Face], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("COMFY_DEPLOY_API_KEY", raising=False)
    with serve(lambda _: json_reply(200, samples.LIVE_SESSION)) as server:
        result = faces(None, server=server.base_url).get(samples.SESSION_ID)
        assert server.received == []
    assert isinstance(result, Failure)
    assert isinstance(result.failure(), InvalidRequest)
    assert "COMFY_DEPLOY_API_KEY" in str(result.failure())


# -- the fake ComfyDeploy: over HTTP and in memory, the same story in both forms ---------------


def _story(face: Face) -> list[Result[Any, ApiError]]:
    """A session's whole life, every answer kept."""
    created = face.create(BODY)
    session_id = created.unwrap().session_id
    return [
        created,
        face.wait_until_ready(session_id, timeout=5),
        face.list(DEFAULT_MACHINE_ID),
        face.get(session_id),
        face.extend(session_id, 5),
        face.cancel(session_id),
        face.get(session_id),
        face.wait_until_ready(session_id, timeout=5),
        face.cancel("not-a-session"),
    ]


@contextmanager
def _fake_face(form: str, service: FakeService, over_http: bool) -> Iterator[Face]:
    if over_http:
        with serve_in_thread(service) as base_url:
            face = open_face(form, KEY, server=base_url)
            try:
                yield face
            finally:
                face.close()
    else:
        face = open_face(form, KEY, transport=FakeTransport(service))
        try:
            yield face
        finally:
            face.close()


@pytest.mark.parametrize("over_http", [True, False], ids=["http", "memory"])
def test_a_session_lifecycle_on_the_fake_is_the_same_in_both_forms(over_http: bool) -> None:
    stories: dict[str, list[Result[Any, ApiError]]] = {}
    for form in FORMS:
        # A fixed clock and seed: both forms meet a fake in exactly the same state.
        service = FakeService(clock=ManualClock(), ready_after_polls=2)
        with _fake_face(form, service, over_http) as face:
            stories[form] = _story(face)
        assert service.live_sessions() == ()
    story = stories["blocking"]
    assert all(isinstance(step, Success) for step in story[:6]), story
    assert story[1].unwrap().url is not None  # ready
    assert isinstance(story[6], Failure)
    assert isinstance(story[6].failure(), HttpError)
    assert isinstance(story[7], Failure)
    assert isinstance(story[7].failure(), SessionGone)
    assert story == stories["asyncio"]


def test_the_session_scope_cancels_in_both_forms(faces: Callable[..., Face]) -> None:
    service = FakeService(ready_after_polls=2)
    face = faces(transport=FakeTransport(service))
    with face.session(BODY, ready_timeout=5) as started:
        assert isinstance(started, Success), started
        opened = started.unwrap()
        assert isinstance(opened, OpenSession)
        assert opened.ready
        assert [s.session_id for s in service.live_sessions()] == [opened.session_id]
    assert service.live_sessions() == ()
    assert face.scope.closed == Success("cancelled")


def test_the_session_scope_cancels_when_the_body_raises_in_both_forms(
    faces: Callable[..., Face],
) -> None:
    service = FakeService()
    face = faces(transport=FakeTransport(service))
    ran: list[str] = []

    def use_it() -> None:
        with face.session(BODY, wait=False) as started:
            assert isinstance(started, Success), started
            assert [s.session_id for s in service.live_sessions()] == [started.unwrap().session_id]
            ran.append("body")
            raise ZeroDivisionError

    with pytest.raises(ZeroDivisionError):
        use_it()
    assert ran == ["body"]
    assert service.live_sessions() == ()
    assert face.scope.closed == Success("cancelled")


def test_a_session_never_ready_is_cancelled_before_the_body_in_both_forms(
    faces: Callable[..., Face],
) -> None:
    service = FakeService(ready_after_polls=None)
    face = faces(transport=FakeTransport(service))
    with face.session(BODY, ready_timeout=0.2) as started:
        assert isinstance(started, Failure)
        assert isinstance(started.failure(), NotReady)
        assert service.live_sessions() == ()
    assert face.scope.closed == Success("cancelled")


def test_a_failed_create_leaves_nothing_to_cancel_in_both_forms(
    faces: Callable[..., Face],
) -> None:
    service = FakeService()
    face = faces(transport=FakeTransport(service))
    with face.session(CreateSessionBody(machine_id="no-such-machine")) as started:
        assert isinstance(started, Failure)
    assert face.scope.closed is None
    assert face.scope.session_id is None


JSON = (("content-type", "application/json"),)


@pytest.mark.parametrize("method", ["GET", "POST", "DELETE"])
def test_every_call_of_both_clients_returns_a_value_for_invalid_utf8(method: str) -> None:
    """From issue 10: the boundary never raises."""
    service = FakeService()
    for status in (200, 400, 500):
        answer = HttpResponse(status, JSON, INVALID_UTF8)
        transport = Rewriting(service, {method: answer})
        client = SessionsClient(KEY, transport=transport, retry=False)
        aclient = AsyncSessionsClient(KEY, transport=InlineTransport(transport), retry=False)
        results = [
            ("GET", client.get("s")),
            ("GET", client.list()),
            ("POST", client.create(BODY)),
            ("DELETE", client.cancel("s")),
            ("POST", client.extend("s", 5, check_cap=False)),
            ("GET", client.wait_until_ready("s", timeout=0)),
            ("GET", run(aclient.get("s"))),
            ("GET", run(aclient.list())),
            ("POST", run(aclient.create(BODY))),
            ("DELETE", run(aclient.cancel("s"))),
            ("POST", run(aclient.extend("s", 5, check_cap=False))),
            ("GET", run(aclient.wait_until_ready("s", timeout=0))),
        ]
        for sent_with, result in results:
            # extend's answer reads only "message", which this body lacks: msgspec skips the
            # other fields without checking their bytes, so its 200 legitimately decodes.
            skips_the_bad_field = status == 200 and isinstance(result.value_or(None), Extended)
            if sent_with == method and not skips_the_bad_field:
                error = result.failure()  # a value naming the problem, never an exception
                expected = DecodeFailed if status == 200 else HttpError
                assert isinstance(error, expected), error
                assert_renders_bounded(error)
            elif isinstance(result, Failure):
                assert_renders_bounded(result.failure())
