"""The fake ComfyDeploy answers as contracts/live-bodies.json says the live server does.

Raw answers are checked byte for byte where that file quotes them; the rest through the real
client (``SessionsClient`` + ``FakeTransport``), so the fake and the decoders are held together.
"""

from __future__ import annotations

import json
from datetime import timedelta
from typing import Any

import msgspec
import pytest
from returns.result import Failure, Success

from cdsessions import (
    CreateSessionBody,
    HttpError,
    MachineGPU,
    Session,
    SessionsClient,
    TransportFailed,
    ValidationFailed,
)
from cdsessions._core.timeouts import Timeout
from cdsessions._core.wire import HttpRequest, HttpResponse
from cdsessions.errors import ApiError
from cdsessions.fake import DEFAULT_MACHINE_ID, FakeMachine, FakeService, FakeTransport, ManualClock
from tests.support import live_facts

KEY = "fake-key-alice"
OTHER_KEY = "fake-key-bob"
UNKNOWN_MACHINE = "0b5e55ed-0000-4000-8000-000000000000"


def _client(service: FakeService, key: str = KEY) -> SessionsClient:
    return SessionsClient(key, transport=FakeTransport(service), retry=False)


def _raw(
    service: FakeService,
    method: str,
    path: str,
    *,
    body: bytes | None = None,
    query: tuple[tuple[str, str], ...] = (),
    key: str | None = KEY,
) -> HttpResponse:
    headers = (("Authorization", f"Bearer {key}"),) if key is not None else ()
    return service.handle(HttpRequest(method, path, query, headers, body))


def _json(response: HttpResponse) -> Any:
    return json.loads(response.body)


def _failure(result: object) -> ApiError:
    assert isinstance(result, Failure), result
    error = result.failure()
    assert isinstance(error, ApiError)
    return error


def _create(client: SessionsClient, **fields: Any) -> str:
    body = CreateSessionBody(machine_id=fields.pop("machine_id", DEFAULT_MACHINE_ID), **fields)
    created = client.create(body)
    assert isinstance(created, Success), created
    session_id: str = created.unwrap().session_id
    return session_id


# -- the documented constants ------------------------------------------------------------------


def test_default_machine_is_a_documented_constant_and_an_attribute() -> None:
    service = FakeService()
    assert service.DEFAULT_MACHINE_ID == DEFAULT_MACHINE_ID == FakeService.DEFAULT_MACHINE_ID
    assert service.machine_ids == (DEFAULT_MACHINE_ID,)


def test_the_fake_is_exported_from_the_package() -> None:
    import cdsessions
    import cdsessions.fake

    assert cdsessions.fake.FakeService is FakeService
    assert cdsessions.fake.FakeTransport is FakeTransport
    assert cdsessions.fake.FakeTransport is FakeTransport


# -- auth --------------------------------------------------------------------------------------


@pytest.mark.parametrize("authorization", [None, "", "Bearer", "Bearer   ", "Basic abc"])
def test_missing_or_malformed_bearer_is_401(authorization: str | None) -> None:
    headers = () if authorization is None else (("Authorization", authorization),)
    answer = FakeService().handle(HttpRequest("GET", "/sessions", (), headers))
    assert answer.status == 401
    assert answer.body == b'{"detail":"Invalid or missing token"}'


def test_configured_keys_refuse_others() -> None:
    service = FakeService(keys={"good": "acct-1"})
    assert _raw(service, "GET", "/sessions", key="good").status == 200
    refused = _raw(service, "GET", "/sessions", key="bad")
    assert (refused.status, refused.body) == (401, b'{"detail":"Invalid or expired token"}')


def test_keys_mapped_to_one_account_share_sessions() -> None:
    service = FakeService(keys={"k1": "team", "k2": "team", "k3": "solo"})
    sid = _create(_client(service, "k1"))
    assert isinstance(_client(service, "k2").get(sid), Success)
    assert _failure(_client(service, "k3").get(sid)) == HttpError(
        f"get session {sid}", 404, "GPUEvent not found"
    )


def test_each_key_is_its_own_account() -> None:
    service = FakeService()
    alice, bob = _client(service), _client(service, OTHER_KEY)
    sid = _create(alice)
    for result in (bob.get(sid), bob.cancel(sid), bob.extend(sid, 5)):
        error = _failure(result)
        assert isinstance(error, HttpError)
        assert error.status == 404
    assert bob.list().unwrap() == []
    assert [s.session_id for s in alice.list().unwrap()] == [sid]


