"""The one interface every transport implements, blocking or async: send a request, get a
response or a failure."""

from __future__ import annotations

from typing import Protocol

from returns.result import Result

from cdsessions._core.timeouts import Timeout
from cdsessions._core.wire import HttpRequest, HttpResponse
from cdsessions.errors import TransportFailed

__all__ = ["AsyncTransport", "Transport"]


class Transport(Protocol):
    """Turns an :class:`HttpRequest` into an :class:`HttpResponse`, or a :class:`TransportFailed`.

    A transport never raises for anything the network or the peer can do, never retries and never
    follows redirects: those decisions belong to the client. ``max_response_bytes`` caps the body
    it will read (a larger one is a ``too_large`` failure). ``operation`` only labels failures.
    """

    def send(
        self,
        request: HttpRequest,
        *,
        timeout: Timeout,
        max_response_bytes: int,
        operation: str,
    ) -> Result[HttpResponse, TransportFailed]: ...

    def close(self) -> None:
        """Release connections. Idempotent."""


class AsyncTransport(Protocol):
    """Turns an :class:`HttpRequest` into an :class:`HttpResponse`, or a :class:`TransportFailed`,
    without blocking the event loop.

    As for a blocking transport: never raise for anything the network or the peer can do, never
    retry, never follow redirects, cap the body at ``max_response_bytes`` and end each attempt by
    ``timeout.total``. ``operation`` only labels failures.
    """

    async def send(
        self,
        request: HttpRequest,
        *,
        timeout: Timeout,
        max_response_bytes: int,
        operation: str,
    ) -> Result[HttpResponse, TransportFailed]: ...

    async def aclose(self) -> None:
        """Release connections (and threads). Idempotent."""
