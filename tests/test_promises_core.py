"""The core's promises, one small test each, for bugs the rest of the suite let through.

Each test was checked against a deliberate bug in a private copy of the library (named in its
docstring): it fails with the bug and passes without it. Most of it runs in memory; the
transport's tests talk to a scripted server on 127.0.0.1 only.
"""

from __future__ import annotations

import asyncio
import logging
import threading
from collections.abc import Callable
from datetime import UTC, datetime, timedelta, timezone
from typing import Any, Final

import msgspec
import pytest
from returns.result import Failure, Result, Success

from cdsessions import (
    CreateSessionBody,
    DecodeFailed,
    HttpError,
    InvalidRequest,
    MachineGPU,
    RetryPolicy,
    Session,
    SessionsClient,
    Timeout,
    TransportFailed,
)
from cdsessions._core.calls import MAX_LIST_BYTES, MAX_OBJECT_BYTES
from cdsessions._core.decoding import SESSION, decode, decode_session_list, error_from
from cdsessions._core.observe import AttemptFinished, Event
from cdsessions._core.retry import DEFAULT_RETRY, parse_retry_after
from cdsessions._core.servers import SERVERS, refuse_plain_http, resolve_server
from cdsessions._core.text import mask_urls
from cdsessions._core.timeouts import DEFAULT_TIMEOUT, MAX_SECONDS, ready_timeout_from, timeout_from
from cdsessions._core.wire import HttpRequest, HttpResponse
from cdsessions.errors import DEPTH_LIMIT, render
from cdsessions.fake import FakeService, FakeTransport
from cdsessions.models import GPUEventModel
from cdsessions.transports._inline import InlineTransport
from cdsessions.transports._threaded import ThreadedTransport
from cdsessions.transports._urllib3 import Urllib3Transport
from tests.support.hostile import answer, hostile, response

KEY: Final = "sk-promises-core-0123456789"
JSON: Final = (("Content-Type", "application/json"),)
CREATED: Final = b'{"session_id": "s-1", "url": null}'
SESSION_BODY: Final = b'{"session_id": "s-1", "gpu_event_id": "e-1"}'
EXTENDED: Final = b'{"message": "Timeout increased successfully"}'
#: No waiting between attempts: the tests count attempts, they do not time them.
QUICK: Final = RetryPolicy(max_attempts=3, backoff=0, jitter=0)


class Recorder:
    """A transport that answers from a script and records what each send was given."""

    def __init__(self, *answers: Result[HttpResponse, TransportFailed]) -> None:
        self.answers = list(answers)
        self.sent: list[tuple[HttpRequest, Timeout, int]] = []

    def send(self, request: HttpRequest) -> Result[HttpResponse, TransportFailed]:
        timeout = request.timeout
        max_response_bytes = request.max_response_bytes
        self.sent.append((request, timeout, max_response_bytes))
        return self.answers.pop(0) if len(self.answers) > 1 else self.answers[0]

    def close(self) -> None:
        """Nothing to release."""


def ok(body: bytes) -> Result[HttpResponse, TransportFailed]:
    return Success(HttpResponse(200, JSON, body))


def status(code: int, body: bytes = b'{"detail": "no"}') -> Result[HttpResponse, TransportFailed]:
    return Success(HttpResponse(code, JSON, body))


def client_with(transport: Recorder, **options: Any) -> SessionsClient:
    options.setdefault("retry", QUICK)
    return SessionsClient(KEY, transport=transport, **options)


# -- the documented defaults ----------------------------------------------------------------


def test_the_retry_defaults_are_the_documented_ones() -> None:
    """Bugs: a default changed (max_attempts 4, max_retry_after 120, a status dropped)."""
    assert RetryPolicy() == DEFAULT_RETRY
    policy = RetryPolicy()
    assert policy.max_attempts == 3
    assert (policy.backoff, policy.multiplier, policy.max_delay) == (0.5, 2.0, 8.0)
    assert policy.jitter == 0.5
    assert policy.max_retry_after == 60.0
    assert policy.statuses == frozenset({429, 502, 503, 504})
    assert policy.read_statuses == frozenset({500})
    assert policy.allow_duplicates is False


