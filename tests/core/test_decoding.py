"""Pure decoding: every response becomes a value, and nothing the server can send raises."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta, timezone
from typing import Any, Final

import msgspec
import pytest
from hypothesis import example, given, settings
from hypothesis import strategies as st
from returns.result import Failure, Result, Success

from cdsessions._core.decoding import (
    CREATED,
    DELETED,
    EXTENDED,
    SESSION,
    decode,
    decode_session_list,
    error_from,
)
from cdsessions._core.wire import HttpResponse
from cdsessions.errors import ApiError, DecodeFailed, HttpError, ValidationFailed
from cdsessions.models import GPUEventModel, MachineGPU, Session
from tests.support import samples
from tests.support.checks import assert_renders_bounded, failure_of
from tests.support.samples import INVALID_UTF8

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
@example(status=200, body=b"", content_type="application/json")
@example(status=422, body=b"", content_type="")
@example(status=500, body=b"\xff" * 300, content_type="text/plain")
@example(status=204, body=b"null", content_type="application/json")
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
@example("")
@example([])
@example({"": None})
@example("\U0001f600")
@example(2**64)
def test_any_json_value_decodes_to_a_value(value: object) -> None:
    body = msgspec.json.encode(value)
    for status in (200, 404, 422):
        result = decode(ok(body, status), SESSION, "get")
        assert_status_decides(result, status)
        if status == 200 and isinstance(value, dict) and not value:  # {} lacks required fields
            assert result.failure() == DecodeFailed(
                "get", 200, "$", "Object missing required field `session_id`"
            )


TUNNEL = "https://ta-01jsecretlabel.r5.modal.host"


def _nested(depth: int, leaf: bytes = b'"x"') -> bytes:
    return b'{"detail": ' + b"[" * depth + leaf + b"]" * depth + b"}"


# JSON-ish bytes: real JSON shapes whose strings may hold any bytes (invalid UTF-8 included),
# wrapped in up to 3000 levels of nesting.
_STRING_BYTES = st.binary(max_size=12).map(lambda b: b.replace(b'"', b"").replace(b"\\", b""))


_LEAF = st.one_of(
    _STRING_BYTES.map(lambda b: b'"' + b + b'"'),
    st.sampled_from([b"null", b"true", b"1", b"-0.5e3", b"1" * 30, b"1e999", b'"\\ud800"']),
)


_JSONISH = st.recursive(
    _LEAF,
    lambda inner: st.one_of(
        st.lists(inner, max_size=4).map(lambda items: b"[" + b",".join(items) + b"]"),
        st.lists(st.tuples(_STRING_BYTES, inner), max_size=4).map(
            lambda pairs: b"{" + b",".join(b'"' + k + b'":' + v for k, v in pairs) + b"}"
        ),
    ),
    max_leaves=12,
)


@pytest.mark.parametrize("status", [200, 201, 400, 401, 404, 409, 422, 500, 503])
def test_invalid_utf8_inside_json_strings_is_a_value_for_every_decoder(status: int) -> None:
    """From issue 10: the boundary never raises."""
    response = HttpResponse(status, JSON, INVALID_UTF8)
    results = [decode(response, decoder, "op") for decoder in (SESSION, CREATED, DELETED)]
    results += [decode(response, EXTENDED, "op"), decode_session_list(response, "list")]
    list_body = HttpResponse(status, JSON, b"[" + INVALID_UTF8 + b"]")
    results.append(decode_session_list(list_body, "list"))
    for result in results:
        if status < 300 and isinstance(result, Success):
            continue  # the bad bytes were in a field that decoder skips unread (extend's)
        error = failure_of(result)
        assert isinstance(error, DecodeFailed if status < 300 else HttpError)
        assert error.status == status
        assert_renders_bounded(error)
    created = failure_of(decode(HttpResponse(200, JSON, INVALID_UTF8), CREATED, "create"))
    assert isinstance(created, DecodeFailed)
    assert "UTF-8" in created.problem


def test_a_422_whose_items_are_not_utf8_is_still_a_value() -> None:
    """From issue 10: the boundary never raises."""
    body = b'{"detail": [{"loc": ["body", "\xff"], "msg": "bad", "type": "t"}]}'
    error = failure_of(decode(HttpResponse(422, JSON, body), CREATED, "create"))
    assert isinstance(error, HttpError)
    assert error.status == 422


def test_a_redirect_keeps_no_location_anywhere() -> None:
    """From issue 10: the boundary never raises."""
    moved = HttpResponse(307, (("Location", f"{TUNNEL}/x?token=1"),), b"")
    error = failure_of(decode(moved, DELETED, "cancel session s"))
    assert isinstance(error, HttpError)
    assert error.status == 307
    for text in (str(error), repr(error), str(error.detail)):
        assert "modal.host" not in text
        assert "://" not in text


@pytest.mark.parametrize("depth", [10, 900, 999, 1000, 5000, 200_000])
def test_deep_error_details_decode_and_render(depth: int) -> None:
    """From issue 10: the boundary never raises."""
    for status in (400, 422, 500):
        error = failure_of(decode(HttpResponse(status, JSON, _nested(depth)), SESSION, "op"))
        assert isinstance(error, HttpError)
        assert_renders_bounded(error)


@settings(max_examples=300, deadline=None)
@given(
    body=_JSONISH,
    depth=st.sampled_from([0, 1, 50, 999, 1000, 3000]),
    wrap=st.sampled_from(["detail", "list", "session"]),
    status=st.sampled_from([200, 204, 307, 400, 404, 422, 429, 500]),
)
def test_decoding_and_rendering_never_raise_for_jsonish_bytes(
    body: bytes, depth: int, wrap: str, status: int
) -> None:
    """From issue 10: the boundary never raises."""
    nested = b"[" * depth + body + b"]" * depth
    shaped = {
        "detail": b'{"detail": ' + nested + b"}",
        "list": b"[" + nested + b"]",
        "session": b'{"session_id": ' + nested + b', "gpu_event_id": "e"}',
    }[wrap]
    response = HttpResponse(status, JSON, shaped)
    for result in (
        decode(response, SESSION, "get"),
        decode(response, CREATED, "create"),
        decode(response, DELETED, "cancel"),
        decode_session_list(response, "list"),
    ):
        if 200 <= status < 300:
            # A 2xx either decodes or is located as undecodable; never anything else.
            assert isinstance(result, Success) or isinstance(result.failure(), DecodeFailed)
        else:
            error = result.failure()
            assert isinstance(error, HttpError)
            assert error.status == status
        if isinstance(result, Failure):
            assert_renders_bounded(result.failure())


SEED_TUNNEL: Final = "https://ta-01jlabel.r5.modal.host"


#: A seed list element with every field the Session takes, end_time set, and both start_time
#: and created_at (created_at wins).
SEED_ITEM: Final = (
    b'{"id":"e1","user_id":"user_2abc","org_id":"org_9","machine_id":"m1",'
    b'"start_time":"2025-11-02T09:00:00Z","end_time":"2025-11-02T09:30:00Z","gpu":"A10G",'
    b'"gpu_provider":"modal","created_at":"2025-11-02T10:00:00+01:00","session_timeout":30,'
    b'"session_id":"s1","tunnel_url":"' + SEED_TUNNEL.encode() + b'"}'
)


_GET: Final = "get session s"


_SESSION_BODY: Final = b'{"session_id":"s","gpu_event_id":"e"}'


def test_a_seed_list_element_becomes_exactly_this_session() -> None:
    """Found by a mutant of ``nox -s mutation`` the rest of the suite let through."""
    response = HttpResponse(200, (("content-type", "application/json"),), b"[" + SEED_ITEM + b"]")
    (session,) = decode_session_list(response, "list sessions").unwrap()
    assert session == Session(
        session_id="s1",
        gpu_event_id="e1",
        url=SEED_TUNNEL,
        gpu="A10G",
        created_at=datetime(2025, 11, 2, 9, 0, tzinfo=UTC),
        timeout=30,
        machine_id="m1",
        user_id="user_2abc",
        org_id="org_9",
    )
    # The same element through the full seed model gives the same Session.
    assert msgspec.json.decode(SEED_ITEM, type=GPUEventModel).to_session() == session


def test_a_seed_element_without_session_id_or_gpu_uses_its_event_id() -> None:
    """Found by a mutant of ``nox -s mutation`` the rest of the suite let through."""
    item = b'{"id":"e2","user_id":"u","org_id":null,"machine_id":null,"start_time":null,'
    item += b'"end_time":null,"gpu":null,"gpu_provider":"runpod"}'
    response = HttpResponse(200, (("content-type", "application/json"),), b"[" + item + b"]")
    (session,) = decode_session_list(response, "list").unwrap()
    assert session == Session(session_id="e2", gpu_event_id="e2", user_id="u")


def test_decoding_failures_are_exact_values() -> None:
    """Found by a mutant of ``nox -s mutation`` the rest of the suite let through."""
    redirect = decode(HttpResponse(300, (("Location", SEED_TUNNEL),), b""), SESSION, _GET).failure()
    assert redirect == HttpError(
        _GET,
        300,
        "redirect not followed (the API key goes only to the configured server); "
        "check the server URL",
    )
    html = HttpResponse(200, (("content-type", "text/html; charset=utf-8"),), b"<html>")
    assert decode(html, SESSION, _GET).failure() == DecodeFailed(
        _GET, 200, "$", "expected JSON, got text/html; charset=utf-8"
    )
    invalid = HttpResponse(
        422,
        (),
        b'{"detail":[{"type":"missing","loc":["body","machine_id"],"msg":"Field required",'
        b'"input":{}}]}',
    )
    error = error_from(invalid, "create session")
    assert isinstance(error, ValidationFailed)
    assert error.detail == [
        {"loc": ["body", "machine_id"], "msg": "Field required", "type": "missing"}
    ]


def test_only_the_media_type_decides_json_whatever_its_parameters() -> None:
    """Found by a mutant of ``nox -s mutation`` the rest of the suite let through."""
    for media in ("application/json; charset=utf-8; q=1", "Application/JSON", "a/b+json; x=1"):
        response = HttpResponse(200, (("Content-Type", media),), _SESSION_BODY)
        assert decode(response, SESSION, _GET).unwrap().session_id == "s", media


SESSION_BODY: Final = b'{"session_id": "s-1", "gpu_event_id": "e-1"}'


@pytest.mark.parametrize(
    "content_type",
    [None, "application/json", "Application/JSON; charset=UTF-8", "application/problem+json"],
)
def test_json_is_recognised_whatever_its_case_and_when_no_type_is_given(
    content_type: str | None,
) -> None:
    """Bugs: a missing Content-Type refused; the media type compared case-sensitively.

    Found by applying a deliberate bug the older tests let through."""
    headers = () if content_type is None else (("Content-Type", content_type),)
    decoded = decode(HttpResponse(200, headers, SESSION_BODY), SESSION, "get session s-1")
    assert isinstance(decoded, Success)
    assert decoded.unwrap().session_id == "s-1"


def test_a_list_in_the_seed_shape_under_a_wrong_content_type_is_not_decoded() -> None:
    """Bug: the seed fallback of ``list`` ignoring the Content-Type the live decoder refused.

    Found by applying a deliberate bug the older tests let through."""
    seed = (
        b'[{"id": "e-1", "user_id": "u", "org_id": null, "machine_id": "m", '
        b'"start_time": null, "end_time": null, "gpu": "A10G", "gpu_provider": "modal"}]'
    )
    html = HttpResponse(200, (("Content-Type", "text/html"),), seed)
    listed = decode_session_list(html, "list sessions")
    assert isinstance(listed, Failure)
    assert isinstance(listed.failure(), DecodeFailed)
    assert isinstance(decode_session_list(HttpResponse(200, JSON, seed), "list sessions"), Success)


def test_a_seed_list_element_keeps_its_start_time_gpu_and_url() -> None:
    """Bugs: ``start_time`` not used when ``created_at`` is absent (or dropped early); the
    GPU's enum *name* (``A100_80GB``) handed out instead of its value (``A100-80GB``).

    Found by applying a deliberate bug the older tests let through."""
    seed = (
        b'[{"id": "e-1", "user_id": "u", "org_id": null, "machine_id": "m", '
        b'"start_time": "2025-11-02T12:00:00Z", "end_time": "2025-11-02T13:00:00Z", '
        b'"gpu": "A100-80GB", "gpu_provider": "modal", "session_id": "s-1", '
        b'"tunnel_url": "https://t.example.invalid"}]'
    )
    listed = decode_session_list(HttpResponse(200, JSON, seed), "list sessions").unwrap()
    (session,) = listed
    assert session.session_id == "s-1"
    assert session.gpu_event_id == "e-1"
    assert session.gpu == "A100-80GB"
    assert session.created_at == datetime(2025, 11, 2, 12, tzinfo=UTC)
    assert session.url == "https://t.example.invalid"
    event = GPUEventModel(
        id="e-2",
        user_id="u",
        org_id=None,
        machine_id=None,
        start_time=datetime(2025, 1, 1, 8, tzinfo=UTC),
        end_time=None,
        gpu=MachineGPU.A100_80GB,
        gpu_provider="modal",  # type: ignore[arg-type]
    )
    converted = event.to_session()
    assert converted.created_at == datetime(2025, 1, 1, 8, tzinfo=UTC)
    assert converted.gpu == "A100-80GB"
    assert converted.session_id == "e-2"


def test_every_datetime_of_a_session_is_aware_utc() -> None:
    """Bugs: ``created_at`` or ``timeout_end`` left in the server's offset, or naive.

    Found by applying a deliberate bug the older tests let through."""
    body = (
        b'{"session_id": "s", "gpu_event_id": "e", '
        b'"created_at": "2025-11-02T14:00:00+02:00", "timeout_end": "2025-11-02T12:30:00"}'
    )
    session = decode(HttpResponse(200, JSON, body), SESSION, "get").unwrap()
    assert session.created_at == datetime(2025, 11, 2, 12, tzinfo=UTC)
    assert session.created_at is not None
    assert session.created_at.tzinfo is UTC
    assert session.timeout_end == datetime(2025, 11, 2, 12, 30, tzinfo=UTC)
    assert session.timeout_end is not None
    assert session.timeout_end.tzinfo is UTC
    made = Session(
        session_id="s",
        gpu_event_id="e",
        created_at=datetime(2025, 1, 1, 9, tzinfo=timezone(timedelta(hours=9))),
    )
    assert made.created_at is not None
    assert made.created_at.tzinfo is UTC
    assert made.created_at.hour == 0


def test_a_string_that_is_not_utf8_is_a_decode_failure() -> None:
    """Bug: ``UnicodeDecodeError`` (not a msgspec error) escaping the decoder.

    Found by applying a deliberate bug the older tests let through."""
    body = b'{"session_id": "s-\xff\xfe", "gpu_event_id": "e"}'
    decoded = decode(HttpResponse(200, JSON, body), SESSION, "get session s")
    assert isinstance(decoded, Failure)
    failure = decoded.failure()
    assert isinstance(failure, DecodeFailed)
    assert failure.where == "$"
    listed = decode_session_list(HttpResponse(200, JSON, b"[" + body + b"]"), "list sessions")
    assert isinstance(listed, Failure)
    assert isinstance(listed.failure(), DecodeFailed)


@pytest.mark.parametrize("when", ["0001-01-01T00:00:00+01:00", "9999-12-31T23:59:59-01:00"])
def test_a_datetime_utc_cannot_hold_is_a_decode_failure(when: str) -> None:
    """Bug: the ``OverflowError`` of converting to UTC escaping the decoder as an exception.

    Found by applying a deliberate bug the older tests let through."""
    live = f'{{"session_id": "s", "gpu_event_id": "e", "created_at": "{when}"}}'.encode()
    got = decode(HttpResponse(200, JSON, live), SESSION, "get session s")
    assert isinstance(got, Failure)
    assert isinstance(got.failure(), DecodeFailed)
    listed = decode_session_list(HttpResponse(200, JSON, b"[" + live + b"]"), "list sessions")
    assert isinstance(listed, Failure)
    assert isinstance(listed.failure(), DecodeFailed)
    seed = (
        b'[{"id": "e", "user_id": "u", "org_id": null, "machine_id": null, '
        b'"start_time": "' + when.encode() + b'", "end_time": null, "gpu": null, '
        b'"gpu_provider": "modal"}]'
    )
    seeded = decode_session_list(HttpResponse(200, JSON, seed), "list sessions")
    assert isinstance(seeded, Failure)
    assert isinstance(seeded.failure(), DecodeFailed)


def test_a_null_body_is_a_decode_failure_and_an_empty_list_is_no_sessions() -> None:
    """Bug: ``null`` from ``list`` taken as "no sessions" (the server answered nothing usable;
    the caller would think nothing is running and billing).

    Found by applying a deliberate bug the older tests let through."""
    for body in (b"null", b" null\n"):
        listed = decode_session_list(HttpResponse(200, JSON, body), "list sessions")
        assert isinstance(listed, Failure)
        assert isinstance(listed.failure(), DecodeFailed)
        got = decode(HttpResponse(200, JSON, body), SESSION, "get session s")
        assert isinstance(got, Failure)
        assert isinstance(got.failure(), DecodeFailed)
    assert decode_session_list(HttpResponse(200, JSON, b"[]"), "list sessions") == Success([])


def test_an_error_body_without_detail_is_kept_as_text() -> None:
    """Bugs: a JSON error body without ``detail`` (or ``"detail": null``) reported as no
    detail at all; an empty body reported as the empty string rather than none.

    Found by applying a deliberate bug the older tests let through."""
    for body in (
        b'{"error": "upstream exploded"}',
        b'{"detail": null, "error": "upstream exploded"}',
    ):
        error = error_from(HttpResponse(502, JSON, body), "get session s")
        assert isinstance(error, HttpError)
        assert error.detail == body.decode()
        assert "upstream exploded" in str(error)
    empty = error_from(HttpResponse(503, JSON, b""), "get session s")
    assert isinstance(empty, HttpError)
    assert empty.detail is None
    assert str(empty) == "get session s: HTTP error (503)"


@pytest.mark.parametrize("code", [300, 301, 302, 303, 307, 308])
def test_every_3xx_is_a_redirect_that_names_no_location(code: int) -> None:
    """Bug: 300 (Multiple Choices) not treated as a redirect, so its body and Location go
    into the error.

    Found by applying a deliberate bug the older tests let through."""
    response = HttpResponse(
        code,
        (("Location", "https://evil.example.invalid/x"), *JSON),
        b'{"detail": "https://evil.example.invalid/x"}',
    )
    error = error_from(response, "get session s")
    assert isinstance(error, HttpError)
    assert error.status == code
    assert "evil" not in str(error)
    assert "evil" not in repr(error)
    assert "redirect not followed" in str(error)


def _response(
    body: bytes, status: int = 200, headers: tuple[tuple[str, str], ...] = JSON
) -> HttpResponse:
    return HttpResponse(status=status, headers=headers, body=body)


def test_a_naive_timeout_end_means_utc_whatever_the_local_zone(far_from_utc: None) -> None:
    """Bug: a naive date-time read as local time (``astimezone`` on a naive value).

    Found by an outside review's deliberate bug the suite missed (issue 14)."""
    body = b'{"session_id":"s","gpu_event_id":"e","timeout_end":"2025-11-02T10:15:00"}'
    session = decode(_response(body), SESSION, "get session s").unwrap()
    assert session.timeout_end == datetime(2025, 11, 2, 10, 15, tzinfo=UTC)
    assert session.timeout_end is not None
    assert session.timeout_end.utcoffset() is not None
    assert session.timeout_end.hour == 10


