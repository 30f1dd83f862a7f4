"""The ``cdsessions`` command, run as a user runs it: a subprocess, against a ``cdsessions
fake-server`` subprocess on a free port of 127.0.0.1; and the pieces it is made of (exit codes,
JSON text) in this process."""

from __future__ import annotations

import http.client
import json
import os
import pty
import re
import shutil
import signal
import socket
import subprocess
import sys
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest

from cdsessions._cli._failures import AUTH, EXIT_CODES, NOT_FOUND, NOT_READY, REFUSED, exit_code_for
from cdsessions._cli._output import json_text
from cdsessions._cli.main import COMMANDS as REGISTERED
from cdsessions.fake import DEFAULT_MACHINE_ID
from cdsessions.lifecycle import NotReady, SessionGone
from tests.support import echoes
from tests.support.cli import cli_env, default_sigint, run_cli, start_fake_server
from tests.support.hostile import answer, hostile

KEY = "sk-cli-SECRET-0123456789"
UNKNOWN = "0b5e55ed-0000-4000-8000-000000000000"
#: Every command the entry point registers: a new one gets these tests without a word.
COMMANDS = [command.name for command in REGISTERED]
CONNECTING = frozenset(command.name for command in REGISTERED if command.connects)


def cli(*args: str, key: str | None = KEY, timeout: float = 60) -> subprocess.CompletedProcess[str]:
    return run_cli(*args, key=key, timeout=timeout)


def _stop(process: subprocess.Popen[str], signum: int = signal.SIGTERM) -> tuple[int, str]:
    process.send_signal(signum)
    _, stderr = process.communicate(timeout=10)
    return process.returncode, stderr


@pytest.fixture(scope="module")
def server() -> Iterator[str]:
    process, base_url = start_fake_server("--quiet")
    try:
        yield base_url
    finally:
        _stop(process)


def _one_line_failure(result: subprocess.CompletedProcess[str], code: int) -> str:
    """The failure contract: the documented code, one stderr line, no traceback, no key."""
    assert result.returncode == code, (result.returncode, result.stderr)
    assert result.stdout == ""
    lines = result.stderr.splitlines()
    assert len(lines) == 1, result.stderr
    assert lines[0].startswith("cdsessions")
    assert "Traceback" not in result.stderr
    assert KEY not in result.stderr
    return lines[0]


def _create(server: str, key: str = KEY) -> str:
    created = cli(
        "create", "--server", server, "--machine-id", DEFAULT_MACHINE_ID, "--json", key=key
    )
    assert created.returncode == 0, created.stderr
    session_id: str = json.loads(created.stdout)["session_id"]
    return session_id


# -- the main job and the help texts ---------------------------------------------------------


def test_demo_runs_the_whole_lifecycle() -> None:
    result = cli("demo", key=None)  # no key, no account: it brings its own fake
    assert result.returncode == 0, result.stderr
    lines = result.stdout.splitlines()
    steps = [line.split()[:2] for line in lines if line[:1].isdigit()]
    assert steps == [
        ["1/8", "create"],
        ["2/8", "wait"],
        ["3/8", "get"],
        ["4/8", "list"],
        ["5/8", "run"],
        ["6/8", "extend"],
        ["7/8", "cancel"],
        ["8/8", "get"],
    ]
    assert "ours among them" in result.stdout
    assert "5/8 run     1 output (16 bytes) in " in result.stdout  # its file came home
    assert "(404)" in lines[-2]
    assert lines[-1].startswith("demo finished")
    assert "modal.localhost" not in result.stdout  # the url is a secret, even a fake one
    assert result.stderr == ""  # not a terminal: no progress line


