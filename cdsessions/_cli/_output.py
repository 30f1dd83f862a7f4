"""What the ``cdsessions`` command prints, and how: lines made safe for a terminal, JSON with no
raw control characters, tables, money and durations, and commands quoted for a shell.

The server chooses much of what is printed (ids, GPU names, ``detail`` texts), so every line
goes through :func:`~cdsessions._core.text.escape` (text) or :func:`json_text` (``--json``):
nothing it sends can act on the terminal. Money is computed exactly elsewhere and rounded only
here, for display; ``--json`` carries exact decimal strings (``"1.3143"``) and durations in
seconds.
"""

from __future__ import annotations

import argparse
import errno
import json
import os
import shlex
import shutil
import sys
from collections.abc import Callable, Sequence
from datetime import datetime, timedelta
from decimal import Decimal
from typing import IO, Any, Final, Literal

import msgspec

from cdsessions._core import money
from cdsessions._core.money import format_usd
from cdsessions._core.pricing import NoPrice
from cdsessions._core.text import escape, escape_char
from cdsessions.comfy_models import RunProgress
from cdsessions.costs.figures import SessionCosts, Unknown
from cdsessions.models import Session

__all__ = [
    "DEFAULT_SERVER",
    "PROG",
    "columns",
    "command_hint",
    "costs_data",
    "end_progress",
    "err",
    "exact",
    "exact_or_none",
    "fields",
    "hint",
    "json_text",
    "lost_output",
    "money_text",
    "notes",
    "out",
    "out_verbatim",
    "print_json",
    "progress",
    "reset_output",
    "session_json",
    "session_text",
    "span_text",
    "terminal_width",
    "total",
    "unknowns",
    "when",
]

PROG: Final = "cdsessions"
#: The ``--server`` used when none is given; hints leave it out, like the user did.
DEFAULT_SERVER: Final = "production"


# -- lines -----------------------------------------------------------------------------------------


def _lines(text: str) -> str:
    """``text`` escaped line by line: its own line breaks stay, nothing else does."""
    return "\n".join(escape(line) for line in text.split("\n"))


class _Stdout:
    """What became of stdout during this command: the first write that failed, and every line
    that could not be written since. Writing never raises: a closed pipe, a full disk or a
    closed descriptor must not end the command before it has decided its exit code."""

    def __init__(self) -> None:
        self.error: OSError | None = None
        self.unwritten: list[str] = []


_stdout = _Stdout()


def reset_output() -> None:
    """Forget earlier write failures (``main`` runs once per command, tests run it often)."""
    global _stdout
    _stdout = _Stdout()


def lost_output() -> tuple[OSError, tuple[str, ...]] | None:
    """The first stdout write failure and the lines lost since, or None if all was written."""
    if _stdout.error is None:
        return None
    return _stdout.error, tuple(_stdout.unwritten)


def _silence(stream: IO[str]) -> None:
    """Point ``stream``'s descriptor at /dev/null, so that the interpreter's last flush at exit
    cannot fail too (it would print a traceback-like warning and exit 120)."""
    try:
        null = os.open(os.devnull, os.O_WRONLY)
        os.dup2(null, stream.fileno())
        os.close(null)
    except (OSError, ValueError):  # no descriptor (a test's capture), or none to replace
        pass


def _write_out(line: str) -> bool:
    """``line`` on stdout, or the failure recorded; whether it was written."""
    if _stdout.error is not None:
        return False
    stream = sys.stdout
    try:
        if stream is None:  # started with stdout closed (`>&-`)
            raise OSError(errno.EBADF, "stdout is closed")
        print(line, file=stream, flush=True)
    except OSError as error:
        _stdout.error = error
        if stream is not None:
            _silence(stream)
        return False
    return True


def out(text: str = "") -> None:
    """A line (or lines) on stdout; if it cannot be written, it is kept in :func:`lost_output`."""
    line = _lines(text)
    if not _write_out(line):
        _stdout.unwritten.append(line)


def out_verbatim(text: str) -> None:
    """Text of this program's own making (a completion script) on stdout as it is: never
    text from a server, which must go through :func:`out`."""
    if not _write_out(text):
        _stdout.unwritten.append(text)


def err(text: str) -> None:
    """A line on stderr, or nowhere: never on stdout, even when stderr is closed (``print``
    would fall back to stdout for a missing stderr)."""
    stream = sys.stderr
    if stream is None:
        return
    try:
        print(_lines(text), file=stream, flush=True)
    except OSError:
        _silence(stream)


def _json_escape(char: str) -> str:
    code = ord(char)
    if code < 0x10000:
        return f"\\u{code:04x}"
    code -= 0x10000  # JSON writes astral code points as a UTF-16 surrogate pair
    return f"\\u{0xD800 + (code >> 10):04x}\\u{0xDC00 + (code & 0x3FF):04x}"


