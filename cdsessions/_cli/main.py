"""The ``cdsessions`` command: sessions from the shell, a fake server, and a one-command demo.

This module is the entry point and the exit policy: it parses, runs the chosen command, and
turns however that ends (an answer, a failure value, Ctrl-C or SIGTERM, a closed pipe, a bug)
into one stderr line at most and an exit code (never a traceback). The commands live in
:mod:`~cdsessions._cli.sessions`, :mod:`~cdsessions._cli.costs` and :mod:`~cdsessions._cli.fake`.

The API key comes from ``COMFY_DEPLOY_API_KEY`` or ``--api-key-file``, never from the command
line, and is never printed; session urls are printed only with ``--show-url``.
"""

from __future__ import annotations

import argparse
import errno
import os
import signal
import sys
import threading
from collections.abc import Sequence
from types import FrameType
from typing import Final

from cdsessions._cli import completion, costs, fake, lease, logs, machines, run, sessions
from cdsessions._cli._failures import (
    INTERNAL,
    NO_OUTPUT,
    OK,
    STRANDED,
    USAGE,
    Fail,
    Failed,
    Terminated,
    describe,
    exit_code_for,
    stopped,
)
from cdsessions._cli._output import PROG, err, lost_output, reset_output
from cdsessions._cli._parser import Command, parse_arguments
from cdsessions._core.text import escape

__all__ = ["COMMANDS", "main"]

#: Every command, in the order ``cdsessions --help`` lists them.
COMMANDS: Final[tuple[Command, ...]] = (
    sessions.CREATE,
    sessions.GET,
    sessions.LIST,
    costs.PRICES,
    costs.REAP,
    sessions.CANCEL,
    sessions.EXTEND,
    sessions.WAIT,
    lease.WITH,
    lease.HOLD,
    run.RUN,
    logs.LOGS,
    machines.MACHINES,
    machines.MACHINE,
    fake.FAKE_SERVER,
    fake.DEMO,
    completion.COMPLETION,
)
_COMMAND: Final = {command.name: command for command in COMMANDS}


def _on_sigterm(signum: int, frame: FrameType | None) -> None:
    raise Terminated


def _tolerant_streams() -> None:
    """Never fail on printing: a character the terminal's encoding lacks is shown escaped."""
    for stream in (sys.stdout, sys.stderr):
        reconfigure = getattr(stream, "reconfigure", None)
        if reconfigure is not None:
            reconfigure(errors="backslashreplace")


def _hold_closed_descriptors() -> None:
    """Started with stdin, stdout or stderr closed (``2>&-``), the process would hand that
    number to the next file or socket it opens, and a write meant for the terminal could reach
    the server. /dev/null holds the number instead; ``sys.stdout``/``sys.stderr`` stay None,
    which is how :func:`~cdsessions._cli._output.out` knows the output is lost."""
    for fd in (0, 1, 2):
        try:
            os.fstat(fd)
        except OSError:
            held = os.open(os.devnull, os.O_RDWR)
            if held != fd:  # a lower number was free after all: leave things as they were
                os.close(held)


def _run(argv: Sequence[str] | None) -> tuple[int, argparse.Namespace | None]:
    """Parse and run: the command's own exit code, and the parsed arguments (None when parsing
    ended the command: a usage error, ``--help``)."""
    try:
        args = parse_arguments(COMMANDS, argv)
    except SystemExit as ended:  # argparse's way of ending: usage error (2), --help (0)
        return (ended.code if isinstance(ended.code, int) else USAGE), None
    except KeyboardInterrupt as stop:
        word, code = stopped(stop)
        err(f"{PROG}: {word}")
        return code, None
    except Exception as error:
        err(f"{PROG}: internal error ({type(error).__name__}); please report it")
        return INTERNAL, None
    # SIGTERM (a closed terminal tab, `kill`, a CI runner's timeout) stops the command like
    # Ctrl-C does: with one line that names a session left running, not silently.
    # (Not when SIGTERM is ignored, as a supervisor may arrange, nor outside the main thread.)
    previous = None
    main_thread = threading.current_thread() is threading.main_thread()
    if main_thread and signal.getsignal(signal.SIGTERM) is not signal.SIG_IGN:
        previous = signal.signal(signal.SIGTERM, _on_sigterm)
    try:
        ran: int = args.run(args)
        return ran, args
    except Fail as failure:
        err(f"{PROG}: {failure}")
        return failure.code, args
    except Failed as failed:
        err(f"{PROG}: {describe(failed.error, args, waiting=failed.waiting)}")
        return exit_code_for(failed.error, args.command), args
    except KeyboardInterrupt as stop:
        word, code = stopped(stop)
        err(f"{PROG}: {word}")
        return code, args
    except Exception as error:
        # A bug, not an expected failure: one line, no traceback, nothing from the message
        # (it could quote anything, the API key included): the exception's type only.
        err(f"{PROG}: internal error ({type(error).__name__}); please report it")
        return INTERNAL, args
    finally:
        if previous is not None:
            signal.signal(signal.SIGTERM, previous)


def _settle(code: int, args: argparse.Namespace | None) -> int:
    """The exit code, once the output's fate is known: the worst of what the command did and
    what became of stdout. A failure the command reported stays its code; a success whose
    output was lost is exit 9 (10 for ``create``, whose session is then running and billing),
    with what it did repeated on stderr. A closed pipe (``| head``) is the reader's choice,
    not a failure: the code stays, and what a command changed is repeated on stderr."""
    lost = lost_output()
    if lost is None:
        return code
    error, lines = lost
    command = None if args is None else args.command
    changes = args is not None and _COMMAND[args.command].changes and bool(lines)
    if error.errno == errno.EPIPE:
        if changes:  # the reader's choice; but a created session's id is never lost unsaid
            err(f"{PROG}: the output's reader left before it was all written; what it did:")
            for line in lines:
                err(line)
        return code
    why = escape(error.strerror or type(error).__name__)
    said = "; what it did:" if changes else ""
    err(f"{PROG}: could not write the output ({why}){said}")
    if changes:
        for line in lines:
            err(line)
    if code != OK:
        return code
    return STRANDED if command == "create" else NO_OUTPUT


def main(argv: Sequence[str] | None = None) -> int:
    """Run the command line; returns the exit code (the console script exits with it)."""
    _hold_closed_descriptors()
    _tolerant_streams()
    reset_output()
    code, args = _run(argv)
    return _settle(code, args)


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
