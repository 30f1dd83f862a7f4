"""The failure values every operation can return.

Errors are values, not exceptions: each operation returns ``Result[T, ApiError]`` and every
failure is one of the small, closed family below (every subclass of :class:`ApiError` is defined
here). Each is frozen, compares by value and has a one-line ``str()`` a person can act on; a
program decides from its fields instead: ``code`` (the kind of failure, stable), and the fields
each kind has (``status``, ``kind``, ``sent``, ``field``, ``why``...). Messages may be reworded in
any release; codes and fields are not. None of them ever holds the API key: they are built from
redacted request descriptions only.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from decimal import Decimal
from typing import ClassVar, Final, Literal, TypeAlias

import msgspec

from cdsessions._core.text import clip
from cdsessions.comfy_models import NodeError

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
    "no_cassette",  # a replaying transport's cassette file does not exist (not recorded yet)
]

#: What kind of failure an :class:`ApiError` is: its ``code``, one per class, never reworded.
ErrorCode: TypeAlias = Literal[
    "invalid_request",  # InvalidRequest: refused before sending (field, why)
    "over_budget",  # OverBudget: refused by the budget guard (budget, worst_case)
    "http",  # HttpError: a non-2xx answer (status, detail)
    "validation",  # ValidationFailed: a 422 that says where (items)
    "decode",  # DecodeFailed: a 2xx answer that breaks the contract (where)
    "transport",  # TransportFailed: no usable answer (kind, sent)
    "session_gone",  # SessionGone: the session ended while being waited for
    "not_ready",  # NotReady: the wait's deadline passed first
    "run_failed",  # RunFailed: ComfyUI refused or failed a workflow (nodes)
    "run_timeout",  # RunTimedOut: a workflow's run passed its deadline (interrupted)
]

#: Why an :class:`InvalidRequest` was refused, where a program may want to act on it (its
#: ``why``); None for the many problems that are plain bad input, named by ``field``.
InvalidReason: TypeAlias = Literal[
    "empty_key",  # no API key at all (field "bearer"): none given and none in the environment
    "insecure_http",  # plain http:// to a host that is not loopback (field "server")
    "session_cap",  # an extension past the platform's 24-hour session cap (field "minutes")
]

#: The most characters of server text one ``str()`` or ``repr()`` field shows.
DETAIL_LIMIT: Final = 300
#: The most levels of a nested ``detail`` shown; what is deeper reads ``…``.
DEPTH_LIMIT: Final = 8
#: The most characters an error's ``repr`` has.
REPR_LIMIT: Final = 3 * DETAIL_LIMIT
_OPERATION_LIMIT: Final = 200
# An integer wider than this is not turned into digits (that can raise ValueError, and is long).
_INT_BITS_SHOWN: Final = 256


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
        return clip(value, limit)
    taken: list[str] = []
    size = 0
    for piece in _pieces(value, 0, python):
        taken.append(piece)
        size += len(piece)
        if size > limit:  # clip() marks the cut with "…"
            break
    return clip("".join(taken), limit)


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
    ``"get session 3f0c…"``; it never contains secrets. ``code`` says which kind of failure it
    is (see :data:`ErrorCode`)."""

    code: ClassVar[ErrorCode]
    operation: str

    def __str__(self) -> str:
        return f"{clip(self.operation, _OPERATION_LIMIT)}: {self.reason()}"

    def __repr__(self) -> str:
        # msgspec's repr would show every field whole: a detail nested 1000 deep raises
        # RecursionError, a megabyte of detail makes a megabyte of log line.
        return render(self, REPR_LIMIT, python=True)

    def reason(self) -> str:
        """What went wrong, without the operation prefix."""
        return "failed"


class InvalidRequest(ApiError, frozen=True):
    """Rejected before anything was sent: the input (or the client's configuration) is not
    something the API can accept. Nothing reached the server. ``field`` names the argument or
    option at fault; ``why`` says more where a program may act on it (else None)."""

    code: ClassVar[ErrorCode] = "invalid_request"
    field: str
    problem: str
    why: InvalidReason | None = None

    def reason(self) -> str:
        field, problem = clip(self.field, 60), clip(self.problem, DETAIL_LIMIT)
        return f"invalid {field}: {problem} (nothing was sent)"


class ValidationItem(msgspec.Struct, frozen=True):
    """One entry of a FastAPI 422 ``detail`` list."""

    loc: tuple[str | int, ...]
    msg: str
    type: str

    def __str__(self) -> str:
        parts = (
            part if isinstance(part, str) else render(part) for part in self.loc[:DETAIL_LIMIT]
        )
        where = clip(_first(parts, "."), DETAIL_LIMIT)
        msg = clip(self.msg, DETAIL_LIMIT)
        return f"{where}: {msg}" if where else msg


_STATUS_HINTS = {
    401: "check the API key (COMFY_DEPLOY_API_KEY)",
    403: "the account may not do this",
    404: "not found",
    429: "rate limited",
}


class HttpError(ApiError, frozen=True):
    """The server answered with a non-2xx status. ``detail`` is the server's ``detail`` field
    (a string, or a list for 422) when the body had one, else a clipped excerpt of the body."""

    code: ClassVar[ErrorCode] = "http"
    status: int
    detail: JsonValue

    def detail_text(self) -> str | None:
        """``detail`` as one safe line of at most :data:`DETAIL_LIMIT` characters, or None when
        the server gave none."""
        return None if self.detail is None else render(self.detail)

    def reason(self) -> str:
        hint = _STATUS_HINTS.get(self.status)
        text = self.detail_text()
        if text is None:  # no detail: the hint stands in for it, once
            return f"{hint or 'HTTP error'} ({self.status})"
        suffix = f"; {hint}" if hint and self.status in (401, 403) else ""
        return f"{text} ({self.status}){suffix}"

    @property
    def not_found(self) -> bool:
        return self.status == 404


