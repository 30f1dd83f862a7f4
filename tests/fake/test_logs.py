"""The fake's session logs (cdsessions/fake/logs.py): ``GET /v2/stream-logs`` serves every line
written so far as Server-Sent Events a client reads, and a missing ``session_id`` is FastAPI's
422 naming it."""

from __future__ import annotations

import json
from datetime import UTC, datetime

from returns.result import Success

from cdsessions import CreateSessionBody, SessionsClient
from cdsessions._core.wire import HttpRequest
from cdsessions.fake import FakeService, FakeTransport, ManualClock

KEY = "fake-key-logs"
START = datetime(2025, 11, 2, 12, 0, tzinfo=UTC)


def _client(service: FakeService) -> SessionsClient:
    return SessionsClient(KEY, transport=FakeTransport(service), retry=False)


def test_the_lines_written_are_what_the_client_reads_with_their_times() -> None:
    service = FakeService(clock=ManualClock(START))
    client = _client(service)
    created = client.create(CreateSessionBody(machine_id=FakeService.DEFAULT_MACHINE_ID))
    assert isinstance(created, Success), created
    session_id = created.unwrap().session_id
    assert service.log(session_id, "error", "out of memory")
    read = client.logs(session_id)
    assert isinstance(read, Success), read
    lines = [(line.timestamp, line.level, line.message) for line in read.unwrap()]
    assert lines == [(START, "info", "Creating session..."), (START, "error", "out of memory")]


def test_a_missing_session_id_is_fastapis_422_naming_it() -> None:
    service = FakeService()
    answer = service.handle(
        HttpRequest("GET", "/v2/stream-logs", headers=(("Authorization", f"Bearer {KEY}"),))
    )
    assert answer.status == 422
    (item,) = json.loads(answer.body)["detail"]
    assert (item["type"], item["loc"]) == ("missing", ["query", "session_id"])