def test_the_timeout_defaults_are_the_documented_ones() -> None:
    """Bugs: Timeout() connect 30, total 60."""
    assert Timeout() == DEFAULT_TIMEOUT == Timeout(connect=10, read=30, total=120)


def test_a_plain_number_sets_connect_and_read_alike_and_keeps_room_for_one_attempt() -> None:
    """Bugs: ``timeout=5`` setting only read; the total not widened for a long number."""
    assert timeout_from(5, DEFAULT_TIMEOUT) == Success(Timeout(connect=5, read=5, total=120))
    # 100 s to connect and 100 s to read do not fit in 120: the total never cuts one attempt.
    assert timeout_from(100, DEFAULT_TIMEOUT) == Success(Timeout(100, 100, 200))


def test_the_local_server_is_the_documented_url() -> None:
    """Bug: ``server="local"`` without the ``/api`` base path."""
    assert SERVERS["local"] == "http://localhost:3011/api"
    assert resolve_server("local") == Success("http://localhost:3011/api")
    assert resolve_server("production") == Success("https://api.comfydeploy.com/api")


def test_an_unparsable_base_url_counts_as_plain_http() -> None:
    """Bug: a base URL that does not parse is taken as https (the safe side is plain)."""
    assert isinstance(refuse_plain_http("not a url", allowed=False), Failure)
    assert refuse_plain_http("not a url", allowed=True) == Success("not a url")


# -- per-call settings ------------------------------------------------------------------------


def test_a_per_call_timeout_reaches_the_transport_and_does_not_stick() -> None:
    """Bugs: the per-call timeout ignored; a per-call override cached as the client's usual
    settings (a later call without options then uses it)."""
    transport = Recorder(ok(SESSION_BODY))
    client = client_with(transport, retry=None)
    client.get("s-1", timeout=7)
    client.get("s-1")
    client.get("s-1", retry=False)
    client.get("s-1")
    timeouts = [timeout for _, timeout, _ in transport.sent]
    assert timeouts[0] == Timeout(connect=7, read=7, total=120)
    assert timeouts[1:] == [DEFAULT_TIMEOUT] * 3


def test_a_per_call_retry_overrides_the_clients_both_ways() -> None:
    """Bug: ``retry=`` of a call ignored in favour of the client's policy."""
    transport = Recorder(status(503))
    client_with(transport).get("s-1", retry=False)
    assert len(transport.sent) == 1
    transport = Recorder(status(503))
    client_with(transport, retry=False).get("s-1", retry=QUICK)
    assert len(transport.sent) == 3
    transport = Recorder(status(503))
    client_with(transport, retry=QUICK).get("s-1")  # and then the client's own applies again
    assert len(transport.sent) == 3


def test_a_per_call_retry_override_does_not_stick() -> None:
    """Bug: a per-call retry override cached as the client's usual settings."""
    transport = Recorder(status(503))
    client = client_with(transport)
    client.get("s-1", retry=False)
    client.get("s-1")
    assert len(transport.sent) == 1 + 3


def test_no_attempt_may_wait_longer_than_the_overall_deadline() -> None:
    """Bug: each attempt sent with the call's whole timeout rather than the one the retry plan
    cut to fit the deadline (a 30 s read inside a 20 s call)."""
    transport = Recorder(status(503), ok(SESSION_BODY))
    client_with(transport, timeout=Timeout(connect=10, read=30, total=20)).get("s-1")
    assert len(transport.sent) == 2
    for _, timeout, _ in transport.sent:
        assert timeout.total is not None
        assert timeout.total <= 20
        assert timeout.read <= timeout.total
        assert timeout.connect == 10


def test_list_may_be_far_larger_than_one_object_and_one_cap_covers_both() -> None:
    """Bugs: list read with the 1 MiB cap of one object; ``max_response_bytes`` ignored."""
    transport = Recorder(ok(b"[]"))
    client = client_with(transport)
    client.list()
    client.get("s-1")
    assert [limit for *_, limit in transport.sent] == [MAX_LIST_BYTES, MAX_OBJECT_BYTES]
    assert MAX_OBJECT_BYTES == 1024 * 1024
    assert MAX_LIST_BYTES == 256 * 1024 * 1024
    transport = Recorder(ok(b"[]"))
    client = client_with(transport, max_response_bytes=5000)
    client.list()
    client.get("s-1")
    assert [limit for *_, limit in transport.sent] == [5000, 5000]


