"""The local ledger (:mod:`cdsessions.ledger`): what a create records before it is sent and after
its answer, what it never records (the key, a URL), and a file that is torn, corrupt, shared by
processes or lost mid-create. The command line's use of it is in ``tests/cli/test_ledger_cli.py``.
"""

from __future__ import annotations

import os
import signal
import sqlite3
import stat
import subprocess
import sys
import textwrap
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path
from types import SimpleNamespace
from typing import Final

import msgspec
import pytest
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st
from returns.result import Failure, Success

import cdsessions.ledger as ledger_module
from cdsessions import CreateSessionBody, MachineGPU, Session, SessionsClient, TransportFailed
from cdsessions._core.retry import Outcome
from cdsessions._core.wire import HttpRequest
from cdsessions.fake import FakeService, FakeTransport, ManualClock
from cdsessions.ledger import (
    LEDGER_ENV,
    Intent,
    Ledger,
    LedgerProblem,
    Owner,
    default_ledger_path,
    judge_owners,
    owner_gone,
    ownership,
    process_start,
    scrub_command,
)

LEDGER_KEY: Final = "sk-ledger-test-key-0123456789"
MACHINE: Final = FakeService.DEFAULT_MACHINE_ID
BODY: Final = CreateSessionBody(machine_id=MACHINE, gpu=MachineGPU.A10G, timeout=5)


def _client(fake: FakeService, ledger: Ledger | None) -> SessionsClient:
    return SessionsClient(
        LEDGER_KEY, transport=FakeTransport(fake), clock=ManualClock(), ledger=ledger
    )


def _file_bytes(path: Path) -> bytes:
    """The database and its journal: everything sqlite may have written."""
    return b"".join(p.read_bytes() for p in path.parent.iterdir() if p.name.startswith(path.name))


# -- where it lives ------------------------------------------------------------------------------


def test_the_ledger_lives_in_the_xdg_state_directory_unless_the_variable_names_a_file() -> None:
    assert default_ledger_path({}, "/home/u") == Path(
        "/home/u/.local/state/cdsessions/ledger.sqlite3"
    )
    xdg = {"XDG_STATE_HOME": "/st"}
    assert default_ledger_path(xdg, "/home/u") == Path("/st/cdsessions/ledger.sqlite3")
    # The XDG rules: a relative XDG_STATE_HOME is invalid and ignored.
    assert default_ledger_path({"XDG_STATE_HOME": "rel"}, "/h").parts[:3] == ("/", "h", ".local")
    chosen = {**xdg, LEDGER_ENV: "/x/my.db"}
    assert default_ledger_path(chosen, "/home/u") == Path("/x/my.db")


# -- what a create records -----------------------------------------------------------------------


def test_a_create_is_recorded_before_it_is_sent_and_completed_with_its_session_id(
    tmp_path: Path,
) -> None:
    fake = FakeService()
    ledger = Ledger(tmp_path / "l.sqlite3", label="nightly", command=["job.py"])
    seen_before_send: list[tuple[Intent, ...]] = []

    class Watching(FakeTransport):
        def send(self, request: HttpRequest) -> Outcome:
            if request.method == "POST":
                seen_before_send.append(ledger.intents())
            return super().send(request)

    with SessionsClient(LEDGER_KEY, transport=Watching(fake), ledger=ledger) as client:
        created = client.create(BODY).unwrap()
        assert client.ledger is ledger  # where the reaper and the command line look
    (before,) = seen_before_send[0]
    assert (before.state, before.session_id, before.machine_id) == ("pending", None, MACHINE)
    assert before.unresolved
    (after,) = ledger.intents()
    assert after.id == before.id
    assert (after.state, after.session_id, after.label, after.gpu) == (
        "created",
        created.session_id,
        "nightly",
        "A10G",
    )
    assert after.owner.pid == os.getpid()
    assert after.finished_at is not None
    assert not after.unresolved
    assert ledger.problems == ()