def json_text(value: object) -> str:
    """One line of JSON for ``value`` in which every non-printable character is a ``\\uXXXX``
    escape: it decodes to exactly the same value, and no raw DEL, C1 or bidi character reaches
    the terminal (msgspec escapes only C0 controls)."""
    try:
        text = msgspec.json.encode(value).decode()
    except UnicodeEncodeError:  # a lone surrogate: not UTF-8, but JSON can still escape it
        text = json.dumps(msgspec.to_builtins(value), separators=(",", ":"))
    if text.isprintable():
        return text
    # Compact JSON has no whitespace outside strings, so every such character is inside one.
    return "".join(char if char.isprintable() else _json_escape(char) for char in text)


def print_json(value: Any) -> None:
    """``value`` as JSON on stdout: indented for a person at a terminal, one line for a
    program (a pipe, a file). Indented after escaping, which keeps strings as they are."""
    text = json_text(value)
    out(msgspec.json.format(text, indent=2) if _is_terminal(sys.stdout) else text)


# -- hints -----------------------------------------------------------------------------------------


def command_hint(
    command: str,
    *words: str,
    server: str = DEFAULT_SERVER,
    api_key_file: str | None = None,
) -> str:
    """A command to run next, in backticks, quoted for a POSIX shell and escaped.

    It repeats the connection options the user gave (``--server`` unless it was the default,
    ``--api-key-file``) so that following the hint talks to the same server with the same key:
    ``command_hint("wait", sid, server="local")`` is
    ``"`cdsessions wait --server local -- <sid>`"``: the words after ``--``, which every
    command reads as positional arguments, so an id such as ``-x`` cannot pass for an option.
    """
    argv: list[str] = [PROG, command]
    if server != DEFAULT_SERVER:
        argv += ["--server", server]
    if api_key_file is not None:
        argv += ["--api-key-file", api_key_file]
    if words:  # ids come from the server: one starting with "-" must not be read as an option
        argv += ["--", *words]
    return f"`{escape(' '.join(map(_shell_word, argv)))}`"


def _shell_word(word: str) -> str:
    """``word`` quoted for a shell. One with a character a terminal must not see raw (a bidi
    override in a server's id) is written ``$'…'`` with that character as an escape, which bash
    and zsh turn back into the very same word: shown escaped but quoted plainly, a hint would
    name another session."""
    if word.isprintable():
        return shlex.quote(word)
    inner = "".join(
        "\\" + char if char in "\\'" else char if char.isprintable() else escape_char(char)
        for char in word
    )
    return f"$'{inner}'"


def hint(args: argparse.Namespace, command: str, *words: str) -> str:
    """A command to run next, with the ``--server`` and ``--api-key-file`` this one used (not
    a server from ``COMFY_DEPLOY_SERVER``: the shell following the hint has it too)."""
    given = getattr(args, "server_given", True)
    server: str = getattr(args, "server", DEFAULT_SERVER) if given else DEFAULT_SERVER
    key_file: str | None = getattr(args, "api_key_file", None)
    return command_hint(command, *words, server=server, api_key_file=key_file)


# -- sessions --------------------------------------------------------------------------------------


def when(moment: datetime | None) -> str:
    return "-" if moment is None else moment.strftime("%Y-%m-%d %H:%M:%S UTC")


def session_json(session: Session, show_url: bool) -> dict[str, Any]:
    data: dict[str, Any] = msgspec.to_builtins(session)
    data["ready"] = session.url is not None
    if not show_url:
        data.pop("url", None)  # absent, not null: null would claim "not ready"
    return data


def session_text(session: Session, show_url: bool) -> str:
    rows = [
        ("session", session.session_id),
        ("status", session.status or "-"),
        ("ready", "yes" if session.ready else "no (starting)"),
        ("gpu", session.gpu or "-"),
        ("machine", session.machine_id or "-"),
        ("created", when(session.created_at)),
        ("ends", when(session.timeout_end)),
    ]
    if show_url and session.url is not None:
        rows.append(("url", session.url))
    return fields(rows)


def fields(rows: Sequence[tuple[str, str]]) -> str:
    """``name value`` lines, each value escaped whole: a line break in a server's value is
    shown as ``\\x0a``, never as a line of its own that could pass for another field."""
    return "\n".join(f"{name:<8} {escape(value)}" for name, value in rows)


def progress(session_id: str) -> Callable[[int, float], None] | None:
    """A poll callback showing progress on stderr, or None when stderr is not a terminal."""
    stream: IO[str] | None = sys.stderr
    if not _is_terminal(stream):
        return None

    def show(polls: int, waited: float) -> None:
        shown = escape(session_id)
        _write_progress(f"\rwaiting for session {shown}: {waited:4.0f} s, {polls} polls ")

    return show


def run_progress() -> Callable[[RunProgress], None] | None:
    """A run's progress on stderr, or None when stderr is not a terminal."""
    if not _is_terminal(sys.stderr):
        return None

    def show(event: RunProgress) -> None:
        if event.stage == "waiting":
            what = f"running: {event.seconds:4.0f} s, {event.polls} polls"
        else:
            what = f"{event.stage} {event.index}/{event.count} {escape(event.file or '')}"
        _write_progress(f"\r{what[:70]:<70}")

    return show


