"""The fake's request validation (``cdsessions/fake/_validation.py``) on numbers: what FastAPI and
pydantic-core 2.11 answer for numbers they cannot parse, over real HTTP and through
``FakeTransport`` alike, and never a traceback in place of an answer (issue #18).

The expected answers were read off pydantic-core's ``str_as_int``/``float_as_int`` (4300
characters; the 64-bit range for whole floats), FastAPI's request handler (a body ``json.loads``
fails on other than as malformed JSON is 400 "There was an error parsing the body") and
Starlette's ``JSONResponse`` (``allow_nan=False``: a 422 echoing an infinity cannot be rendered,
so the client gets the plain 500)."""

from __future__ import annotations

import http.client
import json
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any, Final
from urllib.parse import urlsplit

import pytest
from hypothesis import example, given, settings
from hypothesis import strategies as st
from returns.result import Success

from cdsessions._core.wire import HttpRequest, HttpResponse
from cdsessions.fake import DEFAULT_MACHINE_ID, FakeService, FakeTransport
from cdsessions.fake._validation import MAX_INT_CHARS, lax_int
from cdsessions.fake.server import serve_in_thread

KEY: Final = "sk-fake-numbers-0123456789"
TOO_LARGE: Final = "Unable to parse input string as an integer, exceeded maximum size"
CANNOT_PARSE: Final = b'{"detail":"There was an error parsing the body"}'

# One sender per way in: each takes (fake, method, path, body) and gives the answer.
Send = Callable[[FakeService, str, str, bytes], HttpResponse]


def _headers() -> dict[str, str]:
    return {"Authorization": f"Bearer {KEY}", "Content-Type": "application/json"}


def _over_http(fake: FakeService, method: str, path: str, body: bytes) -> HttpResponse:
    with serve_in_thread(fake) as base_url:
        parts = urlsplit(base_url)
        connection = http.client.HTTPConnection(parts.hostname or "", parts.port, timeout=10)
        try:
            connection.request(method, f"{parts.path}{path}", body, _headers())
            answer = connection.getresponse()  # a traceback instead would be RemoteDisconnected
            content_type = answer.getheader("content-type") or ""
            return HttpResponse(answer.status, (("content-type", content_type),), answer.read())
        finally:
            connection.close()


def _in_memory(fake: FakeService, method: str, path: str, body: bytes) -> HttpResponse:
    headers = tuple(_headers().items())
    sent = FakeTransport(fake).send(HttpRequest(method, path, headers=headers, body=body))
    assert isinstance(sent, Success), sent
    answer: HttpResponse = sent.unwrap()
    return answer


SENDERS: Final = [pytest.param(_over_http, id="http"), pytest.param(_in_memory, id="transport")]


@contextmanager
def _session(fake: FakeService) -> Iterator[str]:
    body = json.dumps({"machine_id": DEFAULT_MACHINE_ID}).encode()
    created = _in_memory(fake, "POST", "/session", body)
    assert created.status == 200
    yield json.loads(created.body)["session_id"]


def _create_body(timeout_json: str) -> bytes:
    return f'{{"machine_id":"{DEFAULT_MACHINE_ID}","timeout":{timeout_json}}}'.encode()


def _too_large(loc: list[str], value: Any) -> dict[str, Any]:
    item = {"type": "int_parsing_size", "loc": loc, "msg": TOO_LARGE, "input": value}
    return {"detail": [item]}


# Each as the JSON text of the field and the value pydantic echoes back as "input".
TOO_LARGE_NUMBERS: Final = [
    pytest.param(json.dumps("9" * 5000), "9" * 5000, id="5000-digit string"),
    pytest.param(json.dumps("-" + "9" * 4300), "-" + "9" * 4300, id="4300 digits and a minus"),
    pytest.param(json.dumps("9" * 4301 + ".5"), "9" * 4301 + ".5", id="long head, then more"),
    pytest.param("1e300", 1e300, id="huge exponent"),
    pytest.param("-1e19", -1e19, id="below the 64-bit range"),
    pytest.param("9223372036854775808.0", 9223372036854775808.0, id="2**63 as a float"),
]


@pytest.mark.parametrize("send", SENDERS)
@pytest.mark.parametrize(("field", "value"), TOO_LARGE_NUMBERS)
def test_numbers_too_large_to_parse_are_pydantics_422_on_create(
    send: Send, field: str, value: Any
) -> None:
    """Bug: a 5000-digit numeric string got a traceback and no answer (Python's int() limit)."""
    fake = FakeService()
    answer = send(fake, "POST", "/session", _create_body(field))
    assert answer.status == 422
    assert json.loads(answer.body) == _too_large(["body", "timeout"], value)
    assert fake.live_sessions() == ()  # nothing was started


@pytest.mark.parametrize("send", SENDERS)
@pytest.mark.parametrize(("field", "value"), TOO_LARGE_NUMBERS)
def test_numbers_too_large_to_parse_are_pydantics_422_on_extend(
    send: Send, field: str, value: Any
) -> None:
    fake = FakeService()
    with _session(fake) as session_id:
        before = fake.live_sessions()[0].timeout_end
        body = f'{{"minutes":{field}}}'.encode()
        answer = send(fake, "POST", f"/session/{session_id}/increase-timeout", body)
    assert answer.status == 422
    assert json.loads(answer.body) == _too_large(["body", "minutes"], value)
    assert fake.live_sessions()[0].timeout_end == before


