"""``cdsessions with -- COMMAND`` and ``cdsessions hold SESSION_ID`` as a user runs them: real
subprocesses against the fake served over HTTP on 127.0.0.1 by this process (so each test can
look inside it and move its clock). The command writes what it sees to a file, never to the
output: the session url is a secret that cdsessions itself must never print."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from datetime import UTC, datetime
from pathlib import Path

import pytest

from cdsessions.fake import FakeService, ManualClock
from cdsessions.fake.server import serve_in_thread
from tests.support.cli import cli_env, default_sigint
from tests.support.clocks import wait_until

KEY = "sk-with-0123456789"


@pytest.fixture
def fake() -> Iterator[tuple[FakeService, ManualClock, str]]:
    # The fake's clock starts now: cdsessions compares its dates with the real time.
    clock = ManualClock(datetime.now(UTC))
    service = FakeService(clock=clock)
    with serve_in_thread(service) as base_url:
        yield service, clock, base_url


def _with(base_url: str, machine: str, *command: str, lease: str = "2m") -> list[str]:
    return [
        sys.executable, "-m", "cdsessions", "with", "--server", base_url,
        "--machine-id", machine, "--lease", lease, "--", *command,
    ]  # fmt: skip


def _run(argv: list[str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        argv, capture_output=True, text=True, env=cli_env(KEY), timeout=60, check=False
    )


def _start(argv: list[str]) -> subprocess.Popen[str]:
    return subprocess.Popen(
        argv,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=cli_env(KEY),
        preexec_fn=default_sigint,
    )


def _python(code: str) -> list[str]:
    return [sys.executable, "-c", code]


def _deletes(service: FakeService) -> int:
    return sum(1 for method, _ in service.requests_seen if method == "DELETE")


def test_the_exit_status_is_passed_on_and_the_session_cancelled(
    fake: tuple[FakeService, ManualClock, str], tmp_path: Path
) -> None:
    service, _, base_url = fake
    seen = tmp_path / "env"
    code = (
        "import os, sys; open(sys.argv[1], 'w').write("
        "os.environ['CDSESSIONS_SESSION_ID'] + ' ' + os.environ['CDSESSIONS_SESSION_URL']); "
        "sys.exit(3)"
    )
    done = _run(_with(base_url, service.DEFAULT_MACHINE_ID, *_python(code), str(seen)))
    assert done.returncode == 3, done.stderr
    session_id, url = seen.read_text().split(" ")
    assert url.startswith("https://fake-")  # the command got the session's url...
    assert url not in done.stdout + done.stderr  # ...and cdsessions never printed it
    assert _deletes(service) == 1
    assert service.live_sessions() == ()
    created = [path for method, path in service.requests_seen if method == "POST"]
    assert created[0] == "/session"
    assert session_id in service.requests_seen[-1][1]


def test_a_command_a_signal_ended_gives_128_plus_the_signal(
    fake: tuple[FakeService, ManualClock, str],
) -> None:
    service, _, base_url = fake
    code = "import os, signal; os.kill(os.getpid(), signal.SIGKILL)"
    done = _run(_with(base_url, service.DEFAULT_MACHINE_ID, *_python(code)))
    assert done.returncode == 128 + signal.SIGKILL
    assert service.live_sessions() == ()


@pytest.mark.parametrize(("make", "expected"), [("missing", 127), ("not_executable", 126)])
def test_a_command_that_cannot_be_started_still_cancels_the_session(
    fake: tuple[FakeService, ManualClock, str], tmp_path: Path, make: str, expected: int
) -> None:
    service, _, base_url = fake
    command = tmp_path / "command"
    if make == "not_executable":
        command.write_text("#!/bin/sh\nexit 0\n")
        command.chmod(0o644)
    done = _run(_with(base_url, service.DEFAULT_MACHINE_ID, str(command)))
    assert done.returncode == expected, done.stderr
    assert "Traceback" not in done.stderr
    assert _deletes(service) == 1
    assert service.live_sessions() == ()


@pytest.mark.parametrize("sent", [signal.SIGTERM, signal.SIGINT])
def test_sigint_and_sigterm_go_to_the_command_then_the_session_is_cancelled(
    fake: tuple[FakeService, ManualClock, str], tmp_path: Path, sent: signal.Signals
) -> None:
    service, _, base_url = fake
    ready, got = tmp_path / "ready", tmp_path / "got"
    code = (
        "import signal, sys, time\n"
        "def on(n, f):\n"
        "    open(sys.argv[2], 'w').write(str(n)); sys.exit(7)\n"
        "signal.signal(signal.SIGTERM, on); signal.signal(signal.SIGINT, on)\n"
        "open(sys.argv[1], 'w').write('ready')\n"
        "time.sleep(60)\n"
    )
    process = _start(
        _with(base_url, service.DEFAULT_MACHINE_ID, *_python(code), str(ready), str(got))
    )
    try:
        assert wait_until(ready.exists, seconds=30)
        assert len(service.live_sessions()) == 1
        process.send_signal(sent)
        _, stderr = process.communicate(timeout=30)
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()
    assert process.returncode == 7, stderr  # the command's own status
    assert got.read_text() == str(int(sent))  # the command got the signal
    assert service.live_sessions() == ()


def _on_its_own_terminal(terminal: int) -> None:
    """In the child: a session of its own with ``terminal`` as its controlling terminal, so
    its process group is the terminal's foreground group (an interactive shell's job)."""
    import fcntl
    import termios

    default_sigint()
    os.setsid()
    fcntl.ioctl(terminal, termios.TIOCSCTTY, 0)


def _lines_in(path: Path, count: int) -> Callable[[], bool]:
    return lambda: path.exists() and path.read_text().count("\n") == count


def test_ctrl_c_on_a_terminal_reaches_the_command_once(
    fake: tuple[FakeService, ManualClock, str], tmp_path: Path
) -> None:
    """The terminal signals the whole foreground group, the command included: passing the
    SIGINT on as well would give it two (a second Ctrl-C, for a program that cleans up)."""
    import pty

    service, _, base_url = fake
    ready, got = tmp_path / "ready", tmp_path / "got"
    # The command takes each SIGINT off the queue as it comes (sigwaitinfo in a loop): a copy
    # sent by cdsessions after the terminal's own shows as a second one, with a sender's pid.
    # The two can arrive close enough to merge into one, so Ctrl-C is typed three times.
    code = (
        "import signal, sys\n"
        "signal.pthread_sigmask(signal.SIG_BLOCK, [signal.SIGINT])\n"
        "open(sys.argv[1], 'w').write('ready')\n"
        "for _ in range(ROUNDS):\n"
        "    first = signal.sigtimedwait([signal.SIGINT], 30)\n"
        "    senders = [] if first is None else [first.si_pid]\n"
        "    while (more := signal.sigtimedwait([signal.SIGINT], 0.5)) is not None:\n"
        "        senders.append(more.si_pid)\n"
        "    open(sys.argv[2], 'a').write(' '.join(map(str, senders)) + '\\n')\n"
        "sys.exit(7)\n"
    ).replace("ROUNDS", str(rounds := 3))
    controller, terminal = pty.openpty()
    argv = _with(base_url, service.DEFAULT_MACHINE_ID, *_python(code), str(ready), str(got))
    process = subprocess.Popen(
        argv,
        stdin=terminal,
        stdout=terminal,
        stderr=terminal,
        env=cli_env(KEY),
        preexec_fn=lambda: _on_its_own_terminal(terminal),
    )
    try:
        assert wait_until(ready.exists, seconds=30)
        for typed in range(rounds):
            os.write(controller, b"\x03")  # Ctrl-C, as typed
            assert wait_until(_lines_in(got, typed + 1), seconds=30)  # taken, with any copy
        assert process.wait(timeout=30) == 7
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()
        os.close(terminal)
        os.close(controller)
    # One SIGINT each time: the terminal's own (sent by the kernel: pid 0).
    assert got.read_text().splitlines() == ["0"] * rounds
    assert service.live_sessions() == ()


def test_cdsessions_killed_with_sigkill_leaves_a_session_that_ends_within_one_lease(
    fake: tuple[FakeService, ManualClock, str], tmp_path: Path
) -> None:
    service, clock, base_url = fake
    ready = tmp_path / "pid"
    code = "import os, sys, time; open(sys.argv[1], 'w').write(str(os.getpid())); time.sleep(60)"
    process = _start(
        _with(base_url, service.DEFAULT_MACHINE_ID, *_python(code), str(ready), lease="1m")
    )
    try:
        assert wait_until(lambda: ready.exists() and ready.read_text() != "", seconds=30)
        process.send_signal(signal.SIGKILL)
        process.wait(timeout=10)
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()
        if ready.exists() and ready.read_text():
            os.kill(int(ready.read_text()), signal.SIGKILL)  # the orphaned command
    (live,) = service.live_sessions()
    assert (live.timeout_end - clock()).total_seconds() <= 60  # at most one lease left
    clock.advance(minutes=1)
    assert service.live_sessions() == ()
    assert _deletes(service) == 0  # it ended by itself: nobody was left to cancel it


def test_hold_keeps_a_session_until_ctrl_c_then_cancels_it(
    fake: tuple[FakeService, ManualClock, str],
) -> None:
    service, _, base_url = fake
    from cdsessions import CreateSessionBody, SessionsClient

    with SessionsClient(KEY, server=base_url) as client:
        created = client.create(CreateSessionBody(machine_id=service.DEFAULT_MACHINE_ID, timeout=2))
    session_id = created.unwrap().session_id
    process = _start(
        [sys.executable, "-m", "cdsessions", "hold", session_id, "--server", base_url,
         "--lease", "2m"]
    )  # fmt: skip
    try:
        assert process.stderr is not None
        line = process.stderr.readline()
        assert "holding a lease" in line
        time.sleep(0.2)
        assert len(service.live_sessions()) == 1
        process.send_signal(signal.SIGINT)
        process.communicate(timeout=30)
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()
    assert process.returncode == 130
    assert service.live_sessions() == ()


def test_with_and_no_command_is_a_usage_error_and_starts_nothing(
    fake: tuple[FakeService, ManualClock, str],
) -> None:
    service, _, base_url = fake
    done = _run(_with(base_url, service.DEFAULT_MACHINE_ID))
    assert done.returncode == 2
    assert service.requests_seen == ()