def test_a_refused_create_and_one_never_sent_are_resolved_and_a_lost_answer_is_not(
    tmp_path: Path,
) -> None:
    fake = FakeService()
    ledger = Ledger(tmp_path / "l.sqlite3")

    class Unreachable(FakeTransport):
        def send(self, request: HttpRequest) -> Outcome:
            return Failure(TransportFailed(request.operation, "connect", "refused", sent=False))

    with SessionsClient(LEDGER_KEY, transport=Unreachable(fake), ledger=ledger) as client:
        assert isinstance(client.create(BODY, retry=False), Failure)
    with _client(fake, ledger) as client:
        fake.answer_next("create", status=403, body={"detail": "Insufficient balance"})
        assert isinstance(client.create(BODY), Failure)
        fake.fail_next("create", "no_answer")
        lost = client.create(BODY)
    assert isinstance(lost, Failure)
    assert lost.failure().sent is True
    states = [(i.state, i.session_id, i.unresolved) for i in ledger.intents()]
    assert states == [("not_sent", None, False), ("refused", None, False), ("lost", None, True)]
    # The lost create did start a session: it is offered as a candidate, never as certain.
    (live,) = fake.live_sessions()
    session = _client(fake, None).get(live.session_id).unwrap()
    owned = ownership([session], ledger.intents(), {})
    assert owned[session.session_id].certain is False


