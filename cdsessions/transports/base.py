"""The one interface every transport implements, blocking or async: send a request, get a
response or a failure."""

from __future__ import annotations

from collections.abc import AsyncGenerator, Generator
from typing import Protocol, runtime_checkable

from returns.result import Result

from cdsessions._core.logs import Piece
from cdsessions._core.wire import HttpRequest, HttpResponse
from cdsessions.errors import TransportFailed

__all__ = ["AsyncStreamingTransport", "AsyncTransport", "StreamingTransport", "Transport"]


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


@runtime_checkable
class StreamingTransport(Transport, Protocol):
    """A :class:`Transport` that can also hand a response over as it arrives (the log stream).

    ``stream(request)`` yields the head first (an :class:`HttpResponse` with an empty body), then
    the body's bytes piece by piece, or a :class:`TransportFailed` as its last item. The bounds
    are those of :meth:`Transport.send`, over the whole stream: it ends by ``timeout.total``,
    each wait for more bytes by ``timeout.read``, and more than ``max_response_bytes`` in all is
    ``too_large``. It never raises; closing the iterator early releases the connection."""

    def stream(self, request: HttpRequest) -> Generator[Piece, None, None]: ...


@runtime_checkable
class AsyncStreamingTransport(AsyncTransport, Protocol):
    """:class:`StreamingTransport` for asyncio."""

    def astream(self, request: HttpRequest) -> AsyncGenerator[Piece, None]: ...
