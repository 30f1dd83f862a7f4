"""The boundary never raises (issue 10, items 2, 3, 4 and 8).

Whatever bytes a server sends and whatever a caller configures, every operation of both clients
and the lifecycle helpers returns a value: undecodable JSON (invalid UTF-8 inside strings, deep
nesting), unreadable ``Retry-After`` headers, unusable server URLs and timeouts. Server text is
rendered bounded in size and depth, and no log line holds a URL.

Nothing here touches the network: the transports are in memory (the fake, or a recorder), and
the URLs refused as "not loopback" are refused before any transport sees them.
"""

from __future__ import annotations

import asyncio
import ipaddress
import logging
import math
import re
import threading
from collections.abc import Coroutine, Iterator
from typing import Any, TypeVar
from urllib.parse import urlsplit

import msgspec
import pytest
import urllib3.util
from hypothesis import given, settings
from hypothesis import strategies as st
from returns.result import Failure, Result, Success

from cdsessions import (
    AsyncSessionsClient,
    CreateSessionBody,
    DecodeFailed,
    HttpError,
    InvalidRequest,
    SessionsClient,
    Timeout,
    TransportFailed,
    ValidationFailed,
    ValidationItem,
)
from cdsessions._core.decoding import (
    CREATED,
    DELETED,
    EXTENDED,
    SESSION,
    decode,
    decode_session_list,
)
from cdsessions._core.retry import RetryPolicy, Stop, decide, parse_retry_after
from cdsessions._core.servers import is_loopback, refuse_plain_http, resolve_server
from cdsessions._core.timeouts import MAX_SECONDS, ready_timeout_from
from cdsessions._core.wire import HttpRequest, HttpResponse
from cdsessions.errors import DETAIL_LIMIT, REPR_LIMIT, ApiError
from cdsessions.fake import DEFAULT_MACHINE_ID, FakeService, FakeTransport
from cdsessions.lifecycle import Backoff, NotReady, SessionScope, wait_until_ready
from cdsessions.models import ExtendSessionResponse as Extended
from cdsessions.models import Session
from cdsessions.transports._inline import InlineTransport
from tests.support import samples

T = TypeVar("T")
KEY = "fake-key-boundary"
BODY = CreateSessionBody(machine_id=DEFAULT_MACHINE_ID)
JSON = (("content-type", "application/json"),)
INVALID_UTF8 = b'{"session_id": "\xff\xfe", "gpu_event_id": "e", "detail": "bad \xc3\x28 text"}'
TUNNEL = "https://ta-01jsecretlabel.r5.modal.host"
# Any scheme://… that is not masked: what no log line may hold.
UNMASKED_URL = re.compile(r"[A-Za-z][A-Za-z0-9+.-]*://(?!<masked>)")


# -- transports that never touch a network ---------------------------------------------------


class Recording:
    """Answers every request with ``answer`` and records what it was asked to send."""

    def __init__(self, answer: HttpResponse | None = None) -> None:
        self.answer = answer or HttpResponse(200, JSON, samples.LIVE_SESSION_READY.encode())
        self.sent: list[tuple[HttpRequest, Timeout]] = []

    def send(self, request: HttpRequest) -> Result[HttpResponse, TransportFailed]:
        timeout = request.timeout
        self.sent.append((request, timeout))
        return Success(self.answer)

    def close(self) -> None:
        return None


class Rewriting:
    """The fake ComfyDeploy behind a hostile proxy: requests whose method is in ``answers``
    get that answer instead of the fake's (the fake still sees every request)."""

    def __init__(self, service: FakeService, answers: dict[str, HttpResponse]) -> None:
        self.inner = FakeTransport(service)
        self.answers = answers

    def send(self, request: HttpRequest) -> Result[HttpResponse, TransportFailed]:
        real = self.inner.send(request)
        forged = self.answers.get(request.method)
        return Success(forged) if forged is not None else real

    def close(self) -> None:
        return None


def run(coroutine: Coroutine[Any, Any, T]) -> T:
    return asyncio.run(coroutine)


def failure_of(result: Result[Any, ApiError]) -> ApiError:
    assert isinstance(result, Failure), result
    error = result.failure()
    assert isinstance(error, ApiError)
    return error


def refused(result: Result[Any, ApiError]) -> str:
    """The field an ``InvalidRequest`` failure names."""
    error = failure_of(result)
    assert isinstance(error, InvalidRequest), error
    return error.field


def assert_renders_bounded(error: ApiError) -> None:
    """``str`` and ``repr`` work, are one bounded line, and hold nothing a terminal acts on."""
    for text, limit in ((str(error), 2 * DETAIL_LIMIT + 200), (repr(error), REPR_LIMIT)):
        assert len(text) <= limit, (len(text), text[:200])
        assert text.isprintable(), text[:200]