# -- create, readiness -------------------------------------------------------------------------


@pytest.mark.parametrize("timeout", [None, 0])
def test_timeout_null_or_zero_becomes_15_minutes(timeout: int | None) -> None:
    clock = ManualClock()
    service = FakeService(clock=clock)
    client = _client(service)
    session = client.get(_create(client, timeout=timeout)).unwrap()
    assert session.timeout == 15
    assert session.created_at == clock()
    assert session.timeout_end == clock() + timedelta(minutes=15)


def test_create_answers_url_null_then_get_polls_until_ready() -> None:
    service = FakeService(ready_after_polls=2)
    client = _client(service)
    created = _raw(
        service, "POST", "/session", body=json.dumps({"machine_id": DEFAULT_MACHINE_ID}).encode()
    )
    assert created.status == 200
    assert _json(created)["url"] is None
    sid = _json(created)["session_id"]
    urls = [client.get(sid).unwrap().url for _ in range(4)]
    assert urls[:2] == [None, None]
    assert urls[2] is not None
    assert urls[2] == urls[3]
    assert urls[2].startswith("https://fake-")
    assert urls[2].endswith(".r5.modal.localhost")


def test_readiness_by_clock_time() -> None:
    clock = ManualClock()
    service = FakeService(clock=clock, ready_after_polls=None, ready_after=timedelta(seconds=30))
    client = _client(service)
    sid = _create(client)
    assert client.get(sid).unwrap().url is None
    clock.advance(29)
    assert client.list().unwrap()[0].url is None
    clock.advance(1)
    assert client.list().unwrap()[0].url is not None  # list shows it too, not only get


def test_wait_for_server_returns_the_url_at_once() -> None:
    service = FakeService(ready_after_polls=None)
    client = _client(service)
    created = client.create(CreateSessionBody(machine_id=DEFAULT_MACHINE_ID, wait_for_server=True))
    url = created.unwrap().url
    assert url is not None
    assert client.get(created.unwrap().session_id).unwrap().url == url


def test_gpu_defaults_to_the_machines() -> None:
    service = FakeService(machines=[FakeMachine(DEFAULT_MACHINE_ID, gpu="H100")])
    client = _client(service)
    assert client.get(_create(client)).unwrap().gpu == "H100"
    assert client.get(_create(client, gpu=MachineGPU.T4)).unwrap().gpu == "T4"


def test_live_shape_fields() -> None:
    service = FakeService(clock=ManualClock())
    client = _client(service)
    sid = _create(client)
    body = _json(_raw(service, "GET", f"/session/{sid}"))
    assert set(body) == {
        "id", "session_id", "gpu_event_id", "url", "gpu", "created_at", "timeout",
        "timeout_end", "machine_id", "machine_version_id", "status", "user_id", "org_id",
    }  # fmt: skip
    assert body["id"] == body["session_id"] == sid
    assert body["status"] == "running"
    assert body["org_id"] == "None"
    assert body["created_at"].endswith("Z")
    assert body["timeout_end"] == "2025-11-02T12:15:00"  # naive, meaning UTC


def test_at_most_five_live_sessions_per_machine_and_account() -> None:
    service = FakeService(machines=[DEFAULT_MACHINE_ID, UNKNOWN_MACHINE.replace("0b5e", "0c5e")])
    alice = _client(service)
    ids = [_create(alice) for _ in range(5)]
    sixth = _failure(alice.create(CreateSessionBody(machine_id=DEFAULT_MACHINE_ID)))
    assert sixth == HttpError(
        f"create session on machine {DEFAULT_MACHINE_ID}",
        400,
        "You have reached the maximum number of concurrent sessions. "
        "Please close some sessions and try again.",
    )
    _create(alice, machine_id=service.machine_ids[1])  # another machine is not full
    _create(_client(service, OTHER_KEY))  # nor is another account
    assert isinstance(alice.cancel(ids[0]), Success)
    _create(alice)  # a slot freed