def test_create_that_waits_for_the_server_reads_for_at_least_eleven_minutes() -> None:
    """Bug: the raised read timeout of ``wait_for_server=True`` shortened to 10 minutes (the
    server's own limit: an answer at 10 min would then be cut off)."""
    transport = Recorder(ok(CREATED))
    client_with(transport).create(CreateSessionBody(machine_id="m-1", wait_for_server=True))
    timeout = transport.sent[0][1]
    assert timeout.read >= 11 * 60
    assert timeout.total is not None
    assert timeout.total >= timeout.connect + 11 * 60


@pytest.mark.parametrize(
    ("name", "call"),
    [
        ("create", lambda c: c.create(CreateSessionBody(machine_id="m-1"))),
        ("extend", lambda c: c.extend("s-1", 5)),
    ],
)
@pytest.mark.parametrize("code", [500, 502, 503, 504])
def test_create_and_extend_are_sent_once_after_a_server_error(
    name: str, call: Callable[[SessionsClient], object], code: int
) -> None:
    """Bugs: extend (or create) classed as an idempotent operation and retried on a 5xx."""
    transport = Recorder(status(code), ok(CREATED if name == "create" else EXTENDED))
    result = call(client_with(transport))
    assert len(transport.sent) == 1
    assert isinstance(result, Failure)
    assert isinstance(result.failure(), HttpError)


@pytest.mark.parametrize(
    ("call", "body"),
    [
        (lambda c: c.create(CreateSessionBody(machine_id="m-1")), CREATED),
        (lambda c: c.extend("s-1", 5), EXTENDED),
    ],
)
def test_create_and_extend_are_retried_after_429_and_when_never_sent(
    call: Callable[[SessionsClient], Result[Any, Any]], body: bytes
) -> None:
    """Bug: the 429 (or unsent) rule dropped for the paid operations."""
    unsent = Failure(TransportFailed("x", "connect", "refused", sent=False))
    transport = Recorder(status(429), unsent, ok(body))
    assert isinstance(call(client_with(transport)), Success)
    assert len(transport.sent) == 3


def test_get_and_list_are_retried_on_500_but_cancel_is_not() -> None:
    """Bugs: ``read_statuses`` (500) applied to cancel, or to no operation."""
    calls: list[tuple[Callable[[SessionsClient], object], int]] = [
        (lambda c: c.get("s-1"), 3),
        (lambda c: c.list(), 3),
        (lambda c: c.cancel("s-1"), 1),
    ]
    for call, attempts in calls:
        transport = Recorder(status(500))
        call(client_with(transport))
        assert len(transport.sent) == attempts


# -- decoding ---------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "content_type",
    [None, "application/json", "Application/JSON; charset=UTF-8", "application/problem+json"],
)
def test_json_is_recognised_whatever_its_case_and_when_no_type_is_given(
    content_type: str | None,
) -> None:
    """Bugs: a missing Content-Type refused; the media type compared case-sensitively."""
    headers = () if content_type is None else (("Content-Type", content_type),)
    decoded = decode(HttpResponse(200, headers, SESSION_BODY), SESSION, "get session s-1")
    assert isinstance(decoded, Success)
    assert decoded.unwrap().session_id == "s-1"


def test_a_list_in_the_seed_shape_under_a_wrong_content_type_is_not_decoded() -> None:
    """Bug: the seed fallback of ``list`` ignoring the Content-Type the live decoder refused."""
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
    GPU's enum *name* (``A100_80GB``) handed out instead of its value (``A100-80GB``)."""
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
    """Bugs: ``created_at`` or ``timeout_end`` left in the server's offset, or naive."""
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


