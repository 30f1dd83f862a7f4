"""A session's log stream (``GET /v2/stream-logs``), sans I/O: the request, and the reading of
what a streaming transport hands back, written once for both clients.

A transport's ``stream(request)`` yields pieces: first the response's head (an
:class:`HttpResponse` with no body), then the body's bytes as they arrive, or a
:class:`TransportFailed` that ends it. :class:`LogReading` takes those pieces one at a time and
says what came of each: log lines, and whether the reading is over (with a failure value or
not). It never raises and holds at most one bounded event (see :mod:`cdsessions._core.sse`).

Two ways to read:

- a snapshot (:data:`SNAPSHOT`): what the stream holds now. The server never ends a session's
  stream by itself, so a snapshot ends at the first pause of :data:`QUIET_SECONDS` without a
  byte (the transport's read timeout), or at the deadline, with the lines read so far;
- following: lines as they come, until the stream ends (the server's ``stream_complete`` or
  ``stream_unavailable``, or the connection closed between events), or the session is gone:
  when the stream stalls (the read timeout, or the deadline), the client asks for the session,
  and a 404 ends the following cleanly. Otherwise the stall, garbage or a cut in the middle of
  an event end it with a failure.

Failure reasons: :func:`tail_text` makes the last few lines safe to put into an error (escaped,
URLs and the key masked, each line clipped, at most :data:`TAIL_LINES`).
"""

from __future__ import annotations

from collections import deque
from collections.abc import Iterable
from datetime import UTC, datetime
from typing import Final, Literal, TypeAlias

import msgspec
from returns.result import Failure, Result, Success

from cdsessions._core.builders import check_id
from cdsessions._core.decoding import error_from
from cdsessions._core.sse import SseEvent, SseParser
from cdsessions._core.text import clip, mask_urls
from cdsessions._core.timeouts import Timeout
from cdsessions._core.wire import HttpRequest, HttpResponse, mask_key
from cdsessions.errors import ApiError, DecodeFailed, HttpError, InvalidRequest, TransportFailed
from cdsessions.models import LogLine

__all__ = [
    "FOLLOW",
    "LOGS_PATH",
    "MAX_EVENT_CHARS",
    "QUIET_SECONDS",
    "SNAPSHOT",
    "TAIL_LINES",
    "FetchLogs",
    "LogReading",
    "Piece",
    "build_logs",
    "collected",
    "is_gone",
    "logs_operation",
    "tail_text",
]

LOGS_PATH: Final = "/v2/stream-logs"
#: The longest one event (one log line) may be, in characters.
MAX_EVENT_CHARS: Final = 256 * 1024
#: A snapshot ends at the first pause this long.
QUIET_SECONDS: Final = 2.0
#: How many of the last lines a failure carries, and how long each may be.
TAIL_LINES: Final = 5
TAIL_LINE_CHARS: Final = 200
#: What the error body of a refused stream may be (the rest is not read).
_ERROR_BODY_BYTES: Final = 64 * 1024

Mode: TypeAlias = Literal["snapshot", "follow"]
SNAPSHOT: Final[Mode] = "snapshot"
FOLLOW: Final[Mode] = "follow"

#: What a streaming transport yields: the head first, then body bytes; or a failure (the last).
Piece: TypeAlias = Result[HttpResponse | bytes, TransportFailed]


class FetchLogs(msgspec.Struct, frozen=True):
    """A step's action: read a snapshot of the log stream ``request`` asks for, and send back
    ``Result[list[LogLine], ApiError]``. The drivers' ``act`` performs it with the transport's
    ``stream``, through :class:`LogReading`."""

    request: HttpRequest
    key_forms: tuple[str, ...] = ()


class _Wire(msgspec.Struct):
    """One event's JSON: a line, or a marker (``type``)."""

    message: str | None = None
    level: str | None = None
    timestamp: datetime | None = None
    type: str | None = None


