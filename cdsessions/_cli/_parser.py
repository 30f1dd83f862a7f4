"""The command line's grammar: what a command is (:class:`Command`), the option types, and the
parser built from the commands.

Parsing never echoes what it did not understand (someone may have typed ``--api-key SECRET``),
and a usage error is one line with exit code 2.
"""

from __future__ import annotations

import argparse
import os
import re
import sys
from collections.abc import Callable, Mapping, Sequence
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import TYPE_CHECKING, Final, NoReturn

import msgspec
from returns.result import Success

from cdsessions._cli._failures import EXIT_CODES, INSECURE_HTTP, USAGE
from cdsessions._cli._output import DEFAULT_SERVER, PROG, err, out
from cdsessions._core.money import usd_from
from cdsessions._core.servers import SERVERS, refuse_plain_http, resolve_server
from cdsessions._core.text import clip, escape
from cdsessions._version import __version__
from cdsessions.client import API_KEY_ENV
from cdsessions.models import MachineGPU

if TYPE_CHECKING:
    from _typeshed import SupportsWrite

__all__ = [
    "SERVER_ENV",
    "Command",
    "add_now_option",
    "build_parser",
    "duration",
    "gpu",
    "machine_id",
    "moment",
    "non_negative_int",
    "now",
    "parse_arguments",
    "port",
    "positive_int",
    "seconds",
    "usd",
]

#: The environment variable naming the server when ``--server`` is not given.
SERVER_ENV: Final = "COMFY_DEPLOY_SERVER"


def _no_arguments(parser: argparse.ArgumentParser) -> None:
    """For a command that takes none of its own."""


class Command(msgspec.Struct, frozen=True):
    """One command: its name and help, the arguments it adds to its parser, and ``run``, which
    prints its answer and returns the exit code, or raises
    :class:`~cdsessions._cli._failures.Fail` / :class:`~cdsessions._cli._failures.Failed`.
    ``connects``: it talks to the API, so it takes ``--server``, ``--api-key-file`` and
    ``--json``. ``changes``: it starts or stops something, so output it could not write is
    repeated on stderr (the user must learn what happened)."""

    name: str
    summary: str
    run: Callable[[argparse.Namespace], int]
    arguments: Callable[[argparse.ArgumentParser], None] = _no_arguments
    details: str = ""
    connects: bool = True
    changes: bool = False


# -- option types -----------------------------------------------------------------------------


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


positive_int: Final = _int_from(1)
non_negative_int: Final = _int_from(0)


def seconds(text: str) -> float:
    """An argparse ``type``: a finite, non-negative number of seconds."""
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a number of seconds") from None
    if not 0 <= value < float("inf"):
        raise argparse.ArgumentTypeError(f"{text!r} must be a non-negative number of seconds")
    return value


def port(text: str) -> int:
    """An argparse ``type``: a TCP port, 0 (any free one) to 65535."""
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a port number") from None
    if not 0 <= value <= 65535:
        raise argparse.ArgumentTypeError(f"{text!r} is not between 0 and 65535")
    return value


_DURATION: Final = re.compile(r"(?:(\d+)d)?(?:(\d+)h)?(?:(\d+)m)?(?:(\d+)s)?")


def duration(text: str) -> timedelta:
    """An argparse ``type``: ``90s``, ``30m``, ``2h``, ``1h30m``, ``1d`` (units d, h, m, s)."""
    match = _DURATION.fullmatch(text.strip().lower())
    if match is None or not text.strip() or not any(match.groups()):
        raise argparse.ArgumentTypeError(
            f"{text!r} is not a duration (e.g. 90s, 30m, 2h, 1h30m, 1d)"
        )
    days, hours, minutes, secs = (int(part or 0) for part in match.groups())
    try:
        return timedelta(days=days, hours=hours, minutes=minutes, seconds=secs)
    except OverflowError:
        raise argparse.ArgumentTypeError(f"{text!r} is too long a duration") from None


def usd(text: str) -> Decimal:
    """An argparse ``type``: an amount of US dollars, exactly (``2.50``; a leading ``$`` is
    allowed)."""
    parsed = usd_from(text.strip().removeprefix("$"))
    if not isinstance(parsed, Success):
        raise argparse.ArgumentTypeError(f"{escape(text)!r}: {parsed.failure()}")
    amount: Decimal = parsed.unwrap()
    return amount