def test_an_error_body_without_detail_is_kept_as_text() -> None:
    """Bugs: a JSON error body without ``detail`` (or ``"detail": null``) reported as no
    detail at all; an empty body reported as the empty string rather than none."""
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
    into the error."""
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


def test_a_string_that_is_not_utf8_is_a_decode_failure() -> None:
    """Bug: ``UnicodeDecodeError`` (not a msgspec error) escaping the decoder."""
    body = b'{"session_id": "s-\xff\xfe", "gpu_event_id": "e"}'
    decoded = decode(HttpResponse(200, JSON, body), SESSION, "get session s")
    assert isinstance(decoded, Failure)
    failure = decoded.failure()
    assert isinstance(failure, DecodeFailed)
    assert failure.where == "$"
    listed = decode_session_list(HttpResponse(200, JSON, b"[" + body + b"]"), "list sessions")
    assert isinstance(listed, Failure)
    assert isinstance(listed.failure(), DecodeFailed)


# -- errors -----------------------------------------------------------------------------------


def test_messages_name_the_failure_kind_and_status_hint() -> None:
    """Bugs: a kind's label swapped; the 404 hint lost; ``not_found`` true for other codes."""
    labels = {
        "connect": "could not connect",
        "timeout": "timed out",
        "broken": "connection broken",
        "too_large": "response too large",
        "unmatched": "no recorded response",
    }
    for kind, label in labels.items():
        error = TransportFailed("get session s", kind, "why", sent=True)  # type: ignore[arg-type]
        assert str(error) == f"get session s: {label}: why"
    assert str(HttpError("get session s", 404, None)) == "get session s: not found (404)"
    assert str(HttpError("get session s", 429, None)) == "get session s: rate limited (429)"
    assert HttpError("get session s", 404, "gone").not_found
    assert not HttpError("get session s", 410, "gone").not_found


def test_a_nested_detail_is_shown_exactly_depth_limit_levels_deep() -> None:
    """Bug: one level more (or fewer) than documented shown before ``…``."""
    assert DEPTH_LIMIT == 8
    nested: object = "x"
    for _ in range(DEPTH_LIMIT + 3):
        nested = [nested]
    assert render(nested, 1000) == "[" * DEPTH_LIMIT + "…" + "]" * DEPTH_LIMIT


def test_a_value_of_an_unknown_type_in_a_detail_shows_only_its_type() -> None:
    """Bug: a foreign object's own ``repr`` (which could hold anything) shown in an error."""

    class Secretive:
        def __repr__(self) -> str:
            return KEY

    error = HttpError("get session s", 500, [Secretive()])  # type: ignore[list-item]
    for text in (str(error), repr(error), render([Secretive()])):
        assert KEY not in text
        assert "<Secretive>" in text


# -- redaction --------------------------------------------------------------------------------


def test_the_redacted_request_keeps_everything_but_the_secrets() -> None:
    """Bug: ``redacted()`` dropping a field (the operation observers and logs name)."""
    request = HttpRequest(
        "POST",
        "/session",
        (("a", "b"),),
        (("Authorization", f"Bearer {KEY}"), ("Content-Type", "application/json")),
        b"{}",
        "https://example.invalid/api",
        "create session on machine m",
    )
    shown = request.redacted()
    assert shown == HttpRequest(
        "POST",
        "/session",
        (("a", "b"),),
        (("Authorization", "<redacted>"), ("Content-Type", "application/json")),
        b"{}",
        "https://example.invalid/api",
        "create session on machine m",
    )


def test_observers_see_the_operation_of_each_attempt() -> None:
    """Bug: the events' redacted request losing its ``operation``."""
    seen: list[str] = []
    transport = Recorder(ok(SESSION_BODY))
    client = client_with(transport, observers=[lambda event: seen.append(event.operation)])
    client.get("s-1")
    assert seen == ["get session s-1", "get session s-1"]


def test_a_seed_event_repr_masks_its_tunnel_url() -> None:
    """Bug: ``GPUEventModel.__repr__`` showing ``tunnel_url``."""
    event = GPUEventModel(
        id="e",
        user_id="u",
        org_id=None,
        machine_id=None,
        start_time=None,
        end_time=None,
        gpu=None,
        gpu_provider="modal",  # type: ignore[arg-type]
        tunnel_url="https://tunnel-secret.example.invalid",
    )
    assert "tunnel-secret" not in repr(event)
    assert "<redacted url>" in repr(event)