# -- item 2: decoding never raises ------------------------------------------------------------


@pytest.mark.parametrize("status", [200, 201, 400, 401, 404, 409, 422, 500, 503])
def test_invalid_utf8_inside_json_strings_is_a_value_for_every_decoder(status: int) -> None:
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
    body = b'{"detail": [{"loc": ["body", "\xff"], "msg": "bad", "type": "t"}]}'
    error = failure_of(decode(HttpResponse(422, JSON, body), CREATED, "create"))
    assert isinstance(error, HttpError)
    assert error.status == 422


def test_a_redirect_keeps_no_location_anywhere() -> None:
    moved = HttpResponse(307, (("Location", f"{TUNNEL}/x?token=1"),), b"")
    error = failure_of(decode(moved, DELETED, "cancel session s"))
    assert isinstance(error, HttpError)
    assert error.status == 307
    for text in (str(error), repr(error), str(error.detail)):
        assert "modal.host" not in text
        assert "://" not in text


def _nested(depth: int, leaf: bytes = b'"x"') -> bytes:
    return b'{"detail": ' + b"[" * depth + leaf + b"]" * depth + b"}"


@pytest.mark.parametrize("depth", [10, 900, 999, 1000, 5000, 200_000])
def test_deep_error_details_decode_and_render(depth: int) -> None:
    for status in (400, 422, 500):
        error = failure_of(decode(HttpResponse(status, JSON, _nested(depth)), SESSION, "op"))
        assert isinstance(error, HttpError)
        assert_renders_bounded(error)


def _deep(depth: int) -> object:
    value: object = "x"
    for _ in range(depth):
        value = [value]
    return value


@pytest.mark.parametrize("depth", [1_000, 100_000])
def test_errors_holding_a_deep_detail_render_without_recursion_error(depth: int) -> None:
    deep = _deep(depth)
    errors: list[ApiError] = [
        HttpError("get session x", 500, deep),  # type: ignore[arg-type]
        ValidationFailed("create", 422, deep, (ValidationItem(("body",), "m", "t"),)),  # type: ignore[arg-type]
    ]
    for error in errors:
        assert_renders_bounded(error)
        assert "[…]" in repr(error)


def test_a_huge_detail_renders_bounded_and_says_it_was_cut() -> None:
    huge: list[ApiError] = [
        HttpError("op", 500, "y" * 10_000_000),
        HttpError("op", 500, {"a": "b" * 1_000_000, "n": 10**4000}),
        HttpError("op", 500, [[i] * 100 for i in range(100_000)]),
        ValidationFailed("op", 422, None, (ValidationItem(("body", 10**4000), "m" * 10**6, "t"),)),
        ValidationFailed("op", 422, None, (ValidationItem(("body", "gpu"), "bad", "t"),) * 10**5),
        DecodeFailed("op", 200, "$" + ".x" * 10**6, "p" * 10**6),
        TransportFailed("op", "broken", "q" * 10**6, sent=True),
        InvalidRequest("o" * 10**6, "f" * 10**6, "p" * 10**6),
    ]
    for error in huge:
        assert_renders_bounded(error)
        assert str(error).endswith("…") or "…" in str(error)


def test_server_text_cannot_drive_a_terminal_through_str_or_repr() -> None:
    sneaky = "\x1b]0;pwned\x07\x1b[2J\u202eevil\r\nline"
    for error in (
        HttpError("op", 500, sneaky),
        HttpError("op", 500, [sneaky, {"k": sneaky}]),
        ValidationFailed("op", 422, None, (ValidationItem((sneaky,), sneaky, "t"),)),
    ):
        for text in (str(error), repr(error)):
            assert not any(char in text for char in "\x1b\x07\u202e\n\r")
        assert "\\x1b" in str(error)  # shown, escaped, not dropped


def test_detail_text_reads_as_before() -> None:
    assert str(HttpError("get", 404, "GPUEvent not found")) == "get: GPUEvent not found (404)"
    listed = HttpError("get", 400, [{"loc": ["body", 1], "ok": True, "n": None}])
    assert str(listed) == 'get: [{"loc": ["body", 1], "ok": true, "n": null}] (400)'
    assert repr(HttpError("get", 404, "x")) == "HttpError(operation='get', status=404, detail='x')"


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


_JSON_VALUES = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats() | st.text(),
    lambda inner: st.lists(inner, max_size=5) | st.dictionaries(st.text(), inner, max_size=5),
    max_leaves=30,
)


