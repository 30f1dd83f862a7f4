"""Each call as the core plans it (``cdsessions/_core/calls.py``): what reaches the transport
for every operation, per-call ``timeout=``/``retry=`` overrides that never stick, which operations
are retried after which answers, and the read timeout of a create that waits for the server."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, Final

import pytest
from returns.result import Failure, Result, Success

from cdsessions import (
    CreateSessionBody,
    HttpError,
    InvalidRequest,
    RetryPolicy,
    SessionsClient,
    Timeout,
    TransportFailed,
)
from cdsessions._core.calls import MAX_LIST_BYTES, MAX_OBJECT_BYTES
from cdsessions._core.timeouts import CREATE_AND_WAIT_READ, DEFAULT_TIMEOUT
from cdsessions._core.wire import HttpRequest, HttpResponse
from cdsessions.fake import DEFAULT_MACHINE_ID, FakeService
from tests.support.transports import Recorder, Recording, answered, client_with, ok

KEY: Final = "sk-promises-core-0123456789"


CREATED: Final = b'{"session_id": "s-1", "url": null}'


SESSION_BODY: Final = b'{"session_id": "s-1", "gpu_event_id": "e-1"}'


EXTENDED: Final = b'{"message": "Timeout increased successfully"}'


#: No waiting between attempts: the tests count attempts, they do not time them.
QUICK: Final = RetryPolicy(max_attempts=3, backoff=0, jitter=0)


def test_a_per_call_timeout_reaches_the_transport_and_does_not_stick() -> None:
    """Bugs: the per-call timeout ignored; a per-call override cached as the client's usual
    settings (a later call without options then uses it).

    Found by applying a deliberate bug the older tests let through."""
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
    """Bug: ``retry=`` of a call ignored in favour of the client's policy.

    Found by applying a deliberate bug the older tests let through."""
    transport = Recorder(answered(503))
    client_with(transport).get("s-1", retry=False)
    assert len(transport.sent) == 1
    transport = Recorder(answered(503))
    client_with(transport, retry=False).get("s-1", retry=QUICK)
    assert len(transport.sent) == 3
    transport = Recorder(answered(503))
    client_with(transport, retry=QUICK).get("s-1")  # and then the client's own applies again
    assert len(transport.sent) == 3


def test_a_per_call_retry_override_does_not_stick() -> None:
    """Bug: a per-call retry override cached as the client's usual settings.

    Found by applying a deliberate bug the older tests let through."""
    transport = Recorder(answered(503))
    client = client_with(transport)
    client.get("s-1", retry=False)
    client.get("s-1")
    assert len(transport.sent) == 1 + 3


def test_no_attempt_may_wait_longer_than_the_overall_deadline() -> None:
    """Bug: each attempt sent with the call's whole timeout rather than the one the retry plan
    cut to fit the deadline (a 30 s read inside a 20 s call).

    Found by applying a deliberate bug the older tests let through."""
    transport = Recorder(answered(503), ok(SESSION_BODY))
    client_with(transport, timeout=Timeout(connect=10, read=30, total=20)).get("s-1")
    assert len(transport.sent) == 2
    for _, timeout, _ in transport.sent:
        assert timeout.total is not None
        assert timeout.total <= 20
        assert timeout.read <= timeout.total
        assert timeout.connect == 10


def test_list_may_be_far_larger_than_one_object_and_one_cap_covers_both() -> None:
    """Bugs: list read with the 1 MiB cap of one object; ``max_response_bytes`` ignored.

    Found by applying a deliberate bug the older tests let through."""
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
    server's own limit: an answer at 10 min would then be cut off).

    Found by applying a deliberate bug the older tests let through."""
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
        ("extend", lambda c: c.extend("s-1", 5, check_cap=False)),
    ],
)
@pytest.mark.parametrize("code", [500, 502, 503, 504])
def test_create_and_extend_are_sent_once_after_a_server_error(
    name: str, call: Callable[[SessionsClient], object], code: int
) -> None:
    """Bugs: extend (or create) classed as an idempotent operation and retried on a 5xx.

    Found by applying a deliberate bug the older tests let through."""
    transport = Recorder(answered(code), ok(CREATED if name == "create" else EXTENDED))
    result = call(client_with(transport))
    assert len(transport.sent) == 1
    assert isinstance(result, Failure)
    assert isinstance(result.failure(), HttpError)


