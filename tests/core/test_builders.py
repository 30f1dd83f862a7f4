"""Pure request builders: what each operation puts on the wire, and what it refuses to send."""

from __future__ import annotations

import json
from collections.abc import Callable
from urllib.parse import unquote

import pytest
from hypothesis import example, given, settings
from hypothesis import strategies as st
from returns.result import Failure, Success

from cdsessions._core.builders import (
    MAX_ID_LENGTH,
    authorize,
    build_cancel,
    build_create,
    build_extend,
    build_get,
    build_list,
    describe_id,
)
from cdsessions._core.wire import HttpRequest
from cdsessions.errors import InvalidRequest
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
    # Issue 23: below zero too (a check for == 0 alone would send these).
    assert _refused(build_extend("s1", -1)).field == "minutes"
    assert _refused(build_extend("s1", -(10**9))).field == "minutes"


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


#: Ids the builders must accept: any printable-or-space text that is not blank, "." or "..",
#: without control characters or lone surrogates, up to 80 characters.
_ACCEPTABLE_IDS = st.text(
    st.characters(exclude_categories=("Cc", "Cs")), min_size=1, max_size=80
).filter(lambda s: s.strip() != "" and s not in (".", ".."))


@settings(max_examples=300, deadline=None)
@given(_ACCEPTABLE_IDS)
@example("-x")
@example("--help")
@example("--")
@example("-")
@example("x" * 80)
@example("\U0001f600")
@example("a b")
@example(" .")
@example("%2F")
@example("\u202e")
def test_any_acceptable_id_is_accepted_and_round_trips_through_one_path_segment(
    session_id: str,
) -> None:
    segment = _ok(build_get(session_id)).path.removeprefix("/session/")
    assert all(c not in segment for c in "/?#")
    assert unquote(segment, errors="strict") == session_id


@settings(max_examples=200, deadline=None)
@given(
    _ACCEPTABLE_IDS,
    st.sampled_from([chr(c) for c in (*range(32), *range(127, 160))]),
    st.integers(0, 80),
)
@example("-x", "\n", 0)
@example("--help", "\x1b", 6)
@example("x" * 80, "\x9b", 80)
@example("\U0001f600", "\x00", 1)
@example("--", "\x7f", 2)
def test_an_id_with_a_control_character_anywhere_is_refused(
    session_id: str, control: str, where: int
) -> None:
    bad = session_id[:where] + control + session_id[where:]
    error = _refused(build_get(bad))
    assert error.field == "session_id"
    assert "control character" in error.problem


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


_JSON_HEADERS = (("Content-Type", "application/json"),)


def test_every_builder_makes_exactly_this_request() -> None:
    """Whole values, operation names included: what each builder hands the transport."""
    from cdsessions._core.builders import build_gpu_pricing

    assert _ok(build_get("s 1")) == HttpRequest(
        "GET", "/session/s%201", operation="get session s 1"
    )
    assert _ok(build_cancel("s1")) == HttpRequest(
        "DELETE", "/session/s1", operation="cancel session s1"
    )
    assert _ok(build_cancel("s1", wait_for_shutdown=True)) == HttpRequest(
        "DELETE", "/session/s1", (("wait_for_shutdown", "true"),), operation="cancel session s1"
    )
    assert _ok(build_list()) == HttpRequest("GET", "/sessions", operation="list sessions")
    assert _ok(build_list("m1")) == HttpRequest(
        "GET", "/sessions", (("machine_id", "m1"),), operation="list sessions of machine m1"
    )
    assert _ok(build_extend("s1", 1)) == HttpRequest(
        "POST",
        "/session/s1/increase-timeout",
        headers=_JSON_HEADERS,
        body=b'{"minutes":1}',
        operation="extend session s1",
    )
    body = CreateSessionBody(machine_id="m1", gpu=MachineGPU.H100, timeout=0)
    assert _ok(build_create(body)) == HttpRequest(
        "POST",
        "/session",
        headers=_JSON_HEADERS,
        body=b'{"machine_id":"m1","gpu":"H100","timeout":0,"wait_for_server":false}',
        operation="create session on machine m1",
    )
    assert build_gpu_pricing() == HttpRequest(
        "GET", "/platform/gpu-pricing", operation="get GPU prices"
    )


