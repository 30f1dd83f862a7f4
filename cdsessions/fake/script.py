"""Scripted answers for the fake: what the next matching request gets instead of the fake's
own answer. :class:`FakeService` holds one :class:`FakeScript` (``fake.answer_next``,
``fake.fail_next``); the in-memory transports and the HTTP server both obey it, the HTTP server
for real (a stalled or reset socket).

A request is matched by an operation name (``"create"``, ``"get"``, ``"cancel"``, ``"list"``,
``"extend"``, ``"pricing"``) or by ``"METHOD /path"`` where the path (below ``/api``) may use
``*`` for one path segment, e.g. ``"GET /session/*"``. Each rule is used ``times`` times, the
oldest matching rule first, and then forgotten.
"""

from __future__ import annotations

import json
import re
import threading
from collections import deque
from collections.abc import Sequence
from http import HTTPStatus
from typing import Any, Final, Literal, TypeAlias, get_args
from urllib.parse import unquote

import msgspec

from cdsessions._core.wire import HttpRequest, HttpResponse
from cdsessions.transports._fork import register as register_for_fork

__all__ = ["FAULTS", "OPERATIONS", "Answer", "FakeScript", "Fault", "FaultKind", "Operation"]

#: The operations a rule can name instead of a method and path.
Operation: TypeAlias = Literal["create", "get", "cancel", "list", "extend", "pricing"]
#: How a scripted request fails on the wire:
#: ``timeout``: not handled, and no answer ever comes (the client's read timeout ends it);
#: ``reset``: not handled, and the connection is reset;
#: ``no_answer``: handled (a create starts its session), then the connection is reset, so the
#: client cannot know what happened; ``sent`` is True, and a create is not repeated.
FaultKind: TypeAlias = Literal["timeout", "reset", "no_answer"]
OPERATIONS: Final[tuple[str, ...]] = get_args(Operation)
FAULTS: Final[tuple[str, ...]] = get_args(FaultKind)

_ROUTES: Final[dict[str, str]] = {
    "create": "POST /session",
    "get": "GET /session/*",
    "cancel": "DELETE /session/*",
    "list": "GET /sessions",
    "extend": "POST /session/*/increase-timeout",
    "pricing": "GET /platform/gpu-pricing",
}


class Answer(msgspec.Struct, frozen=True):
    """A scripted response."""

    response: HttpResponse


class Fault(msgspec.Struct, frozen=True):
    """A scripted failure on the wire (see :data:`FaultKind`)."""

    kind: FaultKind


Action: TypeAlias = Answer | Fault


def _pattern(match: str) -> re.Pattern[str] | str:
    """The rule for ``match``, or why it is not one."""
    if not isinstance(match, str):
        return f"must be an operation name or 'METHOD /path', not {type(match).__name__}"
    spec = _ROUTES.get(match, match)
    method, _, path = spec.partition(" ")
    if not method.isalpha() or not path.startswith("/") or " " in path:
        names = ", ".join(OPERATIONS)
        return f"{match!r} is neither an operation ({names}) nor 'METHOD /path'"
    segments = (r"[^/]+" if part == "*" else re.escape(part) for part in path.split("/"))
    return re.compile(re.escape(method.upper()) + " " + "/".join(segments))


def response_for(
    status: int, body: object = None, headers: Sequence[tuple[str, str]] = ()
) -> HttpResponse | str:
    """The response to script: ``body`` bytes as they are, anything else as JSON (None: the
    ``{"detail": ...}`` FastAPI writes for ``status``). Or why it cannot be one."""
    if isinstance(status, bool) or not isinstance(status, int) or not 100 <= status <= 599:
        return f"status must be an HTTP status code (100 to 599), not {status!r}"
    if body is None:
        try:
            phrase = HTTPStatus(status).phrase
        except ValueError:
            phrase = "Error"
        body = {"detail": phrase}
    if isinstance(body, bytes):
        data, kind = body, "application/octet-stream"
    else:
        try:
            data = json.dumps(body, ensure_ascii=False, separators=(",", ":")).encode()
        except (TypeError, ValueError) as error:
            return f"body must be bytes or JSON-serialisable ({error})"
        kind = "application/json"
    given = tuple((str(name), str(value)) for name, value in headers)
    if not any(name.lower() == "content-type" for name, _ in given):
        given = (("content-type", kind), *given)
    return HttpResponse(status, given, data)


class _Rule:
    __slots__ = ("action", "left", "pattern")

    def __init__(self, pattern: re.Pattern[str], action: Action, times: int) -> None:
        self.pattern = pattern
        self.action = action
        self.left = times


class FakeScript:
    """The rules waiting for their requests. Thread-safe. Bad arguments raise ``ValueError``
    at once: a test's own mistake, so it fails where it was made."""

    def __init__(self) -> None:
        self._rules: deque[_Rule] = deque()
        self._lock = threading.Lock()
        register_for_fork(self)

    def _after_fork_in_child(self) -> None:
        # A thread adding or taking a rule at the fork does not exist in the child.
        self._lock = threading.Lock()

    def add(self, match: str, action: Action, times: int = 1) -> None:
        pattern = _pattern(match)
        if isinstance(pattern, str):
            raise ValueError(pattern)
        if isinstance(times, bool) or not isinstance(times, int) or times < 1:
            raise ValueError(f"times must be a whole number ≥ 1, not {times!r}")
        with self._lock:
            self._rules.append(_Rule(pattern, action, times))

    def take(self, request: HttpRequest) -> Action | None:
        """The action for ``request`` (using up one of its rule's times), or None."""
        key = f"{request.method.upper()} {unquote(request.path)}"
        with self._lock:
            for rule in self._rules:
                if rule.pattern.fullmatch(key):
                    rule.left -= 1
                    if rule.left == 0:
                        self._rules.remove(rule)
                    return rule.action
        return None

    @property
    def pending(self) -> int:
        """How many scripted answers are still waiting for their request."""
        with self._lock:
            return sum(rule.left for rule in self._rules)

    def clear(self) -> None:
        with self._lock:
            self._rules.clear()


def parse_control(body: bytes) -> tuple[str, Action, int] | str:
    """A rule sent to the HTTP server's control route as JSON:
    ``{"match": "create", "status": 500, "body": ..., "headers": {...}, "times": 1}`` or
    ``{"match": "get", "fault": "timeout"}``. Or why it is not one."""
    try:
        given: Any = json.loads(body or b"null")
    except ValueError:
        return "the body must be a JSON object"
    if not isinstance(given, dict) or not isinstance(given.get("match"), str):
        return 'the body must be a JSON object with "match"'
    times = given.get("times", 1)
    if "fault" in given:
        if given["fault"] not in FAULTS:
            return f"fault must be one of {', '.join(FAULTS)}"
        return given["match"], Fault(given["fault"]), times
    headers = given.get("headers", {})
    if not isinstance(headers, dict):
        return "headers must be a JSON object"
    response = response_for(given.get("status", 200), given.get("body"), tuple(headers.items()))
    if isinstance(response, str):
        return response
    return given["match"], Answer(response), times