class ValidationFailed(HttpError, frozen=True):
    """The server rejected the request as invalid (422) and said where, item by item."""

    code: ClassVar[ErrorCode] = "validation"
    items: tuple[ValidationItem, ...]

    def reason(self) -> str:
        listed = _first((str(item) for item in self.items), "; ") or "no details given"
        return f"rejected by the server as invalid: {clip(listed, DETAIL_LIMIT)} ({self.status})"


class DecodeFailed(ApiError, frozen=True):
    """A 2xx response that does not match the contract. ``where`` is a JSON path such as
    ``$[3].created_at`` (``$`` for the whole body)."""

    code: ClassVar[ErrorCode] = "decode"
    status: int
    where: str
    problem: str

    def reason(self) -> str:
        where, problem = clip(self.where, _OPERATION_LIMIT), clip(self.problem, DETAIL_LIMIT)
        return f"unexpected response ({self.status}) at {where}: {problem}"


class TransportFailed(ApiError, frozen=True):
    """No usable HTTP response arrived. ``kind`` says why; ``sent`` is False only when the
    request certainly never reached the server (so even a paid create is safe to repeat)."""

    code: ClassVar[ErrorCode] = "transport"
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
            "no_cassette": "no cassette",
        }
        return f"{labels[self.kind]}: {clip(self.problem, DETAIL_LIMIT)}"


# kw_only: its own fields come after InvalidRequest's optional ``why``.
class OverBudget(InvalidRequest, frozen=True, kw_only=True):
    """Refused by the budget guard: the worst case is over ``budget`` USD, or (``worst_case``
    None) the session cannot be priced. ``field`` is ``"max_cost"``; the create (or extension)
    was not sent. ``budget`` and ``worst_case`` are given by keyword."""

    code: ClassVar[ErrorCode] = "over_budget"
    budget: Decimal
    worst_case: Decimal | None

    def reason(self) -> str:
        return f"over budget: {clip(self.problem, DETAIL_LIMIT)} (not sent)"


class SessionGone(ApiError, frozen=True):
    """While waiting, the server stopped knowing the session (404): it was cancelled, timed
    out or failed to start. Nothing is running."""

    code: ClassVar[ErrorCode] = "session_gone"
    session_id: str
    #: The session's last log lines, made safe to show (escaped, clipped, URLs and the key
    #: masked), read after the failure when the log stream had them; usually the reason.
    last_log: tuple[str, ...] = ()

    def reason(self) -> str:
        return "the session ended before it became ready (404); nothing is running" + _log_tail(
            self.last_log
        )


class NotReady(ApiError, frozen=True):
    """The deadline passed with the session still starting. It may still be running (and
    billing): cancel it unless you mean to wait more. ``cancelled``: the scope that started it
    has already cancelled it (so the text does not tell you to)."""

    code: ClassVar[ErrorCode] = "not_ready"
    session_id: str
    waited: float
    polls: int
    #: As :attr:`SessionGone.last_log`.
    last_log: tuple[str, ...] = ()
    cancelled: bool = False

    def reason(self) -> str:
        waited = f"not ready after {self.waited:.0f} s ({self.polls} polls)"
        if self.cancelled:
            cancelled = f"{waited}; the session was cancelled, so it is no longer billing"
            return cancelled + _log_tail(self.last_log)
        return (
            f"{waited}; the session may still be starting and billing: "
            "cancel it if you no longer need it"
        ) + _log_tail(self.last_log)


class RunFailed(ApiError, frozen=True):
    """ComfyUI refused the workflow (``node_errors``: each node's id, type and messages) or ran
    it and failed (``prompt_id`` set). Nothing more was downloaded."""

    code: ClassVar[ErrorCode] = "run_failed"
    problem: str
    #: The nodes at fault: ``NodeError(node_id, class_type, messages)`` values.
    nodes: tuple[NodeError, ...] = ()
    prompt_id: str | None = None

    def reason(self) -> str:
        named = _first(
            (f"node {n.node_id} ({n.class_type}): {'; '.join(n.messages)}" for n in self.nodes),
            ", ",
        )
        return clip(self.problem, DETAIL_LIMIT) + (f": {named}" if named else "")


class RunTimedOut(ApiError, frozen=True):
    """A workflow's run passed its deadline (or was stopped). ``interrupted``: ComfyUI was told
    to stop it (``POST /interrupt``) and said so."""

    code: ClassVar[ErrorCode] = "run_timeout"
    prompt_id: str
    waited: float
    interrupted: bool

    def reason(self) -> str:
        stopped = (
            "ComfyUI was interrupted" if self.interrupted else "ComfyUI could not be interrupted"
        )
        return f"the run was not done after {self.waited:.0f} s; {stopped}"


def _log_tail(lines: tuple[str, ...]) -> str:
    """The last log lines for a message, or nothing. Each is clipped again here: a value built
    by hand must not make ``str()`` long or multi-line either."""
    if not lines:
        return ""
    return "; last log: " + " | ".join(clip(line, DETAIL_LIMIT) for line in lines[-5:])


__all__ = [
    "ApiError",
    "DecodeFailed",
    "ErrorCode",
    "HttpError",
    "InvalidReason",
    "InvalidRequest",
    "JsonValue",
    "NotReady",
    "OverBudget",
    "RunFailed",
    "RunTimedOut",
    "SessionGone",
    "TransportFailed",
    "TransportFailureKind",
    "ValidationFailed",
    "ValidationItem",
]
