"""The ``cdsessions`` command: sessions from the shell, a fake server, and a one-command demo.

This module is the entry point and the exit policy: it parses, runs the chosen command, and
turns however that ends (an answer, a failure value, Ctrl-C or SIGTERM, a closed pipe, a bug)
into one stderr line at most and an exit code (never a traceback). The commands live in
:mod:`~cdsessions._cli.sessions`, :mod:`~cdsessions._cli.costs` and :mod:`~cdsessions._cli.fake`.

The API key comes from ``COMFY_DEPLOY_API_KEY`` or ``--api-key-file``, never from the command
line, and is never printed; session urls are printed only with ``--show-url``.
"""

from __future__ import annotations

import os
import signal
import sys
import threading
from collections.abc import Sequence
from types import FrameType
from typing import Final

from cdsessions._cli import costs, fake, machines, sessions
from cdsessions._cli._failures import (
    INTERNAL,
    OK,
    Fail,
    Failed,
    Terminated,
    describe,
    exit_code_for,
    stopped,
)
from cdsessions._cli._output import PROG, err
from cdsessions._cli._parser import Command, build_parser

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
    machines.MACHINES,
    machines.MACHINE,
    fake.FAKE_SERVER,
    fake.DEMO,
)


def _on_sigterm(signum: int, frame: FrameType | None) -> None:
    raise Terminated


def _tolerant_streams() -> None:
    """Never fail on printing: a character the terminal's encoding lacks is shown escaped."""
    for stream in (sys.stdout, sys.stderr):
        reconfigure = getattr(stream, "reconfigure", None)
        if reconfigure is not None:
            reconfigure(errors="backslashreplace")


def main(argv: Sequence[str] | None = None) -> int:
    """Run the command line; returns the exit code (the console script exits with it)."""
    _tolerant_streams()
    args = build_parser(COMMANDS).parse_args(argv)
    # SIGTERM (a closed terminal tab, `kill`, a CI runner's timeout) stops the command like
    # Ctrl-C does: with one line that names a session left running, not silently.
    # (Not when SIGTERM is ignored, as a supervisor may arrange, nor outside the main thread.)
    previous = None
    main_thread = threading.current_thread() is threading.main_thread()
    if main_thread and signal.getsignal(signal.SIGTERM) is not signal.SIG_IGN:
        previous = signal.signal(signal.SIGTERM, _on_sigterm)
    try:
        code: int = args.run(args)
        return code
    except Fail as failure:
        err(f"{PROG}: {failure}")
        return failure.code
    except Failed as failed:
        err(f"{PROG}: {describe(failed.error, args, waiting=failed.waiting)}")
        return exit_code_for(failed.error, args.command)
    except KeyboardInterrupt as stop:
        word, code = stopped(stop)
        err(f"{PROG}: {word}")
        return code
    except BrokenPipeError:
        # The reader went away (`cdsessions list | head`): nothing more to say to it.
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return OK
    except Exception as error:
        # A bug, not an expected failure: one line, no traceback, nothing from the message
        # (it could quote anything, the API key included): the exception's type only.
        err(f"{PROG}: internal error ({type(error).__name__}); please report it")
        return INTERNAL
    finally:
        if previous is not None:
            signal.signal(signal.SIGTERM, previous)


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
