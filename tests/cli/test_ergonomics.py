"""The command line fitted to shell habits (issue 21, item 4), run as a user runs it: global
options on either side of the command, ``COMFY_DEPLOY_SERVER``, ``--gpu`` in any case, machine
ids checked before sending, tables and JSON shaped for a terminal or a pipe (a pseudo-terminal
for the first), ``-q``, ``cancel --ignore-not-found``, shell completion, and ``create --wait``
stopped by a signal. Each against a ``cdsessions fake-server`` subprocess or a raw-socket
server that records what reached it."""

from __future__ import annotations

import json
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from cdsessions._cli._output import columns
from cdsessions._cli._parser import gpu
from cdsessions.fake import DEFAULT_MACHINE_ID
from tests.support.cli import (
    cli_env,
    default_sigint,
    run_cli,
    run_cli_on_terminal,
    start_fake_server,
)
from tests.support.hostile import answer, hostile, response

KEY = "sk-cli-ergonomics-SECRET-42"
#: Nothing listens on port 1 of this machine: a command sent there fails to connect (exit 6).
NOWHERE = "http://127.0.0.1:1/api"
SERVER_ENV = "COMFY_DEPLOY_SERVER"


def cli(
    *args: str, key: str = KEY, env: dict[str, str] | None = None
) -> subprocess.CompletedProcess[str]:
    if env is None:
        return run_cli(*args, key=key)
    return subprocess.run(
        [sys.executable, "-m", "cdsessions", *args],
        capture_output=True,
        text=True,
        env={**cli_env(key), **env},
        timeout=60,
        check=False,
    )


@pytest.fixture(scope="module")
def server() -> Iterator[str]:
    process, base_url = start_fake_server("--quiet")
    try:
        yield base_url
    finally:
        process.terminate()
        process.communicate(timeout=10)


def _create(server: str, key: str, *extra: str) -> str:
    made = cli(
        "create", "--server", server, "--machine-id", DEFAULT_MACHINE_ID, "-q", *extra, key=key
    )
    assert made.returncode == 0, made.stderr
    return made.stdout.strip()


# -- global options ------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "argv",
    [
        ("--server", "{server}", "--json", "list"),
        ("list", "--server", "{server}", "--json"),
        ("--json", "list", "--server", "{server}"),
        ("--server", "{server}", "list", "--json"),
    ],
    ids=["before", "after", "split-1", "split-2"],
)
def test_global_options_are_read_before_or_after_the_command(
    server: str, argv: tuple[str, ...]
) -> None:
    result = cli(*(word.format(server=server) for word in argv), key="sk-global-options")
    assert result.returncode == 0, result.stderr
    assert json.loads(result.stdout)["sessions"] == []


def test_a_server_given_on_both_sides_is_the_last_one(server: str) -> None:
    reached = cli("--server", NOWHERE, "list", "--server", server)
    assert reached.returncode == 0, reached.stderr
    missed = cli("--server", server, "list", "--server", NOWHERE)
    assert missed.returncode == 6, missed.stderr


def test_global_options_are_refused_by_a_command_that_does_not_connect() -> None:
    result = cli("--json", "demo")
    assert result.returncode == 2
    assert "--json applies only to commands that talk to the API" in result.stderr


def test_the_server_comes_from_the_environment_and_the_option_wins(server: str) -> None:
    from_env = cli("list", "-q", env={SERVER_ENV: server})
    assert from_env.returncode == 0, from_env.stderr
    overridden = cli("list", "--server", server, env={SERVER_ENV: NOWHERE})
    assert overridden.returncode == 0, overridden.stderr
    unreachable = cli("list", env={SERVER_ENV: NOWHERE})
    assert unreachable.returncode == 6


def test_a_server_from_the_environment_leaves_hints_as_typed(server: str) -> None:
    made = cli("create", "--machine-id", DEFAULT_MACHINE_ID, env={SERVER_ENV: server})
    assert made.returncode == 0, made.stderr
    assert "`cdsessions wait -- " in made.stdout  # no --server: the shell has the variable
    typed = cli("create", "--machine-id", DEFAULT_MACHINE_ID, "--server", server)
    assert f"`cdsessions wait --server {server} -- " in typed.stdout