def moment(text: str) -> datetime:
    """An argparse ``type``: an ISO 8601 date-time, UTC when it has no offset."""
    try:
        value = datetime.fromisoformat(text.strip())
    except ValueError:
        raise argparse.ArgumentTypeError(
            f"{escape(text)!r} is not an ISO 8601 date-time (e.g. 2025-11-02T14:00:00Z)"
        ) from None
    try:  # 0001-01-01T00:00+01:00 is a valid date-time that no UTC date-time can hold
        return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)
    except OverflowError:
        raise argparse.ArgumentTypeError(
            f"{escape(text)!r} is outside the years 1 to 9999 in UTC"
        ) from None


def add_now_option(parser: argparse.ArgumentParser) -> None:
    """``--now``, for the commands that work out ages and costs."""
    parser.add_argument(
        "--now",
        type=moment,
        metavar="TIME",
        help="work out ages and costs as of this ISO 8601 time (UTC if no offset; default: now)",
    )


def now(args: argparse.Namespace) -> datetime:
    """The ``--now`` given, else the current time."""
    chosen: datetime | None = getattr(args, "now", None)
    return chosen if chosen is not None else datetime.now(UTC)


def _server(text: str) -> str:
    """An argparse ``type`` for ``--server``: a server name or a base URL the client can use,
    checked before anything is sent (a malformed URL is bad input, not a broken connection).
    The URL is not repeated in the message: the user has it, and a URL may hold a secret."""
    resolved = resolve_server(text)
    if not isinstance(resolved, Success):
        problem = resolved.failure().problem
        subject = "it " if problem.startswith("is ") else ""  # grammar only: "it is not a URL"
        raise argparse.ArgumentTypeError(f"invalid server: {subject}{problem}")
    if not isinstance(refuse_plain_http(resolved.unwrap(), allowed=False), Success):
        raise argparse.ArgumentTypeError(f"invalid server: {INSECURE_HTTP}")
    return text


#: Known GPU names by their lowercase spelling: ``--gpu a10g`` means A10G.
_KNOWN_GPUS: Final = {known.value.lower(): known.value for known in MachineGPU}


def gpu(text: str) -> str:
    """An argparse ``type`` for ``--gpu``: a known GPU in any case becomes its own spelling
    (the server answers 422 to ``a10g``); another name is passed on as given, as the library
    does, since the server's list grows before the client's does."""
    name = text.strip()
    if not name:
        raise argparse.ArgumentTypeError("a GPU name must not be blank")
    return _KNOWN_GPUS.get(name.lower(), name)


# 8-4-4-4-12 hex digits: the live server's machine ids. Anything else costs a round trip that
# ends in a bare 500 (create) or 422 (machine routes), so it is refused before sending.
_UUID: Final = re.compile(r"[0-9a-fA-F]{8}(?:-[0-9a-fA-F]{4}){3}-[0-9a-fA-F]{12}", re.ASCII)


def machine_id(text: str) -> str:
    """An argparse ``type`` for every ``--machine-id`` of an API command: a UUID, or exit 2
    with nothing sent. The one place the CLI checks the shape (the library sends any safe id,
    since the server, not the client, owns the id format)."""
    if _UUID.fullmatch(text.strip()) is None:
        raise argparse.ArgumentTypeError(  # clipped: ids are not secret, but may be anything
            f"'{clip(text, 40)}' is not a machine id: a machine id is a UUID "
            "(8-4-4-4-12 hex digits, as the dashboard shows it)"
        )
    return text.strip()


# -- the parser -------------------------------------------------------------------------------


#: The longest usage error shown (before the "see --help" advice).
_MESSAGE_LIMIT: Final = 300


class _Parser(argparse.ArgumentParser):
    """argparse, but a usage error is one line, and never echoes unknown arguments (someone
    may have typed ``--api-key SECRET``)."""

    def error(self, message: str) -> NoReturn:
        if message.startswith("unrecognized arguments"):
            message = (
                "unrecognized arguments (not shown, in case they hold a secret); "
                f"the API key goes in {API_KEY_ENV} or --api-key-file"
            )
        # Clipped: an argument of 5000 digits is quoted in the message, not echoed in full.
        why = clip(message, _MESSAGE_LIMIT)
        self.exit(USAGE, escape(f"{self.prog}: error: {why} (see {self.prog} --help)") + "\n")

    def _print_message(self, message: str, file: SupportsWrite[str] | None = None) -> None:
        # argparse would ignore a failed write (and one to a closed stderr goes to stdout):
        # through out() and err(), --help on a full disk is accounted like any other output.
        if message:
            text = message.removesuffix("\n")
            out(text) if file is sys.stdout else err(text)


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