@pytest.mark.parametrize("command", [None, *COMMANDS])
def test_every_help_reads_well(command: str | None) -> None:
    result = cli(*([command] if command else []), "--help", key=None)
    assert result.returncode == 0
    assert result.stderr == ""
    usage = f"usage: cdsessions {command}" if command else "usage: cdsessions"
    assert result.stdout.startswith(usage)
    assert all(len(line) <= 100 for line in result.stdout.splitlines())
    if command is None:
        for code, meaning in EXIT_CODES.items():
            assert f"{code:>3}  {meaning}" in result.stdout
        assert "cdsessions demo" in result.stdout
    elif command in CONNECTING:  # the connection options, on every command that connects
        assert "--api-key-file" in result.stdout
        assert "--json" in result.stdout


# -- every command against the fake server --------------------------------------------------


def test_the_lifecycle_through_the_commands(server: str) -> None:
    sid = _create(server)
    got = cli("get", sid, "--server", server, "--json")
    assert got.returncode == 0
    data = json.loads(got.stdout)
    assert (data["session_id"], data["ready"]) == (sid, False)
    assert "url" not in data  # absent unless asked for
    waited = cli("wait", sid, "--server", server, "--json")
    assert waited.returncode == 0
    assert json.loads(waited.stdout)["ready"] is True
    listed = cli("list", "--server", server, "--json")
    listed_json = json.loads(listed.stdout)  # {"sessions": [...], "total": ...} since the costs
    sessions = listed_json["sessions"] if isinstance(listed_json, dict) else listed_json
    assert sid in [s["session_id"] for s in sessions]
    table = cli("list", "--server", server)
    header = table.stdout.splitlines()[0].split()  # the costs columns sit between these
    assert (header[:3], header[-1]) == (["SESSION", "GPU", "READY"], "MACHINE")
    assert sid in table.stdout
    extended = cli("extend", sid, "10", "--server", server)
    assert extended.stdout.startswith(f"extended session {sid} by 10 min")
    cancelled = cli("cancel", sid, "--server", server, "--json")
    assert json.loads(cancelled.stdout) == {"session_id": sid, "success": True}
    line = _one_line_failure(cli("get", sid, "--server", server), 3)
    assert "GPUEvent not found (404)" in line
    for result in (got, waited, listed, table, extended, cancelled):
        assert KEY not in result.stdout + result.stderr
        assert "modal.localhost" not in result.stdout


def test_show_url_prints_the_url_only_when_asked(server: str) -> None:
    created = cli(
        "create", "--server", server, "--machine-id", DEFAULT_MACHINE_ID, "--wait", "--show-url"
    )
    assert created.returncode == 0, created.stderr
    first, url_line = created.stdout.splitlines()
    assert first.endswith("(ready)")
    assert url_line.startswith("url https://fake-")
    sid = first.split()[2]
    plain = cli("get", sid, "--server", server)
    assert "modal.localhost" not in plain.stdout
    assert "ready    yes" in plain.stdout
    assert cli("cancel", sid, "--server", server).returncode == 0


def test_the_key_can_come_from_a_file(server: str, tmp_path: Path) -> None:
    key_file = tmp_path / "key"
    key_file.write_text(KEY + "\n")
    sid = _create(server)
    listed = cli("list", "--server", server, "--api-key-file", str(key_file), "--json", key=None)
    assert listed.returncode == 0, listed.stderr
    assert sid in listed.stdout  # the same account as the variable's key
    cli("cancel", sid, "--server", server)


# -- failures: one line, a documented code --------------------------------------------------


@pytest.mark.parametrize(
    ("args", "key", "code", "fragment"),
    [
        (["get", "nope"], KEY, 3, "GPUEvent not found (404)"),
        (["list"], "", 2, "COMFY_DEPLOY_API_KEY"),
        (["list", "--api-key-file", "/nonexistent/key"], None, 2, "cannot read the API key file"),
        (["create", "--machine-id", UNKNOWN], KEY, 8, "machine not found (404)"),
        (["create", "--machine-id", DEFAULT_MACHINE_ID, "--gpu", "RTX4090"], KEY, 5, "(422)"),
        (["get", "."], KEY, 2, "nothing was sent"),
        (["extend", "nope", "5"], KEY, 3, "extend session nope: GPUEvent not found (404)"),
    ],
)
def test_failures_are_one_line_with_the_documented_code(
    server: str, args: list[str], key: str | None, code: int, fragment: str
) -> None:
    line = _one_line_failure(cli(*args, "--server", server, key=key), code)
    assert fragment in line


