"""One test (or a few) for each deliberate bug an outside review applied and the suite did not
catch (issue 14). Each docstring names the bug it is there to catch.

Time-zone bugs are caught in any run: the ``far_from_utc`` fixture sets ``TZ`` to UTC+14 for the
test (a POSIX rule, which needs no tz database), so a naive date-time read as local time is 14
hours off. ``nox -s tests`` runs the whole suite under that zone too.
"""

from __future__ import annotations

import email.utils
import threading
import time
from collections.abc import Callable, Iterator
from datetime import UTC, datetime
from typing import Final

import msgspec
import pytest
from returns.result import Failure, Result, Success

from cdsessions import CreateSessionBody, SessionsClient
from cdsessions._core.decoding import CREATED, DELETED, SESSION, decode, decode_session_list
from cdsessions._core.retry import parse_retry_after
from cdsessions._core.servers import is_loopback
from cdsessions._core.timeouts import CREATE_AND_WAIT_READ, Timeout
from cdsessions._core.wire import HttpRequest, HttpResponse
from cdsessions.errors import DecodeFailed, HttpError, TransportFailed
from cdsessions.fake import DEFAULT_MACHINE_ID, FakeService, FakeTransport
from cdsessions.lifecycle import SessionScope
from cdsessions.models import GPUEventModel
from cdsessions.transports._urllib3 import Urllib3Transport
from tests.support.loopback import Raw, Reply, serve

KEY: Final = "sk-surviving-bugs-0123456789"
BODY: Final = CreateSessionBody(machine_id=DEFAULT_MACHINE_ID)
JSON: Final = (("Content-Type", "application/json"),)
#: UTC+14, as far from UTC as any real zone (Pacific/Kiritimati), as a POSIX TZ rule.
FAR_FROM_UTC: Final = "<+14>-14"


