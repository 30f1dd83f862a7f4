"""``FakeTransport``: the fake ComfyDeploy in memory, behind the transport interface.

No sockets, no threads: each ``send`` hands the request to a
:class:`~cdsessions.fake.service.FakeService` and returns its answer. Use it to test code that
starts sessions without a network or an API key::

    from cdsessions import SessionsClient
    from cdsessions.fake import FakeService, FakeTransport

    fake = FakeService()
    client = SessionsClient("any-key", transport=FakeTransport(fake))
"""

from __future__ import annotations

from collections.abc import Generator

from returns.result import Failure, Result

from cdsessions._core.logs import Piece
from cdsessions._core.wire import HttpRequest, HttpResponse
from cdsessions.errors import TransportFailed
from cdsessions.fake.script import Fault
from cdsessions.fake.service import FakeService
from cdsessions.transports._cap import capped, pieces_of
from cdsessions.transports._inline import InlineTransport

__all__ = ["AsyncFakeTransport", "FakeTransport", "fault_failure"]


def fault_failure(operation: str, fault: Fault) -> TransportFailed:
    """What a client sees of a scripted fault: the request went out (``sent``) in every case,
    so a create that met one is never repeated. A stall is a timeout; a reset, before or after
    the fake acted on the request, a broken connection."""
    if fault.kind == "timeout":
        return TransportFailed(operation, "timeout", "the server did not answer in time", True)
    return TransportFailed(operation, "broken", "the connection was reset", True)


class FakeTransport:
    """Answers every request from ``service`` (a new default :class:`FakeService` if None).

    It keeps the one transport rule a fake could break: a body larger than the request's
    ``max_response_bytes`` is a ``too_large`` failure, as on the wire. A scripted fault
    (:meth:`FakeService.fail_next`) is the failure the urllib3 transport reports for it against
    the fake's HTTP server (:func:`fault_failure`).
    """

    def __init__(self, service: FakeService | None = None) -> None:
        self.service = service if service is not None else FakeService()

    def send(self, request: HttpRequest) -> Result[HttpResponse, TransportFailed]:
        answer = self.service.respond(request)
        if isinstance(answer, Fault):
            return Failure(fault_failure(request.operation, answer))
        return capped(request, answer)

    def stream(self, request: HttpRequest) -> Generator[Piece, None, None]:
        """The answer as a stream (see :func:`pieces_of`); a scripted fault is its failure."""
        answer = self.service.respond(request)
        if isinstance(answer, Fault):
            yield Failure(fault_failure(request.operation, answer))
            return
        yield from pieces_of(request, answer)

    def close(self) -> None:
        """Nothing to release."""

    def __repr__(self) -> str:
        return f"FakeTransport({self.service!r})"


class AsyncFakeTransport(InlineTransport):
    """:class:`FakeTransport` for asyncio: the fake ComfyDeploy in memory (``service``, a new
    default :class:`~cdsessions.fake.FakeService` if None), answered on the event loop."""

    def __init__(self, service: FakeService | None = None) -> None:
        fake = FakeTransport(service)
        super().__init__(fake)
        self.service = fake.service