def test_an_unreachable_server_is_exit_6() -> None:
    with socket.socket() as probe:  # a port that was free a moment ago: nothing listens
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    line = _one_line_failure(cli("list", "--server", f"http://127.0.0.1:{port}/api"), 6)
    assert "could not connect" in line


def test_usage_errors_are_one_line_too() -> None:
    assert "SESSION_ID" in _one_line_failure(cli("get"), 2)
    assert "invalid server" in _one_line_failure(cli("list", "--server", "ftp://x"), 2)
    assert "MINUTES" in _one_line_failure(cli("extend", "x"), 2)
    assert "must be at least 1" in _one_line_failure(cli("extend", "x", "0"), 2)


def test_a_key_typed_on_the_command_line_is_refused_and_not_echoed() -> None:
    for args in (["list", "--api-key", KEY], ["list", f"--api-key={KEY}"], ["list", KEY]):
        line = _one_line_failure(cli(*args), 2)
        assert "not shown" in line


def test_another_accounts_session_is_not_found(server: str) -> None:
    sid = _create(server)
    _one_line_failure(cli("cancel", sid, "--server", server, key="sk-someone-else"), 3)
    assert cli("cancel", sid, "--server", server).returncode == 0


def test_wait_past_its_deadline_is_exit_7(server: str) -> None:
    sid = _create(server)
    line = _one_line_failure(cli("wait", sid, "--server", server, "--ready-timeout", "0"), 7)
    # What it waited is measured: one poll on a loaded machine can take a second or more.
    assert re.search(r"not ready after \d+ s \(1 polls\)", line), line
    cli("cancel", sid, "--server", server)


def test_progress_goes_to_stderr_on_a_terminal(server: str) -> None:
    sid = _create(server)
    controller, terminal = pty.openpty()
    try:
        result = subprocess.run(
            [sys.executable, "-m", "cdsessions", "wait", sid, "--server", server],
            stdout=subprocess.PIPE,
            stderr=terminal,
            text=True,
            env=cli_env(KEY),
            timeout=60,
            check=False,
        )
        os.close(terminal)
        shown = b""
        while True:
            try:
                chunk = os.read(controller, 4096)
            except OSError:
                break
            if not chunk:
                break
            shown += chunk
    finally:
        os.close(controller)
    assert result.returncode == 0
    assert result.stdout == f"session {sid} is ready\n"
    assert f"waiting for session {sid}" in shown.decode()
    assert KEY.encode() not in shown
    cli("cancel", sid, "--server", server)


# -- the fake-server command ----------------------------------------------------------------


@pytest.mark.parametrize("signum", [signal.SIGTERM, signal.SIGINT], ids=["SIGTERM", "SIGINT"])
def test_fake_server_logs_each_request_and_stops_cleanly(signum: int) -> None:
    process, base_url = start_fake_server()
    sid = _create(base_url)
    cli("list", "--server", base_url, "--machine-id", DEFAULT_MACHINE_ID)
    cli("wait", sid, "--server", base_url, "--show-url")
    code, stderr = _stop(process, signum)
    assert code == 0
    assert "Traceback" not in stderr
    lines = stderr.splitlines()
    assert lines[0].startswith(f"fake ComfyDeploy serving on {base_url}")
    assert lines[-1] == "fake ComfyDeploy stopped"
    requests = lines[1:-1]
    assert requests[0].startswith("POST /api/session 200 ")
    assert requests[1].startswith("GET /api/sessions 200 ")  # the path only, no query
    polls = [line for line in requests[2:] if not line.startswith("GET /api/platform/")]
    assert polls  # (list also asks for the GPU prices)
    assert all(line.startswith(f"GET /api/session/{sid} 200 ") for line in polls)
    assert KEY not in stderr
    assert "modal.localhost" not in stderr
    assert "machine_id" not in stderr