def test_naive_seed_list_times_mean_utc_whatever_the_local_zone(far_from_utc: None) -> None:
    """Bug: the seed-shaped list's naive start/end times read as local time.

    Found by an outside review's deliberate bug the suite missed (issue 14)."""
    item = (
        '{{"id":"{0}","user_id":"u","org_id":null,"machine_id":"m","start_time":'
        '"2025-11-02T12:00:00","end_time":null,"gpu":"A10G","gpu_provider":"modal"{1}}}'
    )
    created = ',"created_at":"2025-11-02T11:59:00"'
    body = f"[{item.format('e1', '')},{item.format('e2', created)}]"
    first, second = decode_session_list(_response(body.encode()), "list sessions").unwrap()
    assert first.created_at == datetime(2025, 11, 2, 12, 0, tzinfo=UTC)  # from start_time
    assert second.created_at == datetime(2025, 11, 2, 11, 59, tzinfo=UTC)


def test_gpu_event_model_date_times_with_an_offset_are_converted_to_utc() -> None:
    """Bug: a GPUEventModel field left with its offset (or its offset dropped).

    Found by an outside review's deliberate bug the suite missed (issue 14)."""
    noon_utc = datetime(2025, 11, 2, 12, 0, tzinfo=UTC)
    body = (
        b'{"id":"e","user_id":"u","org_id":null,"machine_id":null,"gpu":null,'
        b'"gpu_provider":"modal","start_time":"2025-11-02T17:30:00+05:30",'
        b'"end_time":"2025-11-02T04:00:00-08:00","created_at":"2025-11-03T02:00:00+14:00",'
        b'"updated_at":"2025-11-02T13:00:00+01:00"}'
    )
    event = msgspec.json.decode(body, type=GPUEventModel)
    for name in ("start_time", "end_time", "created_at", "updated_at"):
        value = getattr(event, name)
        assert value == noon_utc, name
        assert value.tzinfo is UTC, name
        assert value.hour == 12, name