@pytest.mark.parametrize(
    ("call", "body"),
    [
        (lambda c: c.create(CreateSessionBody(machine_id="m-1")), CREATED),
        (lambda c: c.extend("s-1", 5, check_cap=False), EXTENDED),
    ],
)
def test_create_and_extend_are_retried_after_429_and_when_never_sent(
    call: Callable[[SessionsClient], Result[Any, Any]], body: bytes
) -> None:
    """Bug: the 429 (or unsent) rule dropped for the paid operations.

    Found by applying a deliberate bug the older tests let through."""
    unsent = Failure(TransportFailed("x", "connect", "refused", sent=False))
    transport = Recorder(answered(429), unsent, ok(body))
    assert isinstance(call(client_with(transport)), Success)
    assert len(transport.sent) == 3


def test_get_and_list_are_retried_on_500_but_cancel_is_not() -> None:
    """Bugs: ``read_statuses`` (500) applied to cancel, or to no operation.

    Found by applying a deliberate bug the older tests let through."""
    calls: list[tuple[Callable[[SessionsClient], object], int]] = [
        (lambda c: c.get("s-1"), 3),
        (lambda c: c.list(), 3),
        (lambda c: c.cancel("s-1"), 1),
    ]
    for call, attempts in calls:
        transport = Recorder(answered(500))
        call(client_with(transport))
        assert len(transport.sent) == attempts


def test_the_price_table_is_a_read_retried_like_get() -> None:
    """Bug: fetching prices classed as a paid operation, so a 503 is not tried again.

    Found by applying a deliberate bug the older tests let through."""
    fake = FakeService()
    prices = fake.handle(
        HttpRequest("GET", "/platform/gpu-pricing", headers=(("Authorization", f"Bearer {KEY}"),))
    )
    assert prices.status == 200
    transport = Recorder(answered(503), answered(500), Success(prices))
    assert isinstance(client_with(transport).gpu_pricing(), Success)
    assert len(transport.sent) == 3


JSON: Final = (("Content-Type", "application/json"),)


def _response(
    body: bytes, status: int = 200, headers: tuple[tuple[str, str], ...] = JSON
) -> HttpResponse:
    return HttpResponse(status=status, headers=headers, body=body)


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
    legitimately holds for 10 minutes times out (and, sent, is never retried).

    Found by an outside review's deliberate bug the suite missed (issue 14)."""
    transport = Recording(_response(b'{"session_id":"s","url":"https://x"}'))
    client = SessionsClient(KEY, transport=transport, retry=False)
    body = CreateSessionBody(machine_id=DEFAULT_MACHINE_ID, wait_for_server=wait_for_server)
    assert isinstance(client.create(body, timeout=timeout), Success)
    assert [timeout for _, timeout in transport.sent] == [expected]


@pytest.mark.parametrize(
    "key",
    [
        "sk-key with-a-space",
        " sk-leading-space",
        "sk-trailing-space ",
        "sk-tab\there",
        "sk-no-break\u00a0space",
        "sk-ideographic\u3000space",
        "sk-line\u2028separator",
        "sk-zero\u200bwidth",
        "sk-nul\x00byte",
        "sk-del\x7fbyte",
        "sk-crlf\r\nX-Injected: 1",
    ],
)
def test_a_key_with_whitespace_or_a_control_character_is_refused_and_nothing_sent(
    key: str,
) -> None:
    """Added for a bug an outside review slipped past the suite (issue 23): a key with a space
    sent instead of refused. The refusal is about the field, never quoting the key."""
    transport = Recording()
    client = SessionsClient(key, transport=transport)
    body = CreateSessionBody(machine_id=DEFAULT_MACHINE_ID)
    for result in (client.get("s-1"), client.list(), client.create(body)):
        assert isinstance(result, Failure)
        error = result.failure()
        assert isinstance(error, InvalidRequest)
        assert (error.field, error.why) == ("bearer", None)
        assert error.problem == "must be printable ASCII without spaces"
        assert key.strip() not in str(error) + repr(error)
    assert transport.sent == []


def test_cancel_asks_the_server_to_wait_for_shutdown_only_when_told() -> None:
    transport = Recorder(ok(b'{"success": true}'), ok(b'{"success": true}'))
    client = client_with(transport)
    assert isinstance(client.cancel("s-1", wait_for_shutdown=True), Success)
    assert isinstance(client.cancel("s-1"), Success)
    queries = [request.query for request, _, _ in transport.sent]
    assert queries == [(("wait_for_shutdown", "true"),), ()]


def test_an_unusable_retry_setting_names_the_retry_argument_and_sends_nothing() -> None:
    transport = Recorder()
    got = client_with(transport).get("s-1", retry="often")  # type: ignore[arg-type]
    assert isinstance(got, Failure)
    error = got.failure()
    assert isinstance(error, InvalidRequest)
    assert error.field == "retry"
    assert error.problem == "must be a RetryPolicy, True or False, not str"
    assert transport.sent == []