# -- Retry-After ------------------------------------------------------------------------------


def test_retry_after_in_other_scripts_digits_is_unreadable() -> None:
    """Bug: ``\\d`` without ASCII matching, which reads Arabic-Indic digits as seconds."""
    assert parse_retry_after("\u0661\u0662\u0660", now=0.0) is None
    assert parse_retry_after("120", now=0.0) == 120.0


# -- observers and log lines ------------------------------------------------------------------

#: An id that is a URL: it travels percent-encoded in the path and verbatim in the operation.
URL_ID: Final = "https://tunnel-secret.example.invalid/x"


def _lines(caplog: pytest.LogCaptureFixture) -> list[tuple[int, str]]:
    return [(r.levelno, r.getMessage()) for r in caplog.records if r.name == "cdsessions"]


def test_a_retry_is_one_info_line_naming_the_next_attempt(
    caplog: pytest.LogCaptureFixture,
) -> None:
    """Bugs: the retry logged at DEBUG (invisible at INFO); the attempt number off by one."""
    caplog.set_level(logging.INFO, logger="cdsessions")
    transport = Recorder(status(503), ok(SESSION_BODY))
    client_with(transport).get("s-1")
    info = [text for level, text in _lines(caplog) if level == logging.INFO]
    assert len(info) == 1
    assert info[0].startswith("get session s-1: 503 after ")
    assert info[0].endswith("retrying in 0.00s (attempt 2)")


def test_no_url_reaches_a_log_line_from_the_path_the_operation_or_a_failure(
    caplog: pytest.LogCaptureFixture,
) -> None:
    """Bugs: the request target, the operation of a retry line or a failure's text logged
    unmasked; percent-encoded URLs not recognised as URLs."""
    caplog.set_level(logging.DEBUG, logger="cdsessions")
    lost = Failure(TransportFailed("x", "broken", f"proxy said go to {URL_ID}", sent=True))
    transport = Recorder(status(503), lost, ok(SESSION_BODY))
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
    """Bug: ``AttemptFinished.status`` not reporting the response's status."""
    events: list[Event] = []
    unsent = Failure(TransportFailed("x", "connect", "refused", sent=False))
    transport = Recorder(status(503), unsent, ok(SESSION_BODY))
    client_with(transport, observers=[events.append]).get("s-1")
    finished = [e for e in events if isinstance(e, AttemptFinished)]
    assert [e.status for e in finished] == [503, None, 200]
    assert [e.attempt for e in finished] == [1, 2, 3]
    assert [e.retry_in for e in finished] == [0.0, 0.0, None]


@pytest.mark.parametrize("error", [RuntimeError, KeyError, TypeError, ZeroDivisionError])
def test_an_observer_raising_anything_is_ignored(error: type[Exception]) -> None:
    """Bug: only some exception types of an observer caught, the others escaping the call."""

    def broken(event: Event) -> None:
        raise error("observer bug")

    transport = Recorder(ok(SESSION_BODY))
    result = client_with(transport, observers=[broken]).get("s-1")
    assert isinstance(result, Success)


def test_observers_are_told_even_when_nothing_is_logged(
    caplog: pytest.LogCaptureFixture,
) -> None:
    """Bug: events built only when the ``cdsessions`` logger is at DEBUG, so an observer of
    the caller's hears nothing in a program that does not log (the suite logs at DEBUG)."""
    caplog.set_level(logging.WARNING, logger="cdsessions")
    events: list[Event] = []
    transport = Recorder(status(503), ok(SESSION_BODY))
    client_with(transport, observers=[events.append]).get("s-1")
    assert [type(e).__name__ for e in events] == ["AttemptStarted", "AttemptFinished"] * 2


