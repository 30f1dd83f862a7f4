"""The one interface every async transport implements: the async form of
:class:`~cdsessions.transports.base.Transport`, with the same contract."""

from __future__ import annotations

from typing import Protocol

from returns.result import Result

from cdsessions.errors import TransportFailed
from cdsessions.http import HttpRequest, HttpResponse
from cdsessions.timeouts import Timeout

__all__ = ["AsyncTransport"]


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