def test_fake_server_refuses_a_busy_port_and_other_hosts() -> None:
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        port = str(busy.getsockname()[1])
        line = _one_line_failure(cli("fake-server", "--port", port, key=None), 6)
        assert f"cannot listen on 127.0.0.1:{port}" in line
    line = _one_line_failure(cli("fake-server", "--host", "0.0.0.0", key=None), 2)  # noqa: S104
    assert "loopback" in line


def _ipv6_loopback_bindable() -> bool:
    try:
        with socket.socket(socket.AF_INET6) as probe:
            probe.bind(("::1", 0))
    except OSError:
        return False
    return True


def _can_unshare_network() -> bool:
    """Whether this machine lets an unprivileged-looking user namespace have its own network
    (``unshare -rn``): there, loopback is down and ``::1`` does not exist."""
    if shutil.which("unshare") is None:
        return False
    probe = subprocess.run(["unshare", "-rn", "true"], capture_output=True, check=False)
    return probe.returncode == 0


@pytest.mark.skipif(not _ipv6_loopback_bindable(), reason="this machine has no ::1")
@pytest.mark.parametrize("host", ["::1", "[::1]", "0:0:0:0:0:0:0:1"])
def test_fake_server_serves_on_ipv6_loopback(host: str) -> None:
    """Bug: ``--host ::1`` passed the loopback check and then could not bind (IPv4 socket)."""
    process = subprocess.Popen(
        [sys.executable, "-m", "cdsessions", "fake-server", "--host", host, "--port", "0"],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=cli_env(None),
        preexec_fn=default_sigint,
    )
    assert process.stdout is not None
    base_url = process.stdout.readline().strip()
    try:
        assert base_url.startswith("http://[::1]:"), base_url
        listed = cli("list", "--server", base_url, "--json")
        assert (listed.returncode, json.loads(listed.stdout)["sessions"]) == (0, [])
    finally:
        code, stderr = _stop(process)
    assert code == 0
    assert "GET /api/sessions 200 " in stderr


@pytest.mark.skipif(not _can_unshare_network(), reason="no network namespaces here")
@pytest.mark.parametrize("host", ["::1", "[::1]"])
def test_fake_server_on_a_loopback_host_this_machine_lacks_is_a_usage_error(host: str) -> None:
    """Bug: a host that passes the loopback rule but that the machine does not have (``::1``
    with IPv6 off) was exit 6 "cannot listen", as if the network were at fault. Run in a
    network namespace of its own, where ``::1`` does not exist."""
    result = subprocess.run(
        ["unshare", "-rn", sys.executable, "-m", "cdsessions", "fake-server", "--host", host],
        capture_output=True,
        text=True,
        env=cli_env(None),
        timeout=60,
        check=False,
    )
    line = _one_line_failure(result, 2)
    assert line == (
        f"cdsessions: --host {host} is not an address of this machine "
        "(cannot assign requested address); try --host 127.0.0.1"
    )


def test_fake_server_logs_one_whole_line_per_concurrent_request() -> None:
    """Bug: concurrent requests' log lines ran together on the command's stderr."""
    process, base_url = start_fake_server()
    port = int(base_url.rsplit(":", 1)[1].split("/")[0])
    threads, each = 12, 10

    def client(number: int) -> None:
        connection = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
        for request in range(each):
            connection.request("GET", f"/api/session/t{number}r{request}")
            connection.getresponse().read()
        connection.close()

    workers = [threading.Thread(target=client, args=(n,)) for n in range(threads)]
    for worker in workers:
        worker.start()
    for worker in workers:
        worker.join()
    code, stderr = _stop(process)
    assert code == 0
    requests = stderr.splitlines()[1:-1]
    pattern = re.compile(r"GET /api/session/t\d+r\d+ 401 \d+\.\dms")
    assert [line for line in requests if not pattern.fullmatch(line)] == []
    assert len(requests) == threads * each


