"""``contracts/live-bodies.json`` against the fake and the models: the fake answers every fact it
models with exactly the listed status and body, its limits are the listed ones, and every sample
payload decodes into the model the client hands out."""

from __future__ import annotations

import json
from datetime import timedelta
from typing import Final

import msgspec
import pytest

from cdsessions._core.decoding import CREATED, DELETED, SESSION, decode, decode_session_list
from cdsessions._core.wire import HttpRequest, HttpResponse
from cdsessions.fake import DEFAULT_MACHINE_ID, FakeService, ManualClock
from cdsessions.fake import service as fake_service
from cdsessions.models import GPUEventModel, MachineGPU
from tests.support import live_facts, samples

KEY: Final = "sk-live-facts-0123456789"
UNKNOWN_ID: Final = "0b5e55ed-0000-4000-8000-000000000000"
_CREATE: Final = json.dumps({"machine_id": DEFAULT_MACHINE_ID}).encode()


def _send(
    service: FakeService,
    method: str,
    path: str,
    body: bytes | None = None,
    query: tuple[tuple[str, str], ...] = (),
    key: str | None = KEY,
) -> HttpResponse:
    headers = (("Authorization", f"Bearer {key}"),) if key is not None else ()
    return service.handle(HttpRequest(method, path, query, headers, body))


def _created(service: FakeService) -> str:
    answer = _send(service, "POST", "/session", _CREATE)
    assert answer.status == 200, answer.body
    session_id: str = json.loads(answer.body)["session_id"]
    return session_id


def _assert_answers(answer: HttpResponse, expected: live_facts.Answer, **template: str) -> None:
    assert answer.status == expected.status, (expected.case, answer.body)
    assert expected.body is not None
    body = expected.body.replace("{session_id}", template.get("session_id", "{session_id}"))
    if expected.content_type == "application/json":
        assert json.loads(answer.body) == json.loads(body), expected.case
    else:
        assert answer.body == body.encode(), expected.case
    assert answer.header("content-type") == expected.content_type, expected.case


# -- every answer the fake models ----------------------------------------------------------------


def test_get_of_an_unknown_session() -> None:
    expected = live_facts.answer("get", "unknown, ended or another account's id")
    _assert_answers(_send(FakeService(), "GET", f"/session/{UNKNOWN_ID}"), expected)


def test_get_of_another_accounts_session_is_the_same_404() -> None:
    service = FakeService()
    theirs = _created(service)
    expected = live_facts.answer("get", "unknown, ended or another account's id")
    _assert_answers(_send(service, "GET", f"/session/{theirs}", key="another-key"), expected)


def test_list_of_an_unknown_machine_and_of_a_non_uuid() -> None:
    service = FakeService()
    query = (("machine_id", UNKNOWN_ID),)
    _assert_answers(
        _send(service, "GET", "/sessions", query=query),
        live_facts.answer("list", "unknown machine"),
    )
    _assert_answers(
        _send(service, "GET", "/sessions", query=(("machine_id", "not-a-uuid"),)),
        live_facts.answer("list", "machine_id not a UUID"),
    )


def test_create_on_an_unknown_machine() -> None:
    body = json.dumps({"machine_id": UNKNOWN_ID}).encode()
    expected = live_facts.answer("create", "unknown machine")
    _assert_answers(_send(FakeService(), "POST", "/session", body), expected)


def test_cancel_answers() -> None:
    service = FakeService()
    session_id = _created(service)
    _assert_answers(
        _send(service, "DELETE", f"/session/{session_id}"),
        live_facts.answer("cancel", "success"),
    )
    gone = live_facts.answer("cancel", "unknown, ended or another account's id")
    _assert_answers(_send(service, "DELETE", f"/session/{session_id}"), gone, session_id=session_id)


def test_cancel_in_a_sessions_first_moments() -> None:
    service = FakeService(early_cancel_fails=True, ready_after_polls=None)
    session_id = _created(service)
    expected = live_facts.answer("cancel", "cancelled in its first moments (closed anyway)")
    _assert_answers(_send(service, "DELETE", f"/session/{session_id}"), expected)
    assert service.live_sessions() == ()


def test_extend_answers() -> None:
    service = FakeService()
    session_id = _created(service)
    path = f"/session/{session_id}/increase-timeout"
    minutes = json.dumps({"minutes": 5}).encode()
    _send(service, "GET", f"/session/{session_id}")  # started: its one poll has seen its url
    _assert_answers(_send(service, "POST", path, minutes), live_facts.answer("extend", "success"))
    gone = live_facts.answer("extend", "session gone")
    unknown = f"/session/{UNKNOWN_ID}/increase-timeout"
    _assert_answers(_send(service, "POST", unknown, minutes), gone)


@pytest.mark.parametrize("key", [None, ""])
def test_a_missing_bearer(key: str | None) -> None:
    expected = live_facts.answer("any", "missing or bad bearer")
    _assert_answers(_send(FakeService(), "GET", "/sessions", key=key), expected)


# -- limits ------------------------------------------------------------------------------------