@pytest.mark.parametrize("value", ["http://example.com/api", "ftp://127.0.0.1/api", "no such"])
def test_a_bad_server_in_the_environment_is_refused_before_sending(value: str) -> None:
    result = cli("list", env={SERVER_ENV: value})
    assert result.returncode == 2
    assert result.stderr.startswith(f"cdsessions: error: {SERVER_ENV}: invalid server")


# -- --gpu and --machine-id ----------------------------------------------------------------------


def test_a_known_gpu_in_any_case_is_sent_in_its_own_spelling(server: str) -> None:
    sid = _create(server, "sk-gpu-case", "--gpu", "a100-80gb")
    shown = cli("get", sid, "--server", server, "--json", key="sk-gpu-case")
    assert json.loads(shown.stdout)["gpu"] == "A100-80GB"


def test_an_unknown_gpu_is_passed_on_as_given() -> None:
    assert gpu("a10g") == "A10G"
    assert gpu(" h100 ") == "H100"
    assert gpu("X999-Next") == "X999-Next"  # the server's list grows before the client's
    with hostile(answer(response("200 OK", "Content-Length: 2", body=b"{}"))) as seen:
        cli("create", "--server", seen.base_url, "--machine-id", DEFAULT_MACHINE_ID, "--gpu", "x9")
    assert json.loads(seen.requests[0].body)["gpu"] == "x9"


@pytest.mark.parametrize(
    "argv",
    [
        ("create", "--machine-id", "{bad}"),
        ("list", "--machine-id", "{bad}"),
        ("reap", "--machine-id", "{bad}", "--yes"),
        ("with", "--machine-id", "{bad}", "--", "true"),
    ],
    ids=["create", "list", "reap", "with"],
)
@pytest.mark.parametrize(
    "bad",
    [
        "my-machine",
        "fa4e0000-0000-4000-8000-00000000000",
        "fa4e0000000040008000000000000001",
        "x" * 500,
        "fa4e0000-0000-4000-8000-000000000001x",
        "fa4e0000-0000-4000-8000-000000000001/../other",
        "xfa4e0000-0000-4000-8000-000000000001",
    ],
    ids=[
        "name",
        "short",
        "no-dashes",
        "long",
        "uuid-then-more",
        "uuid-then-path",
        "more-then-uuid",
    ],
)
def test_a_malformed_machine_id_is_refused_before_anything_is_sent(
    argv: tuple[str, ...], bad: str
) -> None:
    with hostile(answer(response("500 Internal Server Error", "Content-Length: 0"))) as seen:
        words = [word.format(bad=bad) for word in argv]
        result = cli(*words, "--server", seen.base_url)
    assert result.returncode == 2, result.stderr
    assert "is not a machine id: a machine id is a UUID" in result.stderr
    assert len(result.stderr) < 400  # a 500-character id is clipped, not echoed
    assert seen.connections == 0


def test_a_machine_id_in_capitals_is_a_uuid_too(server: str) -> None:
    result = cli("list", "--server", server, "--machine-id", DEFAULT_MACHINE_ID.upper())
    assert result.returncode == 0, result.stderr


# -- tables and JSON on a terminal and in a pipe -------------------------------------------------


def test_a_table_fits_the_terminal_and_is_whole_in_a_pipe(server: str) -> None:
    key = "sk-table-width"
    sid = _create(server, key)
    code, shown = run_cli_on_terminal("list", "--server", server, key=key, columns=80)
    assert code == 0, shown
    lines = shown.splitlines()
    assert max(map(len, lines)) <= 80, shown
    assert sid in shown  # ids are never cut
    assert "MACHINE" not in shown
    assert "USD/H" in shown
    piped = cli("list", "--server", server, key=key, env={"COLUMNS": "40"})
    assert "MACHINE" in piped.stdout
    assert DEFAULT_MACHINE_ID in piped.stdout
    wide_code, wide = run_cli_on_terminal("list", "--server", server, key=key, columns=200)
    assert wide_code == 0
    assert DEFAULT_MACHINE_ID in wide