#: The global options' names in the namespace, and what each is when not given.
_GLOBAL_DEFAULTS: Final = {"api_key_file": None, "json": False}


def _add_connection_options(parser: argparse.ArgumentParser) -> None:
    """The options of every command that talks to the API. They are added both to the main
    parser and to each such command, with no default (``SUPPRESS``): so they may come before
    or after the command's name, and one given in both places is read as a repeated option
    is, the last one wins (``--server a list --server b`` is ``b``), whichever side it is on.
    Defaults are filled in by :func:`parse_arguments`."""
    group = parser.add_argument_group("connection (before or after the command)")
    group.add_argument(
        "--server",
        default=argparse.SUPPRESS,
        type=_server,
        metavar="NAME|URL",
        help=f"production (default), staging, local ({SERVERS['local']}) or a base URL; "
        f"default: the {SERVER_ENV} variable, else production",
    )
    group.add_argument(
        "--api-key-file",
        default=argparse.SUPPRESS,
        metavar="PATH",
        help=f"read the API key from this file (default: the {API_KEY_ENV} variable)",
    )
    group.add_argument(
        "--json",
        action="store_true",
        default=argparse.SUPPRESS,
        help="print JSON instead of text (indented on a terminal, one line otherwise)",
    )


def build_parser(commands: Sequence[Command]) -> argparse.ArgumentParser:
    """The parser of ``cdsessions``; parsed arguments hold the chosen command's ``run``. Use
    :func:`parse_arguments`, which also fills in the connection options' defaults."""
    parser = _Parser(
        prog=PROG,
        description="Start, inspect and stop ComfyDeploy GPU sessions.\n"
        "Sessions are billed until they time out or are cancelled.",
        epilog=_help_epilog(),
        formatter_class=argparse.RawDescriptionHelpFormatter,
        allow_abbrev=False,
    )
    parser.add_argument("--version", action="version", version=f"{PROG} {__version__}")
    _add_connection_options(parser)
    subparsers = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)
    connection = _Parser(add_help=False, allow_abbrev=False)
    _add_connection_options(connection)
    for command in commands:
        details = f"\n\n{command.details}" if command.details else ""
        sub = subparsers.add_parser(
            command.name,
            help=command.summary,
            description=command.summary + details,
            parents=[connection] if command.connects else [],
            formatter_class=argparse.RawDescriptionHelpFormatter,
            allow_abbrev=False,
        )
        command.arguments(sub)
        sub.set_defaults(run=command.run, connects=command.connects)
    return parser


def parse_arguments(
    commands: Sequence[Command],
    argv: Sequence[str] | None = None,
    environ: Mapping[str, str] = os.environ,
) -> argparse.Namespace:
    """Parse ``argv``, then fill in the connection options not given: ``--server`` from
    ``COMFY_DEPLOY_SERVER`` (checked like ``--server``; an empty one counts as unset), else
    production. ``server_given``: it was typed, so hints repeat it (one from the environment
    is left out, like the default: the shell that follows the hint has it too). Exits 2, as
    argparse does, on a usage error."""
    parser = build_parser(commands)
    args = parser.parse_args(argv)
    given = [name for name in ("server", *_GLOBAL_DEFAULTS) if name in vars(args)]
    if not args.connects:
        if given:  # `cdsessions --json demo`: said, so it must mean something or be refused
            option = "--" + given[0].replace("_", "-")
            parser.error(f"{option} applies only to commands that talk to the API")
        return args
    for name, default in _GLOBAL_DEFAULTS.items():
        if name not in given:
            setattr(args, name, default)
    args.server_given = "server" in given
    if not args.server_given:
        args.server = DEFAULT_SERVER
        chosen = environ.get(SERVER_ENV, "")
        if chosen:
            try:
                args.server = _server(chosen)
            except argparse.ArgumentTypeError as refused:
                parser.error(f"{SERVER_ENV}: {refused}")
    return args