_DECODE_WIRE: Final = msgspec.json.Decoder(_Wire)
_ENDS: Final = frozenset({"stream_complete", "stream_unavailable"})


def logs_operation(session_id: str) -> str:
    return f"session logs {session_id}"


def build_logs(
    session_id: object, level: object, *, operation: str = ""
) -> Result[HttpRequest, InvalidRequest]:
    """The request for ``session_id``'s log stream, only lines of ``level`` if given."""
    operation = operation or logs_operation(str(session_id)[:40])
    checked = check_id(session_id, "session_id", operation)
    if not isinstance(checked, Success):
        return Failure(checked.failure())
    query = [("session_id", checked.unwrap())]
    if level is not None:
        if not isinstance(level, str) or not level or len(level) > 32 or not level.isprintable():
            return Failure(InvalidRequest(operation, "level", "must be a short level name"))
        query.append(("log_level", level))
    return Success(
        HttpRequest(
            "GET",
            LOGS_PATH,
            query=tuple(query),
            # A compressed stream could not be read a piece at a time under the size cap.
            headers=(("Accept", "text/event-stream"), ("Accept-Encoding", "identity")),
            operation=operation,
        )
    )


def snapshot_timeout(timeout: Timeout) -> Timeout:
    """A snapshot's timeout: the caller's, with reads bounded by :data:`QUIET_SECONDS`."""
    return Timeout(timeout.connect, min(timeout.read, QUIET_SECONDS), timeout.total)


