"""Every operation end to end: SessionsClient → Urllib3Transport → a real server on 127.0.0.1.

Also what the client reads or refuses before sending anything (the key variable, options
without a value of their own, a user agent that cannot be a header, a pool or cap of zero),
checked through in-memory transports."""

from __future__ import annotations

import json
import socket
from collections.abc import Callable, Iterator
from typing import Any, Final
from urllib.parse import unquote, urlsplit

import pytest
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st
from returns.result import Failure, Result, Success

from cdsessions import (
    ApiError,
    AsyncSessionsClient,
    CreateSessionBody,
    DecodeFailed,
    HttpError,
    InvalidRequest,
    Session,
    SessionsClient,
    Timeout,
    TransportFailed,
    ValidationFailed,
)
from cdsessions._core.builders import check_id
from cdsessions.fake import DEFAULT_MACHINE_ID
from cdsessions.transports._inline import InlineTransport
from tests.support import samples
from tests.support.checks import refused, run
from tests.support.loopback import LoopbackServer, Received, Reply, json_reply, serve
from tests.support.transports import Recorder, Recording, client_with, ok

KEY = "sk-live-TOPSECRET-0123456789"

Call = Callable[[SessionsClient], Result[Any, ApiError]]

# Each operation, how the client calls it, and the request line it must produce.
OPERATIONS: dict[str, tuple[Call, str, str, str]] = {
    "get": (lambda c: c.get("s-1"), "GET", "/api/session/s-1", samples.LIVE_SESSION),
    "cancel": (lambda c: c.cancel("s-1"), "DELETE", "/api/session/s-1", samples.DELETED),
    "list": (lambda c: c.list("m-1"), "GET", "/api/sessions?machine_id=m-1", "[]"),
    "create": (
        lambda c: c.create(CreateSessionBody(machine_id="m-1", timeout=5)),
        "POST",
        "/api/session",
        samples.CREATED,
    ),
}


@pytest.fixture
def client_for() -> Iterator[Callable[..., SessionsClient]]:
    made: list[SessionsClient] = []

    def make(server: LoopbackServer, **options: Any) -> SessionsClient:
        options.setdefault("timeout", Timeout(connect=2, read=2))
        options.setdefault("retry", False)  # one request per call: retries have their own tests
        client = SessionsClient(KEY, server=server.base_url, **options)
        made.append(client)
        return client

    yield make
    for client in made:
        client.close()


def failure_of(result: Result[Any, ApiError]) -> ApiError:
    assert isinstance(result, Failure), result
    error: ApiError = result.failure()
    assert KEY not in str(error)
    assert KEY not in repr(error)
    return error


@pytest.mark.parametrize("name", OPERATIONS)
def test_success_sends_the_documented_request(
    name: str, client_for: Callable[..., SessionsClient]
) -> None:
    call, method, target, body = OPERATIONS[name]
    with serve(lambda _: json_reply(200, body)) as server:
        result = call(client_for(server))
    assert isinstance(result, Success), result
    (seen,) = server.received
    assert (seen.method, seen.target) == (method, target)
    assert seen.headers["Authorization"] == f"Bearer {KEY}"
    assert seen.headers["Accept"] == "application/json"
    assert seen.headers["User-Agent"].startswith("cdsessions/")
    if method == "POST":
        assert seen.headers["Content-Type"] == "application/json"
        assert json.loads(seen.body) == {
            "machine_id": "m-1",
            "timeout": 5,
            "wait_for_server": False,
        }


def test_success_values_are_decoded(client_for: Callable[..., SessionsClient]) -> None:
    bodies = {
        "GET /api/session/s-1": samples.LIVE_SESSION_READY,
        "DELETE /api/session/s-1": samples.DELETED,
    }

    def script(request: Received) -> Reply:
        key = f"{request.method} {request.target.split('?')[0]}"
        if key in bodies:
            return json_reply(200, bodies[key])
        if request.target.startswith("/api/sessions"):
            return json_reply(200, f"[{samples.LIVE_SESSION}]")
        return json_reply(200, samples.CREATED)

    with serve(script) as server:
        client = client_for(server)
        session = client.get("s-1").unwrap()
        assert isinstance(session, Session)
        assert session.url == samples.TUNNEL_URL
        assert samples.TUNNEL_URL not in repr(session)
        assert client.cancel("s-1").unwrap().success is True
        assert [s.session_id for s in client.list().unwrap()] == [samples.SESSION_ID]
        assert (
            client.create(CreateSessionBody(machine_id="m")).unwrap().session_id
            == samples.SESSION_ID
        )


