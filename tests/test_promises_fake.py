"""Fake-server promises the older tests left open (found by applying deliberate bugs): only a
Bearer token authenticates, whatever the scheme's case, as FastAPI's ``HTTPBearer`` does; and
the HTTP fake refuses, before binding anything, to listen anywhere but on loopback; and a
timeout Modal cannot take fails the create as live does (500), never with an exception."""

from __future__ import annotations

import json

import pytest

from cdsessions import CreateSessionBody, SessionsClient
from cdsessions._core.servers import is_loopback_host
from cdsessions._core.wire import HttpRequest
from cdsessions.fake.server import make_server, serve_in_thread
from cdsessions.fake.service import DEFAULT_MACHINE_ID, MAX_TIMEOUT_MINUTES, FakeService


def _list_with(authorization: str) -> tuple[int, bytes]:
    answer = FakeService().handle(
        HttpRequest("GET", "/sessions", (), (("Authorization", authorization),))
    )
    return answer.status, answer.body


@pytest.mark.parametrize("scheme", ["Token", "Basic", "Key", "Api-Key", "Bearer:", "Bearerx"])
def test_only_a_bearer_token_authenticates(scheme: str) -> None:
    assert _list_with(f"{scheme} sk-0123") == (401, b'{"detail":"Invalid or missing token"}')


@pytest.mark.parametrize("scheme", ["Bearer", "bearer", "BEARER"])
def test_the_bearer_scheme_is_case_insensitive(scheme: str) -> None:
    assert _list_with(f"{scheme} sk-0123") == (200, b"[]")


# Refused before any socket exists. Only TEST-NET addresses (RFC 5737, RFC 3849) are handed to
# the server: even a broken check could not bind them (they are not this machine's), so nothing
# ever listens beyond loopback or looks a name up, whatever the code under test does.
UNBINDABLE = ["192.0.2.1", "198.51.100.7", "2001:db8::1"]


@pytest.mark.parametrize("host", UNBINDABLE)
def test_the_http_fake_never_listens_beyond_loopback(host: str) -> None:
    with pytest.raises(ValueError, match="loopback"):
        make_server(FakeService(), host, 0)
    with pytest.raises(ValueError, match="loopback"), serve_in_thread(FakeService(), host):
        pass


@pytest.mark.parametrize(
    "host",
    ["0.0.0.0", "::", "", "192.0.2.1", "example.invalid", "localhost.example.invalid"],  # noqa: S104
)
def test_wildcards_and_other_hosts_are_not_loopback(host: str) -> None:
    assert not is_loopback_host(host)


@pytest.mark.parametrize("host", ["127.0.0.1", "127.8.9.10", "::1", "localhost", "LOCALHOST"])
def test_loopback_hosts_are_recognised(host: str) -> None:
    assert is_loopback_host(host)


@pytest.mark.parametrize("timeout", [-1, -15, MAX_TIMEOUT_MINUTES + 1, 10**12])
def test_a_timeout_modal_cannot_take_fails_the_create_and_starts_nothing(timeout: int) -> None:
    service = FakeService()
    body = json.dumps({"machine_id": DEFAULT_MACHINE_ID, "timeout": timeout}).encode()
    headers = (("Authorization", "Bearer sk-0123"), ("Content-Type", "application/json"))
    answer = service.handle(HttpRequest("POST", "/session", (), headers, body))
    assert (answer.status, answer.body) == (500, b'{"detail":"Session creation failed"}')
    assert service.live_sessions() == ()


def test_the_longest_timeout_is_accepted() -> None:
    service = FakeService()
    body = json.dumps({"machine_id": DEFAULT_MACHINE_ID, "timeout": MAX_TIMEOUT_MINUTES}).encode()
    headers = (("Authorization", "Bearer sk-0123"),)
    assert service.handle(HttpRequest("POST", "/session", (), headers, body)).status == 200
    assert [s.timeout for s in service.live_sessions()] == [MAX_TIMEOUT_MINUTES]


def test_the_plugins_fake_fixture_behaves_like_a_default_fake(
    cdsessions_client: SessionsClient, cdsessions_fake: FakeService
) -> None:
    # What the README promises of ``cdsessions_fake``: the default fake, whose sessions start
    # without a url and get one on the next poll, on its one default machine.
    assert cdsessions_fake.machine_ids == (DEFAULT_MACHINE_ID,)
    created = cdsessions_client.create(CreateSessionBody(machine_id=DEFAULT_MACHINE_ID)).unwrap()
    assert created.url is None
    assert cdsessions_client.get(created.session_id).unwrap().url is None
    assert cdsessions_client.get(created.session_id).unwrap().url is not None
