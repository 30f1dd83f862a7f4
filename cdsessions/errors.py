"""The failure values every operation can return.

Errors are values, not exceptions: each operation returns ``Result[T, ApiError]`` and every
failure is one of the small, closed family below. Each is frozen, compares by value and has a
one-line ``str()`` a person can act on. None of them ever holds the API key: they are built from
redacted request descriptions only.
"""

from __future__ import annotations

from typing import Literal, TypeAlias

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

_DETAIL_LIMIT = 300


def _clip(text: str, limit: int = _DETAIL_LIMIT) -> str:
    """One line, bounded: error messages go to logs and terminals."""
    flat = " ".join(text.split())
    return flat if len(flat) <= limit else flat[: limit - 1] + "…"


# Frozen msgspec Structs, like every value type in cdsessions: defining one costs ~1/40 of a
# dataclass, which matters for the import time of every program that uses the client.
class ApiError(msgspec.Struct, frozen=True):
    """Base of every failure value. ``operation`` names what was attempted, e.g.
    ``"get session 3f0c…"``; it never contains secrets."""

    operation: str

    def __str__(self) -> str:
        return f"{self.operation}: {self.reason()}"

    def reason(self) -> str:
        """What went wrong, without the operation prefix."""
        return "failed"


class InvalidRequest(ApiError, frozen=True):
    """Rejected before anything was sent: the input (or the client's configuration) is not
    something the API can accept. Nothing reached the server."""

    field: str
    problem: str

    def reason(self) -> str:
        return f"invalid {self.field}: {self.problem} (nothing was sent)"


class ValidationItem(msgspec.Struct, frozen=True):
    """One entry of a FastAPI 422 ``detail`` list."""

    loc: tuple[str | int, ...]
    msg: str
    type: str

    def __str__(self) -> str:
        where = ".".join(str(part) for part in self.loc)
        return f"{where}: {self.msg}" if where else self.msg


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
        if isinstance(self.detail, str) and self.detail:
            text = self.detail
        elif self.detail is None:
            text = _STATUS_HINTS.get(self.status, "HTTP error")
        else:
            text = str(self.detail)
        hint = _STATUS_HINTS.get(self.status)
        suffix = f"; {hint}" if hint and self.status in (401, 403) else ""
        return f"{_clip(text)} ({self.status}){suffix}"

    @property
    def not_found(self) -> bool:
        return self.status == 404


class ValidationFailed(HttpError, frozen=True):
    """The server rejected the request as invalid (422) and said where, item by item."""

    items: tuple[ValidationItem, ...]

    def reason(self) -> str:
        listed = "; ".join(str(item) for item in self.items) or "no details given"
        return f"rejected by the server as invalid: {_clip(listed)} ({self.status})"


class DecodeFailed(ApiError, frozen=True):
    """A 2xx response that does not match the contract. ``where`` is a JSON path such as
    ``$[3].created_at`` (``$`` for the whole body)."""

    status: int
    where: str
    problem: str

    def reason(self) -> str:
        return f"unexpected response ({self.status}) at {self.where}: {_clip(self.problem)}"


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


__all__ = [
    "ApiError",
    "DecodeFailed",
    "HttpError",
    "InvalidRequest",
    "JsonValue",
    "TransportFailed",
    "TransportFailureKind",
    "ValidationFailed",
    "ValidationItem",
]
