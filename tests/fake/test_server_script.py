"""Scripted faults over real HTTP (``cdsessions/fake/server.py``): a timeout really stalls the
socket, a reset really resets it; and the ``/_fake`` control routes that script a running
server."""

from __future__ import annotations

import http.client
import json
import socket
import time
from urllib.parse import urlsplit

import pytest

from cdsessions import CreateSessionBody, HttpError, SessionsClient, Timeout, TransportFailed
from cdsessions.fake import FakeService
from cdsessions.fake.server import serve_in_thread
from cdsessions.testing import expect_failure, expect_success

BODY = CreateSessionBody(machine_id=FakeService.DEFAULT_MACHINE_ID)


def test_a_scripted_timeout_stalls_until_the_clients_read_timeout() -> None:
    fake = FakeService()
    with (
        serve_in_thread(fake) as base_url,
        SessionsClient("key", server=base_url, timeout=Timeout(read=0.4)) as client,
    ):
        fake.fail_next("create", "timeout")
        started = time.monotonic()
        error = expect_failure(client.create(BODY), TransportFailed)
        waited = time.monotonic() - started
        assert (error.kind, error.sent) == ("timeout", True)
        assert waited >= 0.4  # a real stall: the answer never came
        assert fake.live_sessions() == ()
        # The server is still serving after the client gave up on the stalled connection.
        assert expect_success(client.list()) == []


@pytest.mark.parametrize(("fault", "started"), [("reset", 0), ("no_answer", 1)])
def test_a_scripted_reset_is_a_broken_sent_failure_and_no_create_is_repeated(
    fault: str, started: int
) -> None:
    fake = FakeService()
    with serve_in_thread(fake) as base_url, SessionsClient("key", server=base_url) as client:
        fake.fail_next("create", fault)  # type: ignore[arg-type]  # each kind, from the table
        error = expect_failure(client.create(BODY), TransportFailed)
        assert (error.kind, error.sent) == ("broken", True)
        assert len(fake.live_sessions()) == started
        assert fake.requests_seen == (("POST", "/session"),)


def test_a_scripted_reset_sends_rst_on_the_raw_socket() -> None:
    fake = FakeService()
    with serve_in_thread(fake) as base_url:
        fake.fail_next("list", "reset")
        parts = urlsplit(base_url)
        with socket.create_connection((parts.hostname, parts.port), timeout=5) as raw:
            raw.sendall(b"GET /api/sessions HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer k\r\n\r\n")
            with pytest.raises(ConnectionResetError):
                _read_to_the_end(raw)  # an orderly close (FIN) would end it without an error


def _read_to_the_end(raw: socket.socket) -> None:
    while raw.recv(4096):
        pass


def _post(base_url: str, path: str, body: object = None) -> tuple[int, object]:
    parts = urlsplit(base_url)
    connection = http.client.HTTPConnection(parts.hostname or "", parts.port, timeout=5)
    try:
        data = None if body is None else json.dumps(body).encode()
        connection.request("POST", path, body=data)
        response = connection.getresponse()
        return response.status, json.loads(response.read())
    finally:
        connection.close()


def test_the_control_routes_script_a_running_server() -> None:
    fake = FakeService()
    with serve_in_thread(fake) as base_url, SessionsClient("key", server=base_url) as client:
        rule = {"match": "create", "status": 503, "body": {"detail": "busy"}, "times": 1}
        assert _post(base_url, "/_fake/script", rule) == (200, {"pending": 1})
        # 503 is retried for create only when... never: it may have acted. So it is the answer.
        error = expect_failure(client.create(BODY), HttpError)
        assert (error.status, error.detail) == (503, "busy")
        assert _post(base_url, "/_fake/never-ready") == (200, {"never_ready": True})
        created = expect_success(client.create(BODY))
        assert expect_success(client.get(created.session_id)).url is None
        assert expect_success(client.get(created.session_id)).url is None
        end = f"/_fake/sessions/{created.session_id}/end"
        assert _post(base_url, end) == (200, {"ended": True})
        assert _post(base_url, end)[0] == 404
        assert expect_failure(client.get(created.session_id), HttpError).status == 404
        fault = {"match": "GET /sessions", "fault": "reset"}
        assert _post(base_url, "/_fake/script", fault) == (200, {"pending": 1})
        assert expect_success(client.list()) == []  # a read: retried after the reset


