"""The fake answers like the server, checked over raw HTTP (bytes on a socket to the fake's HTTP
server, and ``cdsessions fake-server`` as a subprocess): 405 with ``Allow``, HEAD like GET,
OPTIONS/TRACE/unknown methods as FastAPI answers them, create's unchecked timeout, extend's
own failures, the price table byte for byte without a key, and ``--key`` (issue 20 item 4).
Every divergence left is listed in ``contracts/differences.json`` (``fake``)."""

from __future__ import annotations

import json
import socket
from collections.abc import Iterator
from typing import Final
from urllib.parse import urlsplit

import pytest

from cdsessions.fake import DEFAULT_MACHINE_ID, FakeService, ManualClock
from cdsessions.fake.server import serve_in_thread
from tests.support import live_facts
from tests.support.cli import start_fake_server
from tests.support.strategies import fake_differences

KEY: Final = "sk-parity-0123456789"


class Raw:
    """One answer read off the socket: status, headers (lowercase names), body bytes."""

    def __init__(self, data: bytes) -> None:
        head, _, self.body = data.partition(b"\r\n\r\n")
        lines = head.decode("latin-1").split("\r\n")
        self.status = int(lines[0].split()[1])
        self.headers = {
            name.strip().lower(): value.strip()
            for name, _, value in (line.partition(":") for line in lines[1:])
        }

    def json(self) -> object:
        return json.loads(self.body)


def _exchange(
    base_url: str, method: str, path: str, body: bytes = b"", key: str | None = KEY
) -> Raw:
    """Send exactly these bytes (``Connection: close``) and read until the server closes."""
    where = urlsplit(base_url)
    lines = [f"{method} {where.path}{path} HTTP/1.1", f"Host: {where.netloc}", "Connection: close"]
    if key is not None:
        lines.append(f"Authorization: Bearer {key}")
    if body:
        lines += ["Content-Type: application/json", f"Content-Length: {len(body)}"]
    data = ("\r\n".join(lines) + "\r\n\r\n").encode() + body
    with socket.create_connection((where.hostname, where.port), timeout=10) as sock:
        sock.sendall(data)
        received = b""
        while chunk := sock.recv(65536):
            received += chunk
    return Raw(received)


@pytest.fixture
def fake() -> FakeService:
    return FakeService(clock=ManualClock(), ready_after_polls=1)


@pytest.fixture
def base_url(fake: FakeService) -> Iterator[str]:
    with serve_in_thread(fake) as url:
        yield url


def _create(base_url: str, **fields: object) -> str:
    body = json.dumps({"machine_id": DEFAULT_MACHINE_ID, **fields}).encode()
    answer = _exchange(base_url, "POST", "/session", body)
    assert answer.status == 200, answer.body
    created = answer.json()
    assert isinstance(created, dict)
    return str(created["session_id"])


# -- methods -----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("method", "path", "allow"),
    [
        ("PUT", "/session", "POST"),
        ("GET", "/session", "POST"),
        ("POST", "/sessions", "GET, HEAD"),
        ("PATCH", "/session/some-id", "DELETE, GET, HEAD"),
        ("GET", "/session/some-id/increase-timeout", "POST"),
        ("DELETE", "/platform/gpu-pricing", "GET, HEAD"),
        ("POST", f"/machine/{DEFAULT_MACHINE_ID}", "GET, HEAD"),
        ("OPTIONS", "/sessions", "GET, HEAD"),
        ("TRACE", "/session/some-id", "DELETE, GET, HEAD"),
        ("BREW", "/session", "POST"),
    ],
)
def test_a_method_the_path_does_not_serve_is_405_with_allow(
    base_url: str, method: str, path: str, allow: str
) -> None:
    answer = _exchange(base_url, method, path)
    expected = live_facts.answer(
        "*", "a method the path does not serve (OPTIONS and TRACE included)"
    )
    assert answer.status == 405
    assert expected.body is not None
    assert answer.body == expected.body.encode()
    assert answer.headers["content-type"] == "application/json"
    assert answer.headers["allow"] == allow


@pytest.mark.parametrize("path", ["/sessions", "/platform/gpu-pricing", "/session/{sid}"])
def test_head_is_answered_like_get_without_a_body(base_url: str, path: str) -> None:
    sid = _create(base_url, wait_for_server=True)  # ready: a poll changes nothing
    path = path.replace("{sid}", sid)
    got = _exchange(base_url, "GET", path)
    head = _exchange(base_url, "HEAD", path)
    assert (head.status, got.status) == (200, 200)
    assert head.body == b""
    assert head.headers["content-length"] == str(len(got.body))
    assert head.headers["content-type"] == got.headers["content-type"]