def test_a_2xx_without_content_type_is_decoded_from_its_body() -> None:
    """Bug: a success without ``Content-Type`` refused as "not JSON".

    Found by an outside review's deliberate bug the suite missed (issue 14)."""
    response = _response(b'{"session_id":"s","url":null}', headers=())
    assert decode(response, CREATED, "create session").unwrap().session_id == "s"


@pytest.mark.parametrize("status", [200, 201, 202])
def test_every_2xx_with_a_json_body_is_a_success(status: int) -> None:
    """Bug: only 200 counted as success (201 Created, 202 Accepted treated as failures).

    Found by an outside review's deliberate bug the suite missed (issue 14)."""
    response = _response(b'{"session_id":"s","url":null}', status=status)
    assert decode(response, CREATED, "create session").unwrap().session_id == "s"


def test_a_204_is_not_an_http_failure_but_its_empty_body_cannot_be_the_model() -> None:
    """Bug: 204 reported as an HTTP error. It is a success status; an empty body cannot decode
    into the response model, and that is what the failure says.

    Found by an outside review's deliberate bug the suite missed (issue 14)."""
    result = decode(_response(b"", status=204, headers=()), DELETED, "cancel session s")
    assert isinstance(result, Failure)
    error = result.failure()
    assert type(error) is DecodeFailed
    assert error.status == 204