@pytest.mark.parametrize("name", OPERATIONS)
@pytest.mark.parametrize(
    ("status", "body", "content_type", "error_type", "detail"),
    [
        (404, samples.NOT_FOUND, "application/json", HttpError, "GPUEvent not found"),
        (401, samples.UNAUTHORIZED, "application/json", HttpError, "Invalid or missing token"),
        (400, samples.TOO_MANY, "application/json", HttpError, "maximum number of concurrent"),
        (422, samples.UNPROCESSABLE_MISSING, "application/json", ValidationFailed, None),
        (500, "Internal Server Error", "text/plain", HttpError, "Internal Server Error"),
    ],
)
def test_error_answers_become_typed_failures(
    name: str,
    status: int,
    body: str,
    content_type: str,
    error_type: type[ApiError],
    detail: str | None,
    client_for: Callable[..., SessionsClient],
) -> None:
    call = OPERATIONS[name][0]
    reply = Reply(status, body.encode(), (("Content-Type", content_type),))
    with serve(lambda _: reply) as server:
        error = failure_of(call(client_for(server)))
    assert type(error) is error_type
    assert isinstance(error, HttpError)
    assert error.status == status
    if detail is not None:
        assert isinstance(error.detail, str)
        assert detail in error.detail
    else:
        assert isinstance(error, ValidationFailed)
        assert error.items[0].loc == ("body", "machine_id")
    assert f"({status})" in str(error)


@pytest.mark.parametrize("name", OPERATIONS)
def test_malformed_json_is_decode_failed(
    name: str, client_for: Callable[..., SessionsClient]
) -> None:
    with serve(lambda _: json_reply(200, '{"session_id": ')) as server:
        error = failure_of(OPERATIONS[name][0](client_for(server)))
    assert isinstance(error, DecodeFailed)
    assert error.status == 200


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@pytest.mark.parametrize("name", OPERATIONS)
def test_connection_refused_is_a_connect_failure_that_was_not_sent(name: str) -> None:
    with SessionsClient(KEY, server=f"http://127.0.0.1:{_free_port()}/api") as client:
        error = failure_of(OPERATIONS[name][0](client))
    assert isinstance(error, TransportFailed)
    assert (error.kind, error.sent) == ("connect", False)
    assert "refused" in str(error)


@pytest.mark.parametrize("name", OPERATIONS)
def test_a_server_slower_than_the_read_timeout_is_a_timeout(
    name: str, client_for: Callable[..., SessionsClient]
) -> None:
    slow = Reply(200, OPERATIONS[name][3].encode(), delay=1.0)
    with serve(lambda _: slow) as server:
        client = client_for(server, timeout=Timeout(connect=1, read=0.2))
        error = failure_of(OPERATIONS[name][0](client))
    assert isinstance(error, TransportFailed)
    assert error.kind == "timeout"
    assert error.sent is True  # it may have reached the server: never blindly repeated


def test_missing_key_is_refused_before_sending(
    monkeypatch: pytest.MonkeyPatch, client_for: Callable[..., SessionsClient]
) -> None:
    monkeypatch.delenv("COMFY_DEPLOY_API_KEY", raising=False)
    with serve(lambda _: json_reply(200, samples.LIVE_SESSION)) as server:
        with SessionsClient(server=server.base_url) as client:
            error = failure_of(client.get("s-1"))
        assert isinstance(error, InvalidRequest)
        assert "COMFY_DEPLOY_API_KEY" in str(error)
        assert server.received == []