def _await_poll(server: subprocess.Popen[str], session_id: str = "") -> None:
    """Until the fake server (not ``--quiet``) logs a poll of ``session_id`` (of any session
    when empty): the command is then past its start-up, with its signal handlers in place."""
    assert server.stderr is not None
    target = re.escape(session_id) if session_id else r"\S+"
    pattern = re.compile(rf"GET /api/session/{target} 200 ")
    for line in server.stderr:
        if pattern.match(line):
            return
    raise AssertionError("the fake server stopped before the command polled")


def test_wait_interrupted_by_ctrl_c_is_exit_130() -> None:
    process, base_url = start_fake_server("--ready-after-polls", "1000")
    try:
        sid = _create(base_url)
        waiting = subprocess.Popen(
            [sys.executable, "-m", "cdsessions", "wait", sid, "--server", base_url],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            env=cli_env(KEY),
            preexec_fn=default_sigint,
        )
        _await_poll(process, sid)
        waiting.send_signal(signal.SIGINT)
        stdout, stderr = waiting.communicate(timeout=10)
        assert waiting.returncode == 130
        assert stderr == "cdsessions: interrupted\n"
        assert stdout == ""
        creating = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "cdsessions",
                "create",
                "--server",
                base_url,
                "--wait",
                "--machine-id",
                DEFAULT_MACHINE_ID,
            ],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            env=cli_env(KEY),
            preexec_fn=default_sigint,
        )
        _await_poll(process)
        creating.send_signal(signal.SIGINT)
        stdout, stderr = creating.communicate(timeout=10)
        assert creating.returncode == 130
        assert stdout == ""
        (line,) = stderr.splitlines()
        assert line.startswith("cdsessions: interrupted; cancelled session ")
        assert "cancel it" not in line  # done already
    finally:
        _stop(process)


def test_a_session_that_vanished_while_waiting_is_exit_3_and_a_late_one_exit_7() -> None:
    """Found by applying a deliberate bug the older tests let through."""
    assert exit_code_for(SessionGone("wait for session s", "s"), "wait") == NOT_FOUND
    assert exit_code_for(NotReady("wait for session s", "s", 5.0, 3), "create") == NOT_READY


def test_json_text_escapes_astral_format_characters_and_round_trips() -> None:
    """Found by applying a deliberate bug the older tests let through."""
    # U+E0001 (a tag character) and U+F0000 (private use) are not printable: escaped as a
    # UTF-16 surrogate pair, which must decode back to the very same character.
    value = {"gpu": "A\U000e0001B\U000f0000C\U0001f600"}
    text = json_text(value)
    assert all(ch.isprintable() for ch in text)
    assert "\U000e0001" not in text
    assert json.loads(text) == value


@pytest.mark.parametrize("name", sorted(echoes.ECHOES))
def test_a_key_from_a_file_echoed_by_the_server_never_reaches_the_output(
    name: str, tmp_path: Path
) -> None:
    """Issue 18: a gateway echoing the Authorization header (raw, escaped, percent-encoded,
    split across chunks, in a header, the reason phrase or a gzip body) gets it masked on the
    command's stderr too."""
    key_file = tmp_path / "key"
    key_file.write_text(echoes.KEY + "\n")
    key_file.chmod(0o600)
    with hostile(answer(echoes.echo(name), keep_alive=True)) as server:
        done = cli(
            "get", "--server", server.base_url, "--api-key-file", str(key_file), "s1", key=None
        )
    assert server.requests[0].header("Authorization") == f"Bearer {echoes.KEY}"
    assert done.returncode in (AUTH, REFUSED), done.stderr  # 401, or 503 after its retries
    assert echoes.leaked_forms(done.stdout + done.stderr) == []
