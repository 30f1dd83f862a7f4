"""Scripting ``cdsessions fake-server`` (a real subprocess): ``--never-ready`` and the
``/_fake`` control routes, with faults that really stall or reset the socket."""

from __future__ import annotations

import http.client
import json
import signal
import subprocess
import threading
from urllib.parse import urlsplit

from cdsessions import (
    CreateSessionBody,
    NotReady,
    SessionsClient,
    Timeout,
    TransportFailed,
)
from cdsessions.fake import DEFAULT_MACHINE_ID, ManualClock
from cdsessions.testing import expect_failure, expect_success
from tests.support.cli import run_cli, start_fake_server

BODY = CreateSessionBody(machine_id=DEFAULT_MACHINE_ID)


def _stop(process: subprocess.Popen[str]) -> tuple[int, str]:
    process.send_signal(signal.SIGTERM)
    _, stderr = process.communicate(timeout=30)
    return process.returncode, stderr


def _script(base_url: str, rule: dict[str, object]) -> int:
    parts = urlsplit(base_url)
    connection = http.client.HTTPConnection(parts.hostname or "", parts.port, timeout=5)
    try:
        connection.request("POST", "/_fake/script", body=json.dumps(rule).encode())
        return connection.getresponse().status
    finally:
        connection.close()


def test_never_ready_makes_a_wait_end_in_not_ready_on_the_test_clock() -> None:
    process, base_url = start_fake_server("--never-ready", "--quiet")
    try:
        clock = ManualClock()
        with SessionsClient("key", server=base_url, clock=clock) as client:
            created = expect_success(client.create(BODY))
            error = expect_failure(
                client.wait_until_ready(created.session_id, timeout=60), NotReady
            )
            assert error.polls > 3
            assert clock.slept >= 59.9
        waited = run_cli(
            "wait", created.session_id, "--server", base_url, "--ready-timeout", "1", key="key"
        )
        assert waited.returncode == 7, waited.stderr  # the CLI's "not ready" exit code
    finally:
        assert _stop(process)[0] == 0


def test_faults_scripted_at_run_time_stall_and_reset_for_real_and_are_logged() -> None:
    process, base_url = start_fake_server()
    try:
        assert _script(base_url, {"match": "list", "fault": "timeout"}) == 200
        assert _script(base_url, {"match": "create", "fault": "no_answer"}) == 200
        with SessionsClient("key", server=base_url, timeout=Timeout(read=0.3)) as client:
            timed_out = expect_failure(client.list(retry=False), TransportFailed)
            assert (timed_out.kind, timed_out.sent) == ("timeout", True)
            lost = expect_failure(client.create(BODY), TransportFailed)
            assert (lost.kind, lost.sent) == ("broken", True)
            # The create went through though its answer was lost; it was sent once only.
            assert len(expect_success(client.list())) == 1
        assert _script(base_url, {"match": "nonsense"}) == 400
    finally:
        code, stderr = _stop(process)
    assert code == 0
    assert "Traceback" not in stderr
    assert "GET /api/sessions timeout (scripted)" in stderr
    assert stderr.count("POST /api/session no_answer (scripted)") == 1


def test_a_signal_in_the_middle_of_a_burst_of_requests_stops_the_server_at_once() -> None:
    """A stop signal lands wherever the server's main thread is, accepting included: it must
    stop the server every time, never leave it hanging (a handler that raised into the accept
    loop could leave a lock held). Ten rounds, each stopped by a signal sent mid-burst."""
    for round_ in range(10):
        process, base_url = start_fake_server("--quiet")
        parts = urlsplit(base_url)
        stop = threading.Event()

        def hammer(
            host: str = parts.hostname or "",
            port: int | None = parts.port,
            stop: threading.Event = stop,
        ) -> None:
            while not stop.is_set():
                try:
                    connection = http.client.HTTPConnection(host, port, timeout=2)
                    connection.request("GET", "/api/sessions", headers={"Authorization": "x"})
                    connection.getresponse().read()
                    connection.close()
                except (OSError, http.client.HTTPException):
                    pass  # the server is stopping: refused, reset or cut short

        workers = [threading.Thread(target=hammer) for _ in range(4)]
        for worker in workers:
            worker.start()
        try:
            _script(base_url, {"match": "nonsense"})  # the burst is under way by its answer
            process.send_signal(signal.SIGTERM if round_ % 2 else signal.SIGINT)
            _, stderr = process.communicate(timeout=15)
        finally:
            stop.set()
            for worker in workers:
                worker.join()
            if process.poll() is None:
                process.kill()
                process.wait()
        assert process.returncode == 0, stderr
        assert "Traceback" not in stderr