def test_unknown_machine_on_create() -> None:
    service = FakeService()
    client = _client(service)
    error = _failure(client.create(CreateSessionBody(machine_id=UNKNOWN_MACHINE)))
    assert error == HttpError(
        f"create session on machine {UNKNOWN_MACHINE}", 404, "Machine not found"
    )
    # Not a UUID: the live server's Postgres cast fails, a plain-text 500.
    body = json.dumps({"machine_id": "not-a-uuid"}).encode()
    answer = _raw(service, "POST", "/session", body=body)
    assert answer.status == 500
    assert answer.header("content-type") == "text/plain; charset=utf-8"
    assert answer.body == b"Internal Server Error"
    assert service.live_sessions() == ()


def test_configured_non_uuid_machine_ids_work() -> None:
    service = FakeService(machines=["my-test-machine"])
    client = _client(service)
    sid = _create(client, machine_id="my-test-machine")
    assert [s.session_id for s in client.list("my-test-machine").unwrap()] == [sid]


# -- 422 bodies, exactly as contracts/live-bodies.json gives them (FastAPI's) -----------------


@pytest.mark.parametrize("invalid", live_facts.invalid_requests(), ids=lambda i: i.request)
def test_422_bodies_match_the_live_server(invalid: live_facts.Invalid) -> None:
    answer = _raw(
        FakeService(), invalid.method, invalid.path, body=invalid.body, query=invalid.query
    )
    assert answer.status == 422
    assert _json(answer) == json.loads(invalid.response)


def test_422_decodes_to_validation_failed_with_every_problem() -> None:
    body = json.dumps({"gpu": "X", "timeout": "soon", "wait_for_server": "perhaps"}).encode()
    answer = _raw(FakeService(), "POST", "/session", body=body)
    locs = [tuple(item["loc"]) for item in _json(answer)["detail"]]
    assert locs == [
        ("body", "machine_id"),
        ("body", "gpu"),
        ("body", "timeout"),
        ("body", "wait_for_server"),
    ]
    from cdsessions._core.decoding import CREATED, decode

    error = _failure(decode(answer, CREATED, "create"))
    assert isinstance(error, ValidationFailed)
    assert len(error.items) == 4


def test_lax_values_are_accepted_as_pydantic_does() -> None:
    service = FakeService()
    body = {"machine_id": DEFAULT_MACHINE_ID, "timeout": "20", "wait_for_server": "yes"}
    answer = _raw(service, "POST", "/session", body=json.dumps(body).encode())
    assert answer.status == 200
    assert _json(answer)["url"] is not None
    assert service.live_sessions()[0].timeout == 20


def test_malformed_json_body_is_422() -> None:
    answer = _raw(FakeService(), "POST", "/session", body=b'{"machine_id": ')
    item = _json(answer)["detail"][0]
    assert (answer.status, item["type"], item["loc"][0]) == (422, "json_invalid", "body")


# -- list --------------------------------------------------------------------------------------


def test_list_filters_by_machine_and_never_fails_for_an_unknown_one() -> None:
    other = "0c5e0000-0000-4000-8000-000000000000"
    service = FakeService(machines=[DEFAULT_MACHINE_ID, other])
    client = _client(service)
    first, second = _create(client), _create(client, machine_id=other)
    assert [s.session_id for s in client.list().unwrap()] == [second, first]  # newest first
    assert [s.session_id for s in client.list(DEFAULT_MACHINE_ID).unwrap()] == [first]
    assert client.list(UNKNOWN_MACHINE).unwrap() == []
    # An empty machine_id is falsy on the server: all sessions.
    everything = _raw(service, "GET", "/sessions", query=(("machine_id", ""),))
    assert len(_json(everything)) == 2


# -- cancel, expiry, extend --------------------------------------------------------------------


def test_cancel_then_second_cancel_and_get_are_404() -> None:
    service = FakeService()
    client = _client(service)
    sid = _create(client)
    assert client.cancel(sid).unwrap().success is True
    second = _raw(service, "DELETE", f"/session/{sid}")
    assert second.status == 404
    assert _json(second) == {
        "detail": f"GPUEvent not found session_id: {sid}, the event might be already closed"
    }
    assert _raw(service, "GET", f"/session/{sid}").body == b'{"detail":"GPUEvent not found"}'
    assert service.live_sessions() == ()


