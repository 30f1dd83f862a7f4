"""Text made safe to show: on a terminal, in a log line, in an error message.

A server (or a proxy in front of it) chooses the bytes of every ``detail``, session id, GPU name
and message the library reports. Written out as they are, escape sequences in them can retitle a
terminal window, clear the screen or hide text, bidi overrides can make a line read differently
from what it says, and a line break can forge a log line. Every place that shows such text uses
these functions, so the rules live here once:

- :func:`escape` writes each non-printable character as a Python-style escape (``\\x1b``);
- :func:`clip` also makes the text one bounded line, for messages and logs;
- :func:`mask_urls` hides URLs (a session's ``url`` is a public tunnel with no authentication
  of its own, so it is a secret).

Pure functions of ``str``; none of them raises, whatever the text (lone surrogates included).
"""

from __future__ import annotations

import re
from typing import Final

__all__ = ["ELLIPSIS", "clip", "escape", "escape_char", "mask_urls"]

#: Marks where :func:`clip` cut a text.
ELLIPSIS: Final = "…"
# clip() looks at most this many characters per character it may keep: collapsing whitespace
# must not walk a megabyte body, yet a run of blanks must not hide the text after it.
_SCAN_FACTOR: Final = 8
# Below this limit clip() still scans this many characters' worth (short fields, same window).
_SCAN_FLOOR: Final = 300

# Trailing punctuation is left alone: "see https://x.y/z." keeps its full stop. Percent-encoded
# too (``https%3A%2F%2F…``): a server's id can hold a URL, and ids are logged as part of the
# request path, encoded. Compiled (and cached by ``re``) on first use: most calls log nothing.
_URL: Final = r"\b([a-zA-Z][a-zA-Z0-9+.-]*(?:://|%3[aA]%2[fF]%2[fF]))[^\s'\"<>]*[^\s'\"<>,.;:!?)\]]"


def escape_char(char: str) -> str:
    """One character as a Python-style escape: ``\\x1b``, ``\\u202e``, ``\\U000e0001``."""
    code = ord(char)
    if code < 0x100:
        return f"\\x{code:02x}"
    if code < 0x10000:
        return f"\\u{code:04x}"
    return f"\\U{code:08x}"


def escape(text: str) -> str:
    """``text`` with every character that is not printable written as :func:`escape_char`.

    "Not printable" is :meth:`str.isprintable`'s definition: C0 controls (newline and tab
    included), DEL, C1 controls, format characters (bidi overrides and isolates, zero-width
    characters), line and paragraph separators, spaces other than ASCII space, surrogates,
    private-use and unassigned code points. Backslashes are left as they are (the result is for
    reading, not for parsing back).
    """
    if text.isprintable():  # the usual case, in one C call
        return text
    return "".join(char if char.isprintable() else escape_char(char) for char in text)


def clip(text: str, limit: int) -> str:
    """``text`` as one line of at most ``limit`` characters (``limit`` >= 1): whitespace runs
    become one space, anything else unprintable is :func:`escape`\\ d, and a cut is marked with
    :data:`ELLIPSIS`. Only the start of a huge text is ever looked at."""
    scanned = text[: max(limit, _SCAN_FLOOR) * _SCAN_FACTOR]
    flat = " ".join(scanned.split())
    cut = len(flat) > limit or len(scanned) < len(text)
    if not flat.isprintable():
        flat = escape(flat[:limit])
        cut = cut or len(flat) > limit
    return flat[: limit - 1] + ELLIPSIS if cut else flat


def mask_urls(text: str) -> str:
    """``text`` with every ``scheme://…`` URL (percent-encoded or not) replaced by
    ``scheme://<masked>``."""
    return re.sub(_URL, r"\1<masked>", text)
