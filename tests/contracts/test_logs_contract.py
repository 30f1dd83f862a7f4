"""The log stream's contract (contracts/logs.contract.json), checked both ways with Hypothesis:
every event the contract allows is read as the line it describes (or ends the reading, for a
marker), the builder sends what the contract asks for, and the fake serves only what the
contract allows."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Final
from urllib.parse import parse_qsl

import pytest
from hypothesis import example, given, settings
from hypothesis import strategies as st
from returns.result import Success

from cdsessions import DecodeFailed, SessionsClient
from cdsessions._core.logs import FOLLOW, LogReading, build_logs
from cdsessions._core.sse import SseParser
from cdsessions._core.wire import HttpRequest, HttpResponse
from cdsessions.fake import FakeService, FakeTransport, ManualClock
from cdsessions.models import CreateSessionBody
from cdsessions.testing import expect_failure, expect_success

pytestmark = pytest.mark.contract

CONTRACT: Final = json.loads(
    (Path(__file__).parents[2] / "contracts" / "logs.contract.json").read_text(encoding="utf-8")
)
OK: Final = CONTRACT["responses"]["200"]
LINE: Final = OK["event_data"]["line"]
MARKERS: Final = OK["event_data"]["marker"]["properties"]["type"]["enum"]
PROPERTIES: Final = settings(max_examples=150, deadline=None)
KEY: Final = "test-key-0123456789"

TEXT: Final = st.text(st.characters(codec="utf-8"), max_size=60)
MOMENTS: Final = st.datetimes(
    min_value=datetime(2000, 1, 1), max_value=datetime(2100, 1, 1), timezones=st.just(UTC)
)


def _stamp(moment: datetime) -> str:
    return moment.isoformat().replace("+00:00", "Z")


def _conforms_to_line(data: Any) -> bool:
    if not isinstance(data, dict) or set(LINE["required"]) - set(data):
        return False
    if not all(isinstance(data[name], str) for name in LINE["properties"]):
        return False
    datetime.fromisoformat(data["timestamp"])  # the date-time format
    return True


def _events(body: bytes) -> list[Any]:
    parser = SseParser()
    events = parser.feed(body)
    assert isinstance(events, list)
    assert parser.finish()
    return [json.loads(event.data) for event in events]


@PROPERTIES
@given(st.lists(st.tuples(TEXT, TEXT, MOMENTS), max_size=8), st.sampled_from([None, *MARKERS]))
@example([], None)
@example([("", "", datetime(2000, 1, 1, tzinfo=UTC))], MARKERS[0])
@example([("\U0001f600" * 60, "\n\x1b", datetime(2000, 1, 1, tzinfo=UTC))], None)
def test_every_event_the_contract_allows_is_read_as_its_line(
    lines: list[tuple[str, str, datetime]], marker: str | None
) -> None:
    body = b"".join(
        b"data: "
        + json.dumps({"message": m, "level": lv, "timestamp": _stamp(t)}).encode()
        + b"\n\n"
        for m, lv, t in lines
    )
    if marker is not None:
        body += b"data: " + json.dumps({"type": marker}).encode() + b"\n\n"
    reading = LogReading("logs", FOLLOW)
    reading.take(Success(HttpResponse(200, (("content-type", OK["content_type"]),))))
    got = [expect_success(r) for r in reading.take(Success(body))]
    assert [(x.message, x.level, x.timestamp) for x in got] == lines
    assert reading.done == (marker is not None)


@PROPERTIES
@given(st.dictionaries(st.sampled_from(sorted(LINE["properties"])), TEXT, max_size=2))
@example({})
def test_a_line_missing_what_the_contract_requires_is_a_decode_failure(
    data: dict[str, str],
) -> None:
    reading = LogReading("logs", FOLLOW)
    reading.take(Success(HttpResponse(200, (("content-type", OK["content_type"]),))))
    [failed] = reading.take(Success(b"data: " + json.dumps(data).encode() + b"\n\n"))
    expect_failure(failed, DecodeFailed)


@PROPERTIES
@given(
    st.text(st.characters(codec="utf-8", exclude_categories=["Cc"]), min_size=1, max_size=80),
    st.none() | st.sampled_from(["info", "error", "warning", "debug"]),
)
@example("-x", None)
@example("--help", "info")
@example("--", None)
@example("x" * 80, "debug")
@example("\U0001f600", None)
@example(" ", None)
@example("..", None)
def test_the_builder_sends_what_the_contract_describes(session_id: str, level: str | None) -> None:
    built = build_logs(session_id, level)
    if not isinstance(built, Success):
        return  # refused before sending (a blank id, "." and ".."): nothing to check
    request: HttpRequest = built.unwrap()
    assert (request.method, request.path) == (CONTRACT["method"], CONTRACT["path"])
    query = dict(parse_qsl(request.target.partition("?")[2]))
    for name, rule in CONTRACT["query"].items():
        if rule["required"]:
            assert name in query
    assert set(query) <= set(CONTRACT["query"])
    assert query["session_id"] == session_id
    assert query.get("log_level") == level


@PROPERTIES
@given(
    st.lists(st.tuples(st.sampled_from(["info", "error"]), TEXT), max_size=10),
    st.booleans(),
    st.none() | st.sampled_from(["info", "error"]),
)
def test_every_answer_of_the_fake_conforms_to_the_contract(
    written: list[tuple[str, str]], ended: bool, level: str | None
) -> None:
    clock = ManualClock()
    fake = FakeService(clock=clock)
    client = SessionsClient(KEY, transport=FakeTransport(fake), clock=clock)
    session_id = expect_success(
        client.create(CreateSessionBody(machine_id=fake.DEFAULT_MACHINE_ID))
    ).session_id
    for lv, message in written:
        clock.advance(1)
        fake.log(session_id, lv, message)
    if ended:
        fake.end_session(session_id)
    query = (("session_id", session_id),) + ((("log_level", level),) if level else ())
    answer = fake.handle(
        HttpRequest(
            "GET", CONTRACT["path"], query=query, headers=(("Authorization", f"Bearer {KEY}"),)
        )
    )
    assert answer.status == 200
    assert (answer.header("content-type") or "").split(";")[0] == OK["content_type"]
    events = _events(answer.body)
    lines = [e for e in events if "type" not in e]
    assert all(_conforms_to_line(e) for e in lines)
    assert all(e["level"] == level for e in lines if level)
    assert [e["type"] for e in events if "type" in e] == (["stream_complete"] if ended else [])
    missing = fake.handle(
        HttpRequest(
            "GET",
            CONTRACT["path"],
            query=(("session_id", "00000000-0000-4000-8000-00000000dead"),),
            headers=(("Authorization", f"Bearer {KEY}"),),
        )
    )
    assert missing.status == 404
    assert json.loads(missing.body) == CONTRACT["responses"]["404"]["body"]