@settings(max_examples=300, deadline=None)
@given(detail=_JSON_VALUES, depth=st.sampled_from([0, 7, 8, 9, 1000, 10_000]))
def test_str_and_repr_of_errors_never_raise_for_any_detail(detail: object, depth: int) -> None:
    for _ in range(depth):
        detail = [detail]
    item = ValidationItem(("body", 0), str(detail)[:50] if depth < 50 else "m", "t")
    for error in (
        HttpError("op", 500, detail),  # type: ignore[arg-type]
        ValidationFailed("op", 422, detail, (item,)),  # type: ignore[arg-type]
    ):
        assert_renders_bounded(error)


class RaisingIterable:
    def __iter__(self) -> Iterator[object]:
        raise ValueError("a broken collection of observers")


@pytest.mark.parametrize(
    ("option", "value"),
    [
        ("observers", None),
        ("observers", 5),
        ("observers", [print, "not a function"]),
        ("observers", RaisingIterable()),
        ("user_agent", 5),
        ("user_agent", "app/1.0\r\nX-Injected: 1"),
        ("user_agent", "appé/1.0"),
    ],
    ids=lambda value: type(value).__name__,
)
def test_options_without_a_value_of_their_own_are_refused_by_each_call_not_raised(
    option: str, value: object
) -> None:
    transport = Recording()
    client = SessionsClient(KEY, transport=transport, **{option: value})  # type: ignore[arg-type]
    aclient = AsyncSessionsClient(KEY, transport=InlineTransport(transport), **{option: value})  # type: ignore[arg-type]
    for result in (client.list(), client.create(BODY), run(aclient.get("s"))):
        assert refused(result) == option
    assert transport.sent == []


# -- item 2: the lifecycle cancels what it created, whatever the next answer is --------------


def test_a_session_is_cancelled_when_the_get_after_create_answers_invalid_utf8() -> None:
    service = FakeService(ready_after_polls=3)
    transport = Rewriting(service, {"GET": HttpResponse(200, JSON, INVALID_UTF8)})
    client = SessionsClient(KEY, transport=transport, retry=False)
    scope = client.session(BODY)
    with scope as started:
        error = failure_of(started)
        assert isinstance(error, DecodeFailed)
        assert scope.session_id is not None
    assert scope.closed == Success("cancelled")
    assert service.live_sessions() == ()


def test_the_async_scope_cancels_when_the_get_after_create_answers_invalid_utf8() -> None:
    service = FakeService(ready_after_polls=3)
    transport = Rewriting(service, {"GET": HttpResponse(200, JSON, INVALID_UTF8)})

    async def scenario() -> None:
        async with AsyncSessionsClient(KEY, transport=InlineTransport(transport)) as client:
            scope = client.session(BODY)
            async with scope as started:
                assert isinstance(failure_of(started), DecodeFailed)
                assert scope.session_id is not None
            assert scope.closed == Success("cancelled")

    run(scenario())
    assert service.live_sessions() == ()


@pytest.mark.parametrize("method", ["GET", "POST", "DELETE"])
def test_every_call_of_both_clients_returns_a_value_for_invalid_utf8(method: str) -> None:
    service = FakeService()
    for status in (200, 400, 500):
        answer = HttpResponse(status, JSON, INVALID_UTF8)
        transport = Rewriting(service, {method: answer})
        client = SessionsClient(KEY, transport=transport, retry=False)
        aclient = AsyncSessionsClient(KEY, transport=InlineTransport(transport), retry=False)
        results = [
            ("GET", client.get("s")),
            ("GET", client.list()),
            ("POST", client.create(BODY)),
            ("DELETE", client.cancel("s")),
            ("POST", client.extend("s", 5)),
            ("GET", client.wait_until_ready("s", timeout=0)),
            ("GET", run(aclient.get("s"))),
            ("GET", run(aclient.list())),
            ("POST", run(aclient.create(BODY))),
            ("DELETE", run(aclient.cancel("s"))),
            ("POST", run(aclient.extend("s", 5))),
            ("GET", run(aclient.wait_until_ready("s", timeout=0))),
        ]
        for sent_with, result in results:
            # extend's answer reads only "message", which this body lacks: msgspec skips the
            # other fields without checking their bytes, so its 200 legitimately decodes.
            skips_the_bad_field = status == 200 and isinstance(result.value_or(None), Extended)
            if sent_with == method and not skips_the_bad_field:
                error = result.failure()  # a value naming the problem, never an exception
                expected = DecodeFailed if status == 200 else HttpError
                assert isinstance(error, expected), error
                assert_renders_bounded(error)
            elif isinstance(result, Failure):
                assert_renders_bounded(result.failure())


# -- item 2: Retry-After is parsed or ignored, never raised on -------------------------------


