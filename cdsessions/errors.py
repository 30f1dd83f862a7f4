"""The failure values every operation can return.

Errors are values, not exceptions: each operation returns ``Result[T, ApiError]`` and every
failure is one of the small, closed family below. Each is frozen, compares by value and has a
one-line ``str()`` a person can act on. None of them ever holds the API key: they are built from
redacted request descriptions only.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from decimal import Decimal
from typing import Final, Literal, TypeAlias

import msgspec

#: A JSON value as the server sent it in an error ``detail``.
JsonValue: TypeAlias = "str | int | float | bool | list[JsonValue] | dict[str, JsonValue] | None"

#: Why a request did not complete. ``sent`` on :class:`TransportFailed` says whether the server
#: may have seen it, which is what decides whether a paid ``create`` may be retried.
TransportFailureKind: TypeAlias = Literal[
    "connect",  # could not connect (refused, DNS, unreachable)
    "timeout",  # connecting or the answer took longer than allowed
    "broken",  # the connection broke or the response was not valid HTTP
    "too_large",  # the response body was larger than the configured cap
    "unmatched",  # a replaying transport had no recorded answer for this request
]

#: The most characters of server text one ``str()`` or ``repr()`` field shows.
DETAIL_LIMIT: Final = 300
#: The most levels of a nested ``detail`` shown; what is deeper reads ``…``.
DEPTH_LIMIT: Final = 8
#: The most characters an error's ``repr`` has.
REPR_LIMIT: Final = 3 * DETAIL_LIMIT
_OPERATION_LIMIT: Final = 200
# Server text is looked at only this far: whitespace collapsing must not walk a huge body.
_SCAN_LIMIT: Final = DETAIL_LIMIT * 8
# An integer wider than this is not turned into digits (that can raise ValueError, and is long).
_INT_BITS_SHOWN: Final = 256


def _escape(char: str) -> str:
    code = ord(char)
    if code < 0x100:
        return f"\\x{code:02x}"
    return f"\\u{code:04x}" if code < 0x10000 else f"\\U{code:08x}"


def _clip(text: str, limit: int = DETAIL_LIMIT) -> str:
    """One line, bounded, nothing a terminal acts on: error messages go to logs and terminals.
    Whitespace runs become one space; any other unprintable character (an escape sequence, a
    bidi control) is written as a ``\\x1b``-style escape."""
    scanned = text[:_SCAN_LIMIT]
    flat = " ".join(scanned.split())
    cut = len(flat) > limit or len(scanned) < len(text)
    if not flat.isprintable():
        flat = "".join(c if c.isprintable() else _escape(c) for c in flat[:limit])
        cut = cut or len(flat) > limit
    return flat[: limit - 1] + "…" if cut else flat


def _int_text(value: int) -> str:
    # str() of a huge int is slow, and raises past sys.get_int_max_str_digits().
    if value.bit_length() <= _INT_BITS_SHOWN:
        return str(value)
    return f"<{value.bit_length()}-bit integer>"


def _json_quoted(text: str) -> str:
    # By hand rather than json.dumps: nothing here may raise (a lone surrogate, say).
    shown = text[:DETAIL_LIMIT].replace("\\", "\\\\").replace('"', '\\"')
    return f'"{shown}…"' if len(text) > DETAIL_LIMIT else f'"{shown}"'


def _python_quoted(text: str) -> str:
    shown = repr(text[:DETAIL_LIMIT])
    return shown + "…" if len(text) > DETAIL_LIMIT else shown


def _pieces(value: object, depth: int, python: bool) -> Iterator[str]:
    """``value`` as JSON-like text (Python-like if ``python``), piece by piece, so the caller
    stops once it has enough; never more than :data:`DEPTH_LIMIT` levels deep, so never a
    ``RecursionError``."""
    if value is None or isinstance(value, bool):
        yield repr(value) if python else "null" if value is None else str(value).lower()
    elif isinstance(value, str):
        yield _python_quoted(value) if python else _json_quoted(value)
    elif isinstance(value, int):
        yield _int_text(value)
    elif isinstance(value, float):
        yield repr(value)
    elif depth >= DEPTH_LIMIT:
        yield "…"
    elif isinstance(value, list | tuple):
        yield "["
        for index, item in enumerate(value):
            yield ", " if index else ""
            yield from _pieces(item, depth + 1, python)
        yield "]"
    elif isinstance(value, dict):
        yield "{"
        for index, (key, item) in enumerate(value.items()):
            yield ", " if index else ""
            yield from _pieces(key, depth + 1, python)
            yield ": "
            yield from _pieces(item, depth + 1, python)
        yield "}"
    elif isinstance(value, ApiError | ValidationItem):  # this module's values: no secrets
        yield f"{type(value).__name__}("
        for index, name in enumerate(value.__struct_fields__):
            yield f", {name}=" if index else f"{name}="
            yield from _pieces(getattr(value, name), depth + 1, python)
        yield ")"
    else:  # only its type is safe to show: its own repr could be anything
        yield f"<{type(value).__name__}>"


def render(value: object, limit: int = DETAIL_LIMIT, *, python: bool = False) -> str:
    """Server-sent text, or a nested JSON value such as an error ``detail``, as one line of at
    most ``limit`` characters. Never raises, however large or deeply nested the value."""
    if isinstance(value, str):
        return _clip(value, limit)
    taken: list[str] = []
    size = 0
    for piece in _pieces(value, 0, python):
        taken.append(piece)
        size += len(piece)
        if size > limit:  # _clip marks the cut with "…"
            break
    return _clip("".join(taken), limit)


def _first(texts: Iterable[str], separator: str) -> str:
    """Join ``texts`` only until they are longer than a message shows."""
    taken: list[str] = []
    size = 0
    for text in texts:
        taken.append(text)
        size += len(text) + len(separator)
        if size > DETAIL_LIMIT:
            break
    return separator.join(taken)


# Frozen msgspec Structs, like every value type in cdsessions: defining one costs ~1/40 of a
# dataclass, which matters for the import time of every program that uses the client.
class ApiError(msgspec.Struct, frozen=True):
    """Base of every failure value. ``operation`` names what was attempted, e.g.
    ``"get session 3f0c…"``; it never contains secrets."""

    operation: str

    def __str__(self) -> str:
        return f"{_clip(self.operation, _OPERATION_LIMIT)}: {self.reason()}"

    def __repr__(self) -> str:
        # msgspec's repr would show every field whole: a detail nested 1000 deep raises
        # RecursionError, a megabyte of detail makes a megabyte of log line.
        return render(self, REPR_LIMIT, python=True)

    def reason(self) -> str:
        """What went wrong, without the operation prefix."""
        return "failed"


class InvalidRequest(ApiError, frozen=True):
    """Rejected before anything was sent: the input (or the client's configuration) is not
    something the API can accept. Nothing reached the server."""

    field: str
    problem: str

    def reason(self) -> str:
        return f"invalid {_clip(self.field, 60)}: {_clip(self.problem)} (nothing was sent)"


class ValidationItem(msgspec.Struct, frozen=True):
    """One entry of a FastAPI 422 ``detail`` list."""

    loc: tuple[str | int, ...]
    msg: str
    type: str

    def __str__(self) -> str:
        parts = (
            part if isinstance(part, str) else render(part) for part in self.loc[:DETAIL_LIMIT]
        )
        where = _clip(_first(parts, "."))
        return f"{where}: {_clip(self.msg)}" if where else _clip(self.msg)


_STATUS_HINTS = {
    401: "check the API key (COMFY_DEPLOY_API_KEY)",
    403: "the account may not do this",
    404: "not found",
    429: "rate limited",
}


class HttpError(ApiError, frozen=True):
    """The server answered with a non-2xx status. ``detail`` is the server's ``detail`` field
    (a string, or a list for 422) when the body had one, else a clipped excerpt of the body."""

    status: int
    detail: JsonValue

    def reason(self) -> str:
        hint = _STATUS_HINTS.get(self.status)
        if isinstance(self.detail, str) and self.detail:
            text = self.detail
        elif self.detail is None:
            # No detail: the hint stands in for it, once.
            return f"{hint or 'HTTP error'} ({self.status})"
        else:
            text = render(self.detail)
        suffix = f"; {hint}" if hint and self.status in (401, 403) else ""
        return f"{_clip(text)} ({self.status}){suffix}"

    @property
    def not_found(self) -> bool:
        return self.status == 404


class ValidationFailed(HttpError, frozen=True):
    """The server rejected the request as invalid (422) and said where, item by item."""

    items: tuple[ValidationItem, ...]

    def reason(self) -> str:
        listed = _first((str(item) for item in self.items), "; ") or "no details given"
        return f"rejected by the server as invalid: {_clip(listed)} ({self.status})"


class DecodeFailed(ApiError, frozen=True):
    """A 2xx response that does not match the contract. ``where`` is a JSON path such as
    ``$[3].created_at`` (``$`` for the whole body)."""

    status: int
    where: str
    problem: str

    def reason(self) -> str:
        where = _clip(self.where, _OPERATION_LIMIT)
        return f"unexpected response ({self.status}) at {where}: {_clip(self.problem)}"


class TransportFailed(ApiError, frozen=True):
    """No usable HTTP response arrived. ``kind`` says why; ``sent`` is False only when the
    request certainly never reached the server (so even a paid create is safe to repeat)."""

    kind: TransportFailureKind
    problem: str
    sent: bool

    def reason(self) -> str:
        labels = {
            "connect": "could not connect",
            "timeout": "timed out",
            "broken": "connection broken",
            "too_large": "response too large",
            "unmatched": "no recorded response",
        }
        return f"{labels[self.kind]}: {_clip(self.problem)}"


class OverBudget(InvalidRequest, frozen=True):
    """Refused by the budget guard: the worst case is over ``budget`` USD, or (``worst_case``
    None) the session cannot be priced. ``field`` is ``"max_cost"``; the create (or extension)
    was not sent."""

    budget: Decimal
    worst_case: Decimal | None

    def reason(self) -> str:
        return f"over budget: {self.problem} (not sent)"


class SessionGone(ApiError, frozen=True):
    """While waiting, the server stopped knowing the session (404): it was cancelled, timed
    out or failed to start. Nothing is running."""

    session_id: str

    def reason(self) -> str:
        return "the session ended before it became ready (404); nothing is running"


class NotReady(ApiError, frozen=True):
    """The deadline passed with the session still starting. It may still be running (and
    billing): cancel it unless you mean to wait more."""

    session_id: str
    waited: float
    polls: int

    def reason(self) -> str:
        return (
            f"not ready after {self.waited:.0f} s ({self.polls} polls); the session may still "
            "be starting and billing: cancel it if you no longer need it"
        )


__all__ = [
    "ApiError",
    "DecodeFailed",
    "HttpError",
    "InvalidRequest",
    "JsonValue",
    "NotReady",
    "OverBudget",
    "SessionGone",
    "TransportFailed",
    "TransportFailureKind",
    "ValidationFailed",
    "ValidationItem",
]
