"""``cdsessions logs`` run as a user runs it (a subprocess) against the fake over HTTP, and the
reason ``create --wait`` now gives (issue 20 items 1, 2)."""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Final

import pytest

from cdsessions import CreateSessionBody, SessionsClient
from cdsessions.fake import FakeService, serve_in_thread
from cdsessions.testing import expect_success
from tests.support.cli import run_cli

KEY: Final = "test-key-0123456789"
HOSTILE: Final = "\x1b]0;owned\x07 \u202eboom\nforged line"


@pytest.fixture
def served() -> Iterator[tuple[FakeService, str]]:
    fake = FakeService(ready_after_polls=None)
    with serve_in_thread(fake) as base_url:
        yield fake, base_url


def started(fake: FakeService, base_url: str) -> str:
    client = SessionsClient(KEY, server=base_url)
    body = CreateSessionBody(machine_id=fake.DEFAULT_MACHINE_ID)
    return expect_success(client.create(body)).session_id


def test_logs_prints_each_line_escaped(served: tuple[FakeService, str]) -> None:
    fake, base_url = served
    session_id = started(fake, base_url)
    fake.log(session_id, "error", HOSTILE)
    result = run_cli("logs", session_id, "--server", base_url, key=KEY)
    assert result.returncode == 0, result.stderr
    lines = result.stdout.splitlines()
    assert len(lines) == 2
    assert lines[0].endswith(" info Creating session...")
    assert lines[1].endswith(" error \\x1b]0;owned\\x07 \\u202eboom\\nforged line")
    assert "\x1b" not in result.stdout
    assert "\u202e" not in result.stdout


def test_logs_json_is_one_object_a_line_decoding_to_what_was_sent(
    served: tuple[FakeService, str],
) -> None:
    fake, base_url = served
    session_id = started(fake, base_url)
    fake.log(session_id, "error", HOSTILE)
    result = run_cli(
        "logs", session_id, "--server", base_url, "--json", "--level", "error", key=KEY
    )
    assert result.returncode == 0, result.stderr
    [only] = result.stdout.splitlines()
    assert json.loads(only)["message"] == HOSTILE
    assert json.loads(only)["level"] == "error"
    assert "\x1b" not in only


def test_logs_follow_ends_when_the_stream_ends(served: tuple[FakeService, str]) -> None:
    fake, base_url = served
    session_id = started(fake, base_url)
    fake.fail_start(session_id, "Reached timeout period 10 minutes, deleting session")
    result = run_cli("logs", "-f", session_id, "--server", base_url, key=KEY, timeout=30)
    assert result.returncode == 0, result.stderr
    assert result.stdout.splitlines()[-1].endswith(
        "error Reached timeout period 10 minutes, deleting session"
    )


def test_logs_of_an_unknown_session_is_exit_3(served: tuple[FakeService, str]) -> None:
    _fake, base_url = served
    result = run_cli("logs", "3f0c0000-0000-4000-8000-000000000000", "--server", base_url, key=KEY)
    assert result.returncode == 3
    assert result.stderr.count("\n") == 1
    assert "Session not found" in result.stderr


def test_create_wait_says_why_with_the_last_log_lines(served: tuple[FakeService, str]) -> None:
    fake, base_url = served
    result = run_cli(
        "create",
        "--machine-id",
        fake.DEFAULT_MACHINE_ID,
        "--wait",
        "--ready-timeout",
        "1",
        "--server",
        base_url,
        key=KEY,
    )
    assert result.returncode == 7, result.stderr
    assert "last log: info: Creating session..." in result.stderr
    assert result.stderr.count("\n") == 1


def test_urls_in_log_lines_are_masked_unless_show_url(served: tuple[FakeService, str]) -> None:
    fake, base_url = served
    session_id = started(fake, base_url)
    fake.log(session_id, "info", "ComfyUI at https://fake-tunnel.r5.modal.localhost/ is up")
    for extra in ((), ("--json",)):
        masked = run_cli("logs", session_id, "--server", base_url, *extra, key=KEY)
        assert masked.returncode == 0, masked.stderr
        assert "fake-tunnel" not in masked.stdout
    shown = run_cli("logs", session_id, "--server", base_url, "--show-url", key=KEY)
    assert "https://fake-tunnel.r5.modal.localhost/" in shown.stdout
