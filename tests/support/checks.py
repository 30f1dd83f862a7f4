"""Small assertions on results and failures shared by the tests: the failure a result holds, the
field an ``InvalidRequest`` names, and that an error renders as one bounded line."""

from __future__ import annotations

import asyncio
from collections.abc import Coroutine
from typing import Any, TypeVar

from returns.result import Failure, Result

from cdsessions import InvalidRequest
from cdsessions.errors import DETAIL_LIMIT, REPR_LIMIT, ApiError

T = TypeVar("T")


def run(coroutine: Coroutine[Any, Any, T]) -> T:
    return asyncio.run(coroutine)


def failure_of(result: Result[Any, ApiError]) -> ApiError:
    assert isinstance(result, Failure), result
    error = result.failure()
    assert isinstance(error, ApiError)
    return error


def refused(result: Result[Any, ApiError]) -> str:
    """The field an ``InvalidRequest`` failure names."""
    error = failure_of(result)
    assert isinstance(error, InvalidRequest), error
    return error.field


def assert_renders_bounded(error: ApiError) -> None:
    """``str`` and ``repr`` work, are one bounded line, and hold nothing a terminal acts on."""
    for text, limit in ((str(error), 2 * DETAIL_LIMIT + 200), (repr(error), REPR_LIMIT)):
        assert len(text) <= limit, (len(text), text[:200])
        assert text.isprintable(), text[:200]
