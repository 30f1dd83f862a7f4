"""The ``cdsessions`` command: sessions from the shell, a fake server, and a one-command demo.

Expected failures print one line on stderr and exit with a documented code (never a
traceback). The API key comes from ``COMFY_DEPLOY_API_KEY`` or ``--api-key-file``, never from the
command line, and is never printed; session urls are printed only with ``--show-url``. Every
line printed goes through :func:`~cdsessions._cli.text.safe` (or
:func:`~cdsessions._cli.text.json_text`): the server chooses much of the text, and it must not
be able to send escape sequences to the terminal.
"""

from __future__ import annotations

import argparse
import os
import re
import shlex
import signal
import stat
import sys
import threading
import time
from collections.abc import Callable, Sequence
from datetime import datetime
from types import FrameType
from typing import IO, Any, Final, NoReturn
from urllib.parse import urlsplit

import msgspec
from returns.result import Result, Success

from cdsessions._cli import costs as cli_costs
from cdsessions._cli.text import DEFAULT_SERVER, PROG, command_hint, json_text, safe
from cdsessions._core.budget import OverBudget
from cdsessions._core.servers import (
    LOCAL_PORT,
    SERVERS,
    is_loopback,
    is_loopback_host,
    resolve_server,
)
from cdsessions._version import __version__
from cdsessions.client import API_KEY_ENV, SessionsClient
from cdsessions.errors import ApiError, HttpError, InvalidRequest, TransportFailed
from cdsessions.lifecycle import DEFAULT_READY_TIMEOUT, NotReady, SessionGone
from cdsessions.models import CreateSessionBody, MachineGPU, Session

__all__ = ["EXIT_CODES", "exit_code_for", "main", "safe"]

OK: Final = 0
INTERNAL: Final = 1
USAGE: Final = 2
NOT_FOUND: Final = 3
AUTH: Final = 4
REFUSED: Final = 5
UNREACHABLE: Final = 6
NOT_READY: Final = 7
NO_MACHINE: Final = 8
INTERRUPTED: Final = 130
TERMINATED: Final = 143  # 128 + SIGTERM, as shells report a process SIGTERM ended

#: Exit codes, as documented in ``cdsessions --help``.
EXIT_CODES: Final = {
    OK: "success",
    INTERNAL: "unexpected internal error (please report it)",
    USAGE: "bad arguments or input, or no usable API key (nothing was sent)",
    NOT_FOUND: "no such session: unknown, ended, or another account's (404)",
    AUTH: "the API key was refused (401) or lacks permission (403)",
    REFUSED: "the server refused or failed the request (other 4xx, 5xx) or answered unexpectedly",
    UNREACHABLE: "could not reach the server (connection, timeout), or could not listen",
    NOT_READY: "the session did not become ready in time (it may still be running)",
    NO_MACHINE: "create: no such machine, or another account's (404)",
    INTERRUPTED: "interrupted (Ctrl-C)",
    TERMINATED: "terminated (SIGTERM), handled like Ctrl-C",
}

#: A key is one short line; a larger "key file" is a mistake (or /dev/zero), not a key.
MAX_KEY_FILE_BYTES: Final = 4096
#: Commands whose routes never answer 404: one means the base URL is wrong.
_NEVER_404: Final = frozenset({"list", "prices"})


def _machine_missing(error: HttpError) -> bool:
    """The live create's 404 for an unknown machine (``{"detail": "Machine not found"}``), as
    opposed to the bare 404 of a wrong base URL."""
    return isinstance(error.detail, str) and "machine" in error.detail.lower()


def exit_code_for(error: ApiError, command: str = "") -> int:
    """The exit code for a failure value of ``command`` (pure).

    A 404 means "no such session" for the session commands; on ``create`` it means no such
    machine; ``list`` and ``prices`` never answer 404 (a wrong base URL does): a refusal.
    """
    if isinstance(error, NotReady):
        return NOT_READY
    if isinstance(error, SessionGone):
        return NOT_FOUND
    if isinstance(error, InvalidRequest):
        return USAGE
    if isinstance(error, TransportFailed):
        return UNREACHABLE
    if isinstance(error, HttpError):
        if error.status == 404:
            if command == "create":
                return NO_MACHINE if _machine_missing(error) else REFUSED
            return REFUSED if command in _NEVER_404 else NOT_FOUND
        if error.status in (401, 403):
            return AUTH
    return REFUSED