# -- error values bounded in the value, not only when shown ------------------------------------
# Added for bugs an outside review slipped past the suite (issue 23): an excerpt of a body
# that is not JSON kept whole in the value, bounded only by str().


@pytest.mark.parametrize(
    ("body", "kept"),
    [
        (b"x" * 1_000_000, "x" * 300),
        (b"  " + b"y" * 299 + b"  ", "y" * 299),  # stripped, then kept whole
        (b"z" * 300, "z" * 300),
        (b"\xe2\x82\xac" * 5000, "\u20ac" * 300),  # counted in characters, not bytes
        (b"\n" * 1_000_000 + b"late", None),  # only the start is looked at: blank
    ],
    ids=["a-megabyte", "blanks-around", "exactly-the-limit", "multibyte", "blank-start"],
)
def test_the_excerpt_of_a_body_that_is_not_json_is_bounded_in_the_value(
    body: bytes, kept: str | None
) -> None:
    error = error_from(HttpResponse(502, (("content-type", "text/html"),), body), "get session s")
    assert error == HttpError("get session s", 502, kept)
    assert_renders_bounded(error)


@pytest.mark.parametrize(
    "body",
    [
        {"detail": "d" * 1_000_000},
        {"detail": ["x" * 100_000] * 50},
        {"detail": {"k" * 10_000: "v" * 100_000}},
    ],
    ids=["long-string", "long-list", "long-keys"],
)
def test_a_huge_json_detail_renders_bounded(body: object) -> None:
    response = HttpResponse(500, JSON, json.dumps(body).encode())
    error = error_from(response, "get session s")
    assert isinstance(error, HttpError)
    assert error.detail == body["detail"]  # type: ignore[index]  # the server's value, kept
    assert_renders_bounded(error)


