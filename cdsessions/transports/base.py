"""The one interface every transport implements, blocking or async: send a request, get a
response or a failure."""

from __future__ import annotations

from typing import Protocol

from returns.result import Result

from cdsessions._core.wire import HttpRequest, HttpResponse
from cdsessions.errors import TransportFailed

__all__ = ["AsyncTransport", "Transport"]


class Transport(Protocol):
    """Turns an :class:`HttpRequest` into an :class:`HttpResponse`, or a :class:`TransportFailed`.

    The request says everything about the attempt: where it goes, ``request.timeout`` (the
    attempt ends by its ``total``), ``request.max_response_bytes`` (a larger body, counted after
    any ``Content-Encoding`` is undone, is a ``too_large`` failure: see
    :mod:`cdsessions.transports._cap`) and ``request.operation``, which labels failures.

    A transport never raises for anything the network or the peer can do, never retries and never
    follows redirects: those decisions belong to the client.
    """

    def send(self, request: HttpRequest) -> Result[HttpResponse, TransportFailed]: ...

    def close(self) -> None:
        """Release connections. Idempotent."""


class AsyncTransport(Protocol):
    """Turns an :class:`HttpRequest` into an :class:`HttpResponse`, or a :class:`TransportFailed`,
    without blocking the event loop. The same rules as for a blocking :class:`Transport`."""

    async def send(self, request: HttpRequest) -> Result[HttpResponse, TransportFailed]: ...

    async def aclose(self) -> None:
        """Release connections (and threads). Idempotent."""
