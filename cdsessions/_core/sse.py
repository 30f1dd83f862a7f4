"""Server-Sent Events, parsed incrementally: bytes in, events out, no I/O.

Follows the WHATWG HTML "interpreting an event stream" algorithm: UTF-8 with invalid bytes
replaced (U+FFFD), one leading BOM dropped, lines ended by CRLF, LF or CR (a CR at the end of
one chunk and an LF at the start of the next are one line end), ``:`` comments ignored, a field
without a colon taken with an empty value, one space after the colon dropped, ``data`` lines
joined with LF, ``id`` ignored when it holds NUL, ``retry`` taken only when all ASCII digits, and
an event dispatched at a blank line only when it has data. What is left unfinished when the
stream ends is dropped (:meth:`SseParser.finish` says whether anything was).

Why not a library: the Python SSE packages (httpx-sse, sseclient-py, aiohttp-sse-client) each
read from their own HTTP client or take already-split text lines; none takes arbitrary byte
chunks without I/O, and none bounds a line, which a stream from the network needs.

The one bound: a line (or an event's data) longer than ``max_event_chars`` ends the parse with
:data:`TOO_LONG` instead of growing without limit.
"""

from __future__ import annotations

import codecs
import re
from typing import Final

import msgspec

__all__ = ["DEFAULT_MAX_EVENT_CHARS", "TOO_LONG", "SseEvent", "SseParser"]

#: The most characters one line, or one event's joined data, may have.
DEFAULT_MAX_EVENT_CHARS: Final = 1024 * 1024
#: What :meth:`SseParser.feed` reports once a line or an event passed the bound.
TOO_LONG: Final = "too_long"
_BREAK: Final = re.compile(r"\r\n|\r|\n")
_BOM: Final = "\ufeff"


class SseEvent(msgspec.Struct, frozen=True):
    """One dispatched event: its type (``message`` unless an ``event`` field said otherwise),
    its data (lines joined with LF) and the last event id seen so far."""

    data: str
    type: str = "message"
    last_event_id: str = ""


class SseParser:
    """The parse state of one stream. Mutable on purpose (one per stream, never shared): the
    state is a partial line and the event being built, both bounded."""

    def __init__(self, max_event_chars: int = DEFAULT_MAX_EVENT_CHARS) -> None:
        self._limit = max_event_chars
        self._decoder = codecs.getincrementaldecoder("utf-8")(errors="replace")
        self._started = False  # whether the first character (maybe a BOM) was seen
        self._after_cr = False  # the last text ended with CR: a leading LF is its pair
        self._pending: list[str] = []  # the current line's pieces, not yet ended
        self._pending_size = 0
        self._data: list[str] = []
        self._data_size = 0
        self._type = ""
        self._id = ""
        self._id_buffer = ""
        self._failed = False
        #: The reconnection time the stream asked for (milliseconds), if any.
        self.retry: int | None = None

    @property
    def failed(self) -> bool:
        """Whether a line or an event passed the bound (the parse then stopped)."""
        return self._failed

    def feed(self, chunk: bytes) -> list[SseEvent] | str:
        """The events ``chunk`` completes, or :data:`TOO_LONG` (then and ever after)."""
        if self._failed:
            return TOO_LONG
        return self._text(self._decoder.decode(chunk))

    def finish(self) -> bool:
        """End of stream: True when it ended cleanly (no partial line or event left over)."""
        if self._failed:
            return False
        tail = self._decoder.decode(b"", final=True)
        if tail:
            self._text(tail)
        return not self._pending_size and not self._data and not self._type

    def _text(self, text: str) -> list[SseEvent] | str:
        if not text:
            return []
        if not self._started:
            self._started = True
            text = text.removeprefix(_BOM)
        if self._after_cr and text.startswith("\n"):
            text = text[1:]
        self._after_cr = text.endswith("\r")
        lines = _BREAK.split(text)
        last = lines.pop()  # the piece after the last line end: not a whole line yet
        events: list[SseEvent] = []
        for index, piece in enumerate(lines):
            if index == 0 and self._pending:
                self._pending.append(piece)
                piece = "".join(self._pending)
                self._pending, self._pending_size = [], 0
            if len(piece) > self._limit:
                return self._fail()
            event = self._line(piece)
            if self._failed:
                return TOO_LONG
            if event is not None:
                events.append(event)
        if last:
            self._pending.append(last)
            self._pending_size += len(last)
            if self._pending_size > self._limit:
                return self._fail()
        return events

    def _fail(self) -> str:
        # Drop what was held: a failed parse keeps nothing large alive.
        self._failed, self._pending, self._data = True, [], []
        return TOO_LONG

    def _line(self, line: str) -> SseEvent | None:
        if not line:
            return self._dispatch()
        if line.startswith(":"):
            return None
        name, colon, value = line.partition(":")
        if colon and value.startswith(" "):
            value = value[1:]
        if name == "data":
            self._data.append(value)
            self._data_size += len(value) + 1
            if self._data_size > self._limit:
                self._fail()
        elif name == "event":
            self._type = value
        elif name == "id":
            if "\0" not in value:
                self._id_buffer = value
        elif name == "retry" and value.isascii() and value.isdigit():
            self.retry = int(value)
        return None

    def _dispatch(self) -> SseEvent | None:
        self._id = self._id_buffer
        data, kind = self._data, self._type
        self._data, self._data_size, self._type = [], 0, ""
        if not data:
            return None
        return SseEvent("\n".join(data), kind or "message", self._id)
