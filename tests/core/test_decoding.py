"""Pure decoding: every response becomes a value, and nothing the server can send raises."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from typing import Any

import msgspec
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from returns.result import Failure, Result

from cdsessions._core.decoding import CREATED, DELETED, SESSION, decode, decode_session_list
from cdsessions._core.wire import HttpResponse
from cdsessions.errors import ApiError, DecodeFailed, HttpError, ValidationFailed
from cdsessions.models import MachineGPU, Session
from tests.support import samples

JSON = (("content-type", "application/json"),)


def ok(
    body: str | bytes, status: int = 200, headers: tuple[tuple[str, str], ...] = JSON
) -> HttpResponse:
    return HttpResponse(status, headers, body.encode() if isinstance(body, str) else body)


def failure(result: Result[Any, ApiError]) -> ApiError:
    assert isinstance(result, Failure), result
    error = result.failure()
    assert isinstance(error, ApiError)
    return error


def test_live_session_decodes_with_utc_datetimes_and_null_url() -> None:
    session = decode(ok(samples.LIVE_SESSION), SESSION, "get").unwrap()
    assert session.session_id == samples.SESSION_ID
    assert session.url is None
    assert session.ready is False
    assert session.org_id == "None"  # kept as sent: the live server's personal-account marker
    assert session.gpu == "A10G"
    assert session.timeout_end == datetime(2025, 11, 2, 10, 15, 0, 123456, tzinfo=UTC)
    assert session.created_at is not None
    assert session.created_at.tzinfo is UTC


def test_seed_session_decodes_into_the_same_type() -> None:
    session = decode(ok(samples.SEED_SESSION), SESSION, "get").unwrap()
    assert isinstance(session, Session)
    assert session.url == samples.TUNNEL_URL
    assert session.ready
    assert session.created_at is None


def test_list_gives_sessions_for_the_live_shape() -> None:
    body = f"[{samples.LIVE_SESSION}, {samples.LIVE_SESSION_READY}]"
    sessions = decode_session_list(ok(body), "list").unwrap()
    assert [s.ready for s in sessions] == [False, True]


def test_list_converts_the_seed_gpu_event_shape_to_sessions() -> None:
    sessions = decode_session_list(ok(f"[{samples.SEED_EVENT}]"), "list").unwrap()
    (session,) = sessions
    assert session.session_id == samples.SESSION_ID
    assert session.gpu_event_id == samples.EVENT_ID
    assert session.url == samples.TUNNEL_URL
    assert session.gpu == "H100"
    # "+01:00" on the wire is handed out in UTC
    assert session.created_at == datetime(2025, 11, 2, 9, 0, tzinfo=UTC)


def test_empty_list_is_success() -> None:
    assert decode_session_list(ok("[]"), "list").unwrap() == []


def test_unknown_enum_values_and_extra_fields_decode() -> None:
    event = json.loads(samples.SEED_EVENT)
    event |= {"gpu": "X9000", "gpu_provider": "lambda-labs", "brand_new_field": {"a": [1]}}
    (session,) = decode_session_list(ok(json.dumps([event])), "list").unwrap()
    assert session.gpu == "X9000"
    gpu = MachineGPU("X9000")
    assert gpu == "X9000"
    assert not gpu.is_known
    assert MachineGPU("H100").is_known
    live = json.loads(samples.LIVE_SESSION) | {"gpu": "B300", "new": 1}
    assert decode(ok(json.dumps(live)), SESSION, "get").unwrap().gpu == "B300"


def test_list_that_matches_neither_shape_reports_the_live_contract_path() -> None:
    live = json.loads(samples.LIVE_SESSION) | {"created_at": 5}
    error = failure(decode_session_list(ok(json.dumps([live])), "list sessions"))
    assert isinstance(error, DecodeFailed)
    assert error.where == "$[0].created_at"


@pytest.mark.parametrize(
    ("status", "body", "detail"),
    [
        (404, samples.NOT_FOUND, "GPUEvent not found"),
        (401, samples.UNAUTHORIZED, "Invalid or missing token"),
        (400, samples.TOO_MANY, "You have reached the maximum number of concurrent sessions"),
        (403, '{"detail":"Insufficient balance for requested operation"}', "Insufficient balance"),
    ],
)
def test_error_statuses_carry_the_servers_detail(status: int, body: str, detail: str) -> None:
    error = failure(decode(ok(body, status), SESSION, "get session abc"))
    assert isinstance(error, HttpError)
    assert not isinstance(error, ValidationFailed)
    assert error.status == status
    assert isinstance(error.detail, str)
    assert error.detail.startswith(detail)
    assert str(error).startswith(f"get session abc: {detail}")
    assert f"({status})" in str(error)


def test_422_is_parsed_into_items() -> None:
    error = failure(decode(ok(samples.UNPROCESSABLE_ENUM, 422), CREATED, "create session"))
    assert isinstance(error, ValidationFailed)
    (item,) = error.items
    assert item.loc == ("body", "gpu")
    assert item.type == "enum"
    assert "Input should be" in item.msg
    assert "body.gpu: Input should be" in str(error)
    assert isinstance(error.detail, list)


def test_422_without_fastapi_shape_is_still_an_http_error() -> None:
    error = failure(decode(ok('{"detail":"odd"}', 422), CREATED, "create"))
    assert type(error) is HttpError
    assert error.detail == "odd"


def test_text_plain_500_keeps_the_text() -> None:
    response = ok("Internal Server Error", 500, (("content-type", "text/plain"),))
    error = failure(decode(response, SESSION, "get session abc"))
    assert isinstance(error, HttpError)
    assert (error.status, error.detail) == (500, "Internal Server Error")


def test_redirect_is_reported_not_followed() -> None:
    response = HttpResponse(302, (("Location", "https://elsewhere.example/x"),), b"")
    error = failure(decode(response, SESSION, "get"))
    assert isinstance(error, HttpError)
    assert error.status == 302
    assert "not followed" in str(error)


@pytest.mark.parametrize(
    ("body", "where", "problem"),
    [
        (b"null", "$", "Expected `object`, got `null`"),
        (b"{not json", "$", "malformed"),
        (b"\xff\xfe\x00", "$", "malformed"),
        (b"", "$", "truncated"),
        (b'{"session_id": 1, "gpu_event_id": "e"}', "$.session_id", "Expected `str`"),
        (b'{"gpu_event_id": "e"}', "$", "missing required field `session_id`"),
        (b'{"session_id":"s","gpu_event_id":"e","timeout":1e999}', "$.timeout", "out of range"),
        (b'{"session_id":"s","gpu_event_id":"e","timeout":1.5}', "$.timeout", "Expected `int"),
    ],
)
def test_2xx_that_breaks_the_contract_is_decode_failed_naming_the_place(
    body: bytes, where: str, problem: str
) -> None:
    error = failure(decode(ok(body), SESSION, "get session s"))
    assert isinstance(error, DecodeFailed)
    assert error.where == where
    assert problem in error.problem


def test_huge_integers_are_kept_exactly() -> None:
    body = b'{"session_id":"s","gpu_event_id":"e","timeout":123456789012345678901234567890}'
    assert decode(ok(body), SESSION, "get").unwrap().timeout == 123456789012345678901234567890


def test_deeply_nested_json_is_a_value_not_a_recursion_error() -> None:
    nested = (
        b'{"session_id":"s","gpu_event_id":"e","junk":' + b"[" * 200_000 + b"]" * 200_000 + b"}"
    )
    error = failure(decode(ok(nested), SESSION, "get"))
    assert isinstance(error, DecodeFailed)
    assert "nested too deeply" in error.problem
    error_body = failure(decode(ok(b"[" * 200_000, 500), SESSION, "get"))
    assert isinstance(error_body, HttpError)


def test_wrong_content_type_on_success_is_decode_failed() -> None:
    response = ok(samples.LIVE_SESSION, 200, (("Content-Type", "text/html; charset=utf-8"),))
    error = failure(decode(response, SESSION, "get"))
    assert isinstance(error, DecodeFailed)
    assert "text/html" in error.problem
    assert isinstance(failure(decode_session_list(response, "list")), DecodeFailed)


def test_json_with_charset_and_problem_json_are_accepted() -> None:
    for media in ("application/json; charset=utf-8", "application/vnd.api+json"):
        response = ok(samples.DELETED, 200, (("Content-Type", media),))
        assert decode(response, DELETED, "cancel").unwrap().success is True


@settings(max_examples=400, deadline=None)
@given(
    status=st.sampled_from([200, 201, 204, 400, 401, 404, 422, 500, 502]),
    body=st.binary(max_size=300),
    content_type=st.sampled_from(["application/json", "text/plain", "", "application/x"]),
)
def test_decoding_never_raises(status: int, body: bytes, content_type: str) -> None:
    response = HttpResponse(status, (("content-type", content_type),) if content_type else (), body)
    for result in (
        decode(response, SESSION, "get"),
        decode(response, CREATED, "create"),
        decode_session_list(response, "list"),
    ):
        assert_status_decides(result, status)
        if isinstance(result, Failure):
            assert "\n" not in str(result.failure())


def assert_status_decides(result: Result[object, ApiError], status: int) -> None:
    """What the status alone says about any body: a non-2xx is an HttpError with that status;
    a 2xx is a value, or a DecodeFailed for that status when the body is not the model."""
    if 200 <= status < 300:
        if isinstance(result, Failure):
            assert type(result.failure()) is DecodeFailed, result
            assert result.failure().status == status
    else:
        assert isinstance(result, Failure), result
        assert isinstance(result.failure(), HttpError), result
        assert result.failure().status == status


@settings(max_examples=200, deadline=None)
@given(
    st.recursive(
        st.none() | st.booleans() | st.integers() | st.text(),
        lambda c: st.lists(c) | st.dictionaries(st.text(), c),
    )
)
def test_any_json_value_decodes_to_a_value(value: object) -> None:
    body = msgspec.json.encode(value)
    for status in (200, 404, 422):
        result = decode(ok(body, status), SESSION, "get")
        assert_status_decides(result, status)
        if status == 200 and isinstance(value, dict) and not value:  # {} lacks required fields
            assert result.failure() == DecodeFailed(
                "get", 200, "$", "Object missing required field `session_id`"
            )
