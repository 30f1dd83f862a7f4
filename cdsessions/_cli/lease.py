"""The commands that keep a session only as long as its owner: ``with`` (start a session, run a
command with it, cancel it when the command ends) and ``hold`` (lease an existing session
until Ctrl-C). Both hold a lease (:mod:`cdsessions.leases`): if ``cdsessions`` itself is
killed, even with SIGKILL, the session ends by itself within one lease period."""

from __future__ import annotations

import argparse
import contextlib
import errno
import os
import signal
import subprocess
from datetime import timedelta
from types import FrameType
from typing import Final

from cdsessions._cli._failures import OK, USAGE, Fail, Failed, ok
from cdsessions._cli._keyfile import client_for
from cdsessions._cli._output import PROG, err
from cdsessions._cli._parser import Command, duration, gpu, machine_id, seconds, usd
from cdsessions._cli.sessions import send_create, wait_ready
from cdsessions._core.lease import DEFAULT_LEASE_MINUTES, MAX_LEASE_MINUTES, LeaseState
from cdsessions._core.text import escape
from cdsessions.lifecycle import DEFAULT_READY_TIMEOUT
from cdsessions.models import CreateSessionBody, MachineGPU

__all__ = ["HOLD", "SESSION_ID_VARIABLE", "SESSION_URL_VARIABLE", "WITH"]

#: What the command run by ``with`` finds in its environment. The url is a secret: it goes
#: there only, never to the terminal.
SESSION_ID_VARIABLE: Final = "CDSESSIONS_SESSION_ID"
SESSION_URL_VARIABLE: Final = "CDSESSIONS_SESSION_URL"
#: As shells report them: a command that cannot be found, or found but not run.
NOT_FOUND_EXIT: Final = 127
CANNOT_RUN_EXIT: Final = 126


def _lease_minutes(text: str) -> int:
    """An argparse ``type``: a lease, a duration in whole minutes from 1 to 60 (``5m``,
    ``1h``)."""
    span: timedelta = duration(text)
    whole, rest = divmod(span.total_seconds(), 60)
    if rest or not 1 <= whole <= MAX_LEASE_MINUTES:
        raise argparse.ArgumentTypeError(
            f"{escape(text)!r}: a lease is whole minutes, from 1m to {MAX_LEASE_MINUTES}m"
        )
    return int(whole)


def _lease_options(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--lease",
        type=_lease_minutes,
        default=DEFAULT_LEASE_MINUTES,
        metavar="DURATION",
        help=f"keep the session this far ahead of its end (default {DEFAULT_LEASE_MINUTES}m, "
        f"at most {MAX_LEASE_MINUTES}m); if {PROG} dies, the session ends within it",
    )
    parser.add_argument(
        "--max-cost",
        type=usd,
        metavar="USD",
        help="extend only while the session's worst case stays within USD (needs --gpu for with)",
    )


def _told(state: LeaseState) -> None:
    reason = "" if state.reason is None else f": {state.reason}"
    what = "ends as its time runs out" if state.status == "ending" else "was cancelled"
    err(
        escape(
            f"{PROG}: the lease on session {state.session_id} can no longer be kept{reason}; "
            f"the session {what}"
        )
    )


# -- with ------------------------------------------------------------------------------------


def _with_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--machine-id", required=True, type=machine_id, help="the machine to run on (a UUID)"
    )
    parser.add_argument(
        "--gpu",
        type=gpu,
        metavar="GPU",
        help=f"GPU type, in any case ({', '.join(g.value for g in MachineGPU)}; "
        "default: the machine's)",
    )
    _lease_options(parser)
    parser.add_argument(
        "--ready-timeout",
        type=seconds,
        default=DEFAULT_READY_TIMEOUT,
        metavar="SECONDS",
        help=f"give up waiting for the session after this long (default "
        f"{DEFAULT_READY_TIMEOUT:.0f})",
    )
    parser.add_argument("command", nargs=argparse.REMAINDER, metavar="-- COMMAND ARGS")