@pytest.mark.parametrize("send", SENDERS)
@pytest.mark.parametrize(
    "body",
    [
        pytest.param(_create_body("9" * 5000), id="5000-digit JSON number"),
        pytest.param(_create_body("-" + "1" * 4301), id="4301-digit negative JSON number"),
        pytest.param(b'{"machine_id":"\xff\xfe"}', id="not UTF-8"),
        pytest.param(b"[" * 100_000, id="nested too deeply"),
    ],
)
def test_a_body_fastapi_cannot_parse_is_its_400(send: Send, body: bytes) -> None:
    """Python's json refuses these with a ValueError that is not a JSONDecodeError (or a
    RecursionError); FastAPI answers any such with 400, not with a 422."""
    fake = FakeService()
    answer = send(fake, "POST", "/session", body)
    assert (answer.status, answer.body) == (400, CANNOT_PARSE)
    assert fake.live_sessions() == ()


@pytest.mark.parametrize("send", SENDERS)
def test_a_body_that_is_not_an_object_is_the_422_echoing_it(send: Send) -> None:
    fake = FakeService()
    answer = send(fake, "POST", "/session", b'[1,"x"]')
    assert answer.status == 422
    message = "Input should be a valid dictionary or object to extract fields from"
    item = {"type": "model_attributes_type", "loc": ["body"], "msg": message, "input": [1, "x"]}
    assert json.loads(answer.body) == {"detail": [item]}
    assert fake.live_sessions() == ()


@pytest.mark.parametrize("send", SENDERS)
@pytest.mark.parametrize("field", ["1e400", "-1e400", "NaN", "Infinity", "-Infinity"])
def test_a_422_echoing_a_non_finite_number_is_the_plain_500(send: Send, field: str) -> None:
    """pydantic says ``finite_number``, but Starlette cannot render the item's ``input`` (no NaN
    in JSON), so the live server's answer is its unhandled-error 500, never invalid JSON."""
    fake = FakeService()
    answer = send(fake, "POST", "/session", _create_body(field))
    assert (answer.status, answer.body) == (500, b"Internal Server Error")
    assert answer.headers[0][1].startswith("text/plain")
    assert fake.live_sessions() == ()


@pytest.mark.parametrize(
    ("text", "minutes"),
    [
        ("0" * 5000 + "20", 20),  # leading zeros do not count against the limit
        ("  20.000 ", 20),  # whitespace and decimal zeros are stripped
        ("-0", 15),  # zero: the default timeout
        ("+" + "0" * 4300 + "7", 7),
    ],
)
def test_strings_pydantic_parses_start_a_session(text: str, minutes: int) -> None:
    fake = FakeService()
    answer = _in_memory(fake, "POST", "/session", _create_body(json.dumps(text)))
    assert answer.status == 200, answer.body
    assert fake.live_sessions()[0].timeout == minutes


def test_the_limit_is_4300_characters_of_the_leading_integer() -> None:
    longest = "1" + "0" * (MAX_INT_CHARS - 1)
    assert lax_int(longest, ["x"]) == (10 ** (MAX_INT_CHARS - 1), None)
    assert lax_int("-" + longest[:-1], ["x"]) == (-(10 ** (MAX_INT_CHARS - 2)), None)
    for too_long in (longest + "0", "-" + longest, longest + "0.0", longest + "0 "):
        value, problem = lax_int(too_long, ["x"])
        assert value is None
        assert problem is not None
        assert problem["type"] == "int_parsing_size"
    # Not a JSON integer at the start (a plus, leading zeros): past the limit, only unparsable.
    for odd in ("+" + longest + "0", "0" + longest + "0", " " + longest + "0"):
        problem = lax_int(odd, ["x"])[1]
        assert problem is not None
        assert problem["type"] == "int_parsing"


def _number_texts() -> st.SearchStrategy[str]:
    digits = st.text("0123456789", min_size=1, max_size=6000)
    signed = st.builds(lambda sign, d: sign + d, st.sampled_from(["", "-", "+", " ", "0"]), digits)
    tail = st.sampled_from(["", ".0", ".5", "e5", "e999", " ", "_1", "x"])
    return st.builds(lambda head, end: head + end, signed, tail)


_FIELD_VALUES: Final = st.one_of(
    _number_texts().map(json.dumps),  # as a JSON string
    _number_texts(),  # as raw JSON text (often not JSON at all)
    st.floats().map(json.dumps),  # NaN and infinities included
)


@settings(max_examples=150, deadline=None)
@given(timeout=_FIELD_VALUES, minutes=_FIELD_VALUES)
@example(timeout="0", minutes="0")
@example(timeout="-1", minutes="-5")
@example(timeout="1441", minutes="1441")
@example(timeout="9" * 6000, minutes="NaN")
@example(timeout='"15"', minutes="1e999")
def test_any_number_in_a_body_gets_an_answer_the_live_server_could_give(
    timeout: str, minutes: str
) -> None:
    """Whatever number text a body holds, the fake answers (never raises) with a status the live
    server uses for it, and a JSON body that is strict JSON (no NaN, no Infinity)."""
    fake = FakeService()
    created = fake.handle(
        HttpRequest(
            "POST",
            "/session",
            headers=(("Authorization", f"Bearer {KEY}"),),
            body=_create_body(timeout),
        )
    )
    with _session(fake) as session_id:
        extended = fake.handle(
            HttpRequest(
                "POST",
                f"/session/{session_id}/increase-timeout",
                headers=(("Authorization", f"Bearer {KEY}"),),
                body=f'{{"minutes":{minutes}}}'.encode(),
            )
        )
    for answer in (created, extended):
        assert answer.status in {200, 400, 422, 500}
        if answer.headers[0][1] == "application/json":
            json.loads(answer.body, parse_constant=_refuse_constant)


def _refuse_constant(name: str) -> None:
    raise AssertionError(f"not JSON: {name}")