def test_the_api_key_variable_is_read_when_a_request_is_made(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Bug: ``COMFY_DEPLOY_API_KEY`` read once when the client is made, not per request."""
    monkeypatch.delenv("COMFY_DEPLOY_API_KEY", raising=False)
    transport = Recorder(ok(SESSION_BODY))
    client = SessionsClient(transport=transport, retry=False)
    missing = client.get("s-1")
    assert isinstance(missing, Failure)
    assert transport.sent == []
    monkeypatch.setenv("COMFY_DEPLOY_API_KEY", KEY)
    assert isinstance(client.get("s-1"), Success)
    (request, _, _) = transport.sent[0]
    assert dict(request.headers)["Authorization"] == f"Bearer {KEY}"


# -- edge values ------------------------------------------------------------------------------


@pytest.mark.parametrize("when", ["0001-01-01T00:00:00+01:00", "9999-12-31T23:59:59-01:00"])
def test_a_datetime_utc_cannot_hold_is_a_decode_failure(when: str) -> None:
    """Bug: the ``OverflowError`` of converting to UTC escaping the decoder as an exception."""
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


def test_server_text_becomes_one_line_with_whitespace_runs_collapsed() -> None:
    """Bug: line breaks and runs of spaces in server text kept (or escaped) in messages."""
    error = HttpError("get session s", 500, "upstream\r\n\tfailed   badly\n")
    assert str(error) == "get session s: upstream failed badly (500)"


def test_a_huge_integer_in_a_detail_is_not_written_out() -> None:
    """Bug: an integer past ``sys.get_int_max_str_digits()`` turned into digits (raises)."""
    error = HttpError("get session s", 500, [10**5000])
    assert "-bit integer>" in str(error)
    assert "-bit integer>" in repr(error)


# -- the in-memory fake's one transport rule ----------------------------------------------


def test_the_fake_transport_caps_bodies_like_the_wire() -> None:
    """Bugs: a body of exactly the cap refused; a too-large answer reported as never sent."""
    fake = FakeService()
    request = HttpRequest(
        "GET",
        "/sessions",
        headers=(("Authorization", f"Bearer {KEY}"),),
        base_url="http://127.0.0.1:9/api",
    )
    size = len(fake.handle(request).body)
    at_cap = FakeTransport(fake).send(
        msgspec.structs.replace(
            request, timeout=DEFAULT_TIMEOUT, max_response_bytes=size, operation="list sessions"
        )
    )
    assert isinstance(at_cap, Success)
    over = FakeTransport(fake).send(
        msgspec.structs.replace(
            request, timeout=DEFAULT_TIMEOUT, max_response_bytes=size - 1, operation="list sessions"
        )
    )
    assert isinstance(over, Failure)
    assert over.failure() == TransportFailed(
        "list sessions", "too_large", f"body exceeds {size - 1} bytes", sent=True
    )


# -- the urllib3 transport, against exact bytes on 127.0.0.1 ----------------------------------

WIRE_TIMEOUT: Final = Timeout(connect=2, read=2, total=5)
PAYLOAD: Final = b'{"session_id": "s-1", "gpu_event_id": "e-1", "pad": "' + b"x" * 200 + b'"}'


def _chunked(body: bytes, *extra: str) -> bytes:
    head = response(
        "200 OK", "Content-Type: application/json", "Transfer-Encoding: chunked", *extra
    )
    half = len(body) // 2
    chunks = b"".join(f"{len(p):x}\r\n".encode() + p + b"\r\n" for p in (body[:half], body[half:]))
    return head + chunks + b"0\r\n\r\n"


FRAMINGS: Final = {
    "Content-Length": response(
        "200 OK", "Content-Type: application/json", f"Content-Length: {len(PAYLOAD)}", body=PAYLOAD
    ),
    "chunked": _chunked(PAYLOAD),
    "until close": response(
        "200 OK", "Content-Type: application/json", "Connection: close", body=PAYLOAD
    ),
}


def _get_over_the_wire(data: bytes, limit: int) -> Result[HttpResponse, TransportFailed]:
    transport = Urllib3Transport()
    try:
        with hostile(answer(data)) as server:
            request = HttpRequest("GET", "/session/s-1", base_url=server.base_url)
            return transport.send(
                msgspec.structs.replace(
                    request, timeout=WIRE_TIMEOUT, max_response_bytes=limit, operation="get session"
                )
            )
    finally:
        transport.close()


@pytest.mark.parametrize("framing", FRAMINGS)
def test_a_body_of_exactly_the_cap_is_read_and_one_byte_more_is_too_large(framing: str) -> None:
    """Bugs: the size cap off by one (``>=`` for ``>``), with a Content-Length or without."""
    at_cap = _get_over_the_wire(FRAMINGS[framing], len(PAYLOAD))
    assert isinstance(at_cap, Success)
    assert at_cap.unwrap().body == PAYLOAD
    over = _get_over_the_wire(FRAMINGS[framing], len(PAYLOAD) - 1)
    assert isinstance(over, Failure)
    failure = over.failure()
    assert failure.kind == "too_large"
    assert failure.sent


def test_chunked_framing_overrides_a_content_length() -> None:
    """Bug: a Content-Length read even when the body is chunked (HTTP/1.1 says the
    Transfer-Encoding wins; a proxy may leave both)."""
    data = _chunked(PAYLOAD, f"Content-Length: {len(PAYLOAD) + 50}")
    got = _get_over_the_wire(data, 10_000)
    assert isinstance(got, Success)
    assert got.unwrap().body == PAYLOAD


def test_a_user_agent_that_cannot_be_a_header_is_refused_before_sending() -> None:
    """Bug: the ``user_agent`` option not checked, so a line break in it goes on the wire
    (or fails in the HTTP stack after the key was prepared)."""
    for agent in ("cdsessions\r\nX-Injected: 1", "café/1.0"):
        transport = Recorder(ok(SESSION_BODY))
        result = client_with(transport, user_agent=agent).get("s-1")
        assert isinstance(result, Failure)
        failure = result.failure()
        assert isinstance(failure, InvalidRequest)
        assert failure.field == "user_agent"
        assert transport.sent == []


# -- the async adapters -----------------------------------------------------------------------


class Closable(Recorder):
    closed = 0

    def close(self) -> None:
        self.closed += 1


def test_the_inline_adapter_passes_every_option_on_and_closes_what_it_wraps() -> None:
    """Bugs: ``InlineTransport`` replacing the caller's size cap; ``aclose`` not closing."""
    inner = Closable(ok(b"[]"))
    adapter = InlineTransport(inner)
    request = HttpRequest("GET", "/sessions")
    asyncio.run(
        adapter.send(
            msgspec.structs.replace(
                request, timeout=WIRE_TIMEOUT, max_response_bytes=1234, operation="list"
            )
        )
    )
    assert [(r.path, t, m) for r, t, m in inner.sent] == [(request.path, WIRE_TIMEOUT, 1234)]
    asyncio.run(adapter.aclose())
    assert inner.closed == 1


def test_the_threaded_adapter_closes_its_transport_only_when_it_owns_it() -> None:
    """Bug: ``ThreadedTransport.aclose`` leaving the wrapped transport (its pool) open."""
    owned, shared = Closable(ok(b"[]")), Closable(ok(b"[]"))
    asyncio.run(ThreadedTransport(owned, max_workers=1).aclose())
    asyncio.run(ThreadedTransport(shared, max_workers=1, close_transport=False).aclose())
    assert (owned.closed, shared.closed) == (1, 0)


class Held(Recorder):
    """Answers only once ``release`` is set: keeps the one worker thread busy."""

    def __init__(self) -> None:
        super().__init__(ok(b"[]"))
        self.release = threading.Event()

    def send(self, request: HttpRequest) -> Result[HttpResponse, TransportFailed]:
        self.release.wait(5)
        return super().send(request)


def test_time_waiting_for_a_worker_counts_against_the_attempts_deadline() -> None:
    """Bug: a call queued behind a busy worker given its whole ``total`` again once it runs."""
    inner = Held()
    threaded = ThreadedTransport(inner, max_workers=1)
    request = HttpRequest("GET", "/sessions")
    timeout = Timeout(connect=1, read=1, total=2)

    async def two_calls() -> None:
        first = asyncio.ensure_future(
            threaded.send(
                msgspec.structs.replace(
                    request, timeout=timeout, max_response_bytes=10, operation="1"
                )
            )
        )
        second = asyncio.ensure_future(
            threaded.send(
                msgspec.structs.replace(
                    request, timeout=timeout, max_response_bytes=10, operation="2"
                )
            )
        )
        await asyncio.sleep(0.4)  # the second call waits for the only worker meanwhile
        inner.release.set()
        await asyncio.gather(first, second)
        await threaded.aclose()

    asyncio.run(two_calls())
    totals = [sent_timeout.total for _, sent_timeout, _ in inner.sent]
    assert len(totals) == 2
    assert totals[0] is not None
    assert totals[0] <= 2
    assert totals[1] is not None
    # It waited about 0.4 s of its 2 (counted from when it was queued, just after the sleep
    # began: a little less).
    assert totals[1] <= 2 - 0.3


def test_a_null_body_is_a_decode_failure_and_an_empty_list_is_no_sessions() -> None:
    """Bug: ``null`` from ``list`` taken as "no sessions" (the server answered nothing usable;
    the caller would think nothing is running and billing)."""
    for body in (b"null", b" null\n"):
        listed = decode_session_list(HttpResponse(200, JSON, body), "list sessions")
        assert isinstance(listed, Failure)
        assert isinstance(listed.failure(), DecodeFailed)
        got = decode(HttpResponse(200, JSON, body), SESSION, "get session s")
        assert isinstance(got, Failure)
        assert isinstance(got.failure(), DecodeFailed)
    assert decode_session_list(HttpResponse(200, JSON, b"[]"), "list sessions") == Success([])


def test_a_redirects_location_is_not_in_the_repr_observers_get() -> None:
    """Library bug found here (fixed): a response's repr showed its Location, which can name a
    session's tunnel, so an observer logging ``repr(event)`` wrote the tunnel URL."""
    moved = HttpResponse(
        307,
        (
            ("Location", "https://tunnel-secret.example.invalid/x"),
            ("Content-Location", "https://tunnel-secret.example.invalid/y"),
        ),
        b"",
    )
    events: list[Event] = []
    transport = Recorder(Success(moved))
    result = client_with(transport, observers=[events.append]).get("s-1")
    assert isinstance(result, Failure)
    for text in (repr(moved), *(repr(event) for event in events), str(result), repr(result)):
        assert "tunnel-secret" not in text
    assert moved.header("location") == "https://tunnel-secret.example.invalid/x"  # still readable


def test_a_very_long_timeout_is_clamped_to_twenty_days() -> None:
    """Bug: the clamp raised past what every platform's timed waits accept (2**31 ms)."""
    twenty_days = 20 * 24 * 3600.0
    assert twenty_days == MAX_SECONDS
    assert timeout_from(10**9, DEFAULT_TIMEOUT) == Success(
        Timeout(twenty_days, twenty_days, twenty_days)
    )
    assert ready_timeout_from(10**12) == Success(twenty_days)
    assert MAX_SECONDS * 1000 < 2**31


@pytest.mark.parametrize(("option", "value"), [("max_connections", 0), ("max_response_bytes", 0)])
def test_a_pool_or_cap_of_zero_is_refused_before_sending(option: str, value: int) -> None:
    """Bug: 0 accepted (a pool of no connections waits out every deadline; a cap of no bytes
    fails every call after it was sent)."""
    transport = Recorder(ok(SESSION_BODY))
    result = client_with(transport, **{option: value}).get("s-1")
    assert isinstance(result, Failure)
    failure = result.failure()
    assert isinstance(failure, InvalidRequest)
    assert failure.field == option
    assert transport.sent == []


def test_the_price_table_is_a_read_retried_like_get() -> None:
    """Bug: fetching prices classed as a paid operation, so a 503 is not tried again."""
    fake = FakeService()
    prices = fake.handle(
        HttpRequest("GET", "/platform/gpu-pricing", headers=(("Authorization", f"Bearer {KEY}"),))
    )
    assert prices.status == 200
    transport = Recorder(status(503), status(500), Success(prices))
    assert isinstance(client_with(transport).gpu_pricing(), Success)
    assert len(transport.sent) == 3
