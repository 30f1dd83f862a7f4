"""The owner scope on the command line, as a user runs it: ``cdsessions`` subprocesses against a
``cdsessions fake-server`` subprocess, sharing one ledger file (``CDSESSIONS_LEDGER``).
``create --label``; ``list --mine`` / ``--label`` (with the candidates of a lost answer);
``reap --mine`` / ``--label`` / ``--user-id`` / ``--owner-gone``; and a ledger that is corrupt
or cannot be written, which never stops a create."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any, Final

import pytest

from cdsessions import CreateSessionBody, SessionsClient
from cdsessions.ledger import Ledger
from tests.support.cli import cli_env, start_fake_server

CLI_KEY: Final = "sk-ledger-cli-key-0123456789"
MACHINE: Final = "fa4e0000-0000-4000-8000-000000000001"


@pytest.fixture(scope="module")
def server() -> Iterator[str]:
    process, base_url = start_fake_server("--quiet")
    try:
        yield base_url
    finally:
        process.terminate()
        process.communicate(timeout=30)


def _env(ledger: Path, **extra: str) -> dict[str, str]:
    env = cli_env(CLI_KEY)
    env["CDSESSIONS_LEDGER"] = str(ledger)
    env.update(extra)
    return env


def _cli(
    server: str, ledger: Path, *args: str, prefix: tuple[str, ...] = ()
) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [*prefix, sys.executable, "-m", "cdsessions", *args, "--server", server],
        capture_output=True,
        text=True,
        env=_env(ledger),
        timeout=60,
        check=False,
    )


# root ignores file permissions: the command then runs without the capabilities that let it,
# as an unprivileged user would (setpriv drops them from the bounding set before exec).
_AS_A_USER: Final = (
    ("setpriv", "--bounding-set=-dac_override,-dac_read_search,-fowner")
    if os.geteuid() == 0
    else ()
)


def _json(result: subprocess.CompletedProcess[str]) -> Any:
    assert result.returncode == 0, result.stderr
    return json.loads(result.stdout)


def _create(server: str, ledger: Path, *extra: str) -> str:
    made = _json(_cli(server, ledger, "create", "--machine-id", MACHINE, "--json", *extra))
    session_id: str = made["session_id"]
    return session_id


def _script(server: str, rule: dict[str, object]) -> None:
    control = server.removesuffix("/api") + "/_fake/script"
    request = urllib.request.Request(  # noqa: S310 (the fake on 127.0.0.1)
        control, json.dumps(rule).encode(), {"Content-Type": "application/json"}
    )
    with urllib.request.urlopen(request, timeout=10) as answer:  # noqa: S310
        assert answer.status < 300


@pytest.fixture
def clean(server: str) -> Iterator[None]:
    """Each test starts and ends with no live session on the shared fake."""
    yield
    with SessionsClient(CLI_KEY, server=server) as client:
        for session in client.list().unwrap():
            client.cancel(session.session_id)


def _mine(server: str, ledger: Path, *extra: str) -> dict[str, dict[str, Any]]:
    listed = _json(_cli(server, ledger, "list", "--mine", "--json", *extra))
    return {s["session_id"]: s["owner"] for s in listed["sessions"]}


@pytest.mark.usefixtures("clean")
def test_list_mine_and_label_show_only_what_this_machines_ledger_recorded(
    server: str, tmp_path: Path
) -> None:
    ledger = tmp_path / "ledger.sqlite3"
    nightly = _create(server, ledger, "--label", "nightly")
    adhoc = _create(server, ledger)
    elsewhere = _create(server, tmp_path / "another-machines-ledger.sqlite3")
    unrecorded = _create(server, ledger, "--no-ledger")
    mine = _mine(server, ledger)
    assert set(mine) == {nightly, adhoc}
    assert mine[nightly]["recorded"] is True
    assert mine[nightly]["label"] == "nightly"
    assert mine[nightly]["owner_gone"] is True  # that create's process has exited
    assert set(_mine(server, ledger, "--label", "nightly")) == {nightly}
    labelled = _json(_cli(server, ledger, "list", "--label", "nightly", "--json"))
    assert [s["session_id"] for s in labelled["sessions"]] == [nightly]
    everything = _json(_cli(server, ledger, "list", "--json"))
    assert {s["session_id"] for s in everything["sessions"]} >= {elsewhere, unrecorded}
    assert all("owner" not in s for s in everything["sessions"])
    text = _cli(server, ledger, "list", "--mine")
    assert "MINE" in text.stdout
    assert "yes (nightly)" in text.stdout


@pytest.mark.usefixtures("clean")
def test_a_create_whose_answer_was_lost_shows_its_session_as_a_candidate_never_reaped(
    server: str, tmp_path: Path
) -> None:
    ledger = tmp_path / "ledger.sqlite3"
    _script(server, {"match": "create", "fault": "no_answer"})
    lost = _cli(server, ledger, "create", "--machine-id", MACHINE, "--label", "lost-one")
    assert lost.returncode != 0
    (intent,) = Ledger(ledger).intents()
    assert (intent.state, intent.session_id, intent.label) == ("lost", None, "lost-one")
    mine = _mine(server, ledger)
    (candidate,) = mine.values()
    assert candidate["recorded"] is False
    assert candidate["label"] == "lost-one"
    text = _cli(server, ledger, "list", "--mine").stdout
    assert "candidate?" in text
    assert "may or may not be" in text
    # A candidate is never reaped on a guess, by any owner selector.
    for selector in ("--mine", "--owner-gone"):
        dry = _json(_cli(server, ledger, "reap", selector, "--json"))
        assert dry["selected"] == 0, selector


@pytest.mark.usefixtures("clean")
def test_reap_selects_by_label_user_and_a_gone_owner_and_cancels_only_those(
    server: str, tmp_path: Path
) -> None:
    ledger = tmp_path / "ledger.sqlite3"
    batch = [_create(server, ledger, "--label", "batch") for _ in range(2)]
    other = _create(server, ledger, "--label", "other")
    # A session whose owner still runs: this test's own process records it.
    with SessionsClient(CLI_KEY, server=server, ledger=Ledger(ledger, label="batch")) as client:
        alive = client.create(CreateSessionBody(machine_id=MACHINE)).unwrap().session_id
    gone = _json(_cli(server, ledger, "reap", "--owner-gone", "--label", "batch", "--json"))
    assert {s["session_id"] for s in gone["sessions"]} == set(batch)
    assert gone["dry_run"] is True
    nobody = _json(_cli(server, ledger, "reap", "--user-id", "someone-else", "--json"))
    assert nobody["selected"] == 0
    user = _json(_cli(server, ledger, "reap", "--user-id", "user_fake1", "--json"))
    assert {s["session_id"] for s in user["sessions"]} == {*batch, other, alive}
    done = _json(
        _cli(server, ledger, "reap", "--label", "batch", "--owner-gone", "--yes", "--json")
    )
    assert [s["outcome"] for s in done["sessions"]] == ["cancelled", "cancelled"]
    with SessionsClient(CLI_KEY, server=server) as client:
        left = {s.session_id for s in client.list().unwrap()}
    assert left == {other, alive}


def test_owner_selectors_without_a_ledger_are_refused_and_nothing_is_sent(
    server: str, tmp_path: Path
) -> None:
    ledger = tmp_path / "ledger.sqlite3"
    for command in (("reap", "--mine", "--yes"), ("list", "--mine")):
        refused = _cli(server, ledger, *command, "--no-ledger")
        assert refused.returncode == 2, command
        assert "need the ledger (no --no-ledger)" in refused.stderr, command
    assert not ledger.exists()
    blank = _cli(server, ledger, "create", "--machine-id", MACHINE, "--label", "  ")
    assert blank.returncode == 2
    assert "blank" in blank.stderr


def test_many_creates_at_once_from_separate_processes_are_all_recorded(
    server: str, tmp_path: Path, clean: None
) -> None:
    ledger = tmp_path / "state" / "ledger.sqlite3"
    args = ["create", "--machine-id", MACHINE, "--json", "--server", server]
    runs = [
        subprocess.Popen(
            [sys.executable, "-m", "cdsessions", *args, "--label", f"run{n}"],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            env=_env(ledger),
        )
        for n in range(8)
    ]
    results = [(run.communicate(timeout=90), run.returncode) for run in runs]
    made = {json.loads(out)["session_id"] for (out, _), code in results if code == 0}
    # The fake keeps at most 5 live sessions per machine: the others are refused (400).
    assert len(made) == 5
    assert all("warning" not in err for (_, err), _ in results), results
    intents = Ledger(ledger).intents()
    assert len(intents) == 8
    assert len({i.label for i in intents}) == 8
    assert {i.session_id for i in intents if i.state == "created"} == made
    assert sorted(i.state for i in intents) == ["created"] * 5 + ["refused"] * 3


@pytest.mark.usefixtures("clean")
def test_a_corrupt_ledger_is_a_warning_set_aside_and_the_create_goes_ahead(
    server: str, tmp_path: Path
) -> None:
    ledger = tmp_path / "ledger.sqlite3"
    ledger.write_bytes(b"SQLite format 3\x00" + os.urandom(4096))
    result = _cli(server, ledger, "create", "--machine-id", MACHINE, "--json")
    assert result.returncode == 0, result.stderr
    assert "warning: ledger" in result.stderr
    assert "set aside as" in result.stderr
    assert "Traceback" not in result.stderr
    (aside,) = tmp_path.glob("ledger.sqlite3.corrupt-*")
    assert aside.stat().st_size == 16 + 4096
    (intent,) = Ledger(ledger).intents()
    assert intent.session_id == json.loads(result.stdout)["session_id"]


@pytest.mark.usefixtures("clean")
@pytest.mark.skipif(bool(_AS_A_USER) and shutil.which("setpriv") is None, reason="needs setpriv")
def test_a_read_only_state_directory_is_a_warning_and_the_create_goes_ahead(
    server: str, tmp_path: Path
) -> None:
    state = tmp_path / "state"
    state.mkdir()
    ledger = state / "ledger.sqlite3"
    state.chmod(0o555)
    try:
        result = _cli(
            server, ledger, "create", "--machine-id", MACHINE, "--json", prefix=_AS_A_USER
        )
    finally:
        state.chmod(0o755)
    assert result.returncode == 0, result.stderr
    assert json.loads(result.stdout)["session_id"]
    assert "warning: ledger" in result.stderr
    assert "cannot record the create" in result.stderr
    assert "Traceback" not in result.stderr
    assert list(state.iterdir()) == []


@pytest.mark.usefixtures("clean")
def test_the_ledger_option_wins_over_the_variable_which_wins_over_xdg_state_home(
    server: str, tmp_path: Path
) -> None:
    by_variable = tmp_path / "variable.sqlite3"
    by_option = tmp_path / "option.sqlite3"
    xdg = tmp_path / "xdg"
    first = _create(server, by_variable, "--ledger", str(by_option))
    second = _create(server, by_variable)
    env = {**_env(by_variable), "XDG_STATE_HOME": str(xdg)}
    del env["CDSESSIONS_LEDGER"]
    third = subprocess.run(
        [sys.executable, "-m", "cdsessions", "create", "--machine-id", MACHINE, "--server", server],
        capture_output=True,
        text=True,
        env=env,
        timeout=60,
        check=True,
    )
    recorded = {
        path: [i.session_id for i in Ledger(path).intents()]
        for path in (by_option, by_variable, xdg / "cdsessions" / "ledger.sqlite3")
    }
    made = third.stdout.split()[2]  # "created session ID (starting; ...)"
    assert list(recorded.values()) == [[first], [second], [made]]