class _Fail(Exception):
    """Ends the command with one stderr line and an exit code (only inside this module)."""

    def __init__(self, message: str, code: int) -> None:
        super().__init__(message)
        self.code = code


class _Failed(Exception):
    """Ends the command with a failure value; :func:`main` words it for the command's user."""

    def __init__(self, error: ApiError) -> None:
        super().__init__(type(error).__name__)
        self.error = error


class _Terminated(KeyboardInterrupt):
    """SIGTERM, raised in the main thread like Ctrl-C's ``KeyboardInterrupt`` so that both stop
    the command the same way (a subclass: code that handles Ctrl-C handles this too)."""


def _on_sigterm(signum: int, frame: FrameType | None) -> None:
    raise _Terminated


def _stopped(stop: KeyboardInterrupt) -> tuple[str, int]:
    """What a Ctrl-C or SIGTERM is called, and its exit code."""
    if isinstance(stop, _Terminated):
        return "terminated", TERMINATED
    return "interrupted", INTERRUPTED


def _fail_with(error: ApiError) -> NoReturn:
    raise _Failed(error)


def _ok(result: Result[Any, ApiError]) -> Any:
    if not isinstance(result, Success):
        _fail_with(result.failure())
    return result.unwrap()


# -- failures in a shell user's words -----------------------------------------------------------

#: The CLI spelling of the library's ``InvalidRequest.field`` names.
_OPTION_FOR_FIELD: Final = {
    "session_id": "SESSION_ID",
    "machine_id": "--machine-id",
    "gpu": "--gpu",
    "minutes": "MINUTES",
    "server": "--server",
    "ready_timeout": "--ready-timeout",
}
#: Advice meant for Python callers, e.g. "(pass allow_insecure_http=True to override)".
_PYTHON_ADVICE: Final = re.compile(r"\s*\((?:pass|set) [^()]*\)|;?\s*\bpass \w+=.*$")

_INSECURE_HTTP: Final = (
    "plain http:// would carry the API key unencrypted, so it is allowed only to this machine "
    "(localhost, 127.0.0.0/8, ::1); use an https:// URL (no option overrides this)"
)


def _connection(args: argparse.Namespace) -> dict[str, Any]:
    """The connection options a hint repeats, as :func:`command_hint` takes them."""
    return {
        "server": getattr(args, "server", DEFAULT_SERVER),
        "api_key_file": getattr(args, "api_key_file", None),
    }


def _hint(args: argparse.Namespace, command: str, *words: str) -> str:
    """A command to run next, with the ``--server`` and ``--api-key-file`` this one used."""
    return command_hint(command, *words, **_connection(args))


def _key_source(args: argparse.Namespace) -> str:
    path = getattr(args, "api_key_file", None)
    return API_KEY_ENV if path is None else f"the file {shlex.quote(path)}"


def _base_url(args: argparse.Namespace) -> str:
    server: str = getattr(args, "server", DEFAULT_SERVER)
    resolved = resolve_server(server)
    return resolved.unwrap() if isinstance(resolved, Success) else server


def _invalid_text(error: InvalidRequest, args: argparse.Namespace) -> str:
    field, problem = error.field, _PYTHON_ADVICE.sub("", error.problem)
    if field == "bearer":
        if "empty" in error.problem:
            why = f"no API key: set {API_KEY_ENV} or use --api-key-file PATH"
        else:
            why = f"the API key in {_key_source(args)} {problem}"
        return f"{error.operation}: {why} (nothing was sent)"
    if field == "server" and "http://" in error.problem:
        return f"{error.operation}: {_INSECURE_HTTP} (nothing was sent)"
    if field == "timeout":
        option = "--ready-timeout" if "wait" in error.operation else "--timeout"
    else:
        option = _OPTION_FOR_FIELD.get(field, "--" + field.replace("_", "-"))
    return f"{error.operation}: invalid {option}: {problem} (nothing was sent)"