@pytest.fixture
def far_from_utc(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """Local time is UTC+14 for the test (POSIX only: ``time.tzset``)."""
    if not hasattr(time, "tzset"):  # pragma: no cover - Windows
        pytest.skip("time.tzset is POSIX only")
    monkeypatch.setenv("TZ", FAR_FROM_UTC)
    time.tzset()
    try:
        assert time.localtime(0).tm_hour == 14  # the zone really is in force
        yield
    finally:
        monkeypatch.undo()
        time.tzset()


def _response(
    body: bytes, status: int = 200, headers: tuple[tuple[str, str], ...] = JSON
) -> HttpResponse:
    return HttpResponse(status=status, headers=headers, body=body)


# -- naive date-times mean UTC, in any local zone ----------------------------------------------


def test_a_naive_timeout_end_means_utc_whatever_the_local_zone(far_from_utc: None) -> None:
    """Bug: a naive date-time read as local time (``astimezone`` on a naive value)."""
    body = b'{"session_id":"s","gpu_event_id":"e","timeout_end":"2025-11-02T10:15:00"}'
    session = decode(_response(body), SESSION, "get session s").unwrap()
    assert session.timeout_end == datetime(2025, 11, 2, 10, 15, tzinfo=UTC)
    assert session.timeout_end is not None
    assert session.timeout_end.utcoffset() is not None
    assert session.timeout_end.hour == 10


def test_naive_seed_list_times_mean_utc_whatever_the_local_zone(far_from_utc: None) -> None:
    """Bug: the seed-shaped list's naive start/end times read as local time."""
    item = (
        '{{"id":"{0}","user_id":"u","org_id":null,"machine_id":"m","start_time":'
        '"2025-11-02T12:00:00","end_time":null,"gpu":"A10G","gpu_provider":"modal"{1}}}'
    )
    created = ',"created_at":"2025-11-02T11:59:00"'
    body = f"[{item.format('e1', '')},{item.format('e2', created)}]"
    first, second = decode_session_list(_response(body.encode()), "list sessions").unwrap()
    assert first.created_at == datetime(2025, 11, 2, 12, 0, tzinfo=UTC)  # from start_time
    assert second.created_at == datetime(2025, 11, 2, 11, 59, tzinfo=UTC)


def test_a_retry_after_date_in_the_minus_0000_form_is_gmt(far_from_utc: None) -> None:
    """Bug: ``-0000`` parses as a naive date-time, then read as local time (14 h off here)."""
    moment = datetime(2015, 10, 21, 7, 28, tzinfo=UTC).timestamp()
    assert parse_retry_after("Wed, 21 Oct 2015 07:28:00 -0000", moment - 30) == 30.0
    assert parse_retry_after("Wed, 21 Oct 2015 07:28:00 GMT", moment - 30) == 30.0
    assert parse_retry_after("Wed, 21 Oct 2015 07:28:00 +0100", moment - 30) == 0.0  # past
    assert parse_retry_after(email.utils.formatdate(moment + 5, usegmt=True), moment) == 5.0


# -- date-times with an offset are handed out in UTC -------------------------------------------


def test_gpu_event_model_date_times_with_an_offset_are_converted_to_utc() -> None:
    """Bug: a GPUEventModel field left with its offset (or its offset dropped)."""
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


# -- 2xx answers -----------------------------------------------------------------------------


def test_a_2xx_without_content_type_is_decoded_from_its_body() -> None:
    """Bug: a success without ``Content-Type`` refused as "not JSON"."""
    response = _response(b'{"session_id":"s","url":null}', headers=())
    assert decode(response, CREATED, "create session").unwrap().session_id == "s"


@pytest.mark.parametrize("status", [200, 201, 202])
def test_every_2xx_with_a_json_body_is_a_success(status: int) -> None:
    """Bug: only 200 counted as success (201 Created, 202 Accepted treated as failures)."""
    response = _response(b'{"session_id":"s","url":null}', status=status)
    assert decode(response, CREATED, "create session").unwrap().session_id == "s"


def test_a_204_is_not_an_http_failure_but_its_empty_body_cannot_be_the_model() -> None:
    """Bug: 204 reported as an HTTP error. It is a success status; an empty body cannot decode
    into the response model, and that is what the failure says."""
    result = decode(_response(b"", status=204, headers=()), DELETED, "cancel session s")
    assert isinstance(result, Failure)
    error = result.failure()
    assert type(error) is DecodeFailed
    assert error.status == 204


def test_a_403_names_the_account_as_the_problem() -> None:
    """Bug: the 403 hint dropped (only 401 got one)."""
    text = str(HttpError("create session", 403, "Insufficient balance for requested operation"))
    assert "Insufficient balance for requested operation (403)" in text
    assert "the account may not do this" in text
    assert "the account" not in str(HttpError("create session", 400, "Bad"))


@pytest.mark.parametrize(
    ("status", "expected"),
    [
        (401, "create session: check the API key (COMFY_DEPLOY_API_KEY) (401)"),
        (403, "create session: the account may not do this (403)"),
        (500, "create session: HTTP error (500)"),
    ],
)
def test_an_error_without_detail_states_its_hint_once(status: int, expected: str) -> None:
    """Bug: with no detail the hint stood in for it and was then appended again."""
    assert str(HttpError("create session", status, None)) == expected


# -- the body size cap -------------------------------------------------------------------------

CAP: Final = 64


def _exactly(size: int) -> bytes:
    return b'"' + b"x" * (size - 2) + b'"'


def _fetch(base_url: str, limit: int) -> Result[HttpResponse, TransportFailed]:
    transport = Urllib3Transport()
    try:
        return transport.send(
            msgspec.structs.replace(
                HttpRequest("GET", "/sessions", base_url=base_url),
                timeout=Timeout(2, 2, total=5),
                max_response_bytes=limit,
                operation="list sessions",
            )
        )
    finally:
        transport.close()


@pytest.mark.parametrize("framing", ["content-length", "until-close"])
def test_a_body_exactly_at_the_cap_is_read_and_one_byte_more_is_refused(framing: str) -> None:
    """Bug: the cap compared with ``>=`` (a body exactly at the cap refused) or off by one the
    other way, on either read path (declared length, or read until the connection closes)."""

    def answer(size: int) -> Reply | Raw:
        body = _exactly(size)
        if framing == "content-length":
            return Reply(200, body)
        return Raw(b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\n\r\n" + body)

    for size, accepted in ((CAP, True), (CAP + 1, False)):
        with serve(lambda _, size=size: answer(size)) as server:  # type: ignore[misc]
            result = _fetch(server.base_url, CAP)
        if accepted:
            assert result.unwrap().body == _exactly(CAP)
        else:
            assert isinstance(result, Failure), size
            assert (result.failure().kind, result.failure().sent) == ("too_large", True)


# -- sent=False when nothing can have reached the server -----------------------------------------


def test_a_call_waiting_for_a_connection_when_the_transport_closes_is_not_sent() -> None:
    """Bug: a call still waiting for a pooled connection when ``close()`` runs reported
    ``sent=True`` (a create would then be taken as possibly made, never as safe to repeat)."""
    results: dict[str, Result[HttpResponse, TransportFailed]] = {}
    with serve(lambda _: Reply(200, b"[]", delay=0.5)) as server:
        transport = Urllib3Transport(max_connections=1)
        request = HttpRequest("GET", "/sessions", base_url=server.base_url)

        def send(name: str) -> None:
            results[name] = transport.send(
                msgspec.structs.replace(
                    request,
                    timeout=Timeout(2, 2, total=5),
                    max_response_bytes=1000,
                    operation="list sessions",
                )
            )

        first = threading.Thread(target=send, args=("first",))
        first.start()
        assert _until(lambda: len(server.received) == 1)  # holds the only connection
        second = threading.Thread(target=send, args=("second",))
        second.start()
        assert _until(lambda: transport.queued == 1)  # waits for it
        transport.close()
        second.join(5)
        first.join(5)
        assert len(server.received) == 1
    waiting = results["second"]
    assert isinstance(waiting, Failure)
    assert (waiting.failure().kind, waiting.failure().sent) == ("connect", False)
    assert "closed" in waiting.failure().problem


def _until(condition: Callable[[], bool], seconds: float = 5.0) -> bool:
    deadline = time.monotonic() + seconds
    while not condition():
        if time.monotonic() > deadline:
            return False
        time.sleep(0.01)
    return True


def test_an_invalid_header_value_is_not_sent_and_says_so() -> None:
    """Bug: a header value http.client refuses (a newline) reported ``sent=True``."""
    with serve(lambda _: Reply(200, b"[]")) as server:
        transport = Urllib3Transport()
        try:
            result = transport.send(
                msgspec.structs.replace(
                    HttpRequest(
                        "GET",
                        "/sessions",
                        headers=(("X-Note", "a\r\nX-Evil: 1"),),
                        base_url=server.base_url,
                    ),
                    timeout=Timeout(2, 2, total=5),
                    max_response_bytes=1000,
                    operation="list sessions",
                )
            )
        finally:
            transport.close()
        assert server.received == []
    assert isinstance(result, Failure)
    error = result.failure()
    assert (error.kind, error.sent) == ("broken", False)
    assert "X-Evil" not in str(error)


# -- the session scope's cancel ----------------------------------------------------------------


class DeletesAnswer:
    """The fake in memory, except that the next DELETEs get the given answers (a response, or
    an exception raised from ``send``) before reaching it."""

    def __init__(self, service: FakeService, answers: list[HttpResponse | BaseException]) -> None:
        self.inner = FakeTransport(service)
        self.answers = answers
        self.deletes = 0

    def send(self, request: HttpRequest) -> Result[HttpResponse, TransportFailed]:
        if request.method == "DELETE":
            self.deletes += 1
            if self.answers:
                answer = self.answers.pop(0)
                if isinstance(answer, BaseException):
                    raise answer
                return Success(answer)
        return self.inner.send(request)

    def close(self) -> None:
        return None


def _scope(transport: DeletesAnswer, sleeps: list[float]) -> SessionScope:
    client = SessionsClient(KEY, transport=transport, retry=False)
    return SessionScope(client, BODY, wait=False, sleep=sleeps.append)


def test_the_scopes_cancel_is_retried_after_a_500() -> None:
    """Bug: the scope's cancel retried only transport failures, not a 5xx answer."""
    service = FakeService()
    failing = _response(b'{"detail":"Internal Server Error"}', status=500)
    transport = DeletesAnswer(service, [failing, failing])
    sleeps: list[float] = []
    with _scope(transport, sleeps) as started:
        assert isinstance(started, Success)
    assert transport.deletes == 3
    assert sleeps == [0.5, 1.0]
    assert service.live_sessions() == ()


def test_the_scopes_cancel_is_not_retried_after_a_4xx_that_will_not_change() -> None:
    service = FakeService()
    refused = _response(b'{"detail":"Invalid or missing token"}', status=401)
    transport = DeletesAnswer(service, [refused])
    scope = _scope(transport, [])
    with scope:
        pass
    assert transport.deletes == 1
    assert isinstance(scope.closed, Failure)
    assert scope.closed.failure() == HttpError(
        f"cancel session {scope.session_id}", 401, "Invalid or missing token"
    )


def test_a_second_ctrl_c_during_the_scopes_cancel_still_cancels_once_more() -> None:
    """Bug: a KeyboardInterrupt during the scope's cancel (the user pressing Ctrl-C again)
    abandons the session: the scope must make one last plain try, then let the interrupt
    through."""
    service = FakeService()
    transport = DeletesAnswer(service, [KeyboardInterrupt()])
    scope = _scope(transport, [])

    def block() -> None:
        with scope as started:
            assert isinstance(started, Success)
            raise KeyboardInterrupt  # the first Ctrl-C, in the block

    with pytest.raises(KeyboardInterrupt):
        block()
    assert transport.deletes == 2
    assert service.live_sessions() == ()
    assert scope.closed == Success("cancelled")


# -- what counts as loopback -------------------------------------------------------------------


@pytest.mark.parametrize(
    "base_url",
    [
        "http://127.0.0.1:3011/api",
        "http://127.1.2.3/api",
        "http://localhost:3011/api",
        "http://LOCALHOST/api",
        "http://[::1]:3011/api",
    ],
)
def test_loopback_addresses_are_loopback(base_url: str) -> None:
    assert is_loopback(base_url) is True


@pytest.mark.parametrize(
    "base_url",
    [
        "http://127.evil.com/api",  # starts with "127." but is a name
        "http://localhost.evil.com/api",
        "http://evil-localhost/api",
        "http://10.0.0.1/api",
        "http://[::2]/api",
        "http://192.0.2.1/api",  # TEST-NET: refused before any I/O
        "http://0.0.0.0/api",
        "http://128.0.0.1/api",
        "http://[::ffff:10.0.0.1]/api",
        "http:///api",
        "not a url",
    ],
)
def test_other_hosts_are_not_loopback(base_url: str) -> None:
    """Bug: a prefix or suffix test (``startswith("127.")``, ``"localhost" in host``)."""
    assert is_loopback(base_url) is False


# -- create and wait: the long read the server may need ----------------------------------------


class Recording:
    """Answers every request with ``answer`` and keeps the timeout each one was sent with."""

    def __init__(self, answer: HttpResponse) -> None:
        self.answer = answer
        self.timeouts: list[Timeout] = []

    def send(self, request: HttpRequest) -> Result[HttpResponse, TransportFailed]:
        timeout = request.timeout
        self.timeouts.append(timeout)
        return Success(self.answer)

    def close(self) -> None:
        return None


@pytest.mark.parametrize(
    ("wait_for_server", "timeout", "expected"),
    [
        # The read is raised to 11 minutes; the overall deadline leaves room for connect + read.
        (True, None, Timeout(10.0, CREATE_AND_WAIT_READ, 10.0 + CREATE_AND_WAIT_READ)),
        (True, Timeout(2, 5, total=None), Timeout(2, CREATE_AND_WAIT_READ, None)),
        (True, Timeout(2, 5, total=3000), Timeout(2, CREATE_AND_WAIT_READ, 3000)),
        (True, Timeout(2, 700, total=800), Timeout(2, 700, 800)),  # already longer: kept
        (False, None, Timeout()),  # a create that does not wait keeps the usual timeout
        (False, Timeout(2, 5, total=9), Timeout(2, 5, 9)),
    ],
)
def test_create_and_wait_gets_a_read_timeout_long_enough_for_the_server(
    wait_for_server: bool, timeout: Timeout | None, expected: Timeout
) -> None:
    """Bug: the create-and-wait read (or total) timeout not raised, so a create the server
    legitimately holds for 10 minutes times out (and, sent, is never retried)."""
    transport = Recording(_response(b'{"session_id":"s","url":"https://x"}'))
    client = SessionsClient(KEY, transport=transport, retry=False)
    body = CreateSessionBody(machine_id=DEFAULT_MACHINE_ID, wait_for_server=wait_for_server)
    assert isinstance(client.create(body, timeout=timeout), Success)
    assert transport.timeouts == [expected]