@pytest.mark.parametrize(
    ("value", "seconds"),
    [
        ("120", 120.0),
        (" 7 ", 7.0),
        ("1.5", 1.5),
        ("Wed, 21 Oct 2015 07:28:00 GMT", 0.0),
        ("Wed, 21 Oct 2015 07:28:00 -0000", 0.0),  # naive in the stdlib: still GMT
        ("Wed, 21 Oct 2015 07:28:10 -0000", 10.0),
        ("١٢٠", None),  # digits, but not ASCII ones
        ("nan", None),
        ("NaN", None),
        ("inf", None),
        ("-Infinity", None),
        ("-1", None),
        ("1e3", None),
        ("9" * 400, None),
        ("Fri, 31 Dec 99999 23:59:59 GMT", None),
        ("Wed, 21 Oct 2015 07:28:00 +99999999999999999999", None),
        ("Mon, 01 Jan 0001 00:00:00 +2359", 0.0),
        ("\x00", None),
        ("", None),
    ],
)
def test_retry_after_is_read_or_ignored(value: str, seconds: float | None) -> None:
    now = 1445412480.0  # Wed, 21 Oct 2015 07:28:00 GMT
    assert parse_retry_after(value, now) == seconds


@settings(max_examples=500, deadline=None)
@given(
    st.one_of(
        st.text(max_size=40),
        st.from_regex(
            r"[A-Za-z]{3}, \d{1,6} [A-Za-z]{3} -?\d{1,12} \d\d:\d\d:\d\d [-+A-Z0-9]{0,24}"
        ),
    ),
    st.floats(min_value=0, max_value=4e9),
)
def test_retry_after_never_raises(value: str, now: float) -> None:
    seconds = parse_retry_after(value, now)
    assert seconds is None or 0 <= seconds < math.inf


def test_retry_waits_are_clamped_to_what_a_sleep_accepts() -> None:
    patient = RetryPolicy(backoff=1e300, max_delay=1e300, max_retry_after=1e300, jitter=0)
    asked = HttpResponse(503, (("Retry-After", "9999999999"),), b"")
    for outcome in (Success(HttpResponse(503)), Success(asked)):
        decision = decide(patient, "get", 1, outcome, remaining=None, now=0.0, unit=0.0)
        assert not isinstance(decision, Stop)
        assert 0 < decision.delay <= MAX_SECONDS


# -- item 3: server URLs are parsed -----------------------------------------------------------

UNUSABLE = [
    "http://[::1",  # bad IPv6 literal
    "http://[::1]x/api",
    "http://[zz::1]/api",
    "http://localhost:99999/api",  # port out of range
    "http://localhost:0/api",
    "http://localhost:-1/api",
    "http://localhost:port/api",
    "http://exa mple.com/api",  # spaces
    " https://api.example.com/api",
    "https://api.example.com/a b",
    "https://api.example.com/api\n",
    "https://user:pw@api.example.com/api",  # userinfo
    "https://user@api.example.com/api",
    "http:///api",  # empty host
    "http://:3011/api",
    "https://",
    "ftp://api.example.com/api",  # unknown scheme
    "ws://localhost/api",
    "localhost:3011",
    "//api.example.com/api",
    "https://api.example.com/api?x=1",
    "https://api.example.com/api#x",
    "https://bäcker.example/api",
    "https://api.example.com/%zz",
    "http://127.0.0.1\\@evil.example/api",
    "",
    "prod",
]


@pytest.mark.parametrize("server", UNUSABLE)
def test_unusable_server_urls_are_invalid_requests_from_every_call(server: str) -> None:
    transport = Recording()
    client = SessionsClient(KEY, server=server, transport=transport)  # never raises
    assert "pw" not in repr(client)
    aclient = AsyncSessionsClient(KEY, server=server, transport=InlineTransport(transport))
    results: list[Result[Any, ApiError]] = [
        client.get("s"),
        client.list(),
        client.create(BODY),
        client.cancel("s"),
        client.extend("s", 5),
        client.wait_until_ready("s"),
        run(aclient.get("s")),
        run(aclient.list()),
        run(aclient.create(BODY)),
        run(aclient.cancel("s")),
        run(aclient.extend("s", 5)),
        run(aclient.wait_until_ready("s")),
    ]
    with client.session(BODY) as started:
        results.append(started)
    for result in results:
        error = failure_of(result)
        assert isinstance(error, InvalidRequest)
        assert error.field == "server"
        assert "pw" not in str(error)
    assert transport.sent == []


