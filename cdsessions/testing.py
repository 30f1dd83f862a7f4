"""Helpers for testing code that uses cdsessions: unwrap a ``Result`` or fail the test with
the failure's own text, and the clock protocols the clients accept (``clock=``).

``expect_success(client.get(id))`` is the ``Session``, typed as such under mypy and pyright;
when the result is a failure the test fails with that failure's message (bounded and free of
secrets, as every :class:`~cdsessions.errors.ApiError`'s is), instead of a bare
``UnwrapFailedError``. Under pytest the failure is reported with ``pytest.fail`` (no traceback
into this module); elsewhere it is an ``AssertionError``. pytest is never imported here: it is
used only when the test process has already loaded it.

Scripting the fake itself (answers, faults, never ready, ending a session) is on
:class:`~cdsessions.fake.FakeService`; the clock that makes waits free is
:class:`~cdsessions.fake.ManualClock`, re-exported here.
"""

from __future__ import annotations

import sys
from typing import Final, NoReturn, TypeVar

from returns.result import Failure, Result, Success

from cdsessions._core.clocks import AsyncClock, Clock, SystemClock
from cdsessions._core.text import clip
from cdsessions.fake.clock import ManualClock

__all__ = ["AsyncClock", "Clock", "ManualClock", "SystemClock", "expect_failure", "expect_success"]

T = TypeVar("T")
E = TypeVar("E")

#: The most characters of a value or failure one message shows.
SHOWN_LIMIT: Final = 600


def _shown(value: object) -> str:
    """``str`` of a failure value (its own bounded message), ``repr`` of anything else, clipped."""
    try:
        text = str(value) if type(value).__str__ is not object.__str__ else repr(value)
    except Exception:  # a value whose str() raises still fails the test, by its type
        text = f"<{type(value).__name__}>"
    return clip(text, SHOWN_LIMIT)


def _fail(message: str) -> NoReturn:
    pytest = sys.modules.get("pytest")
    if pytest is not None:
        pytest.fail(message, pytrace=False)
    raise AssertionError(message)


def expect_success(result: Result[T, object]) -> T:
    """The value of ``Success(value)``; for a ``Failure`` the test fails with its text."""
    if isinstance(result, Success):
        value: T = result.unwrap()
        return value
    if isinstance(result, Failure):
        error = result.failure()
        _fail(f"expected a success, got {type(error).__name__}: {_shown(error)}")
    _fail(f"expected a Result, got {type(result).__name__}")


def expect_failure(result: Result[object, object], error_type: type[E]) -> E:
    """The error of ``Failure(error)`` when it is an ``error_type``; otherwise (a success, or
    a failure of another type) the test fails, saying what came instead."""
    if isinstance(result, Failure):
        error = result.failure()
        if isinstance(error, error_type):
            return error
        _fail(
            f"expected a {error_type.__name__} failure, got {type(error).__name__}: {_shown(error)}"
        )
    if isinstance(result, Success):
        _fail(f"expected a {error_type.__name__} failure, got a success: {_shown(result.unwrap())}")
    _fail(f"expected a Result, got {type(result).__name__}")