def test_a_control_rule_without_a_status_answers_200_with_its_headers() -> None:
    fake = FakeService()
    with serve_in_thread(fake) as base_url:
        rule = {"match": "list", "body": [], "headers": {"X-Scripted": "yes"}}
        assert _post(base_url, "/_fake/script", rule) == (200, {"pending": 1})
        parts = urlsplit(base_url)
        connection = http.client.HTTPConnection(parts.hostname or "", parts.port, timeout=5)
        try:
            connection.request("GET", f"{parts.path}/sessions", headers={"Authorization": "k"})
            response = connection.getresponse()
            assert (response.status, json.loads(response.read())) == (200, [])
            assert response.getheader("X-Scripted") == "yes"
            assert response.getheader("Content-Type") == "application/json"
        finally:
            connection.close()
    assert fake.script.pending == 0


@pytest.mark.parametrize(
    ("body", "problem"),
    [
        (["create"], "JSON object"),
        ({"status": 500}, "JSON object"),
        ({"match": "fetch", "status": 500}, "neither an operation"),
        ({"match": "get", "fault": "slow"}, "fault must be"),
        ({"match": "get", "status": 700}, "status must be"),
        ({"match": "get", "status": 500, "times": "2"}, "times must be"),
        ({"match": "get", "headers": []}, "headers must be"),
    ],
)
def test_a_mistaken_control_request_is_a_400_and_scripts_nothing(
    body: object, problem: str
) -> None:
    fake = FakeService()
    with serve_in_thread(fake) as base_url:
        status, answer = _post(base_url, "/_fake/script", body)
        assert status == 400
        assert isinstance(answer, dict)
        assert problem in answer["detail"]
    assert fake.script.pending == 0


def test_a_manual_clock_moved_over_http_ends_a_session_at_its_timeout_end_exactly() -> None:
    """A fake in another process (``fake-server --manual-clock``) whose clock only
    ``POST /_fake/clock`` moves: the session ends at its ``timeout_end`` to the microsecond,
    and an extension moves that end (issue 19 item 5: a lease tested in test time)."""
    from tests.support.cli import start_fake_server

    process, base_url = start_fake_server("--manual-clock", "--quiet")
    try:
        with SessionsClient("key", server=base_url) as client:
            created = expect_success(
                client.create(
                    CreateSessionBody(machine_id=FakeService.DEFAULT_MACHINE_ID, timeout=2)
                )
            )
            sid = created.session_id
            status, moved = _post(base_url, "/_fake/clock", {"advance": 119.999999})
            assert status == 200
            assert isinstance(moved, dict)
            assert "now" in moved
            expect_success(client.get(sid))  # a microsecond before its end
            expect_success(client.extend(sid, 1))
            assert _post(base_url, "/_fake/clock", {"advance": 60})[0] == 200
            expect_success(client.get(sid))  # the extension moved the end by a minute
            assert _post(base_url, "/_fake/clock", {"advance": 0.000001})[0] == 200
            assert expect_failure(client.get(sid), HttpError).status == 404  # ended, exactly
            assert _post(base_url, "/_fake/clock", {"advance": -1})[0] == 400
            assert _post(base_url, "/_fake/clock", {"ahead": 1})[0] == 400
    finally:
        process.terminate()
        process.wait(timeout=10)


def test_the_clock_route_refuses_a_fake_on_the_real_time() -> None:
    with serve_in_thread(FakeService()) as base_url:
        assert _post(base_url, "/_fake/clock", {"advance": 60})[0] == 409
