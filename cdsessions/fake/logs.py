"""The fake's session logs: what ``GET /v2/stream-logs`` serves.

The live server keeps each session's log stream (creation progress, ComfyUI's output, and the
reason a session failed or ended, written before it kills the session) for about 10 minutes
after the session ends, and serves it as Server-Sent Events, each event's data a JSON object
``{"message", "level", "timestamp"}``. The fake keeps the same lines (bounded per session) for as
long as it runs, and serves what it has at the moment of the request, then ends the stream (with
the ``stream_complete`` marker once the session has ended): a follower against the fake gets
every line written so far and a clean end, never a wait.

Tests write lines with :meth:`cdsessions.fake.FakeService.log` and make a session fail to start
with :meth:`cdsessions.fake.FakeService.fail_start` (its reason is logged at ``error``, then the
session ends, as on the server).
"""

from __future__ import annotations

import json
from collections import deque
from datetime import datetime
from typing import Final

import msgspec

from cdsessions._core.wire import HttpResponse
from cdsessions.fake._responses import detail_response

__all__ = ["MAX_FAKE_LOG_LINES", "FakeLogs", "LoggedLine"]

#: The most lines the fake keeps per session (the oldest go first).
MAX_FAKE_LOG_LINES: Final = 10_000
_SSE: Final = (("content-type", "text/event-stream; charset=utf-8"), ("cache-control", "no-cache"))


class LoggedLine(msgspec.Struct, frozen=True):
    timestamp: datetime
    level: str
    message: str


class FakeLogs:
    """Each session's lines and owner. Not thread-safe by itself: the service's lock guards it."""

    def __init__(self) -> None:
        self._lines: dict[str, deque[LoggedLine]] = {}
        self._owners: dict[str, str] = {}

    def opened(self, session_id: str, account: str, now: datetime) -> None:
        """A session was created: its stream exists from now on, with the server's first line."""
        self._owners[session_id] = account
        self.write(session_id, "info", "Creating session...", now)

    def write(self, session_id: str, level: str, message: str, now: datetime) -> bool:
        """Add a line; False when the fake never had the session."""
        if session_id not in self._owners:
            return False
        lines = self._lines.setdefault(session_id, deque(maxlen=MAX_FAKE_LOG_LINES))
        lines.append(LoggedLine(now, level, message))
        return True

    def lines(self, session_id: str) -> tuple[LoggedLine, ...]:
        return tuple(self._lines.get(session_id, ()))

    def stream(
        self, session_id: str | None, level: str | None, account: str, *, live: bool
    ) -> HttpResponse:
        """The answer to ``GET /v2/stream-logs``: 404 for a session the account never had; the
        end marker when the session is no longer ``live``."""
        if session_id is None:
            return _missing_query("session_id")
        if self._owners.get(session_id) != account:
            return detail_response(404, "Session not found")
        events = [
            _event(
                {
                    "message": line.message,
                    "level": line.level,
                    "timestamp": line.timestamp.isoformat().replace("+00:00", "Z"),
                }
            )
            for line in self._lines.get(session_id, ())
            if level is None or line.level == level
        ]
        if not live:
            events.append(_event({"type": "stream_complete"}))
        return HttpResponse(200, _SSE, b"".join(events))


def _event(data: dict[str, str]) -> bytes:
    # One line of JSON (json.dumps never writes a raw line break), so one data field per event.
    return b"data: " + json.dumps(data, ensure_ascii=False).encode() + b"\n\n"


def _missing_query(name: str) -> HttpResponse:
    body = {
        "detail": [
            {"type": "missing", "loc": ["query", name], "msg": "Field required", "input": None}
        ]
    }
    encoded = json.dumps(body, separators=(",", ":")).encode()
    return HttpResponse(422, (("content-type", "application/json"),), encoded)
