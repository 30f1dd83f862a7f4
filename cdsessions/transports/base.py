"""The one interface every transport implements: send a request, get a response or a failure."""

from __future__ import annotations

from typing import Protocol

from returns.result import Result

from cdsessions.errors import TransportFailed
from cdsessions.http import HttpRequest, HttpResponse
from cdsessions.timeouts import Timeout

__all__ = ["Transport"]


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