def test_an_unauthenticated_trace_is_401_first(base_url: str) -> None:
    # The auth middleware runs before routing, on the server as in the fake.
    assert _exchange(base_url, "TRACE", "/sessions", key=None).status == 401


# -- create and extend -------------------------------------------------------------------------


@pytest.mark.parametrize("timeout", [-1, 7 * 24 * 60 + 1, 2**63 - 1])
def test_create_with_a_timeout_out_of_range_is_200(
    base_url: str, fake: FakeService, timeout: int
) -> None:
    sid = _create(base_url, timeout=timeout)
    if timeout < 0:  # its end is already past: gone at once
        assert _exchange(base_url, "GET", f"/session/{sid}").status == 404
    else:
        assert _exchange(base_url, "GET", f"/session/{sid}").status == 200
        assert fake.live_sessions()[0].timeout == timeout


def test_extend_is_refused_before_start_and_after_cancel_with_the_servers_texts(
    base_url: str,
) -> None:
    sid = _create(base_url)
    path = f"/session/{sid}/increase-timeout"
    minutes = json.dumps({"minutes": 120}).encode()
    early = _exchange(base_url, "POST", path, minutes)
    assert (early.status, early.json()) == (400, {"detail": "Session has not started yet"})
    assert _exchange(base_url, "GET", f"/session/{sid}").status == 200  # now it has its url
    later = _exchange(base_url, "POST", path, minutes)  # 135 minutes left: no 60-minute rule
    assert (later.status, later.json()) == (200, {"message": "Timeout increased successfully"})
    assert _exchange(base_url, "DELETE", f"/session/{sid}").status == 200
    after = _exchange(base_url, "POST", path, minutes)
    assert (after.status, after.json()) == (404, {"detail": "Timeout end not found for session"})


def test_the_container_stops_at_24_hours_though_the_timeout_says_later(
    base_url: str, fake: FakeService
) -> None:
    sid = _create(base_url, timeout=23 * 60)
    assert _exchange(base_url, "GET", f"/session/{sid}").status == 200
    minutes = json.dumps({"minutes": 180}).encode()  # past the cap: the server says 200
    assert _exchange(base_url, "POST", f"/session/{sid}/increase-timeout", minutes).status == 200
    clock = fake._clock
    assert isinstance(clock, ManualClock)
    clock.advance(minutes=24 * 60)
    assert _exchange(base_url, "GET", f"/session/{sid}").status == 404


# -- prices and keys -------------------------------------------------------------------------------


@pytest.mark.parametrize("key", [KEY, None, "not-a-key"])
def test_the_price_table_is_the_servers_bytes_and_needs_no_key(key: str | None) -> None:
    expected = live_facts.answer("gpu_pricing", "success, with or without a key")
    assert expected.body is not None
    with serve_in_thread(FakeService(keys={KEY: "user_one"})) as base_url:
        answer = _exchange(base_url, "GET", "/platform/gpu-pricing", key=key)
    assert answer.status == 200
    assert answer.body == expected.body.encode()
    assert b"4.2e-05" in answer.body


def test_fake_server_key_requires_one_of_the_given_keys() -> None:
    process, base_url = start_fake_server(
        "--quiet", "--key", "sk-first-0123", "--key", "sk-other-456"
    )
    try:
        assert _exchange(base_url, "GET", "/sessions", key="sk-first-0123").status == 200
        assert _exchange(base_url, "GET", "/sessions", key="sk-other-456").status == 200
        refused = _exchange(base_url, "GET", "/sessions", key="sk-anything-else")
        assert (refused.status, refused.json()) == (401, {"detail": "Invalid or expired token"})
        assert _exchange(base_url, "GET", "/sessions", key=None).status == 401
        # two keys, two accounts: one never sees the other's session
        made = _exchange(
            base_url,
            "POST",
            "/session",
            json.dumps({"machine_id": DEFAULT_MACHINE_ID}).encode(),
            key="sk-first-0123",
        )
        sid = made.json()["session_id"]  # type: ignore[index]
        assert _exchange(base_url, "GET", f"/session/{sid}", key="sk-other-456").status == 404
    finally:
        process.terminate()
        _, stderr = process.communicate(timeout=10)
    assert "sk-first-0123" not in stderr
    assert "2 API key(s)" in stderr


# -- what is left is listed -------------------------------------------------------------------


def test_every_remaining_divergence_of_the_fake_is_listed_with_its_reason() -> None:
    listed = fake_differences()
    assert listed, "contracts/differences.json has no 'fake' list"
    for item in listed:
        assert set(item) >= {"what", "server", "fake", "reason"}, item
        assert all(isinstance(item[k], str) and item[k].strip() for k in item), item
    whats = [item["what"] for item in listed]
    assert len(whats) == len(set(whats))