# Not loopback, however they begin: plain http to them would send the key off the machine.
LOOKALIKES = [
    "HTTP://10.1.2.3/api",
    "Http://192.0.2.7:3011/api",  # TEST-NET-1: refused before any I/O
    "http://127.evil.example/api",
    "http://127.0.0.1.evil.example/api",
    "http://localhost.evil.example/api",
    "http://localhostevil.example/api",
    "http://app.localhost/api",  # decided: not loopback (see cdsessions._core.servers)
    "http://localhost./api",
    "http://127.1/api",  # inet_aton would read it as 127.0.0.1; only exact literals count
    "http://0.0.0.0/api",
    "http://[::2]/api",
    "http://[fd00::1]/api",
    "http://[::ffff:10.0.0.1]/api",
]


@pytest.mark.parametrize("server", LOOKALIKES)
def test_plain_http_to_a_host_that_only_looks_local_is_refused_before_io(server: str) -> None:
    transport = Recording()
    client = SessionsClient(KEY, server=server, transport=transport)
    aclient = AsyncSessionsClient(KEY, server=server, transport=InlineTransport(transport))
    for result in (client.get("s"), client.create(BODY), run(aclient.list())):
        error = failure_of(result)
        assert isinstance(error, InvalidRequest)
        assert error.field == "server"
        assert "allow_insecure_http" in str(error)
    assert transport.sent == []


LOOPBACK = [
    "http://127.0.0.1:9/api",
    "http://127.255.3.4/api",
    "HTTP://127.0.0.1/api",
    "http://localhost:3011/api",
    "http://LocalHost/api",
    "http://[::1]:3011/api",
    "http://[0:0:0:0:0:0:0:1]/api",
    "http://[::ffff:127.0.0.1]/api",
    "HTTPS://API.example.com/api/",  # https: any host
]


@pytest.mark.parametrize("server", LOOPBACK)
def test_loopback_and_https_servers_are_sent_to_with_scheme_and_host_lowercased(
    server: str,
) -> None:
    transport = Recording()
    client = SessionsClient(KEY, server=server, transport=transport)
    assert isinstance(client.get("s"), Success)
    [(request, _)] = transport.sent
    parts = urlsplit(request.url)
    assert parts.scheme in ("http", "https")
    assert parts.scheme == urlsplit(server).scheme  # urlsplit lowercases it
    assert parts.hostname == urlsplit(server).hostname
    assert request.url.endswith("/session/s")
    assert "//session" not in request.url


def test_resolved_urls_are_normalised_and_checked_by_their_parsed_scheme() -> None:
    assert resolve_server("HTTPS://API.Example.COM:443/Api/") == Success(
        "https://api.example.com:443/Api"
    )
    assert resolve_server("HTTP://[::1]:3011/api") == Success("http://[::1]:3011/api")
    # Checked by the parsed scheme, whatever case the URL was written in.
    for written in ("HTTP://10.1.2.3/api", "Http://10.1.2.3/api", "http://10.1.2.3/api"):
        refused = refuse_plain_http(written, allowed=False)
        assert isinstance(refused, Failure), written
        assert refuse_plain_http(written, allowed=True) == Success(written)
    assert refuse_plain_http("HTTPS://10.1.2.3/api", allowed=False) == Success(
        "HTTPS://10.1.2.3/api"
    )


def _independent_loopback(host: str) -> bool:
    """What loopback means, written again without cdsessions' code."""
    if host == "localhost":
        return True
    try:
        address = ipaddress.ip_address(host)
    except ValueError:
        return False
    if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped is not None:
        address = address.ipv4_mapped
    return address in ipaddress.ip_network("127.0.0.0/8") or address == ipaddress.ip_address("::1")


_HOSTS = st.one_of(
    st.sampled_from(
        [
            *("localhost", "LOCALHOST", "127.0.0.1", "127.9.8.7", "127.evil.com", "localhost.x"),
            *("[::1]", "[::2]", "[::ffff:127.0.0.1]", "[::1", "::1", "[]", "", "a b", "h\x00"),
            *("api.example.com", "10.0.0.1", "[fd00::1]", "xn--bcher-kva.example", "bäcker.de"),
        ]
    ),
    st.text(alphabet="abcXYZ019.-_[]:%@ ", max_size=12),
)