def _describe(error: ApiError, args: argparse.Namespace) -> str:
    """One line saying what failed, with advice in the command line's terms (CLI options and
    environment variables, never Python arguments). Not yet made :func:`safe`."""
    if isinstance(error, OverBudget):  # the price table may have been fetched: say what was not
        return f"{error.operation}: --max-cost: {error.reason()}"
    if isinstance(error, InvalidRequest):
        return _invalid_text(error, args)
    if isinstance(error, HttpError) and error.status == 404:
        command = getattr(args, "command", "")
        if command == "create" and _machine_missing(error):
            return (
                f"{error.operation}: machine not found (404): "
                "the account has no machine with this id (check --machine-id)"
            )
        if command == "create" or command in _NEVER_404:
            return (
                f"{error.operation}: {error.reason()}, which this route never answers: "
                f"the base URL {_base_url(args)} is probably wrong "
                "(ComfyDeploy's ends in /api; see --server)"
            )
    if isinstance(error, HttpError) and error.status == 401:
        return str(error).replace(f"({API_KEY_ENV})", f"in {_key_source(args)}")
    return str(error)


# -- argument parsing -------------------------------------------------------------------------


class _Parser(argparse.ArgumentParser):
    """argparse, but a usage error is one line, and never echoes unknown arguments (someone
    may have typed ``--api-key SECRET``)."""

    def error(self, message: str) -> NoReturn:
        if message.startswith("unrecognized arguments"):
            message = (
                "unrecognized arguments (not shown, in case they hold a secret); "
                f"the API key goes in {API_KEY_ENV} or --api-key-file"
            )
        self.exit(USAGE, safe(f"{self.prog}: error: {message} (see {self.prog} --help)") + "\n")


def _help_epilog() -> str:
    codes = "\n".join(f"  {code:>3}  {meaning}" for code, meaning in EXIT_CODES.items())
    return f"""\
main job, on any machine (no account, no network):
  cdsessions demo

examples:
  export {API_KEY_ENV}=...   # or pass --api-key-file ~/.comfydeploy-key
  cdsessions create --machine-id <machine-id> --wait
  cdsessions list
  cdsessions cancel <session-id>
  cdsessions fake-server             # a fake ComfyDeploy on http://127.0.0.1:3011/api

exit codes:
{codes}
"""


def _int_from(minimum: int) -> Callable[[str], int]:
    """An argparse ``type`` for whole numbers of at least ``minimum``."""

    def parse(text: str) -> int:
        try:
            value = int(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"{text!r} is not a whole number") from None
        if value < minimum:
            raise argparse.ArgumentTypeError(f"{text!r} must be at least {minimum}")
        return value

    return parse


_positive_int = _int_from(1)
_non_negative_int = _int_from(0)