def test_a_client_without_a_ledger_writes_nothing(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("XDG_STATE_HOME", str(tmp_path))
    monkeypatch.setenv("HOME", str(tmp_path))
    monkeypatch.delenv(LEDGER_ENV, raising=False)
    with _client(FakeService(), None) as client:
        client.create(BODY).unwrap()
    assert list(tmp_path.iterdir()) == []


# -- nothing secret ------------------------------------------------------------------------------


def test_the_file_never_holds_the_key_or_a_url(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    env_key = "sk-from-the-environment-9876543210"
    monkeypatch.setenv("COMFY_DEPLOY_API_KEY", env_key)
    path = tmp_path / "l.sqlite3"
    argv = [
        "job.py",
        "--api-key",
        "plain-secret-value-1",
        "--token=plain-secret-value-2",
        f"--note={LEDGER_KEY}",
        env_key,
        "--api-key-file",
        "/keys/cd.key",
        "https://abc.r5.modal.host/prompt",
    ]
    fake = FakeService()
    ledger = Ledger(
        path, label=f"run {LEDGER_KEY} https://x.example/y", command=argv, secrets=[LEDGER_KEY]
    )
    with _client(fake, ledger) as client:
        created = client.create(BODY).unwrap()
        ready = client.wait_until_ready(created.session_id, timeout=5).unwrap()
    assert ready.url
    data = _file_bytes(path)
    assert created.session_id.encode() in data  # the file is what was read
    for secret in (LEDGER_KEY, env_key, "plain-secret-value-1", "plain-secret-value-2", ready.url):
        assert secret.encode() not in data, secret
    assert b"modal.host" not in data
    assert b"x.example" not in data
    assert b"/keys/cd.key" in data  # a key file's path is not a secret
    (intent,) = ledger.intents()
    assert "<redacted>" in intent.command
    assert "<masked>" in intent.command


def test_scrub_command_masks_every_form_of_a_secret_and_keeps_file_paths() -> None:
    line = scrub_command(
        ["a", "--api-key", "v1", "--password=v2", "x%2Fkey/secret-long-1", "--api-key-file", "p"],
        ["key/secret-long-1"],
    )
    assert "v1" not in line
    assert "v2" not in line
    assert "secret-long-1" not in line
    assert line.endswith("--api-key-file p")


# -- owners --------------------------------------------------------------------------------------


def test_an_owner_is_gone_when_its_pid_is_dead_or_reused_and_unknown_on_another_host() -> None:
    owner = Owner("here", 42, "boot:100")
    assert owner_gone(owner, "here", alive=False, started_now=None) is True
    assert owner_gone(owner, "here", alive=True, started_now="boot:100") is False
    assert owner_gone(owner, "here", alive=True, started_now="boot:999") is True  # pid reused
    assert owner_gone(owner, "here", alive=True, started_now=None) is False  # cannot tell: alive
    assert owner_gone(Owner("here", 42, None), "here", alive=True, started_now="b:1") is False
    assert owner_gone(owner, "elsewhere", alive=False, started_now=None) is None


@pytest.mark.skipif(not Path("/proc/self/stat").exists(), reason="needs /proc (Linux)")
def test_a_dead_process_is_judged_gone_and_this_one_is_not(tmp_path: Path) -> None:
    child = subprocess.Popen([sys.executable, "-c", "pass"])
    child.wait()
    start = process_start(os.getpid())
    assert start is not None
    assert start == process_start(os.getpid())
    fake = FakeService()
    ledger = Ledger(tmp_path / "l.sqlite3")
    with _client(fake, ledger) as client:
        client.create(BODY).unwrap()
    (mine,) = ledger.intents()
    dead = msgspec.structs.replace(mine, id=99, owner=Owner(mine.owner.host, child.pid, "x:1"))
    reused_pid = Owner(mine.owner.host, os.getpid(), "other-boot:1")
    reused = msgspec.structs.replace(mine, id=98, owner=reused_pid)
    assert judge_owners([mine, dead, reused]) == {mine.id: False, 99: True, 98: True}
    # The start recorded (and read back) tells this process from a later one given its pid.
    assert owner_gone(mine.owner, mine.owner.host, alive=True, started_now="later:1") is True


def _session(sid: str, created: datetime, machine: str = MACHINE, gpu: str = "A10G") -> Session:
    return Session(
        session_id=sid, gpu_event_id="e" + sid, created_at=created, machine_id=machine, gpu=gpu
    )


def test_candidates_are_live_sessions_of_the_machine_created_in_an_unresolved_window() -> None:
    t0 = datetime(2026, 1, 1, 12, tzinfo=UTC)
    recorded = Intent(
        id=1,
        requested_at=t0,
        finished_at=t0,
        machine_id=MACHINE,
        gpu="A10G",
        label="L",
        owner=Owner("h", 1, None),
        command="c",
        state="created",
        session_id="s1",
    )
    lost = msgspec.structs.replace(
        recorded, id=2, finished_at=t0 + timedelta(seconds=30), state="lost", session_id=None
    )
    sessions = [
        _session("s1", t0),
        _session("s2", t0 + timedelta(seconds=20)),  # in the lost one's window
        _session("s3", t0 + timedelta(hours=1)),  # long after
        _session("s4", t0 + timedelta(seconds=20), machine="other"),
        _session("s5", t0 + timedelta(seconds=20), gpu="H100"),
    ]
    owned = ownership(sessions, [recorded, lost], {1: True, 2: False})
    assert set(owned) == {"s1", "s2"}
    assert owned["s1"].certain
    assert owned["s1"].gone is True
    assert not owned["s2"].certain
    assert owned["s2"].intent.id == 2
    assert owned["s2"].gone is False  # the candidate's owner, as judged


# -- a shared, damaged or unwritable file --------------------------------------------------------

_CHILD: Final = textwrap.dedent(
    """
    import os, sys, time
    from cdsessions import CreateSessionBody, SessionsClient
    from cdsessions.fake import FakeService, FakeTransport
    from cdsessions.ledger import Ledger

    path, label, hang = sys.argv[1], sys.argv[2], sys.argv[3] == "hang"
    fake = FakeService(seed=int(sys.argv[5]))  # each process its own session ids
    if hang:
        class Hanging(FakeTransport):
            def send(self, request):
                if request.method == "POST":
                    print("sending", flush=True)
                    import time
                    time.sleep(600)
                return super().send(request)
        transport = Hanging(fake)
    else:
        transport = FakeTransport(fake)
    ledger = Ledger(path, label=label)
    client = SessionsClient("sk-child-key-0123456789", transport=transport, ledger=ledger)
    while not os.path.exists(sys.argv[6]):  # all start together
        time.sleep(0.005)
    for _ in range(int(sys.argv[4])):
        made = client.create(CreateSessionBody(machine_id=fake.DEFAULT_MACHINE_ID)).unwrap()
        client.cancel(made.session_id).unwrap()
    print("problems", len(ledger.problems), [str(p) for p in ledger.problems], flush=True)
    """
)


def test_several_processes_creating_at_once_record_every_create(tmp_path: Path) -> None:
    path = tmp_path / "state" / "ledger.sqlite3"
    go = tmp_path / "go"
    children = [
        subprocess.Popen(
            [sys.executable, "-c", _CHILD, str(path), f"p{n}", "go", "20", str(n), str(go)],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        for n in range(6)
    ]
    time.sleep(1)  # every child started and waiting
    go.touch()
    outputs = [child.communicate(timeout=90) for child in children]
    assert [child.returncode for child in children] == [0] * 6, outputs
    assert all(out.strip().endswith("problems 0 []") for out, _ in outputs), outputs
    intents = Ledger(path).intents()
    assert len(intents) == 120
    assert {i.state for i in intents} == {"created"}
    assert len({i.session_id for i in intents}) == 120
    assert {i.label for i in intents} == {f"p{n}" for n in range(6)}
    with sqlite3.connect(path) as db:
        assert db.execute("PRAGMA journal_mode").fetchone() == ("wal",)


def test_a_file_held_by_another_writer_is_tried_again_until_it_is_free(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    path = tmp_path / "ledger.sqlite3"
    ledger = Ledger(path)
    assert ledger.record_intent("m", "A10G") is not None  # the file exists, in WAL mode
    holder = sqlite3.connect(path, isolation_level=None)
    holder.execute("BEGIN IMMEDIATE")  # another process in the middle of its write
    pauses: list[float] = []

    def pause(seconds: float) -> None:  # the other writer finishes while this one waits
        pauses.append(seconds)
        if holder.in_transaction:
            holder.execute("COMMIT")

    monkeypatch.setattr(ledger_module, "_BUSY_MS", 20)
    monkeypatch.setattr(ledger_module, "_pause", pause)
    try:
        row = ledger.record_intent("m", "A10G")
    finally:
        holder.close()
    assert pauses, "the write never met the lock"
    assert row is not None
    assert ledger.problems == ()
    assert len(Ledger(path).intents()) == 2


def test_a_file_held_longer_than_the_patience_is_a_problem_not_a_wait_forever(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    path = tmp_path / "ledger.sqlite3"
    ledger = Ledger(path)
    assert ledger.record_intent("m", None) is not None
    holder = sqlite3.connect(path, isolation_level=None)
    holder.execute("BEGIN IMMEDIATE")
    monkeypatch.setattr(ledger_module, "_BUSY_MS", 20)
    monkeypatch.setattr(ledger_module, "_PATIENCE_S", 0.2)
    try:
        assert ledger.record_intent("m", None) is None
    finally:
        holder.close()
    assert [problem.what for problem in ledger.problems] == [
        "cannot record the create: database is locked"
    ]
    assert str(ledger.problems[0]).startswith(f"ledger {path}: ")


def test_a_process_killed_between_intent_and_answer_leaves_an_unresolved_intent_of_a_gone_owner(
    tmp_path: Path,
) -> None:
    path = tmp_path / "ledger.sqlite3"
    child = subprocess.Popen(
        [sys.executable, "-c", _CHILD, str(path), "crashy", "hang", "1", "0", "/"],
        stdout=subprocess.PIPE,
        text=True,
    )
    assert child.stdout is not None
    assert child.stdout.readline().strip() == "sending"  # the intent is written by now
    os.kill(child.pid, signal.SIGKILL)
    child.wait(timeout=30)
    (intent,) = Ledger(path).intents()
    assert (intent.state, intent.session_id, intent.label) == ("pending", None, "crashy")
    assert intent.unresolved
    assert intent.owner.pid == child.pid
    assert judge_owners([intent]) == {intent.id: True}


def test_a_corrupt_file_is_reported_and_set_aside_and_the_create_goes_ahead(tmp_path: Path) -> None:
    path = tmp_path / "ledger.sqlite3"
    garbage = b"this is not a database, it is a torn file " * 200
    path.write_bytes(garbage)
    reported: list[object] = []
    ledger = Ledger(path, on_problem=reported.append)
    with _client(FakeService(), ledger) as client:
        created = client.create(BODY)
    assert isinstance(created, Success)
    (problem,) = ledger.problems
    assert reported == [problem]
    assert problem.set_aside_as is not None
    assert "unreadable" in problem.what
    assert Path(problem.set_aside_as).read_bytes() == garbage  # kept, for whoever looks into it
    assert ".corrupt-" in problem.set_aside_as
    (intent,) = ledger.intents()  # a fresh file in its place, with this create in it
    assert intent.session_id == created.unwrap().session_id


def test_another_programs_database_at_the_path_is_set_aside_too(tmp_path: Path) -> None:
    path = tmp_path / "ledger.sqlite3"
    with sqlite3.connect(path) as db:
        db.execute("CREATE TABLE intents (x TEXT)")
    ledger = Ledger(path)
    with _client(FakeService(), ledger) as client:
        client.create(BODY).unwrap()
    assert len(ledger.problems) == 1
    assert ledger.problems[0].set_aside_as is not None
    assert len(ledger.intents()) == 1


def test_a_ledger_that_cannot_be_written_is_reported_and_the_create_goes_ahead(
    tmp_path: Path,
) -> None:
    blocker = tmp_path / "not-a-dir"
    blocker.write_text("a file where the state directory should be")
    ledger = Ledger(blocker / "cdsessions" / "ledger.sqlite3")
    with _client(FakeService(), ledger) as client:
        assert isinstance(client.create(BODY), Success)
    assert ledger.problems
    assert ledger.problems[0].set_aside_as is None
    assert "cannot record the create" in str(ledger.problems[0])
    assert blocker.read_text().startswith("a file")  # nothing set aside that was not ours


@settings(
    max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(
    data=st.one_of(
        st.binary(max_size=3000),
        st.builds(lambda tail: b"SQLite format 3\x00" + tail, st.binary(max_size=3000)),
    )
)
@example(data=b"")
@example(data=b"SQLite format 3\x00")
@example(data=b"\x00" * 3000)
def test_any_bytes_as_the_ledger_file_are_reported_and_set_aside_never_raised(
    tmp_path_factory: pytest.TempPathFactory, data: bytes
) -> None:
    path = tmp_path_factory.mktemp("any") / "ledger.sqlite3"
    path.write_bytes(data)
    ledger = Ledger(path, command=["x"])
    row = ledger.record_intent(MACHINE, None)
    intents = ledger.intents()
    # Whatever was there, the intent is recorded: in it, or in a fresh file that replaced it.
    assert row is not None
    assert [i.id for i in intents if i.id == row] == [row]
    for problem in ledger.problems:
        assert problem.set_aside_as is not None, problem  # reported, and the bytes kept aside
        assert Path(problem.set_aside_as).read_bytes() == data


def test_a_ledger_warning_is_one_printable_line_whatever_its_paths_hold(tmp_path: Path) -> None:
    """A path with a line break or an escape sequence (a user's ``--ledger``, a directory's
    name) is shown escaped in the warning, and so is where the file was set aside: never a
    second line, nothing a terminal acts on. Added for a bug an outside review slipped past
    the suite (issue 23): a warning line that skipped escaping."""
    folder = tmp_path / "a\nforged\x1b[2J\u202e"
    folder.mkdir()
    path = folder / "ledger.sqlite3"
    path.write_bytes(b"not a ledger at all" * 100)
    problems: list[LedgerProblem] = []
    ledger = Ledger(path, command=["x"], on_problem=problems.append)
    ledger.record_intent(MACHINE, None)
    assert problems
    problem = problems[0]
    assert problem.set_aside_as is not None
    assert "\n" in problem.path  # kept as it is in the value...
    shown = str(problem)
    assert shown.isprintable()  # ...and shown escaped
    assert shown.count("a\\x0aforged\\x1b[2J\\u202e") == 2  # the file and where it went


def test_a_busy_file_is_waited_for_no_longer_than_the_patience(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    path = tmp_path / "ledger.sqlite3"
    ledger = Ledger(path)
    assert ledger.record_intent("m", None) is not None
    holder = sqlite3.connect(path, isolation_level=None)
    holder.execute("BEGIN IMMEDIATE")  # held for good
    now = [0.0]
    pauses: list[float] = []

    def pause(seconds: float) -> None:  # each wait moves the ledger's clock on, and only that
        pauses.append(seconds)
        now[0] += seconds

    clock = SimpleNamespace(monotonic=lambda: now[0], time=time.time, sleep=time.sleep)
    monkeypatch.setattr(ledger_module, "time", clock)
    monkeypatch.setattr(ledger_module, "_pause", pause)
    monkeypatch.setattr(ledger_module, "_BUSY_MS", 5)
    monkeypatch.setattr(ledger_module, "_PATIENCE_S", 0.2)
    try:
        assert ledger.record_intent("m", None) is None
    finally:
        holder.close()
    assert pauses, "the write never met the lock"
    assert sum(pauses) <= 0.2
    assert [problem.what for problem in ledger.problems] == [
        "cannot record the create: database is locked"
    ]


def test_a_new_ledger_makes_its_directories_and_is_readable_by_its_user_alone(
    tmp_path: Path,
) -> None:
    path = tmp_path / "state" / "cdsessions" / "ledger.sqlite3"
    ledger = Ledger(path)
    assert ledger.record_intent("m", None) is not None
    assert ledger.problems == ()
    assert stat.S_IMODE(path.stat().st_mode) == 0o600  # it holds command lines


@pytest.mark.parametrize("status", [200, 299])
def test_a_create_answered_with_a_success_that_cannot_be_read_is_recorded_as_lost(
    tmp_path: Path, status: int
) -> None:
    ledger = Ledger(tmp_path / "l.sqlite3")
    fake = FakeService()
    with _client(fake, ledger) as client:
        fake.answer_next("create", status=status, body={"not": "a session"})
        assert isinstance(client.create(BODY, retry=False), Failure)
    # The server may have made a session: it stays unresolved, offered as a candidate.
    assert [(i.state, i.unresolved) for i in ledger.intents()] == [("lost", True)]