def test_live_sessions_per_machine() -> None:
    limit = live_facts.limit("live_sessions_per_machine")
    service = FakeService()
    for _ in range(limit):
        _created(service)
    status, body = live_facts.limit_answer("live_sessions_per_machine")
    refused = _send(service, "POST", "/session", _CREATE)
    assert (refused.status, json.loads(refused.body)) == (status, json.loads(body))
    assert len(service.live_sessions()) == limit
    assert body == samples.TOO_MANY


def test_the_default_timeout() -> None:
    for timeout in (None, 0):
        service = FakeService()
        body = json.dumps({"machine_id": DEFAULT_MACHINE_ID, "timeout": timeout}).encode()
        assert _send(service, "POST", "/session", body).status == 200
        (session,) = service.live_sessions()
        assert session.timeout == live_facts.limit("default_timeout_minutes")


def test_extend_of_a_cancelled_or_unstarted_session() -> None:
    service = FakeService(clock=ManualClock(), ready_after_polls=1)
    minutes = json.dumps({"minutes": 5}).encode()
    session_id = _created(service)
    path = f"/session/{session_id}/increase-timeout"
    _assert_answers(
        _send(service, "POST", path, minutes), live_facts.answer("extend", "not started yet")
    )
    assert _send(service, "GET", f"/session/{session_id}").status == 200  # the one poll
    assert _send(service, "POST", path, minutes).status == 200
    assert _send(service, "DELETE", f"/session/{session_id}").status == 200
    _assert_answers(
        _send(service, "POST", path, minutes),
        live_facts.answer("extend", "cancelled (no end time)"),
    )
    # another account's cancelled session is not theirs to learn about
    other = _send(service, "POST", path, minutes, key="another-key-0123")
    _assert_answers(other, live_facts.answer("extend", "session gone"))


def test_the_price_table_is_the_servers_bytes_with_or_without_a_key() -> None:
    expected = live_facts.answer("gpu_pricing", "success, with or without a key")
    for key in (KEY, None, ""):
        answer = _send(FakeService(), "GET", "/platform/gpu-pricing", key=key)
        assert answer.status == expected.status
        assert expected.body is not None
        assert answer.body == expected.body.encode()  # byte for byte: 4.2e-05, not 0.000042


def test_an_unknown_machine() -> None:
    answer = _send(FakeService(), "GET", f"/machine/{UNKNOWN_ID}")
    _assert_answers(answer, live_facts.answer("machine", "unknown machine"))


def test_the_fakes_constants_are_the_listed_limits() -> None:
    assert (
        live_facts.limit("live_sessions_per_machine") == fake_service.MAX_LIVE_SESSIONS_PER_MACHINE
    )
    assert live_facts.limit("default_timeout_minutes") == fake_service.DEFAULT_TIMEOUT_MINUTES
    assert timedelta(hours=live_facts.limit("session_cap_hours")) == fake_service.SESSION_CAP
    # The client's create-and-wait read timeout outlasts the server's own limit.
    from cdsessions._core.timeouts import CREATE_AND_WAIT_READ

    assert live_facts.limit("create_and_wait_server_limit_seconds") < CREATE_AND_WAIT_READ


def test_the_live_gpu_list_is_the_models() -> None:
    assert tuple(gpu.value for gpu in MachineGPU) == live_facts.gpus("live")
    assert set(live_facts.gpus("seed")) < set(live_facts.gpus("live"))


# -- samples decode into what the client hands out ---------------------------------------------


def _ok(body: str) -> HttpResponse:
    return HttpResponse(200, (("content-type", "application/json"),), body.encode())


def test_the_live_session_sample_decodes_with_its_quirks() -> None:
    session = decode(_ok(live_facts.sample("live_session")), SESSION, "get").unwrap()
    assert (session.session_id, session.gpu_event_id) == (samples.SESSION_ID, samples.EVENT_ID)
    assert session.url is None
    assert session.org_id == "None"
    assert session.timeout_end is not None
    assert session.timeout_end - session.created_at == timedelta(minutes=15)  # type: ignore[operator]


def test_the_seed_samples_decode() -> None:
    seed = decode(_ok(live_facts.sample("seed_session")), SESSION, "get").unwrap()
    assert seed.url == samples.TUNNEL_URL
    event = msgspec.json.decode(live_facts.sample("seed_event"), type=GPUEventModel)
    assert event.session_id == samples.SESSION_ID
    (listed,) = decode_session_list(_ok(f"[{live_facts.sample('seed_event')}]"), "list").unwrap()
    assert listed.gpu_event_id == samples.EVENT_ID


def test_the_created_and_deleted_samples_decode() -> None:
    created = decode(_ok(live_facts.sample("created")), CREATED, "create").unwrap()
    assert (created.session_id, created.url) == (samples.SESSION_ID, None)
    deleted = live_facts.body("cancel", "success")
    assert decode(_ok(deleted), DELETED, "cancel").unwrap().success is True


def test_every_fact_names_a_known_source() -> None:
    facts = live_facts.facts()
    sources = set(facts["sources"])
    rows = [*facts["statuses"], *facts["validation_422"], *facts["limits"].values()]
    assert rows
    assert {row["source"] for row in rows} <= sources
