"""Async forms of the in-memory transports: called straight from the event loop, no threads.

:class:`InlineTransport` adapts any blocking :class:`~cdsessions.transports.Transport` that never
waits on I/O (it answers from memory in microseconds), so calling it on the event loop blocks
nothing. :class:`AsyncCassetteTransport` is the one the library
ships with a cassette, and :class:`cdsessions.fake.AsyncFakeTransport` builds on it.

A transport that does block (real HTTP) belongs in a
:class:`~cdsessions.transports._threaded.ThreadedTransport` instead.
"""

from __future__ import annotations

from collections.abc import AsyncGenerator
from pathlib import Path
from typing import TYPE_CHECKING

from returns.result import Failure, Result

from cdsessions._core.logs import Piece
from cdsessions._core.servers import API_PREFIX
from cdsessions._core.wire import HttpRequest, HttpResponse
from cdsessions.errors import TransportFailed
from cdsessions.transports._cap import DEFAULT_MAX_DECODED_BYTES
from cdsessions.transports.base import StreamingTransport, Transport

if TYPE_CHECKING:
    from cdsessions.transports._cassette import CassetteError, CassetteTransport

__all__ = ["AsyncCassetteTransport", "InlineTransport", "cannot_stream"]


def cannot_stream(request: HttpRequest, transport: object) -> TransportFailed:
    """The failure for a stream asked of a transport that has no ``stream``: nothing sent."""
    problem = f"{type(transport).__name__} cannot stream a response (it has no stream())"
    return TransportFailed(request.operation, "broken", problem, sent=False)


class InlineTransport:
    """``transport``, which must answer without blocking, as an async transport."""

    def __init__(self, transport: Transport) -> None:
        self.transport = transport

    async def send(self, request: HttpRequest) -> Result[HttpResponse, TransportFailed]:
        return self.transport.send(request)

    async def astream(self, request: HttpRequest) -> AsyncGenerator[Piece, None]:
        """The wrapped transport's stream (it answers from memory, so reading it blocks
        nothing), or a failure when it cannot stream."""
        transport = self.transport
        if not isinstance(transport, StreamingTransport):
            yield Failure(cannot_stream(request, transport))
            return
        pieces = transport.stream(request)
        try:
            for piece in pieces:
                yield piece
        finally:
            pieces.close()

    async def aclose(self) -> None:
        self.transport.close()

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self.transport!r})"


class AsyncCassetteTransport(InlineTransport):
    """:class:`~cdsessions.transports._cassette.CassetteTransport` for asyncio. Build one from a
    loaded cassette, or with :meth:`load`, which returns a ``Result`` like the blocking form."""

    def __init__(self, cassette: CassetteTransport) -> None:
        super().__init__(cassette)
        self.cassette = cassette

    @classmethod
    def load(
        cls,
        path: str | Path,
        *,
        match_body: bool = False,
        allow_repeats: bool = False,
        base_path: str = API_PREFIX,
        max_decoded_bytes: int = DEFAULT_MAX_DECODED_BYTES,
    ) -> Result[AsyncCassetteTransport, CassetteError]:
        """Read a cassette file (see :meth:`CassetteTransport.load`)."""
        from cdsessions.transports._cassette import CassetteTransport

        loaded = CassetteTransport.load(
            path,
            match_body=match_body,
            allow_repeats=allow_repeats,
            base_path=base_path,
            max_decoded_bytes=max_decoded_bytes,
        )
        return loaded.map(cls)