_LONG_ID = "x" * (MAX_ID_LENGTH + 1)


@pytest.mark.parametrize(
    ("build", "expected"),
    [
        (
            lambda: build_cancel("s1", "yes"),  # type: ignore[arg-type]
            InvalidRequest("cancel session s1", "wait_for_shutdown", "must be True or False"),
        ),
        (
            lambda: build_extend("s1", True),
            InvalidRequest("extend session s1", "minutes", "must be a whole number ≥ 1"),
        ),
        (
            lambda: build_extend("s1", 2.0),  # type: ignore[arg-type]
            InvalidRequest("extend session s1", "minutes", "must be a whole number ≥ 1"),
        ),
        (
            lambda: build_extend("s1", -3),
            InvalidRequest("extend session s1", "minutes", "must be a whole number ≥ 1"),
        ),
        (
            lambda: build_list(""),
            InvalidRequest("list sessions of machine ''", "machine_id", "must not be empty"),
        ),
        (
            lambda: build_list(7),  # type: ignore[arg-type]
            InvalidRequest("list sessions", "machine_id", "must be a string, not int"),
        ),
        (
            lambda: build_get(_LONG_ID),
            InvalidRequest(
                f"get session {'x' * 36}…",
                "session_id",
                f"is {MAX_ID_LENGTH + 1} characters long; at most {MAX_ID_LENGTH} are accepted",
            ),
        ),
        (
            lambda: build_cancel(None),  # type: ignore[arg-type]
            InvalidRequest(
                "cancel session <invalid id>", "session_id", "must be a string, not NoneType"
            ),
        ),
        (
            lambda: build_create(CreateSessionBody(machine_id="m", timeout=-1)),
            InvalidRequest("create session on machine m", "timeout", "must not be negative"),
        ),
        (
            lambda: build_create(CreateSessionBody(machine_id="m", timeout="5")),  # type: ignore[arg-type]
            InvalidRequest(
                "create session on machine m",
                "timeout",
                "must be a whole number of minutes, not str",
            ),
        ),
        (
            lambda: build_create({"machine_id": "m"}),  # type: ignore[arg-type]
            InvalidRequest("create session", "body", "must be a CreateSessionBody"),
        ),
        (
            lambda: build_create(CreateSessionBody(machine_id="m", gpu=" ")),  # type: ignore[arg-type]
            InvalidRequest(
                "create session on machine m", "gpu", "must be a MachineGPU or a non-blank GPU name"
            ),
        ),
        (
            lambda: build_create(CreateSessionBody(machine_id="m", wait_for_server=1)),  # type: ignore[arg-type]
            InvalidRequest(
                "create session on machine m", "wait_for_server", "must be True or False"
            ),
        ),
    ],
)
def test_refusals_name_the_operation_the_field_and_the_problem(
    build: Callable[[], object], expected: InvalidRequest
) -> None:
    # Built inside the test, not at collection: the call is then the test's own.
    assert _refused(build()) == expected


def test_ids_are_described_short_and_visibly() -> None:
    """Found by a mutant of ``nox -s mutation`` the rest of the suite let through."""
    assert describe_id("x" * 40) == "x" * 40
    assert describe_id("y" * 41) == "y" * 36 + "…"
    assert describe_id("  ") == "'  '"
    assert describe_id("a\tb") == "'a\\tb'"
    assert describe_id("abc") == "abc"


def test_id_problems_are_exact() -> None:
    """Found by a mutant of ``nox -s mutation`` the rest of the suite let through."""
    assert build_get("").failure().problem == "must not be empty"
    assert build_get(" \t").failure().problem == "must not be blank"
    assert build_get("a\ud800").failure().problem == "contains a lone surrogate (not valid Unicode)"
    assert build_get(3).failure().problem == "must be a string, not int"  # type: ignore[arg-type]
