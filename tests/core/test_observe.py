"""Watching a call costs nothing when nobody watches, and changes nothing when someone does.

The events (and the redacted copy of the request they carry) are built only for an observer of
the caller's or a ``cdsessions`` logger enabled for DEBUG; a retry is still logged at INFO on
its own. The transport here is a real one that answers from a script, not a mock.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Sequence
from typing import Final

import pytest
from returns.result import Failure, Result, Success

from cdsessions import RetryPolicy, SessionsClient
from cdsessions._core.observe import AttemptFinished, AttemptStarted, Event, Observer
from cdsessions._core.text import mask_urls
from cdsessions._core.wire import HttpRequest, HttpResponse
from cdsessions.errors import TransportFailed
from tests.support import samples
from tests.support.transports import Recorder, answered, client_with, ok

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


SESSION_BODY: Final = b'{"session_id": "s-1", "gpu_event_id": "e-1"}'


#: An id that is a URL: it travels percent-encoded in the path and verbatim in the operation.
URL_ID: Final = "https://tunnel-secret.example.invalid/x"


def _lines(caplog: pytest.LogCaptureFixture) -> list[tuple[int, str]]:
    return [(r.levelno, r.getMessage()) for r in caplog.records if r.name == "cdsessions"]


def test_observers_see_the_operation_of_each_attempt() -> None:
    """Bug: the events' redacted request losing its ``operation``.

    Found by applying a deliberate bug the older tests let through."""
    seen: list[str] = []
    transport = Recorder(ok(SESSION_BODY))
    client = client_with(transport, observers=[lambda event: seen.append(event.operation)])
    client.get("s-1")
    assert seen == ["get session s-1", "get session s-1"]


def test_a_retry_is_one_info_line_naming_the_next_attempt(
    caplog: pytest.LogCaptureFixture,
) -> None:
    """Bugs: the retry logged at DEBUG (invisible at INFO); the attempt number off by one.

    Found by applying a deliberate bug the older tests let through."""
    caplog.set_level(logging.INFO, logger="cdsessions")
    transport = Recorder(answered(503), ok(SESSION_BODY))
    client_with(transport).get("s-1")
    info = [text for level, text in _lines(caplog) if level == logging.INFO]
    assert len(info) == 1
    assert info[0].startswith("get session s-1: 503 after ")
    assert info[0].endswith("retrying in 0.00s (attempt 2)")


def test_no_url_reaches_a_log_line_from_the_path_the_operation_or_a_failure(
    caplog: pytest.LogCaptureFixture,
) -> None:
    """Bugs: the request target, the operation of a retry line or a failure's text logged
    unmasked; percent-encoded URLs not recognised as URLs.

    Found by applying a deliberate bug the older tests let through."""
    caplog.set_level(logging.DEBUG, logger="cdsessions")
    lost = Failure(TransportFailed("x", "broken", f"proxy said go to {URL_ID}", sent=True))
    transport = Recorder(answered(503), lost, ok(SESSION_BODY))
    client_with(transport).get(URL_ID)
    lines = _lines(caplog)
    assert len(lines) == 6  # started and finished, three times
    for _, text in lines:
        assert "tunnel-secret" not in text
        assert "<masked>" in text
    assert mask_urls("GET /session/https%3A%2F%2Ftunnel-secret.example.invalid%2Fx") == (
        "GET /session/https%3A%2F%2F<masked>"
    )


def test_attempt_finished_carries_the_status_or_none() -> None:
    """Bug: ``AttemptFinished.status`` not reporting the response's status.

    Found by applying a deliberate bug the older tests let through."""
    events: list[Event] = []
    unsent = Failure(TransportFailed("x", "connect", "refused", sent=False))
    transport = Recorder(answered(503), unsent, ok(SESSION_BODY))
    client_with(transport, observers=[events.append]).get("s-1")
    finished = [e for e in events if isinstance(e, AttemptFinished)]
    assert [e.status for e in finished] == [503, None, 200]
    assert [e.attempt for e in finished] == [1, 2, 3]
    assert [e.retry_in for e in finished] == [0.0, 0.0, None]


@pytest.mark.parametrize("error", [RuntimeError, KeyError, TypeError, ZeroDivisionError])
def test_an_observer_raising_anything_is_ignored(error: type[Exception]) -> None:
    """Bug: only some exception types of an observer caught, the others escaping the call.

    Found by applying a deliberate bug the older tests let through."""

    def broken(event: Event) -> None:
        raise error("observer bug")

    transport = Recorder(ok(SESSION_BODY))
    result = client_with(transport, observers=[broken]).get("s-1")
    assert isinstance(result, Success)


def test_observers_are_told_even_when_nothing_is_logged(
    caplog: pytest.LogCaptureFixture,
) -> None:
    """Bug: events built only when the ``cdsessions`` logger is at DEBUG, so an observer of
    the caller's hears nothing in a program that does not log (the suite logs at DEBUG).

    Found by applying a deliberate bug the older tests let through."""
    caplog.set_level(logging.WARNING, logger="cdsessions")
    events: list[Event] = []
    transport = Recorder(answered(503), ok(SESSION_BODY))
    client_with(transport, observers=[events.append]).get("s-1")
    assert [type(e).__name__ for e in events] == ["AttemptStarted", "AttemptFinished"] * 2