def _seconds(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a number of seconds") from None
    if not 0 <= value < float("inf"):
        raise argparse.ArgumentTypeError(f"{text!r} must be a non-negative number of seconds")
    return value


def _port(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a port number") from None
    if not 0 <= value <= 65535:
        raise argparse.ArgumentTypeError(f"{text!r} is not between 0 and 65535")
    return value


def _server(text: str) -> str:
    """An argparse ``type`` for ``--server``: a server name or a base URL the client can use,
    checked before anything is sent (a malformed URL is bad input, not a broken connection).
    The URL is not repeated in the message: the user has it, and a URL may hold a secret."""
    resolved = resolve_server(text)
    if not isinstance(resolved, Success):
        problem = _PYTHON_ADVICE.sub("", resolved.failure().problem)
        subject = "it " if problem.startswith("is ") else ""  # "is not a usable URL"
        raise argparse.ArgumentTypeError(f"invalid server: {subject}{problem}")
    url = resolved.unwrap()
    if urlsplit(url).scheme == "http" and not is_loopback(url):
        raise argparse.ArgumentTypeError(f"invalid server: {_INSECURE_HTTP}")
    return text


def _api_options() -> _Parser:
    common = _Parser(add_help=False, allow_abbrev=False)
    group = common.add_argument_group("connection")
    group.add_argument(
        "--server",
        default=DEFAULT_SERVER,
        type=_server,
        metavar="NAME|URL",
        help=f"production (default), staging, local ({SERVERS['local']}) or a base URL",
    )
    group.add_argument(
        "--api-key-file",
        metavar="PATH",
        help=f"read the API key from this file (default: the {API_KEY_ENV} variable)",
    )
    group.add_argument("--json", action="store_true", help="print JSON instead of text")
    return common


def _build_parser() -> argparse.ArgumentParser:
    parser = _Parser(
        prog=PROG,
        description="Start, inspect and stop ComfyDeploy GPU sessions.\n"
        "Sessions are billed until they time out or are cancelled.",
        epilog=_help_epilog(),
        formatter_class=argparse.RawDescriptionHelpFormatter,
        allow_abbrev=False,
    )
    parser.add_argument("--version", action="version", version=f"{PROG} {__version__}")
    commands = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)
    api = _api_options()

    def command(name: str, summary: str, details: str = "") -> argparse.ArgumentParser:
        return commands.add_parser(
            name,
            help=summary,
            description=summary + (f"\n\n{details}" if details else ""),
            parents=[api] if name not in ("fake-server", "demo") else [],
            formatter_class=argparse.RawDescriptionHelpFormatter,
            allow_abbrev=False,
        )

    create = command(
        "create",
        "Start a session on a machine (billed from now until it ends).",
        "Prints the new session id. Without --wait the session is still starting: its url\n"
        "appears later (see `cdsessions wait`). The session runs until its timeout or\n"
        "`cdsessions cancel`.",
    )
    create.add_argument("--machine-id", required=True, help="the machine to run on")
    create.add_argument(
        "--gpu",
        metavar="GPU",
        help=f"GPU type ({', '.join(g.value for g in MachineGPU)}; default: the machine's)",
    )
    create.add_argument(
        "--timeout",
        type=_non_negative_int,
        metavar="MINUTES",
        help="minutes until the session ends by itself (0 or unset: the server's 15)",
    )
    how = create.add_mutually_exclusive_group()
    how.add_argument(
        "--wait", action="store_true", help="poll until the session is ready before returning"
    )
    how.add_argument(
        "--wait-for-server",
        action="store_true",
        help="ask the server to answer only once ComfyUI is up (can take 10 minutes)",
    )
    _add_wait_options(create)
    cli_costs.add_create_options(create)

    get = command("get", "Show one session.")
    get.add_argument("session_id", metavar="SESSION_ID")
    get.add_argument("--show-url", action="store_true", help="print the session's url (secret)")

    listing = command(
        "list",
        "List live sessions, newest first, with what each costs.",
        "Per session: GPU, age, time left, USD per hour and cost so far, then a total.\n"
        "Costs come from the price table (`cdsessions prices`); --json gives exact decimal\n"
        "strings for money and seconds for durations.",
    )
    listing.add_argument("--machine-id", help="only sessions of this machine")
    cli_costs.add_list_options(listing)

    command("prices", "Show what each GPU costs (USD per second and per hour).")

    reap = command(
        "reap",
        "Cancel forgotten sessions: a dry run unless --yes.",
        "Selects live sessions by every selector given (--machine-id, --older-than, --gpu,\n"
        "--cost-over) and prints what it would cancel and what that saves. --yes cancels\n"
        "them and reports each: cancelled, already gone, or failed (any failure: non-zero\n"
        "exit). Without any selector it refuses (exit 2) unless --all is given.",
    )
    cli_costs.add_reap_options(reap)

    cancel = command("cancel", "Stop a session (and its billing).")
    cancel.add_argument("session_id", metavar="SESSION_ID")
    cancel.add_argument(
        "--wait-for-shutdown", action="store_true", help="return once the machine has stopped"
    )

    extend = command(
        "extend",
        "Add minutes to a running session's timeout.",
        "The server refuses to leave more than 60 minutes on the clock.",
    )
    extend.add_argument("session_id", metavar="SESSION_ID")
    extend.add_argument("minutes", type=_positive_int, metavar="MINUTES")

    wait = command(
        "wait",
        "Wait until a session is ready (its url is set).",
        "Polls every 1-4 s. Exit code 3 if the session ends first, 7 if the deadline passes.",
    )
    wait.add_argument("session_id", metavar="SESSION_ID")
    _add_wait_options(wait)

    fake = command(
        "fake-server",
        "Serve a fake ComfyDeploy on 127.0.0.1 for testing (Ctrl-C to stop).",
        "It answers like the live API (same routes, statuses and error texts), accepts any\n"
        "non-empty API key (each key is its own account), and forgets everything on exit.\n"
        "Point a client at it with --server local, or --server http://127.0.0.1:PORT/api.",
    )
    fake.add_argument("--host", default="127.0.0.1", help="loopback address (default 127.0.0.1)")
    fake.add_argument(
        "--port",
        type=_port,
        default=LOCAL_PORT,
        help=f"port (default {LOCAL_PORT}, the `local` server)",
    )
    fake.add_argument(
        "--machine-id",
        action="append",
        default=[],
        metavar="ID",
        help="another machine to accept (repeatable; the default machine always exists)",
    )
    fake.add_argument(
        "--ready-after-polls",
        type=_non_negative_int,
        default=1,
        metavar="N",
        help="gets that still see url null before it appears (default 1)",
    )
    fake.add_argument(
        "--ready-after-seconds",
        type=_seconds,
        metavar="S",
        help="also set the url once a session is this old",
    )
    fake.add_argument(
        "--seed-shapes",
        action="store_true",
        help="answer in the seed document's shapes (3-field Session, GPUEventModel list)",
    )
    fake.add_argument("--quiet", action="store_true", help="do not log each request")

    command(
        "demo",
        "Run the whole session lifecycle against a built-in fake server.",
        "Starts a fake ComfyDeploy on a free port of 127.0.0.1 inside this process, then runs\n"
        "create, wait, get, list, extend, cancel and a final get (which must be a 404) through\n"
        "the real HTTP client. Needs no account, no key and no network.",
    )
    return parser


def _add_wait_options(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--ready-timeout",
        type=_seconds,
        default=DEFAULT_READY_TIMEOUT,
        metavar="SECONDS",
        help=f"give up waiting after this long (default {DEFAULT_READY_TIMEOUT:.0f})",
    )
    parser.add_argument(
        "--show-url", action="store_true", help="print the session's url (it is a secret)"
    )


# -- output ----------------------------------------------------------------------------------


def _lines(text: str) -> str:
    """``text`` made :func:`safe` line by line: its own line breaks stay, nothing else does."""
    return "\n".join(safe(line) for line in text.split("\n"))


def _out(text: str = "") -> None:
    print(_lines(text), flush=True)


def _err(text: str) -> None:
    print(_lines(text), file=sys.stderr, flush=True)


def _when(moment: datetime | None) -> str:
    return "-" if moment is None else moment.strftime("%Y-%m-%d %H:%M:%S UTC")


def _session_json(session: Session, show_url: bool) -> dict[str, Any]:
    data: dict[str, Any] = msgspec.to_builtins(session)
    data["ready"] = session.url is not None
    if not show_url:
        data.pop("url", None)  # absent, not null: null would claim "not ready"
    return data


def _print_json(value: Any) -> None:
    _out(json_text(value))


def _session_text(session: Session, show_url: bool) -> str:
    rows = [
        ("session", session.session_id),
        ("status", session.status or "-"),
        ("ready", "yes" if session.ready else "no (starting)"),
        ("gpu", session.gpu or "-"),
        ("machine", session.machine_id or "-"),
        ("created", _when(session.created_at)),
        ("ends", _when(session.timeout_end)),
    ]
    if show_url and session.url is not None:
        rows.append(("url", session.url))
    return "\n".join(f"{name:<8} {value}" for name, value in rows)


def _table(sessions: Sequence[Session]) -> str:
    header = ("SESSION", "GPU", "READY", "ENDS", "MACHINE")
    rows = [  # made safe before widths are measured: an escape is wider than its character
        (
            safe(s.session_id),
            safe(s.gpu or "-"),
            "yes" if s.ready else "no",
            _when(s.timeout_end),
            safe(s.machine_id or "-"),
        )
        for s in sessions
    ]
    widths = [max(len(row[i]) for row in [header, *rows]) for i in range(len(header))]
    return "\n".join(
        "  ".join(cell.ljust(width) for cell, width in zip(row, widths, strict=True)).rstrip()
        for row in [header, *rows]
    )


def _progress(session_id: str) -> Callable[[int, float], None] | None:
    """A poll callback showing progress on stderr, or None when stderr is not a terminal."""
    stream: IO[str] = sys.stderr
    if not stream.isatty():
        return None

    def show(polls: int, waited: float) -> None:
        shown = safe(session_id)
        stream.write(f"\rwaiting for session {shown}: {waited:4.0f} s, {polls} polls ")
        stream.flush()

    return show


def _end_progress() -> None:
    if sys.stderr.isatty():
        sys.stderr.write("\n")
        sys.stderr.flush()


# -- commands --------------------------------------------------------------------------------


def _read_at_most(fd: int, limit: int) -> bytes:
    chunks: list[bytes] = []
    size = 0
    while size < limit:
        chunk = os.read(fd, limit - size)
        if not chunk:
            break
        chunks.append(chunk)
        size += len(chunk)
    return b"".join(chunks)


def _read_key_file(path: str) -> str:
    """The key in ``path``: a regular file of at most :data:`MAX_KEY_FILE_BYTES` UTF-8 bytes.

    Devices, FIFOs and directories are refused before reading (``/dev/zero`` never ends, a FIFO
    would block), and no more than the limit is ever read, whatever the file claims its size is.
    """

    def refused(why: str) -> _Fail:
        return _Fail(f"cannot read the API key file {shlex.quote(path)}: {why}", USAGE)

    # O_NONBLOCK: opening a FIFO would otherwise wait for a writer; O_NOCTTY: a terminal device
    # must not become this process's controlling terminal.
    flags = os.O_RDONLY
    for name in ("O_NONBLOCK", "O_NOCTTY", "O_CLOEXEC"):  # POSIX only; harmless where missing
        flags |= getattr(os, name, 0)
    try:
        fd = os.open(path, flags)
    except (OSError, ValueError) as error:  # ValueError: a NUL byte in the path
        why = error.strerror if isinstance(error, OSError) and error.strerror else "cannot open it"
        raise refused(why.lower()) from None
    try:
        mode = os.fstat(fd).st_mode
        if stat.S_ISDIR(mode):
            raise refused("it is a directory")
        if not stat.S_ISREG(mode):
            raise refused("it is not a regular file (a device, FIFO or socket)")
        data = _read_at_most(fd, MAX_KEY_FILE_BYTES + 1)
    except OSError as error:
        raise refused((error.strerror or "cannot read it").lower()) from None
    finally:
        os.close(fd)
    if len(data) > MAX_KEY_FILE_BYTES:
        raise refused(f"it is larger than {MAX_KEY_FILE_BYTES} bytes (a key is one short line)")
    try:
        key = data.decode("utf-8").strip()
    except UnicodeDecodeError:
        raise refused("it is not UTF-8 text") from None
    if not key:
        raise refused("it is empty")
    return key


def _client(args: argparse.Namespace) -> SessionsClient:
    if args.api_key_file is None:
        return SessionsClient(server=args.server)  # reads COMFY_DEPLOY_API_KEY when called
    return SessionsClient(_read_key_file(args.api_key_file), server=args.server)


def _wait(client: SessionsClient, session_id: str, args: argparse.Namespace) -> Session:
    try:
        waited = client.wait_until_ready(
            session_id, timeout=args.ready_timeout, on_poll=_progress(session_id)
        )
    finally:
        _end_progress()
    return _ok(waited)  # type: ignore[no-any-return]


def _cmd_create(client: SessionsClient, args: argparse.Namespace) -> int:
    gpu = MachineGPU(args.gpu) if args.gpu else None
    body = CreateSessionBody(
        machine_id=args.machine_id,
        gpu=gpu,
        timeout=args.timeout,
        wait_for_server=args.wait_for_server,
    )
    try:
        created = _ok(client.create(body, max_cost=args.max_cost))
    except KeyboardInterrupt as stop:
        word, code = _stopped(stop)
        raise _Fail(
            f"{word} while creating a session; one may have started (see {_hint(args, 'list')})",
            code,
        ) from None
    session_id: str = created.session_id
    url: str | None = created.url
    cancel = _hint(args, "cancel", session_id)
    if args.wait and url is None:
        try:
            url = _wait(client, session_id, args).url
        except KeyboardInterrupt as stop:
            word, code = _stopped(stop)
            raise _Fail(
                f"{word}; session {session_id} is still running (cancel it with {cancel})", code
            ) from None
        except _Failed as failure:
            raise _Fail(
                f"{_describe(failure.error, args)}; session {session_id} may still be running "
                f"(cancel it with {cancel})",
                exit_code_for(failure.error, args.command),
            ) from None
    if args.json:
        data: dict[str, Any] = {"session_id": session_id, "ready": url is not None}
        if args.show_url:
            data["url"] = url
        _print_json(data)
    else:
        state = "ready" if url is not None else f"starting; run {_hint(args, 'wait', session_id)}"
        _out(f"created session {session_id} ({state})")
        if args.show_url and url is not None:
            _out(f"url {url}")
    return OK


def _cmd_get(client: SessionsClient, args: argparse.Namespace) -> int:
    session: Session = _ok(client.get(args.session_id))
    if args.json:
        _print_json(_session_json(session, args.show_url))
    else:
        _out(_session_text(session, args.show_url))
    return OK


def _cmd_costs(client: SessionsClient, args: argparse.Namespace) -> int:
    """``list``, ``prices`` and ``reap``: see :mod:`cdsessions._cli.costs`."""
    code: int = _ok(cli_costs.COMMANDS[args.command](client, args))
    return code


def _cmd_cancel(client: SessionsClient, args: argparse.Namespace) -> int:
    answer = _ok(client.cancel(args.session_id, args.wait_for_shutdown))
    if args.json:
        _print_json({"session_id": args.session_id, "success": answer.success})
    else:
        _out(f"cancelled session {args.session_id}")
    return OK


def _cmd_extend(client: SessionsClient, args: argparse.Namespace) -> int:
    answer = _ok(client.extend(args.session_id, args.minutes))
    if args.json:
        _print_json({"session_id": args.session_id, "message": answer.message})
    else:
        _out(f"extended session {args.session_id} by {args.minutes} min ({answer.message})")
    return OK


def _cmd_wait(client: SessionsClient, args: argparse.Namespace) -> int:
    session = _wait(client, args.session_id, args)
    if args.json:
        _print_json(_session_json(session, args.show_url))
    else:
        _out(f"session {session.session_id} is ready")
        if args.show_url and session.url is not None:
            _out(f"url {session.url}")
    return OK


_API_COMMANDS: Final = {
    "create": _cmd_create,
    "get": _cmd_get,
    "list": _cmd_costs,
    "prices": _cmd_costs,
    "reap": _cmd_costs,
    "cancel": _cmd_cancel,
    "extend": _cmd_extend,
    "wait": _cmd_wait,
}


def _cmd_fake_server(args: argparse.Namespace) -> int:
    from datetime import timedelta

    from cdsessions.fake.server import make_server, run
    from cdsessions.fake.service import DEFAULT_MACHINE_ID, FakeService

    if not is_loopback_host(args.host):
        raise _Fail(f"--host must be a loopback address, not {args.host!r}", USAGE)
    seconds = args.ready_after_seconds
    service = FakeService(
        machines=[DEFAULT_MACHINE_ID, *args.machine_id],
        ready_after_polls=args.ready_after_polls,
        ready_after=None if seconds is None else timedelta(seconds=seconds),
        seed_shapes=args.seed_shapes,
    )
    try:
        server = make_server(service, args.host, args.port, log=None if args.quiet else _err)
    except OSError as error:
        why = (error.strerror or "cannot bind").lower()
        raise _Fail(f"cannot listen on {args.host}:{args.port}: {why}", UNREACHABLE) from None
    _out(server.base_url)
    _err(
        f"fake ComfyDeploy serving on {server.base_url} (any non-empty API key; "
        f"machines: {', '.join(service.machine_ids)}). Ctrl-C to stop."
    )
    run(server)
    _err("fake ComfyDeploy stopped")
    return OK


def _cmd_demo(args: argparse.Namespace) -> int:
    from cdsessions.fake.server import serve_in_thread
    from cdsessions.fake.service import DEFAULT_MACHINE_ID, FakeService

    steps = 7

    def step(number: int, name: str, text: str) -> None:
        _out(f"{number}/{steps} {name:<7} {text}")

    service = FakeService(ready_after_polls=1)
    with (
        serve_in_thread(service) as base_url,
        SessionsClient("demo-key", server=base_url) as client,
    ):
        _out(f"fake ComfyDeploy serving on {base_url} (in this process; no account needed)")
        body = CreateSessionBody(machine_id=DEFAULT_MACHINE_ID, timeout=15)
        created = _ok(client.create(body))
        sid: str = created.session_id
        state = "ready" if created.url else "starting, url not set yet"
        step(1, "create", f"session {sid} on machine {DEFAULT_MACHINE_ID} ({state})")
        started = time.monotonic()
        _wait_quietly(client, sid)
        step(2, "wait", f"ready after {time.monotonic() - started:.1f} s (url set, not shown)")
        session: Session = _ok(client.get(sid))
        ends = _when(session.timeout_end)
        step(3, "get", f"{session.status} on {session.gpu}, {session.timeout} min, ends {ends}")
        listed: list[Session] = _ok(client.list(DEFAULT_MACHINE_ID))
        ours = "ours among them" if any(s.session_id == sid for s in listed) else "ours MISSING"
        step(4, "list", f"{len(listed)} live session(s) on the machine, {ours}")
        extended = _ok(client.extend(sid, 10))
        step(5, "extend", f"+10 min: {extended.message}")
        cancelled = _ok(client.cancel(sid))
        step(6, "cancel", f"success={str(cancelled.success).lower()}")
        gone = client.get(sid)
        if isinstance(gone, Success):
            raise _Fail("demo failed: the session still exists after cancel", REFUSED)
        error = gone.failure()
        if not (isinstance(error, HttpError) and error.status == 404):
            _fail_with(error)
        step(7, "get", f"{error.reason()}: the session is gone")
    _out("demo finished: the whole session lifecycle worked.")
    return OK


def _wait_quietly(client: SessionsClient, session_id: str) -> Session:
    waited = client.wait_until_ready(session_id, timeout=30, on_poll=_progress(session_id))
    _end_progress()
    return _ok(waited)  # type: ignore[no-any-return]


def _dispatch(args: argparse.Namespace) -> int:
    if args.command == "demo":
        return _cmd_demo(args)
    if args.command == "fake-server":
        return _cmd_fake_server(args)
    with _client(args) as client:
        return _API_COMMANDS[args.command](client, args)


def _tolerant_streams() -> None:
    """Never fail on printing: a character the terminal's encoding lacks is shown escaped."""
    for stream in (sys.stdout, sys.stderr):
        reconfigure = getattr(stream, "reconfigure", None)
        if reconfigure is not None:
            reconfigure(errors="backslashreplace")


def main(argv: Sequence[str] | None = None) -> int:
    """Run the command line; returns the exit code (the console script exits with it)."""
    _tolerant_streams()
    args = _build_parser().parse_args(argv)
    # SIGTERM (a closed terminal tab, `kill`, a CI runner's timeout) stops the command like
    # Ctrl-C does: with one line that names a session left running, not silently.
    # (Not when SIGTERM is ignored, as a supervisor may arrange, nor outside the main thread.)
    previous = None
    main_thread = threading.current_thread() is threading.main_thread()
    if main_thread and signal.getsignal(signal.SIGTERM) is not signal.SIG_IGN:
        previous = signal.signal(signal.SIGTERM, _on_sigterm)
    try:
        return _dispatch(args)
    except _Fail as failure:
        _err(f"{PROG}: {failure}")
        return failure.code
    except _Failed as failed:
        _err(f"{PROG}: {_describe(failed.error, args)}")
        return exit_code_for(failed.error, args.command)
    except KeyboardInterrupt as stop:
        word, code = _stopped(stop)
        _err(f"{PROG}: {word}")
        return code
    except BrokenPipeError:
        # The reader went away (`cdsessions list | head`): nothing more to say to it.
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return OK
    except Exception as error:
        # A bug, not an expected failure: one line, no traceback, nothing from the message
        # (it could quote anything, the API key included): the exception's type only.
        _err(f"{PROG}: internal error ({type(error).__name__}); please report it")
        return INTERNAL
    finally:
        if previous is not None:
            signal.signal(signal.SIGTERM, previous)


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