def test_a_validation_failure_with_thousands_of_items_renders_bounded() -> None:
    item = {"loc": ["body", "x" * 5000], "msg": "m" * 5000, "type": "t" * 5000}
    response = HttpResponse(422, JSON, json.dumps({"detail": [item] * 5000}).encode())
    error = error_from(response, "create session")
    assert isinstance(error, ValidationFailed)
    assert len(error.items) == 5000
    assert_renders_bounded(error)


# -- the seed's list shape, converted field by field ---------------------------------------------
# Added for bugs an outside review slipped past the suite (issue 23): conversions from the seed
# OpenAPI shape (GPUEventModel) that no test pinned. Each field once, both ways in: through
# ``list`` (SeedListItem) and through ``GPUEventModel.to_session``.

_EVENT: Final[dict[str, Any]] = {
    "id": "ev-1",
    "user_id": "user-1",
    "org_id": "org-1",
    "machine_id": "m-1",
    "start_time": "2025-11-02T09:00:00Z",
    "end_time": "2025-11-02T11:00:00Z",
    "gpu": "A10G",
    "gpu_provider": "modal",
    "ws_gpu": "ws",
    "created_at": "2025-11-02T10:00:00+02:00",
    "updated_at": "2025-11-02T10:05:00Z",
    "session_timeout": 30,
    "session_id": "sid-1",
    "modal_function_id": "fn",
    "tunnel_url": "https://tunnel.example.invalid",
    "cost_item_title": "t",
    "cost": 1.5,
}
_FULL: Final = Session(
    session_id="sid-1",
    gpu_event_id="ev-1",
    url="https://tunnel.example.invalid",
    gpu="A10G",
    created_at=datetime(2025, 11, 2, 8, 0, tzinfo=UTC),  # +02:00 read as the UTC instant
    timeout=30,
    machine_id="m-1",
    user_id="user-1",
    org_id="org-1",
)