def test_the_reap_dry_run_table_fits_the_terminal_too(server: str) -> None:
    key = "sk-reap-width"
    sid = _create(server, key)
    code, shown = run_cli_on_terminal("reap", "--all", "--server", server, key=key, columns=80)
    assert code == 0, shown
    (row,) = [line for line in shown.splitlines() if sid in line]
    assert len(row) <= 80, shown
    assert "MACHINE" not in shown
    piped = cli("reap", "--all", "--server", server, key=key)
    assert "MACHINE" in piped.stdout


def test_column_widths_are_measured_on_the_escaped_text() -> None:
    """A bug an outside review found: widths were measured before escaping, so a row holding a
    control character (shown as four characters, ``\\x1b``) pushed its next column right."""
    table = columns([("GPU", "PRICE"), ("\x1b[2J", "$1.00"), ("A10G", "$2.00")], width=None)
    starts = {line.index("$") for line in table.splitlines()[1:]}
    assert len(starts) == 1, table
    assert "\\x1b[2J" in table


def test_json_is_indented_on_a_terminal_and_one_line_in_a_pipe(server: str) -> None:
    key = "sk-json-shape"
    sid = _create(server, key)
    code, shown = run_cli_on_terminal("get", sid, "--server", server, "--json", key=key)
    assert code == 0, shown
    assert shown.startswith("{\n  ")
    assert json.loads(shown)["session_id"] == sid
    piped = cli("get", sid, "--json", "--server", server, key=key)
    assert piped.stdout.count("\n") == 1
    assert json.loads(piped.stdout)["session_id"] == sid


# -- ids only --------------------------------------------------------------------------------------


def test_quiet_prints_only_ids(server: str) -> None:
    key = "sk-quiet"
    first = _create(server, key)
    second = _create(server, key, "--gpu", "t4")
    listed = cli("list", "-q", "--server", server, key=key)
    assert listed.returncode == 0, listed.stderr
    assert sorted(listed.stdout.split("\n")) == sorted(["", first, second])
    assert cli("list", "--quiet", "--server", server, key="sk-nobody").stdout == ""


def test_quiet_and_json_together_are_refused_before_sending() -> None:
    with hostile(answer(response("500 Internal Server Error", "Content-Length: 0"))) as seen:
        made = cli(
            "create", "-q", "--json", "--machine-id", DEFAULT_MACHINE_ID, "--server", seen.base_url
        )
        listed = cli("--json", "list", "-q", "--server", seen.base_url)
    assert (made.returncode, listed.returncode) == (2, 2)
    assert "-q/--quiet and --json do not go together" in made.stderr
    assert seen.connections == 0


# -- cancel --ignore-not-found ---------------------------------------------------------------------


def test_cancel_of_a_gone_session_can_be_no_failure(server: str) -> None:
    key = "sk-ignore-not-found"
    sid = _create(server, key)
    assert cli("cancel", sid, "--server", server, key=key).returncode == 0
    again = cli("cancel", sid, "--server", server, key=key)
    assert again.returncode == 3
    ignored = cli("cancel", "--ignore-not-found", sid, "--server", server, "--json", key=key)
    assert ignored.returncode == 0, ignored.stderr
    assert json.loads(ignored.stdout) == {"session_id": sid, "success": False, "not_found": True}
    assert "nothing to cancel (--ignore-not-found)" in ignored.stderr


def test_ignore_not_found_ignores_nothing_else() -> None:
    refused = response(
        "401 Unauthorized", "Content-Length: 36", body=b'{"detail":"Invalid or missing token"}'[:36]
    )
    with hostile(answer(refused)) as seen:
        result = cli("cancel", "--ignore-not-found", "some-id", "--server", seen.base_url)
    assert result.returncode == 4, result.stderr
    assert cli("cancel", "--ignore-not-found", "some-id", "--server", NOWHERE).returncode == 6


# -- completion ------------------------------------------------------------------------------------


@pytest.mark.parametrize("shell", ["bash", "zsh", "fish"])
def test_completion_prints_a_script_for_each_shell(shell: str) -> None:
    result = cli("completion", shell)
    assert result.returncode == 0, result.stderr
    assert "cdsessions" in result.stdout
    assert "ignore-not-found" in result.stdout