def _is_terminal(stream: IO[str] | None) -> bool:
    try:
        return stream is not None and stream.isatty()
    except (OSError, ValueError):
        return False


def _write_progress(text: str) -> None:
    stream = sys.stderr
    if stream is None:
        return
    try:
        stream.write(text)
        stream.flush()
    except OSError:  # progress is a courtesy: losing it must not end the wait
        _silence(stream)


def end_progress() -> None:
    if _is_terminal(sys.stderr):
        _write_progress("\n")


def terminal_width() -> int | None:
    """The width tables must fit: the terminal's (``COLUMNS`` first, as shells set it), or None
    (no limit) when stdout is not a terminal, so that a pipe or a file gets whole rows."""
    if not _is_terminal(sys.stdout):
        return None
    return shutil.get_terminal_size().columns


def columns(
    rows: Sequence[Sequence[str]],
    right: frozenset[int] = frozenset(),
    *,
    optional: Sequence[int] = (),
    width: int | Literal["terminal"] | None = "terminal",
) -> str:
    """Aligned columns, those in ``right`` right-aligned, escaped. Widths are measured on the
    escaped cells (a ``\\x1b`` in a GPU name takes four columns on screen, not one). A table
    wider than ``width`` (the terminal's, unless given) drops the ``optional`` columns, in that
    order, until it fits; the others are never cut, since ids are copied from them."""
    limit = terminal_width() if width == "terminal" else width
    cells = [[escape(cell) for cell in row] for row in rows]
    shown = list(range(len(cells[0])))
    widths = [max(len(row[i]) for row in cells) for i in shown]
    dropping = list(optional)

    def span() -> int:
        return sum(widths[i] for i in shown) + 2 * (len(shown) - 1)

    while limit is not None and dropping and span() > limit:
        shown.remove(dropping.pop(0))
    return "\n".join(
        "  ".join(
            row[i].rjust(widths[i]) if i in right else row[i].ljust(widths[i]) for i in shown
        ).rstrip()
        for row in cells
    )


# -- money and durations ---------------------------------------------------------------------------


def exact(amount: Decimal) -> str:
    """Exact decimal text for JSON: no exponent, no trailing zeros (``"1.3143"``)."""
    return money.exact_text(amount)


def span_text(span: timedelta | Unknown) -> str:
    if isinstance(span, Unknown):
        return "?"
    seconds = int(span.total_seconds())
    days, rest = divmod(seconds, 86400)
    hours, rest = divmod(rest, 3600)
    minutes, seconds = divmod(rest, 60)
    if days:
        return f"{days}d{hours:02d}h"
    if hours:
        return f"{hours}h{minutes:02d}m"
    if minutes:
        return f"{minutes}m{seconds:02d}s"
    return f"{seconds}s"


def money_text(amount: Decimal | Unknown) -> str:
    return "?" if isinstance(amount, Unknown) else format_usd(amount)


def _seconds(span: timedelta | Unknown) -> float | None:
    return None if isinstance(span, Unknown) else span.total_seconds()


def exact_or_none(amount: Decimal | Unknown) -> str | None:
    """:func:`exact`, or None (JSON null) when the amount is unknown."""
    return None if isinstance(amount, Unknown) else exact(amount)


def notes(figures: Sequence[SessionCosts]) -> list[str]:
    """Why some figures are unknown, each reason once."""
    found: dict[str, None] = {}
    for costs in figures:
        for value in (costs.price, costs.age, costs.time_left, costs.cost_so_far):
            if isinstance(value, NoPrice):
                found[str(value)] = None
            elif isinstance(value, Unknown):
                found[value.reason] = None
    return list(found)


def costs_data(costs: SessionCosts) -> dict[str, Any]:
    """A session with its cost figures, for ``--json`` (never its url)."""
    session = costs.session
    data: dict[str, Any] = msgspec.to_builtins(session)
    data.pop("url", None)  # a secret; "ready" says whether there is one
    data["ready"] = session.url is not None
    price = costs.price
    data["usd_per_second"] = None if isinstance(price, NoPrice) else exact(price.usd_per_second)
    data["usd_per_hour"] = exact_or_none(costs.usd_per_hour)
    data["age_seconds"] = _seconds(costs.age)
    data["time_left_seconds"] = _seconds(costs.time_left)
    data["cost_so_far_usd"] = exact_or_none(costs.cost_so_far)
    data["max_cost_usd"] = exact_or_none(costs.max_cost)
    data["remaining_cost_usd"] = exact_or_none(costs.remaining_cost)
    return data


def total(amounts: Sequence[Decimal | Unknown]) -> Decimal:
    """The sum of the known amounts."""
    return money.total(amount for amount in amounts if not isinstance(amount, Unknown))


def unknowns(amounts: Sequence[Decimal | Unknown]) -> int:
    return sum(1 for amount in amounts if isinstance(amount, Unknown))
