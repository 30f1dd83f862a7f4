"""The ``cdsessions`` command run as a user runs it: ``python -m cdsessions`` in a subprocess,
with the API key in its environment (or none), and the fake server as a subprocess of its own."""

from __future__ import annotations

import os
import signal
import subprocess
import sys

API_KEY_VARIABLE = "COMFY_DEPLOY_API_KEY"


def cli_env(key: str | None) -> dict[str, str]:
    """This process's environment with ``key`` as the API key, or without any key."""
    env = {k: v for k, v in os.environ.items() if k != API_KEY_VARIABLE}
    if key is not None:
        env[API_KEY_VARIABLE] = key
    return env


def default_sigint() -> None:
    """In the child: Ctrl-C's default. A shell starts background jobs with SIGINT ignored, and
    the ignoring is inherited; the command would then (rightly) ignore the test's SIGINT too."""
    signal.signal(signal.SIGINT, signal.SIG_DFL)


def run_cli(*args: str, key: str | None, timeout: float = 60) -> subprocess.CompletedProcess[str]:
    """``cdsessions ARGS`` to completion, its output captured as text."""
    return subprocess.run(
        [sys.executable, "-m", "cdsessions", *args],
        capture_output=True,
        text=True,
        env=cli_env(key),
        timeout=timeout,
        check=False,
    )


def start_fake_server(*extra: str) -> tuple[subprocess.Popen[str], str]:
    """``cdsessions fake-server`` on a free port of 127.0.0.1, and the base URL it printed once
    listening. The caller stops it (``send_signal`` or ``terminate``)."""
    process = subprocess.Popen(
        [sys.executable, "-m", "cdsessions", "fake-server", "--port", "0", *extra],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=cli_env(None),
        preexec_fn=default_sigint,
    )
    assert process.stdout is not None
    base_url = process.stdout.readline().strip()
    assert base_url.startswith("http://127.0.0.1:"), base_url
    return process, base_url


def run_cli_on_terminal(
    *args: str, key: str | None, columns: int = 80, extra_env: dict[str, str] | None = None
) -> tuple[int, str]:
    """``cdsessions ARGS`` with stdout and stderr on a pseudo-terminal ``columns`` wide, as in
    an interactive shell: its exit code and all it showed (line ends as the terminal sends
    them, ``\\r\\n``, turned back into ``\\n``). ``COLUMNS`` is unset unless given, so the width
    is the terminal's own."""
    import fcntl
    import pty
    import struct
    import termios

    env = {k: v for k, v in cli_env(key).items() if k not in ("COLUMNS", "LINES")}
    env.update(extra_env or {})
    controller, terminal = pty.openpty()
    fcntl.ioctl(terminal, termios.TIOCSWINSZ, struct.pack("HHHH", 24, columns, 0, 0))
    try:
        process = subprocess.Popen(
            [sys.executable, "-m", "cdsessions", *args],
            stdin=subprocess.DEVNULL,
            stdout=terminal,
            stderr=terminal,
            env=env,
        )
        os.close(terminal)
        shown = b""
        while True:
            try:
                chunk = os.read(controller, 65536)
            except OSError:  # EIO: the child closed its side
                break
            if not chunk:
                break
            shown += chunk
        code = process.wait(timeout=60)
    finally:
        os.close(controller)
    return code, shown.decode().replace("\r\n", "\n")
