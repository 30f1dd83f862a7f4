"""Pure request builders: what each operation puts on the wire, and what it refuses to send."""

from __future__ import annotations

import json
from urllib.parse import unquote

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from returns.result import Failure, Success

from cdsessions.builders import (
    MAX_ID_LENGTH,
    authorize,
    build_cancel,
    build_create,
    build_extend,
    build_get,
    build_list,
)
from cdsessions.errors import InvalidRequest
from cdsessions.http import HttpRequest
from cdsessions.models import CreateSessionBody, MachineGPU


def _ok(result: object) -> HttpRequest:
    assert isinstance(result, Success), result
    request = result.unwrap()
    assert isinstance(request, HttpRequest)
    return request


def _refused(result: object) -> InvalidRequest:
    assert isinstance(result, Failure), result
    error = result.failure()
    assert isinstance(error, InvalidRequest)
    return error


def test_get_builds_the_documented_route() -> None:
    request = _ok(build_get("3f0c6f1e-0000-4000-8000-000000000001"))
    assert (request.method, request.path, request.query, request.body) == (
        "GET",
        "/session/3f0c6f1e-0000-4000-8000-000000000001",
        (),
        None,
    )


def test_cancel_sends_wait_for_shutdown_only_when_asked() -> None:
    assert _ok(build_cancel("abc")).target == "/session/abc"
    assert _ok(build_cancel("abc", wait_for_shutdown=True)).target == (
        "/session/abc?wait_for_shutdown=true"
    )
    assert _ok(build_cancel("abc")).method == "DELETE"


def test_list_machine_id_is_optional_and_encoded_in_the_query() -> None:
    assert _ok(build_list()).target == "/sessions"
    assert _ok(build_list("m 1&x=2")).target == "/sessions?machine_id=m+1%26x%3D2"


def test_create_always_sends_wait_for_server_and_omits_unset_fields() -> None:
    request = _ok(build_create(CreateSessionBody(machine_id="m1")))
    assert request.method == "POST"
    assert request.path == "/session"
    assert ("Content-Type", "application/json") in request.headers
    assert request.body is not None
    assert json.loads(request.body) == {"machine_id": "m1", "wait_for_server": False}


def test_create_sends_gpu_and_timeout_when_given_including_unknown_gpus() -> None:
    body = CreateSessionBody(machine_id="m1", gpu=MachineGPU("X9000"), timeout=30)
    request = _ok(build_create(body))
    assert request.body is not None
    assert json.loads(request.body) == {
        "machine_id": "m1",
        "gpu": "X9000",
        "timeout": 30,
        "wait_for_server": False,
    }
    known = _ok(build_create(CreateSessionBody(machine_id="m", gpu=MachineGPU.A100_80GB)))
    assert known.body is not None
    assert json.loads(known.body)["gpu"] == "A100-80GB"


@pytest.mark.parametrize(
    ("body", "field"),
    [
        (CreateSessionBody(machine_id=""), "machine_id"),
        (CreateSessionBody(machine_id="m", timeout=-1), "timeout"),
        (CreateSessionBody(machine_id="m", timeout=1.5), "timeout"),  # type: ignore[arg-type]
        (CreateSessionBody(machine_id="m", timeout=True), "timeout"),
        (CreateSessionBody(machine_id="m", gpu="  "), "gpu"),  # type: ignore[arg-type]
        (CreateSessionBody(machine_id="m", wait_for_server="yes"), "wait_for_server"),  # type: ignore[arg-type]
    ],
)
def test_create_refuses_bodies_the_server_would_reject(body: CreateSessionBody, field: str) -> None:
    error = _refused(build_create(body))
    assert error.field == field
    assert "nothing was sent" in str(error)


def test_create_refuses_something_that_is_not_a_body() -> None:
    assert _refused(build_create({"machine_id": "m"})).field == "body"  # type: ignore[arg-type]


def test_extend_sends_minutes() -> None:
    request = _ok(build_extend("s1", 10))
    assert request.target == "/session/s1/increase-timeout"
    assert request.body == b'{"minutes":10}'
    assert _refused(build_extend("s1", 0)).field == "minutes"


@pytest.mark.parametrize(
    ("session_id", "problem"),
    [
        ("", "must not be empty"),
        (".", "would change the URL path"),
        ("..", "would change the URL path"),
        ("   ", "blank"),
        ("\t\n", "blank"),
        ("abc\r\nX-Injected: 1", "control character"),
        ("a\x00b", "control character"),
        ("a\x7fb", "control character"),
        ("a\x85b", "control character"),  # C1 control (NEL)
        ("a\ud800b", "surrogate"),
        ("x" * (MAX_ID_LENGTH + 1), "characters long"),
        (None, "must be a string"),
        (42, "must be a string"),
    ],
)
@pytest.mark.parametrize("build", [build_get, build_cancel, lambda i: build_extend(i, 5)])
def test_bad_ids_are_refused_before_anything_is_built(
    build: object, session_id: object, problem: str
) -> None:
    error = _refused(build(session_id))  # type: ignore[operator]
    assert error.field == "session_id"
    assert problem in error.problem
    assert "\n" not in str(error)


def test_longest_accepted_id_is_the_limit() -> None:
    assert isinstance(build_get("x" * MAX_ID_LENGTH), Success)


def test_bad_machine_ids_are_refused_for_list() -> None:
    assert _refused(build_list("..")).field == "machine_id"
    assert _refused(build_list("")).field == "machine_id"


@pytest.mark.parametrize("session_id", ["a/b", "a?b=c", "a#b", "a%2Fb", "%", "../x", "é ü", "..."])
def test_reserved_characters_never_change_the_route(session_id: str) -> None:
    request = _ok(build_get(session_id))
    assert request.path.startswith("/session/")
    segment = request.path.removeprefix("/session/")
    assert "/" not in segment
    assert "?" not in segment
    assert "#" not in segment
    assert unquote(segment) == session_id


@settings(max_examples=300, deadline=None)
@given(st.text(min_size=1, max_size=80))
def test_any_accepted_id_round_trips_through_its_single_path_segment(session_id: str) -> None:
    result = build_get(session_id)
    if isinstance(result, Failure):
        return  # refused ids are covered above; here we check every accepted one
    segment = result.unwrap().path.removeprefix("/session/")
    assert all(c not in segment for c in "/?#")
    assert unquote(segment, errors="strict") == session_id


def test_authorize_adds_server_and_standard_headers_and_repr_hides_the_key() -> None:
    request = authorize(
        _ok(build_get("s1")), base_url="https://h/api", token="sk-SECRET", user_agent="ua/1"
    )
    assert request.url == "https://h/api/session/s1"
    headers = dict(request.headers)
    assert headers["Authorization"] == "Bearer sk-SECRET"
    assert headers["Accept"] == "application/json"
    assert headers["User-Agent"] == "ua/1"
    assert "sk-SECRET" not in repr(request)
    assert "sk-SECRET" not in repr(request.redacted())
    assert dict(request.redacted().headers)["Authorization"] == "<redacted>"


def test_builders_are_pure_values() -> None:
    assert build_get("s1") == build_get("s1")
    assert build_create(CreateSessionBody(machine_id="m")) == build_create(
        CreateSessionBody(machine_id="m")
    )