def test_cancel_accepts_wait_for_shutdown() -> None:
    service = FakeService()
    client = _client(service)
    assert client.cancel(_create(client), wait_for_shutdown=True).unwrap().success is True


def test_early_cancel_gives_400_and_closes_anyway() -> None:
    service = FakeService(early_cancel_fails=True)
    client = _client(service)
    sid = _create(client)
    error = _failure(client.cancel(sid))
    assert error == HttpError(f"cancel session {sid}", 400, "Modal function id not found")
    assert service.live_sessions() == ()
    ready = _create(client, wait_for_server=True)
    assert isinstance(client.cancel(ready), Success)


def test_sessions_expire_at_timeout_end() -> None:
    clock = ManualClock()
    service = FakeService(clock=clock)
    client = _client(service)
    sid = _create(client, timeout=5)
    clock.advance(minutes=5, seconds=-1)
    assert isinstance(client.get(sid), Success)
    clock.advance(1)
    assert _failure(client.get(sid)) == HttpError(f"get session {sid}", 404, "GPUEvent not found")
    assert client.list().unwrap() == []
    assert service.live_sessions() == ()


def test_extend_moves_timeout_end_but_not_timeout() -> None:
    clock = ManualClock()
    service = FakeService(clock=clock)
    client = _client(service)
    sid = _create(client)
    assert client.extend(sid, 10).unwrap().message == "Timeout increased successfully"
    session: Session = client.get(sid).unwrap()
    assert session.timeout == 15  # stale after an extension, as live
    assert session.timeout_end == clock() + timedelta(minutes=25)
    clock.advance(minutes=20)
    assert isinstance(client.get(sid), Success)  # would have expired without the extension


def test_extend_is_not_held_to_an_hour_left() -> None:
    """The server's only time rule is the free plan's 30-minute total (not modelled)."""
    service = FakeService(clock=ManualClock())
    client = _client(service)
    sid = _create(client)
    assert isinstance(client.extend(sid, 45), Success)
    assert isinstance(client.extend(sid, 600), Success)


def test_extend_of_a_gone_session_is_404_with_its_own_text() -> None:
    service = FakeService()
    client = _client(service)
    sid = _create(client)
    client.cancel(sid)
    assert _failure(client.extend(sid, 5, check_cap=False)) == HttpError(
        f"extend session {sid}", 404, "Timeout end not found for session"
    )
    gone = "0b5e55ed-0000-4000-8000-000000000000"
    assert _failure(client.extend(gone, 5, check_cap=False)) == HttpError(
        f"extend session {gone}", 404, "GPU event not found"
    )


def test_extend_body_is_validated() -> None:
    service = FakeService()
    sid = _create(_client(service))
    answer = _raw(service, "POST", f"/session/{sid}/increase-timeout", body=b"{}")
    assert _json(answer) == {
        "detail": [{"type": "missing", "loc": ["body", "minutes"], "msg": "Field required",
                    "input": {}}]
    }  # fmt: skip


# -- routing -----------------------------------------------------------------------------------


def test_unknown_routes_and_methods() -> None:
    service = FakeService()
    assert _raw(service, "GET", "/nope").body == b'{"detail":"Not Found"}'
    assert _raw(service, "PUT", "/session/x").status == 405
    assert _raw(service, "GET", "/session").status == 405
    # Starlette routes on the decoded path: an encoded "/" makes it another route.
    assert _raw(service, "GET", "/session/a%2Fb").body == b'{"detail":"Not Found"}'


def test_percent_encoded_ids_are_decoded() -> None:
    service = FakeService()
    answer = _raw(service, "GET", "/session/%20x")
    assert (answer.status, _json(answer)) == (404, {"detail": "GPUEvent not found"})


# -- seed shapes -------------------------------------------------------------------------------


def test_seed_shapes_answer_like_the_seed_document() -> None:
    service = FakeService(seed_shapes=True, ready_after_polls=0)
    client = _client(service)
    sid = _create(client)
    raw = _json(_raw(service, "GET", f"/session/{sid}"))
    assert set(raw) == {"session_id", "gpu_event_id", "url"}
    events = _json(_raw(service, "GET", "/sessions", query=(("machine_id", DEFAULT_MACHINE_ID),)))
    assert events[0]["id"] == raw["gpu_event_id"]
    assert events[0]["gpu_provider"] == "modal"
    listed = client.list(DEFAULT_MACHINE_ID).unwrap()  # decoded via GPUEventModel
    assert [(s.session_id, s.gpu_event_id, s.url) for s in listed] == [
        (sid, raw["gpu_event_id"], raw["url"])
    ]
    missing = _failure(client.list())  # the seed required machine_id
    assert isinstance(missing, ValidationFailed)
    assert missing.items[0].loc == ("query", "machine_id")


