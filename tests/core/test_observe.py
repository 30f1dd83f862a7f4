"""Watching a call costs nothing when nobody watches, and changes nothing when someone does.

The events (and the redacted copy of the request they carry) are built only for an observer of
the caller's or a ``cdsessions`` logger enabled for DEBUG; a retry is still logged at INFO on
its own. The transport here is a real one that answers from a script, not a mock.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Sequence

import pytest
from returns.result import Result, Success

from cdsessions import RetryPolicy, SessionsClient
from cdsessions._core.observe import AttemptFinished, AttemptStarted, Event, Observer
from cdsessions._core.wire import HttpRequest, HttpResponse
from cdsessions.errors import TransportFailed
from tests.support import samples

_QUICK_RETRY = RetryPolicy(backoff=0.001, jitter=0)


class Scripted:
    """Answers with the given statuses in turn, a session body each time."""

    def __init__(self, *statuses: int) -> None:
        self._statuses = list(statuses)

    def send(self, request: HttpRequest) -> Result[HttpResponse, TransportFailed]:
        status = self._statuses.pop(0)
        body = samples.LIVE_SESSION.encode() if status == 200 else b"{}"
        return Success(HttpResponse(status, (("Content-Type", "application/json"),), body))

    def close(self) -> None:
        """Nothing to release."""


@pytest.fixture
def redactions(monkeypatch: pytest.MonkeyPatch) -> list[HttpRequest]:
    """Every request a redacted copy was made of, in order."""
    made: list[HttpRequest] = []
    original = HttpRequest.redacted

    def counting(self: HttpRequest) -> HttpRequest:
        made.append(self)
        return original(self)

    monkeypatch.setattr(HttpRequest, "redacted", counting)
    return made


def _client(*statuses: int, observers: Sequence[Observer] = ()) -> SessionsClient:
    return SessionsClient(
        "key", transport=Scripted(*statuses), retry=_QUICK_RETRY, observers=observers
    )


def test_nothing_is_described_when_nobody_watches(
    redactions: list[HttpRequest], caplog: pytest.LogCaptureFixture
) -> None:
    with caplog.at_level(logging.WARNING, logger="cdsessions"):
        assert isinstance(_client(200).get(samples.SESSION_ID), Success)
        assert isinstance(_client(503, 200).get(samples.SESSION_ID), Success)  # INFO is off
    assert redactions == []
    assert [r for r in caplog.records if r.name == "cdsessions"] == []


def test_an_observer_sees_both_events_of_every_attempt(
    redactions: list[HttpRequest], caplog: pytest.LogCaptureFixture
) -> None:
    events: list[Event] = []
    with caplog.at_level(logging.WARNING, logger="cdsessions"):
        assert isinstance(
            _client(503, 200, observers=[events.append]).get(samples.SESSION_ID), Success
        )
    assert [type(e) for e in events] == [
        AttemptStarted,
        AttemptFinished,
        AttemptStarted,
        AttemptFinished,
    ]
    assert len(redactions) == 1  # one redacted copy per call, shared by its events
    assert all(dict(e.request.headers)["Authorization"] == "<redacted>" for e in events)


def test_debug_logging_alone_describes_every_attempt(
    redactions: list[HttpRequest], caplog: pytest.LogCaptureFixture
) -> None:
    with caplog.at_level(logging.DEBUG, logger="cdsessions"):
        assert isinstance(_client(200).get(samples.SESSION_ID), Success)
    lines = [r.getMessage() for r in caplog.records if r.name == "cdsessions"]
    path = f"/session/{samples.SESSION_ID}"
    assert lines[0] == f"GET {path}: attempt 1"
    assert re.fullmatch(rf"GET {path}: 200 after \d+\.\d{{3}}s \(attempt 1\)", lines[1])
    assert len(redactions) == 1


def test_a_retry_is_logged_at_info_without_debug_or_observers(
    redactions: list[HttpRequest], caplog: pytest.LogCaptureFixture
) -> None:
    with caplog.at_level(logging.INFO, logger="cdsessions"):
        assert isinstance(_client(503, 503, 200).get(samples.SESSION_ID), Success)
    records = [r for r in caplog.records if r.name == "cdsessions"]
    assert [r.levelname for r in records] == ["INFO", "INFO"]
    assert re.fullmatch(
        rf"get session {samples.SESSION_ID}: 503 after \d+\.\d{{3}}s, "
        r"retrying in 0\.00s \(attempt 2\)",
        records[0].getMessage(),
    )
    assert records[1].getMessage().endswith("(attempt 3)")
    assert len(redactions) == 1  # described from the first retry on, once
