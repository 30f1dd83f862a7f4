"""Pure decoding: an :class:`HttpResponse` in, ``Result[T, ApiError]`` out. Never raises.

msgspec raises ``DecodeError`` (and ``ValidationError``, a subclass) for bad input,
``UnicodeDecodeError`` for a string that is not valid UTF-8 (not a ``DecodeError``: both are
``ValueError``) and ``RecursionError`` for deeply nested JSON, even inside ignored fields; all of
them become values here.
"""

from __future__ import annotations

from typing import Any, Final, TypeVar

import msgspec
from returns.result import Failure, Result, Success

from cdsessions._core.wire import HttpResponse
from cdsessions.errors import (
    ApiError,
    DecodeFailed,
    HttpError,
    JsonValue,
    ValidationFailed,
    ValidationItem,
)
from cdsessions.models import (
    CreateSessionResponse,
    DeleteSessionResponse,
    ExtendSessionResponse,
    HTTPValidationError,
    Machine,
    SeedListItem,
    Session,
    session_from_seed,
)

__all__ = [
    "CREATED",
    "DELETED",
    "EXTENDED",
    "MACHINE",
    "MACHINES",
    "SESSION",
    "decode",
    "decode_session_list",
    "error_from",
]

T = TypeVar("T")

# One decoder per type, built once: msgspec compiles the type on construction.
SESSION: Final = msgspec.json.Decoder(Session)
CREATED: Final = msgspec.json.Decoder(CreateSessionResponse)
DELETED: Final = msgspec.json.Decoder(DeleteSessionResponse)
EXTENDED: Final = msgspec.json.Decoder(ExtendSessionResponse)
MACHINE: Final = msgspec.json.Decoder(Machine)
MACHINES: Final = msgspec.json.Decoder(list[Machine])
_SESSIONS: Final = msgspec.json.Decoder(list[Session])
_SEED_ITEMS: Final = msgspec.json.Decoder(list[SeedListItem])
_VALIDATION: Final = msgspec.json.Decoder(HTTPValidationError)


class _ErrorBody(msgspec.Struct):
    detail: Any = None


_ERROR_BODY: Final = msgspec.json.Decoder(_ErrorBody)
_TEXT_LIMIT: Final = 300
_REDIRECT: Final = (
    "redirect not followed (the API key goes only to the configured server); check the server URL"
)


#: What msgspec raises for input it cannot decode. ``ValueError`` covers ``msgspec.DecodeError``
#: and ``UnicodeDecodeError``.
_UNDECODABLE: Final = (ValueError, RecursionError)


def _split_msgspec_error(error: Exception) -> tuple[str, str]:
    """msgspec says ``Expected `str`, got `int` - at `$.url```: split off the path."""
    if isinstance(error, RecursionError):
        return "$", "JSON nested too deeply"
    if isinstance(error, UnicodeDecodeError):  # its text would quote the bytes' position only
        return "$", "a string is not valid UTF-8"
    text = str(error)
    problem, sep, where = text.rpartition(" - at `")
    if sep and where.endswith("`"):
        return where[:-1], problem
    return "$", text


def _try_decode(decoder: msgspec.json.Decoder[T], body: bytes) -> Result[T, tuple[str, str]]:
    try:
        return Success(decoder.decode(body))
    except _UNDECODABLE as error:
        return Failure(_split_msgspec_error(error))


def _is_json(response: HttpResponse) -> bool:
    content_type = response.header("content-type")
    if content_type is None:  # absent: let the body speak for itself
        return True
    media = content_type.split(";", 1)[0].strip().lower()
    return media == "application/json" or media.endswith("+json")


def _body_text(body: bytes) -> str | None:
    text = body[: _TEXT_LIMIT * 4].decode("utf-8", errors="replace").strip()
    return text[:_TEXT_LIMIT] or None


def error_from(response: HttpResponse, operation: str) -> ApiError:
    """The failure value for a non-2xx response, keeping what the server said."""
    status = response.status
    if 300 <= status < 400:
        # The Location is not kept: it can name a session's tunnel, and errors reach logs.
        return HttpError(operation, status, _REDIRECT)
    if status == 422:
        parsed = _try_decode(_VALIDATION, response.body)
        if isinstance(parsed, Success):
            items = tuple(
                ValidationItem(tuple(item.loc), item.msg, item.type)
                for item in parsed.unwrap().detail
            )
            detail: JsonValue = [
                {"loc": list(item.loc), "msg": item.msg, "type": item.type} for item in items
            ]
            return ValidationFailed(operation, status, detail, items)
    parsed_body = _try_decode(_ERROR_BODY, response.body)
    if isinstance(parsed_body, Success) and parsed_body.unwrap().detail is not None:
        return HttpError(operation, status, parsed_body.unwrap().detail)
    return HttpError(operation, status, _body_text(response.body))


def decode(
    response: HttpResponse, decoder: msgspec.json.Decoder[T], operation: str
) -> Result[T, ApiError]:
    """Decode a response with ``decoder`` if it is a 2xx, else the matching failure."""
    if not 200 <= response.status < 300:
        return Failure(error_from(response, operation))
    if not _is_json(response):
        media = response.header("content-type")
        return Failure(DecodeFailed(operation, response.status, "$", f"expected JSON, got {media}"))
    try:  # inline rather than through _try_decode: this is every successful call's path
        return Success(decoder.decode(response.body))
    except _UNDECODABLE as error:
        return Failure(DecodeFailed(operation, response.status, *_split_msgspec_error(error)))


def decode_session_list(response: HttpResponse, operation: str) -> Result[list[Session], ApiError]:
    """A ``list`` response: the live ``SessionResponse`` array, or the seed's ``GPUEventModel``
    array converted to :class:`Session` so users get one type either way."""
    live = decode(response, _SESSIONS, operation)
    if not isinstance(live, Failure) or not isinstance(live.failure(), DecodeFailed):
        return live
    if not _is_json(response):
        return live
    seed = _try_decode(_SEED_ITEMS, response.body)
    if isinstance(seed, Success):
        try:
            return Success(_to_sessions(seed.unwrap()))
        except ValueError:  # a date-time UTC cannot hold: the seed shape does not fit either
            pass
    return live  # report against the live contract: that is what the server sends today


def _to_sessions(items: list[SeedListItem]) -> list[Session]:
    """Converted in place, so each item is freed as its Session is made: a long list never
    holds both whole."""
    sessions: list[Any] = items
    for i, item in enumerate(items):
        sessions[i] = session_from_seed(item)
    return sessions
