"""Every operation of the blocking client as one call, with the body a success answers and which
operations are safe to repeat."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from returns.result import Result

from cdsessions import (
    ApiError,
    CreateSessionBody,
    SessionsClient,
)
from tests.support import samples

Call = Callable[[SessionsClient], Result[Any, ApiError]]


CALLS: dict[str, Call] = {
    "get": lambda c: c.get(samples.SESSION_ID),
    "list": lambda c: c.list(),
    "cancel": lambda c: c.cancel(samples.SESSION_ID),
    "create": lambda c: c.create(CreateSessionBody(machine_id=samples.MACHINE_ID)),
    "extend": lambda c: c.extend(samples.SESSION_ID, 5, check_cap=False),
}


OK_BODIES = {
    "get": samples.LIVE_SESSION_READY,
    "list": f"[{samples.LIVE_SESSION_READY}]",
    "cancel": samples.DELETED,
    "create": samples.CREATED,
    "extend": '{"message": "Timeout increased successfully"}',
}


IDEMPOTENT = frozenset({"get", "list", "cancel"})


READ_ONLY = frozenset({"get", "list"})


NONE: frozenset[str] = frozenset()


EVERY = frozenset(CALLS)