def test_key_from_environment_and_from_a_callable(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("COMFY_DEPLOY_API_KEY", "env-key")
    with serve(lambda _: json_reply(200, samples.LIVE_SESSION)) as server:
        with SessionsClient(server=server.base_url) as client:
            assert isinstance(client.get("s"), Success)
        keys = iter(["rotated-1", "rotated-2"])
        with SessionsClient(lambda: next(keys), server=server.base_url) as client:
            client.get("s")
            client.get("s")
    assert [r.headers["Authorization"] for r in server.received] == [
        "Bearer env-key",
        "Bearer rotated-1",
        "Bearer rotated-2",
    ]


def test_a_failing_bearer_callable_is_a_value_and_hides_its_message() -> None:
    def broken() -> str:
        raise RuntimeError(f"vault said no for {KEY}")

    with SessionsClient(broken, server="http://127.0.0.1:9/api") as client:
        error = failure_of(client.get("s"))
    assert isinstance(error, InvalidRequest)
    assert "RuntimeError" in str(error)


@pytest.mark.parametrize("bad", ["", "  ", "key\r\nX-Evil: 1", "kéy"])
def test_unusable_keys_are_refused(bad: str) -> None:
    with SessionsClient(bad, server="http://127.0.0.1:9/api") as client:
        error = failure_of(client.get("s"))
    assert isinstance(error, InvalidRequest)
    assert error.field == "bearer"


@pytest.mark.parametrize("server", ["ftp://x", "not a url", "https://h/api?x=1", "https://u:p@h/"])
def test_unusable_servers_are_refused(server: str) -> None:
    with SessionsClient(KEY, server=server) as client:
        error = failure_of(client.get("s"))
        shown = repr(client)
    assert isinstance(error, InvalidRequest)
    assert error.field == "server"
    # Neither the address as given (it may hold credentials) nor a guess at what it meant.
    assert shown == "SessionsClient(server='<unusable>')"


def test_plain_http_to_a_remote_host_is_refused_unless_allowed() -> None:
    with SessionsClient(KEY, server="http://api.example.invalid/api") as client:
        error = failure_of(client.get("s"))
    assert isinstance(error, InvalidRequest)
    assert "allow_insecure_http" in str(error)


def test_context_manager_closes_only_what_it_opened() -> None:
    class Recording:
        closed = 0

        def send(self, *args: object, **kwargs: object) -> Result[Any, TransportFailed]:
            raise AssertionError("not called")

        def close(self) -> None:
            self.closed += 1

    mine = Recording()
    with SessionsClient(KEY, transport=mine):
        pass
    assert mine.closed == 0
    assert KEY not in repr(SessionsClient(KEY))


# -- the id property: whatever is accepted reaches /session/<id> and decodes back -----------

_ids = st.text(st.characters(codec="utf-8"), min_size=1, max_size=40).filter(
    lambda s: isinstance(check_id(s, "session_id", "get"), Success)
)


@pytest.fixture(scope="module")
def echo_server() -> Iterator[LoopbackServer]:
    with serve(lambda _: json_reply(200, samples.LIVE_SESSION)) as server:
        yield server


@settings(
    max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(session_id=_ids)
@example(session_id="-x")
@example(session_id="--help")
@example(session_id="--")
@example(session_id="x" * 40)
@example(session_id="\U0001f600")
@example(session_id="a b")
def test_any_accepted_id_routes_to_its_session_and_decodes_back(
    session_id: str, echo_server: LoopbackServer
) -> None:
    with SessionsClient(KEY, server=echo_server.base_url) as client:
        assert isinstance(client.get(session_id), Success)
    target = echo_server.received[-1].target
    path = urlsplit(target).path
    assert urlsplit(target).query == ""
    assert path.startswith("/api/session/")
    segment = path.removeprefix("/api/session/")
    assert "/" not in segment
    assert unquote(segment, errors="strict") == session_id


BODY = CreateSessionBody(machine_id=DEFAULT_MACHINE_ID)


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
    """From issue 10: the boundary never raises."""
    transport = Recording()
    client = SessionsClient(KEY, transport=transport, **{option: value})  # type: ignore[arg-type]
    aclient = AsyncSessionsClient(KEY, transport=InlineTransport(transport), **{option: value})  # type: ignore[arg-type]
    for result in (client.list(), client.create(BODY), run(aclient.get("s"))):
        assert refused(result) == option
    assert transport.sent == []


SESSION_BODY: Final = b'{"session_id": "s-1", "gpu_event_id": "e-1"}'


def test_the_api_key_variable_is_read_when_a_request_is_made(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Bug: ``COMFY_DEPLOY_API_KEY`` read once when the client is made, not per request.

    Found by applying a deliberate bug the older tests let through."""
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


def test_a_user_agent_that_cannot_be_a_header_is_refused_before_sending() -> None:
    """Bug: the ``user_agent`` option not checked, so a line break in it goes on the wire
    (or fails in the HTTP stack after the key was prepared).

    Found by applying a deliberate bug the older tests let through."""
    for agent in ("cdsessions\r\nX-Injected: 1", "café/1.0"):
        transport = Recorder(ok(SESSION_BODY))
        result = client_with(transport, user_agent=agent).get("s-1")
        assert isinstance(result, Failure)
        failure = result.failure()
        assert isinstance(failure, InvalidRequest)
        assert failure.field == "user_agent"
        assert transport.sent == []


@pytest.mark.parametrize(("option", "value"), [("max_connections", 0), ("max_response_bytes", 0)])
def test_a_pool_or_cap_of_zero_is_refused_before_sending(option: str, value: int) -> None:
    """Bug: 0 accepted (a pool of no connections waits out every deadline; a cap of no bytes
    fails every call after it was sent).

    Found by applying a deliberate bug the older tests let through."""
    transport = Recorder(ok(SESSION_BODY))
    result = client_with(transport, **{option: value}).get("s-1")
    assert isinstance(result, Failure)
    failure = result.failure()
    assert isinstance(failure, InvalidRequest)
    assert failure.field == option
    assert transport.sent == []