class LogReading:
    """What one stream read has come to. Feed it every piece the transport yields
    (:meth:`take`), then :meth:`end` when the transport yields no more; stop as soon as
    :attr:`done`. Each returns the results it made: lines, and at most one failure, the last."""

    def __init__(
        self,
        operation: str,
        mode: Mode,
        key_forms: tuple[str, ...] = (),
        max_event_chars: int = MAX_EVENT_CHARS,
    ) -> None:
        self._operation = operation
        self._mode = mode
        self._forms = key_forms
        self._parser = SseParser(max_event_chars)
        self._head: HttpResponse | None = None
        self._error_body: list[bytes] | None = None  # a refusal's body, while it is read
        self._error_size = 0
        self._events = 0
        self.done = False
        #: A follower's stall, waiting for :meth:`after_check`; None otherwise.
        self.stalled: TransportFailed | None = None

    def take(self, piece: Piece) -> list[Result[LogLine, ApiError]]:
        if self.done:
            return []
        if not isinstance(piece, Success):
            return self._failed(piece.failure())
        part = piece.unwrap()
        if isinstance(part, HttpResponse):
            return self._started(part)
        if self._head is None:  # a transport bug; still a value
            return self._over(DecodeFailed(self._operation, 0, "$", "body before the head"))
        if self._error_body is not None:
            self._error_body.append(part[: _ERROR_BODY_BYTES - self._error_size])
            self._error_size = min(_ERROR_BODY_BYTES, self._error_size + len(part))
            return []
        events = self._parser.feed(part)
        if isinstance(events, str):  # TOO_LONG
            return self._over(self._garbage("$", "a log event is longer than allowed"))
        return self._lines(events)

    def end(self) -> list[Result[LogLine, ApiError]]:
        """The transport has no more pieces: the stream closed."""
        if self.done:
            return []
        self.done = True
        head = self._head
        if head is None:
            problem = "the stream ended before its head"
            return [Failure(TransportFailed(self._operation, "broken", problem, sent=True))]
        if self._error_body is not None:
            body = b"".join(self._error_body)
            return [Failure(error_from(msgspec.structs.replace(head, body=body), self._operation))]
        if not self._parser.finish():
            problem = "the stream closed in the middle of an event"
            return [Failure(TransportFailed(self._operation, "broken", problem, sent=True))]
        return []

    def _started(self, head: HttpResponse) -> list[Result[LogLine, ApiError]]:
        self._head = head
        if not 200 <= head.status < 300:
            self._error_body = []
            return []
        media = (head.header("content-type") or "").split(";", 1)[0].strip().lower()
        if media != "text/event-stream":
            return self._over(self._garbage("$", f"expected text/event-stream, got {media!r}"))
        coding = (head.header("content-encoding") or "identity").strip().lower()
        if coding != "identity":
            return self._over(self._garbage("$", f"the stream is compressed ({coding})"))
        return []

    def _failed(self, failure: TransportFailed) -> list[Result[LogLine, ApiError]]:
        streaming = self._head is not None and self._error_body is None
        if failure.kind == "timeout" and streaming:
            self.done = True
            if self._mode == SNAPSHOT:
                # A snapshot ends at the first pause (or the deadline): what was read is it.
                return []
            # The server keeps a session's stream open after the session ends and writes no
            # end: a follower that stalls asks whether the session is gone (see after_check).
            self.stalled = failure
            return []
        return self._over(failure)

    def after_check(self, gone: bool) -> list[Result[LogLine, ApiError]]:
        """A stalled follower's end, once the caller asked whether the session is ``gone``
        (:func:`is_gone` of a get): a clean end if it is, else the stall's failure."""
        stalled, self.stalled = self.stalled, None
        return [] if gone or stalled is None else [Failure(stalled)]

    def _over(self, failure: ApiError) -> list[Result[LogLine, ApiError]]:
        self.done = True
        return [Failure(failure)]

    def _garbage(self, where: str, problem: str) -> DecodeFailed:
        status = 0 if self._head is None else self._head.status
        return DecodeFailed(self._operation, status, where, problem)

    def _lines(self, events: list[SseEvent]) -> list[Result[LogLine, ApiError]]:
        made: list[Result[LogLine, ApiError]] = []
        for event in events:
            self._events += 1
            if event.type != "message":
                continue  # other event types are not log lines
            line = self._line(event.data)
            if line is None:  # an end marker
                self.done = True
                return made
            made.append(line)
            if not isinstance(line, Success):
                self.done = True
                return made
        return made

    def _line(self, data: str) -> Result[LogLine, ApiError] | None:
        where = f"event {self._events}"
        try:
            wire = _DECODE_WIRE.decode(data)
        except (ValueError, RecursionError):
            return Failure(self._garbage(where, "the event's data is not a JSON object"))
        if wire.type in _ENDS:
            return None
        if wire.message is None or wire.level is None or wire.timestamp is None:
            return Failure(self._garbage(where, "a log line needs message, level and timestamp"))
        stamp = wire.timestamp
        try:  # the server writes "…Z"; a naive time means UTC too
            stamp = stamp.replace(tzinfo=UTC) if stamp.tzinfo is None else stamp.astimezone(UTC)
        except OverflowError:
            return Failure(self._garbage(where, "the timestamp is out of range in UTC"))
        message = mask_key(wire.message, self._forms) if self._forms else wire.message
        return Success(LogLine(stamp, wire.level, message))


def is_gone(answer: Result[object, ApiError]) -> bool:
    """Whether a get's answer says the session is gone (404)."""
    if isinstance(answer, Success):
        return False
    error = answer.failure()
    return isinstance(error, HttpError) and error.status == 404


def collected(results: Iterable[Result[LogLine, ApiError]]) -> Result[list[LogLine], ApiError]:
    """A snapshot's answer: every line, or the failure that ended the reading."""
    lines: list[LogLine] = []
    for result in results:
        if not isinstance(result, Success):
            return Failure(result.failure())
        lines.append(result.unwrap())
    return Success(lines)


def tail_text(lines: list[LogLine], count: int = TAIL_LINES) -> tuple[str, ...]:
    """The last ``count`` lines as short, safe text for an error: one line each, escaped,
    clipped, with URLs masked (a session's tunnel can appear in its own log)."""
    kept: deque[LogLine] = deque(lines, maxlen=count)
    return tuple(clip(mask_urls(f"{line.level}: {line.message}"), TAIL_LINE_CHARS) for line in kept)
