"""The fake's answers as the live server writes them: FastAPI's JSON, Starlette's plain-text
500, pydantic's date-time forms, and the price table with the digits given."""

from __future__ import annotations

import json
import re
import uuid
from collections.abc import Mapping
from datetime import UTC, datetime
from typing import Any, TypeAlias

from cdsessions._core.wire import HttpResponse

_Json: TypeAlias = Any


def json_response(status: int, body: _Json) -> HttpResponse:
    # FastAPI's JSONResponse: compact separators, UTF-8 as is, no NaN or infinities.
    try:
        data = json.dumps(body, ensure_ascii=False, allow_nan=False, separators=(",", ":"))
        encoded = data.encode()
    except ValueError:
        # A 422 that echoes ``1e400`` (or a lone surrogate) back cannot be rendered: the live
        # server's JSONResponse raises the same way, and the client gets its plain 500.
        return server_error()
    return HttpResponse(status, (("content-type", "application/json"),), encoded)


def detail_response(status: int, detail: str) -> HttpResponse:
    return json_response(status, {"detail": detail})


def not_allowed(*methods: str) -> HttpResponse:
    """Starlette's 405 for a known path: ``{"detail": "Method Not Allowed"}`` with ``Allow``
    naming the route's methods (HEAD with GET, which Starlette adds to every GET route). Any
    method not served gets it: OPTIONS and TRACE too, as the server declares neither."""
    allowed = sorted({*methods, *(("HEAD",) if "GET" in methods else ())})
    answer = detail_response(405, "Method Not Allowed")
    return HttpResponse(405, (*answer.headers, ("allow", ", ".join(allowed))), answer.body)


def server_error() -> HttpResponse:
    # An unhandled exception in the live server: Starlette's plain-text 500.
    return HttpResponse(
        500, (("content-type", "text/plain; charset=utf-8"),), b"Internal Server Error"
    )


def invalid_response(errors: list[dict[str, _Json]]) -> HttpResponse:
    return json_response(422, {"detail": errors})


def utc_z(moment: datetime) -> str:
    """pydantic's form of an aware UTC datetime: ``2025-11-02T12:00:00Z``."""
    return moment.astimezone(UTC).replace(tzinfo=None).isoformat() + "Z"


def naive_utc(moment: datetime) -> str:
    """The live ``timeout_end``: naive ISO text meaning UTC (it comes from ``utcnow()``)."""
    return moment.astimezone(UTC).replace(tzinfo=None).isoformat()


def price_table(prices: Mapping[str, str | int]) -> bytes:
    """The gpu-pricing body, each price written with exactly the digits given (json.dumps would
    go through float)."""
    for gpu, price in prices.items():
        if not re.fullmatch(r"-?\d+(\.\d+)?([eE][+-]?\d+)?", str(price)):
            raise ValueError(f"the price of {gpu!r} is not a JSON number: {price!r}")
    items = ",".join(f"{json.dumps(gpu)}:{price}" for gpu, price in prices.items())
    return ("{" + items + "}").encode()


def is_uuid(text: str) -> bool:
    try:
        uuid.UUID(text)
    except ValueError:
        return False
    return True
