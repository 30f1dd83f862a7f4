"""``cdsessions machine ID`` and ``cdsessions machines [--search S]``, run as a user runs them
(subprocesses), against ``cdsessions fake-server`` and against a hostile server whose machine
carries an ``auth_token`` and terminal escapes in its name."""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Final

import pytest

from cdsessions.fake import DEFAULT_MACHINE_ID
from cdsessions.fake.service import FAKE_AUTH_TOKEN_PREFIX
from tests.support.cli import run_cli, start_fake_server
from tests.support.hostile import Request, answer, hostile, response

KEY: Final = "sk-cli-machines-0123456789"
TOKEN: Final = "mt-SECRET-0123456789abcdef"
HOSTILE_ID: Final = "0d1e2f3a-4b5c-4d6e-8f70-8192a3b4c5d6"


@pytest.fixture(scope="module")
def server() -> Iterator[str]:
    process, base_url = start_fake_server("--quiet")
    try:
        yield base_url
    finally:
        process.terminate()
        process.communicate(timeout=10)


def test_machine_shows_the_default_gpu_in_text_and_json(server: str) -> None:
    text = run_cli("machine", DEFAULT_MACHINE_ID, "--server", server, key=KEY)
    assert text.returncode == 0, text.stderr
    lines = dict(line.split(None, 1) for line in text.stdout.splitlines())
    assert lines["machine"] == DEFAULT_MACHINE_ID
    assert lines["gpu"] == "A10G"
    as_json = run_cli("machine", DEFAULT_MACHINE_ID, "--server", server, "--json", key=KEY)
    data = json.loads(as_json.stdout)
    assert (data["id"], data["gpu"], data["status"]) == (DEFAULT_MACHINE_ID, "A10G", "ready")
    assert "auth_token" not in data
    for result in (text, as_json):
        assert FAKE_AUTH_TOKEN_PREFIX not in result.stdout + result.stderr


def test_machines_lists_and_searches(server: str) -> None:
    listed = run_cli("machines", "--server", server, key=KEY)
    assert listed.returncode == 0, listed.stderr
    assert listed.stdout.splitlines()[0].split() == ["MACHINE", "NAME", "GPU", "STATUS"]
    assert DEFAULT_MACHINE_ID in listed.stdout
    found = run_cli("machines", "--search", "FAKE", "--server", server, "--json", key=KEY)
    assert [m["id"] for m in json.loads(found.stdout)["machines"]] == [DEFAULT_MACHINE_ID]
    none = run_cli("machines", "--search", "nothing-like-it", "--server", server, key=KEY)
    assert none.stdout == "no machines\n"


def test_an_unknown_or_malformed_machine_is_one_line_with_its_code(server: str) -> None:
    unknown = run_cli("machine", HOSTILE_ID, "--server", server, key=KEY)
    assert unknown.returncode == 3, unknown.stderr
    assert "Machine not found (404)" in unknown.stderr
    malformed = run_cli("machine", "not-a-uuid", "--server", server, key=KEY)
    assert malformed.returncode == 2  # refused before sending: not a UUID
    assert len(malformed.stderr.splitlines()) == 1
    assert "Traceback" not in malformed.stderr


def _hostile_machine(request: Request) -> bytes:
    machine = {
        "id": HOSTILE_ID,
        "name": "evil\x1b]0;pwned\x07\u202e",
        "gpu": "H100\x1b[2J",
        "status": "ready",
        "auth_token": TOKEN,
    }
    body = json.dumps([machine] if "/machines" in request.target else machine).encode()
    head = ("Content-Type: application/json", f"Content-Length: {len(body)}")
    return response("200 OK", *head, body=body)


@pytest.mark.parametrize("args", [("machine", HOSTILE_ID), ("machines",)])
@pytest.mark.parametrize("as_json", [False, True])
def test_server_text_is_escaped_and_the_token_never_printed(
    args: tuple[str, ...], as_json: bool
) -> None:
    with hostile(answer(_hostile_machine, keep_alive=True)) as server:
        result = run_cli(
            *args, "--server", server.base_url, *(["--json"] if as_json else []), key=KEY
        )
    assert result.returncode == 0, result.stderr
    assert TOKEN not in result.stdout + result.stderr
    for raw in ("\x1b", "\x07", "\u202e"):
        assert raw not in result.stdout
    if as_json:
        data = json.loads(result.stdout)
        machine = data if args[0] == "machine" else data["machines"][0]
        assert machine["name"] == "evil\x1b]0;pwned\x07\u202e"  # escaped, and decodes back