def _with(args: argparse.Namespace) -> int:
    command: list[str] = list(args.command)
    if command[:1] == ["--"]:
        command = command[1:]
    if not command:
        raise Fail("with: no command given (cdsessions with [options] -- COMMAND ARGS...)", USAGE)
    args.max_cost = getattr(args, "max_cost", None)
    chosen = MachineGPU(args.gpu) if args.gpu else None
    body = CreateSessionBody(machine_id=args.machine_id, gpu=chosen, timeout=args.lease)
    with client_for(args) as client:
        created = send_create(client, args, body)  # the one create path of the command line
        with client.lease(
            created.session_id, args.lease, max_cost=args.max_cost, on_end=_told
        ) as leased:
            ok(leased)  # a failure ends the block: the session is cancelled on the way out
            url = created.url or wait_ready(client, created.session_id, args).url
            environment = {
                **os.environ,
                SESSION_ID_VARIABLE: created.session_id,
                SESSION_URL_VARIABLE: url or "",
            }
            return run_command(command, environment)


def _in_the_terminals_foreground() -> bool:
    """Whether this process is in its terminal's foreground group, where a Ctrl-C reaches the
    command (same group) straight from the terminal; a second copy from us would be one too
    many. A SIGINT sent to this process alone (``kill -INT``, no terminal) is passed on."""
    try:
        with open("/dev/tty", "rb", buffering=0) as tty:
            return os.tcgetpgrp(tty.fileno()) == os.getpgrp()
    except OSError:
        return False


def run_command(command: list[str], environment: dict[str, str]) -> int:
    """Run ``command`` to its end with SIGINT and SIGTERM passed on to it; its exit status, as
    a shell gives it (128 + N for a command a signal N ended; 127 or 126 for one that cannot
    be found or run)."""
    try:
        child = subprocess.Popen(command, env=environment)  # noqa: S603 (the user's own)
    except OSError as error:
        cannot = error.errno in (errno.ENOENT, errno.ENOTDIR)
        why = "command not found" if cannot else (error.strerror or "cannot run it").lower()
        err(escape(f"{PROG}: with: {command[0]}: {why}"))
        return NOT_FOUND_EXIT if cannot else CANNOT_RUN_EXIT

    from_terminal = _in_the_terminals_foreground()

    def forward(signum: int, frame: FrameType | None) -> None:
        if signum == signal.SIGINT and from_terminal:
            return  # Ctrl-C signals the whole foreground group: the command has it already
        with contextlib.suppress(ProcessLookupError):  # it has just ended
            child.send_signal(signum)

    previous = {
        number: signal.signal(number, forward) for number in (signal.SIGINT, signal.SIGTERM)
    }
    try:
        status = child.wait()
    finally:
        for number, handler in previous.items():
            signal.signal(number, handler)
    return 128 - status if status < 0 else status


WITH: Final = Command(
    "with",
    "Start a session, run a command with it, and cancel it when the command ends.",
    _with,
    _with_arguments,
    f"The command finds the session in {SESSION_ID_VARIABLE} and {SESSION_URL_VARIABLE} (a\n"
    "secret: it is never printed). Its exit status is passed on (128+N if signal N ended it;\n"
    "127/126 if it cannot be found or run). SIGINT and SIGTERM are passed on to it; the\n"
    "session is cancelled however it ends. The session is leased: created with --lease of\n"
    "time and extended while cdsessions runs, so if cdsessions is killed it ends by itself.",
)


# -- hold ------------------------------------------------------------------------------------


def _hold_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("session_id", metavar="SESSION_ID")
    _lease_options(parser)


def _hold(args: argparse.Namespace) -> int:
    with client_for(args) as client:
        lease = client.lease(args.session_id, args.lease, max_cost=args.max_cost, on_end=_told)
        with lease as leased:
            ok(leased)
            err(
                f"{PROG}: holding a lease of {args.lease} min on session {args.session_id}; "
                "Ctrl-C cancels it"
            )
            state = lease.state
            while state is not None and state.status in ("held", "ending"):
                state = lease.wait(1.0)
    if state is not None and state.reason is not None:
        raise Failed(state.reason)
    return OK


HOLD: Final = Command(
    "hold",
    "Keep a session alive while this runs; cancel it on Ctrl-C or SIGTERM.",
    _hold,
    _hold_arguments,
    "Extends the session whenever half of --lease is left. If cdsessions is killed the\n"
    "session ends by itself within --lease.",
)