def _converted(event: dict[str, Any]) -> Session:
    body = json.dumps([event]).encode()
    listed = decode_session_list(HttpResponse(200, JSON, body), "list sessions")
    assert isinstance(listed, Success), listed
    through_list: Session
    [through_list] = listed.unwrap()
    through_model = msgspec.json.decode(json.dumps(event), type=GPUEventModel).to_session()
    assert through_list == through_model
    return through_list


@pytest.mark.parametrize(
    ("change", "expected"),
    [
        ({}, _FULL),
        # No session_id: the event's id names the session.
        ({"session_id": None}, msgspec.structs.replace(_FULL, session_id="ev-1")),
        # No created_at: the start time stands in for it.
        (
            {"created_at": None},
            msgspec.structs.replace(_FULL, created_at=datetime(2025, 11, 2, 9, tzinfo=UTC)),
        ),
        ({"created_at": None, "start_time": None}, msgspec.structs.replace(_FULL, created_at=None)),
        # A naive date-time means UTC.
        (
            {"created_at": "2025-11-02T10:00:00"},
            msgspec.structs.replace(_FULL, created_at=datetime(2025, 11, 2, 10, tzinfo=UTC)),
        ),
        ({"gpu": None}, msgspec.structs.replace(_FULL, gpu=None)),
        ({"gpu": "Z99"}, msgspec.structs.replace(_FULL, gpu="Z99")),  # a GPU not known yet
        ({"tunnel_url": None}, msgspec.structs.replace(_FULL, url=None)),
        ({"session_timeout": None}, msgspec.structs.replace(_FULL, timeout=None)),
        ({"machine_id": None}, msgspec.structs.replace(_FULL, machine_id=None)),
        ({"org_id": None}, msgspec.structs.replace(_FULL, org_id=None)),
        ({"user_id": "u"}, msgspec.structs.replace(_FULL, user_id="u")),
        ({"end_time": None, "cost": None, "ws_gpu": None}, _FULL),  # not carried over
    ],
    ids=[
        "full",
        "no-session-id",
        "start-for-created",
        "no-times",
        "naive-utc",
        "no-gpu",
        "unknown-gpu",
        "no-url",
        "no-timeout",
        "no-machine",
        "no-org",
        "user",
        "dropped-fields",
    ],
)
def test_each_field_of_a_seed_list_item_becomes_its_session_field(
    change: dict[str, Any], expected: Session
) -> None:
    session = _converted({**_EVENT, **change})
    assert session == expected
    assert (session.id, session.timeout_end, session.status, session.machine_version_id) == (
        None,
        None,
        None,
        None,
    )
    assert session.created_at is None or session.created_at.tzinfo is UTC