@settings(max_examples=1000, deadline=None)
@given(
    scheme=st.sampled_from(["http", "https", "HTTP", "HttpS", "ftp", "", "h ttp"]),
    userinfo=st.sampled_from(["", "u@", "u:p@", "@"]),
    host=_HOSTS,
    port=st.one_of(
        st.just(""),
        st.integers(-5, 70_000).map(lambda p: f":{p}"),
        st.sampled_from([":", ":x", ":٣٠"]),
    ),
    path=st.one_of(
        st.sampled_from(["", "/", "/api", "/api/", "/a%20b", "/%zz", "/a?b", "/a#b", "/a b"]),
        st.text(max_size=8).map(lambda t: "/" + t),
    ),
)
def test_every_accepted_url_reads_the_same_to_urllib3_and_the_stdlib(
    scheme: str, userinfo: str, host: str, port: str, path: str
) -> None:
    server = f"{scheme}://{userinfo}{host}{port}{path}"
    resolved = resolve_server(server)  # never raises
    if not isinstance(resolved, Success):
        error = resolved.failure()
        assert (error.field, type(error)) == ("server", InvalidRequest)
        return
    url = resolved.unwrap()
    stdlib = urlsplit(url)
    parsed = urllib3.util.parse_url(url)
    assert stdlib.scheme == parsed.scheme == scheme.lower()
    assert stdlib.hostname is not None
    assert parsed.host is not None
    assert parsed.host.strip("[]").lower() == stdlib.hostname
    assert parsed.port == stdlib.port
    assert (stdlib.username, stdlib.password, stdlib.query, stdlib.fragment) == (None, None, "", "")
    assert (parsed.auth, parsed.query, parsed.fragment) == (None, None, None)
    assert is_loopback(url) == _independent_loopback(stdlib.hostname)
    refused = isinstance(refuse_plain_http(url, allowed=False), Failure)
    assert refused == (stdlib.scheme == "http" and not _independent_loopback(stdlib.hostname))


# -- item 4: timeouts validated and clamped ---------------------------------------------------

BAD_SECONDS = [math.nan, -1, -0.001, math.inf, -math.inf, True, False, "5", None, [], -(10**400)]


@pytest.mark.parametrize(
    "timeout",
    [
        *(Timeout(connect=v) for v in BAD_SECONDS if v is not None),  # type: ignore[arg-type]
        *(Timeout(read=v) for v in BAD_SECONDS if v is not None),  # type: ignore[arg-type]
        *(Timeout(total=v) for v in BAD_SECONDS if v is not None),  # type: ignore[arg-type]
        *(v for v in BAD_SECONDS if v is not None),
        0,
    ],
    ids=repr,
)
def test_unusable_timeouts_are_refused_naming_the_field_with_nothing_sent(timeout: object) -> None:
    transport = Recording()
    per_client = SessionsClient(KEY, transport=transport, timeout=timeout)  # type: ignore[arg-type]
    per_call = SessionsClient(KEY, transport=transport)
    aclient = AsyncSessionsClient(KEY, transport=InlineTransport(transport))
    for result in (
        per_client.get("s"),
        per_client.create(BODY),
        per_call.list(timeout=timeout),  # type: ignore[arg-type]
        per_call.cancel("s", timeout=timeout),  # type: ignore[arg-type]
        run(aclient.extend("s", 5, timeout=timeout)),  # type: ignore[arg-type]
    ):
        error = failure_of(result)
        assert isinstance(error, InvalidRequest)
        assert error.field == "timeout"
        assert_renders_bounded(error)
    assert transport.sent == []


@pytest.mark.parametrize(
    "timeout",
    [1e10, 10**400, Timeout(connect=1e10, read=1e300, total=1e10), Timeout(total=None, read=1e12)],
    ids=repr,
)
def test_huge_timeouts_are_clamped_to_what_the_platform_can_wait(timeout: object) -> None:
    assert MAX_SECONDS < threading.TIMEOUT_MAX
    transport = Recording()
    client = SessionsClient(KEY, transport=transport, timeout=timeout)  # type: ignore[arg-type]
    aclient = AsyncSessionsClient(KEY, transport=InlineTransport(transport))
    assert isinstance(client.get("s"), Success)
    assert isinstance(
        client.create(CreateSessionBody(machine_id="m", wait_for_server=True)), Success
    )
    assert isinstance(run(aclient.get("s", timeout=timeout)), Success)  # type: ignore[arg-type]
    assert len(transport.sent) == 3
    for _, sent in transport.sent:
        parts = [sent.connect, sent.read] + ([] if sent.total is None else [sent.total])
        assert all(isinstance(p, float) and 0 < p <= MAX_SECONDS for p in parts), sent
        for seconds in parts:  # a timed wait accepts each (the lock is free: no actual wait)
            lock = threading.Lock()
            assert lock.acquire(timeout=seconds)
            lock.release()


