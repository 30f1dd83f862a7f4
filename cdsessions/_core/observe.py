"""Watching calls: observer events, and the ``cdsessions`` logger.

An observer is any function of one :data:`Event`. It is called before each attempt
(:class:`AttemptStarted`) and after each response or failure (:class:`AttemptFinished`), with
the request already redacted: the ``Authorization`` header reads ``<redacted>``. Use it for
metrics and tracing. An observer that raises is logged (by exception type only, since its
message could quote anything) and otherwise ignored: watching a call never breaks it.

Logging uses the stdlib logger ``cdsessions``: at DEBUG one line per attempt and per result
(method, path, status or failure, attempt, seconds), at INFO each retry. Header values and
bodies are never logged, and any URL in logged text is masked, since a session's ``url`` is
a public tunnel with no authentication of its own.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterable
from typing import Final, TypeAlias

import msgspec
from returns.result import Result, Success

from cdsessions._core.text import mask_urls  # re-exported: lifecycle and tests use it here
from cdsessions._core.wire import HttpRequest, HttpResponse
from cdsessions.errors import TransportFailed

__all__ = [
    "LOGGER",
    "AttemptFinished",
    "AttemptStarted",
    "Event",
    "Observer",
    "log_event",
    "mask_urls",
    "notify",
]

LOGGER: Final = logging.getLogger("cdsessions")


class AttemptStarted(msgspec.Struct, frozen=True):
    """Attempt ``attempt`` (1-based) of a call is about to be sent."""

    request: HttpRequest  # redacted
    attempt: int

    @property
    def operation(self) -> str:
        return self.request.operation


class AttemptFinished(msgspec.Struct, frozen=True):
    """Attempt ``attempt`` ended after ``elapsed`` seconds with a response (any status) or a
    transport failure. ``retry_in`` is the wait before the next attempt, None if none follows."""

    request: HttpRequest  # redacted
    attempt: int
    outcome: Result[HttpResponse, TransportFailed]
    elapsed: float
    retry_in: float | None

    @property
    def operation(self) -> str:
        return self.request.operation

    @property
    def status(self) -> int | None:
        """The HTTP status, or None when no response arrived."""
        return self.outcome.unwrap().status if isinstance(self.outcome, Success) else None


Event: TypeAlias = AttemptStarted | AttemptFinished
Observer: TypeAlias = Callable[[Event], None]


def _describe(outcome: Result[HttpResponse, TransportFailed]) -> str:
    if isinstance(outcome, Success):
        return str(outcome.unwrap().status)
    return mask_urls(outcome.failure().reason())


def log_event(event: Event) -> None:
    """The library's own observer: one log line per event, never a secret or a body."""
    request = event.request
    if isinstance(event, AttemptStarted):
        if LOGGER.isEnabledFor(logging.DEBUG):
            LOGGER.debug(
                "%s %s: attempt %d", request.method, mask_urls(request.target), event.attempt
            )
        return
    if event.retry_in is not None:
        LOGGER.info(
            "%s: %s after %.3fs, retrying in %.2fs (attempt %d)",
            mask_urls(request.operation),
            _describe(event.outcome),
            event.elapsed,
            event.retry_in,
            event.attempt + 1,
        )
    elif LOGGER.isEnabledFor(logging.DEBUG):
        LOGGER.debug(
            "%s %s: %s after %.3fs (attempt %d)",
            request.method,
            mask_urls(request.target),
            _describe(event.outcome),
            event.elapsed,
            event.attempt,
        )


def notify(observers: Iterable[Observer], event: Event) -> None:
    """Call every observer with ``event``; one that raises is logged and skipped."""
    for observer in observers:
        try:
            observer(event)
        except Exception as error:  # an observer's bug must not fail or leak through the call
            LOGGER.warning(
                "observer %s raised %s; ignored",
                getattr(observer, "__qualname__", type(observer).__name__),
                type(error).__name__,
            )