def _bash_completes(script: Path, *words: str) -> list[str]:
    """What bash offers for ``cdsessions WORDS`` (the last one being typed)."""
    program = (
        f"source {script}; COMP_WORDS=(cdsessions {' '.join(words)}); "
        f"COMP_CWORD={len(words)}; _shtab_cdsessions; printf '%s\\n' \"${{COMPREPLY[@]}}\""
    )
    done = subprocess.run(["bash", "-c", program], capture_output=True, text=True, check=True)
    return done.stdout.split()


def test_the_bash_script_completes_commands_and_options(tmp_path: Path) -> None:
    script = tmp_path / "cdsessions.bash"
    script.write_text(cli("completion", "bash").stdout)
    assert _bash_completes(script, "ca") == ["cancel"]
    assert "--ignore-not-found" in _bash_completes(script, "cancel", "--ig")
    assert "--server" in _bash_completes(script, "list", "--se")  # a global option, after
    assert _bash_completes(script, "completion", "f") == ["fish"]


def test_completion_without_its_extra_says_how_to_install_it(tmp_path: Path) -> None:
    blocker = tmp_path / "shtab"
    blocker.mkdir()
    (blocker / "__init__.py").write_text("raise ImportError('not installed here')\n")
    result = cli("completion", "bash", env={"PYTHONPATH": str(tmp_path)})
    assert result.returncode == 2
    assert result.stdout == ""
    assert "pip install shtab" in result.stderr


# -- create --wait, interrupted --------------------------------------------------------------------


@pytest.fixture(scope="module")
def never_ready() -> Iterator[str]:
    process, base_url = start_fake_server("--quiet", "--never-ready")
    try:
        yield base_url
    finally:
        process.terminate()
        process.communicate(timeout=10)


def _live(server: str, key: str) -> list[str]:
    return cli("list", "-q", "--server", server, key=key).stdout.split()


def _interrupted_create(server: str, key: str, signum: int, *extra: str) -> tuple[int, str]:
    process = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "cdsessions",
            "create",
            "--wait",
            "--server",
            server,
            "--machine-id",
            DEFAULT_MACHINE_ID,
            *extra,
        ],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=cli_env(key),
        preexec_fn=default_sigint,
    )
    deadline = time.monotonic() + 30
    while not _live(server, key):  # the session exists: the command is waiting for it
        assert time.monotonic() < deadline, "the session never appeared"
        time.sleep(0.1)
    time.sleep(0.3)
    process.send_signal(signum)
    _, stderr = process.communicate(timeout=30)
    return process.returncode, stderr


@pytest.mark.parametrize(
    ("signum", "code", "word"),
    [(signal.SIGINT, 130, "interrupted"), (signal.SIGTERM, 143, "terminated")],
    ids=["SIGINT", "SIGTERM"],
)
def test_an_interrupted_create_wait_cancels_its_session(
    never_ready: str, signum: int, code: int, word: str
) -> None:
    key = f"sk-interrupted-{word}"
    returncode, stderr = _interrupted_create(never_ready, key, signum)
    assert returncode == code, stderr
    assert stderr.startswith(f"cdsessions: {word}; cancelled session "), stderr
    assert "cancel it" not in stderr  # done already: no advice to do it
    assert _live(never_ready, key) == []


def test_keep_leaves_an_interrupted_session_running(never_ready: str) -> None:
    key = "sk-interrupted-keep"
    returncode, stderr = _interrupted_create(never_ready, key, signal.SIGINT, "--keep")
    assert returncode == 130
    [sid] = _live(never_ready, key)
    assert f"session {sid} is still running, as --keep asked" in stderr
    assert f"cdsessions cancel --server {never_ready} -- {sid}" in stderr
    cli("cancel", sid, "--server", never_ready, key=key)


def test_a_bad_server_variable_does_not_stop_a_command_that_does_not_connect() -> None:
    """The variable is read only by commands that talk to the API."""
    result = cli("completion", "bash", env={SERVER_ENV: "http://example.com/api"})
    assert result.returncode == 0, result.stderr