@pytest.mark.parametrize("timeout", BAD_SECONDS, ids=repr)
def test_unusable_ready_timeouts_are_refused_with_nothing_sent(timeout: object) -> None:
    transport = Recording()  # answers every get with a ready session
    client = SessionsClient(KEY, transport=transport)
    aclient = AsyncSessionsClient(KEY, transport=InlineTransport(transport))
    waited = [
        client.wait_until_ready("s", timeout=timeout),  # type: ignore[arg-type]
        run(aclient.wait_until_ready("s", timeout=timeout)),  # type: ignore[arg-type]
    ]
    for result in waited:
        assert refused(result) == "timeout"
    with client.session(BODY, ready_timeout=timeout) as started:  # type: ignore[arg-type]
        assert refused(started) == "ready_timeout"

    async def scoped() -> str:
        async with aclient.session(BODY, ready_timeout=timeout) as started:  # type: ignore[arg-type]
            return refused(started)

    assert run(scoped()) == "ready_timeout"
    assert transport.sent == []  # no get, and above all no paid create


def test_wait_until_ready_with_nan_does_not_poll() -> None:
    polls: list[str] = []

    def get(session_id: str) -> Result[Session, ApiError]:
        polls.append(session_id)
        ready = msgspec.json.decode(samples.LIVE_SESSION_READY, type=Session)
        return (
            Success(ready) if len(polls) >= 3 else Success(msgspec.structs.replace(ready, url=None))
        )

    result = wait_until_ready(get, "s", timeout=math.nan, sleep=lambda _: None)
    assert isinstance(failure_of(result), InvalidRequest)
    assert polls == []


def test_a_huge_ready_timeout_is_clamped() -> None:
    assert ready_timeout_from(1e300) == Success(MAX_SECONDS)
    assert ready_timeout_from(0) == Success(0.0)
    now = [0.0]

    def clock() -> float:
        now[0] += 1e6  # every look at the clock: another 11.6 days
        return now[0]

    starting = msgspec.json.decode(samples.LIVE_SESSION, type=Session)
    ready = msgspec.json.decode(samples.LIVE_SESSION_READY, type=Session)
    polls: list[str] = []

    def get(session_id: str) -> Result[Session, ApiError]:
        polls.append(session_id)  # unclamped, the deadline never comes: ready at poll 10
        return Success(ready if len(polls) >= 10 else starting)

    result = wait_until_ready(get, "s", timeout=1e300, sleep=lambda _: None, clock=clock)
    error = failure_of(result)
    assert isinstance(error, NotReady)
    assert error.waited <= MAX_SECONDS + 2e6


@pytest.mark.parametrize(
    "backoff",
    [Backoff(first=-1), Backoff(factor=math.nan), Backoff(cap=math.inf), Backoff(factor=0.5)],
    ids=repr,
)
def test_unusable_backoffs_are_refused_before_polling(backoff: Backoff) -> None:
    polled: list[str] = []

    def get(session_id: str) -> Result[Session, ApiError]:
        polled.append(session_id)
        return Success(msgspec.json.decode(samples.LIVE_SESSION, type=Session))

    result = wait_until_ready(get, "s", backoff=backoff, sleep=lambda _: None)
    assert refused(result) == "backoff"
    assert polled == []


@settings(max_examples=300, deadline=None)
@given(
    first=st.floats() | st.integers(-(10**400), 10**400),
    factor=st.floats() | st.integers(-3, 10**400),
    cap=st.floats() | st.integers(-(10**400), 10**400),
    attempt=st.integers(0, 10**6),
)
def test_backoff_delays_are_always_sleepable(
    first: float, factor: float, cap: float, attempt: int
) -> None:
    delay = Backoff(first, factor, cap).delay(attempt)
    assert isinstance(delay, float)
    assert 0 <= delay <= MAX_SECONDS


def test_a_cancel_is_tried_whatever_its_attempts_and_backoff_hold() -> None:
    from cdsessions.lifecycle import cancel_until_closed
    from cdsessions.models import DeleteSessionResponse

    answers: list[Result[DeleteSessionResponse, ApiError]] = [
        Failure(TransportFailed("cancel", "broken", "reset", sent=True)),
        Success(DeleteSessionResponse(success=True)),
    ]
    sleeps: list[float] = []
    for attempts, backoff in (("3", Backoff(first=math.nan)), (None, Backoff(cap=-1))):
        calls = iter(list(answers))
        closed = cancel_until_closed(
            lambda _, calls=calls: next(calls),  # type: ignore[misc]
            "s",
            attempts=attempts,  # type: ignore[arg-type]
            backoff=backoff,
            sleep=sleeps.append,
        )
        assert closed == Success("cancelled")
    assert sleeps == [0.0, 0.0]  # what time.sleep accepts


# -- item 8: no URL in any log line -----------------------------------------------------------


