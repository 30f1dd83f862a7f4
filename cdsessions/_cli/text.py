"""Text the ``cdsessions`` command writes to a terminal: server strings made harmless, JSON with
no raw control characters, and commands quoted for a shell.

A server (or a proxy in front of it) chooses the bytes of every ``detail``, session id, GPU name
and message the command prints. Written to a terminal as they are, escape sequences in them can
retitle the window, clear the screen, recolour or hide text, and bidi overrides can make a line
read differently from what it says. Everything printed goes through :func:`safe` (text) or
:func:`json_text` (``--json``). No import from ``cdsessions._cli.main``, so command modules that
``cli`` registers can use these without an import cycle.
"""

from __future__ import annotations

import json
import shlex
from typing import Final

import msgspec

__all__ = ["DEFAULT_SERVER", "PROG", "command_hint", "json_text", "safe"]

PROG: Final = "cdsessions"
#: The ``--server`` used when none is given; hints leave it out, like the user did.
DEFAULT_SERVER: Final = "production"


def _escape(char: str) -> str:
    code = ord(char)
    if code < 0x100:
        return f"\\x{code:02x}"
    if code < 0x10000:
        return f"\\u{code:04x}"
    return f"\\U{code:08x}"


def safe(text: str) -> str:
    """``text`` with every character that is not printable written as a Python-style escape.

    "Not printable" is :meth:`str.isprintable`'s definition: C0 controls (newline and tab
    included), DEL, C1 controls, format characters (bidi overrides and isolates, zero-width
    characters), line and paragraph separators, spaces other than ASCII space, surrogates,
    private-use and unassigned code points. Backslashes are left as they are (the result is for
    reading, not for parsing back).
    """
    if text.isprintable():  # the usual case, in one C call
        return text
    return "".join(char if char.isprintable() else _escape(char) for char in text)


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


def command_hint(
    command: str,
    *words: str,
    server: str = DEFAULT_SERVER,
    api_key_file: str | None = None,
) -> str:
    """A command to run next, in backticks, quoted for a POSIX shell and made :func:`safe`.

    It repeats the connection options the user gave (``--server`` unless it was the default,
    ``--api-key-file``) so that following the hint talks to the same server with the same key:
    ``command_hint("wait", sid, server="local")`` is ``"`cdsessions wait --server local <sid>`"``.
    """
    argv: list[str] = [PROG, command]
    if server != DEFAULT_SERVER:
        argv += ["--server", server]
    if api_key_file is not None:
        argv += ["--api-key-file", api_key_file]
    argv += words
    return f"`{safe(shlex.join(argv))}`"