# -- determinism, the transport, secrecy -------------------------------------------------------


def _script(service: FakeService) -> list[tuple[int, bytes]]:
    client = _client(service)
    sid = _create(client)
    _create(_client(service, OTHER_KEY), wait_for_server=True)
    return [
        (r.status, r.body)
        for r in (
            _raw(service, "GET", f"/session/{sid}"),
            _raw(service, "GET", f"/session/{sid}"),
            _raw(service, "GET", "/sessions", key=OTHER_KEY),
            _raw(service, "DELETE", f"/session/{sid}"),
        )
    ]


def test_same_requests_same_answers() -> None:
    first = _script(FakeService(clock=ManualClock()))
    assert first == _script(FakeService(clock=ManualClock()))
    assert first != _script(FakeService(clock=ManualClock(), seed=1))


def test_fake_transport_caps_the_body() -> None:
    service = FakeService()
    client = _client(service)
    for _ in range(3):
        _create(client)
    request = HttpRequest("GET", "/sessions", (), (("Authorization", f"Bearer {KEY}"),))
    sent = FakeTransport(service).send(
        msgspec.structs.replace(
            request, timeout=Timeout(), max_response_bytes=100, operation="list sessions"
        )
    )
    error = _failure(sent)
    assert isinstance(error, TransportFailed)
    assert error.kind == "too_large"


def test_reprs_never_show_urls_or_keys() -> None:
    service = FakeService(keys={"sk-SECRET-1": "acct"})
    client = _client(service, "sk-SECRET-1")
    _create(client, wait_for_server=True)
    (session,) = service.live_sessions()
    shown = repr(session) + repr(service) + repr(FakeTransport(service))
    assert "modal.localhost" not in shown
    assert "SECRET" not in shown
    assert service.live_sessions("sk-SECRET-1") == (session,)
    assert service.live_sessions("nobody") == ()


def _list_with(authorization: str) -> tuple[int, bytes]:
    answer = FakeService().handle(
        HttpRequest("GET", "/sessions", (), (("Authorization", authorization),))
    )
    return answer.status, answer.body


@pytest.mark.parametrize("scheme", ["Token", "Basic", "Key", "Api-Key", "Bearer:", "Bearerx"])
def test_only_a_bearer_token_authenticates(scheme: str) -> None:
    """Found by applying a deliberate bug the older tests let through."""
    assert _list_with(f"{scheme} sk-0123") == (401, b'{"detail":"Invalid or missing token"}')


@pytest.mark.parametrize("scheme", ["Bearer", "bearer", "BEARER"])
def test_the_bearer_scheme_is_case_insensitive(scheme: str) -> None:
    """Found by applying a deliberate bug the older tests let through."""
    assert _list_with(f"{scheme} sk-0123") == (200, b"[]")


@pytest.mark.parametrize("timeout", [-1, -15, 7 * 24 * 60 + 1, 10**12, 2**63 - 1])
def test_a_timeout_out_of_any_range_is_accepted_as_the_server_does(timeout: int) -> None:
    """The server does not range-check it (api-facts.md): 200, and the session ends at once
    (negative) or at the platform's 24-hour cap."""
    clock = ManualClock()
    service = FakeService(clock=clock)
    body = json.dumps({"machine_id": DEFAULT_MACHINE_ID, "timeout": timeout}).encode()
    headers = (("Authorization", "Bearer sk-0123"), ("Content-Type", "application/json"))
    answer = service.handle(HttpRequest("POST", "/session", (), headers, body))
    assert answer.status == 200
    if timeout < 0:
        assert service.live_sessions() == ()
        return
    assert [s.timeout for s in service.live_sessions()] == [timeout]
    clock.advance(minutes=24 * 60 - 1)
    assert len(service.live_sessions()) == 1
    clock.advance(minutes=1)
    assert service.live_sessions() == ()  # the container stops at 24 h whatever the timeout