def _unclosed_scope_logs(
    caplog: pytest.LogCaptureFixture, cancel_answer: HttpResponse
) -> list[logging.LogRecord]:
    service = FakeService()
    transport = Rewriting(service, {"DELETE": cancel_answer})
    client = SessionsClient(KEY, transport=transport)
    caplog.set_level(logging.DEBUG, logger="cdsessions")
    scope = SessionScope(client, BODY, wait=False, sleep=lambda _: None)
    with scope as started:
        assert isinstance(started, Success)
    closed = scope.closed
    assert isinstance(closed, Failure)
    assert scope.session_id is not None
    errors = [r for r in caplog.records if r.levelno == logging.ERROR]
    assert len(errors) == 1
    assert scope.session_id in errors[0].getMessage()
    return list(caplog.records)


@pytest.mark.parametrize(
    "cancel_answer",
    [
        HttpResponse(307, (("Location", f"{TUNNEL}/session/x?token=abc"),), b""),
        HttpResponse(301, (("location", "http://10.0.0.1/x"),), b'{"detail": "moved"}'),
        HttpResponse(
            400, JSON, f'{{"detail": "tunnel {TUNNEL}/x failed, see HTTP://a.b/c"}}'.encode()
        ),
        HttpResponse(409, JSON, f'{{"detail": [{{"url": "{TUNNEL}"}}]}}'.encode()),
    ],
    ids=["307-location", "301-location", "400-detail", "409-nested"],
)
def test_the_unclosed_session_error_line_holds_no_url(
    caplog: pytest.LogCaptureFixture, cancel_answer: HttpResponse
) -> None:
    records = _unclosed_scope_logs(caplog, cancel_answer)
    for record in records:
        message = record.getMessage()
        assert not UNMASKED_URL.search(message), message
        assert "modal.host" not in message
        assert "10.0.0.1" not in message
        assert len(message) < 1000


def test_a_session_id_holding_a_url_is_masked_in_every_log_line(
    caplog: pytest.LogCaptureFixture,
) -> None:
    hostile_id = f"{TUNNEL}/session/3f0c"
    created = HttpResponse(200, JSON, msgspec.json.encode({"session_id": hostile_id}))
    refused = HttpResponse(400, JSON, b'{"detail": "no"}')
    transport = Rewriting(FakeService(), {"POST": created, "DELETE": refused})
    caplog.set_level(logging.DEBUG, logger="cdsessions")
    client = SessionsClient(KEY, transport=transport, retry=False)
    scope = SessionScope(client, BODY, sleep=lambda _: None)
    with scope as started:
        assert isinstance(started, Failure)  # the fake does not know that id: gone
    assert scope.session_id == hostile_id
    assert isinstance(scope.closed, Failure)
    messages = [record.getMessage() for record in caplog.records]
    assert any(record.levelno == logging.ERROR for record in caplog.records)
    assert any("%3A%2F%2F<masked>" in message for message in messages)  # the request path
    for message in messages:
        assert not UNMASKED_URL.search(message), message
        assert "modal.host" not in message


def test_a_huge_hostile_session_id_is_shown_bounded(caplog: pytest.LogCaptureFixture) -> None:
    hostile_id = "\x1b[2J" + "x" * 1_000_000
    created = HttpResponse(200, JSON, msgspec.json.encode({"session_id": hostile_id}))
    transport = Rewriting(FakeService(), {"POST": created})
    caplog.set_level(logging.DEBUG, logger="cdsessions")
    scope = SessionScope(SessionsClient(KEY, transport=transport), BODY, sleep=lambda _: None)
    with scope as started:
        assert isinstance(failure_of(started), InvalidRequest)  # no get can carry that id
    assert scope.session_id == hostile_id
    assert isinstance(scope.closed, Failure)  # nor a cancel: reported, not raised
    assert len(repr(scope)) < 2 * REPR_LIMIT
    [line] = [r.getMessage() for r in caplog.records if r.levelno == logging.ERROR]
    assert len(line) < 1000
    assert "\x1b" not in line


def test_the_async_scope_error_line_holds_no_url(caplog: pytest.LogCaptureFixture) -> None:
    service = FakeService()
    moved = HttpResponse(307, (("Location", f"{TUNNEL}/session/x"),), b"")
    transport = Rewriting(service, {"DELETE": moved})
    caplog.set_level(logging.DEBUG, logger="cdsessions")

    async def scenario() -> None:
        async with AsyncSessionsClient(KEY, transport=InlineTransport(transport)) as client:
            scope = client.session(BODY, wait=False)
            async with scope as started:
                assert isinstance(started, Success)
            assert isinstance(scope.closed, Failure)

    run(scenario())
    errors = [r for r in caplog.records if r.levelno == logging.ERROR]
    assert len(errors) == 1
    for record in caplog.records:
        assert not UNMASKED_URL.search(record.getMessage())
        assert "modal.host" not in record.getMessage()
