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

from returns.result import Result

from cdsessions._core.wire import HttpRequest, HttpResponse
from cdsessions.errors import TransportFailed
from cdsessions.fake.service import FakeService
from cdsessions.transports._cap import capped
from cdsessions.transports._inline import InlineTransport

__all__ = ["AsyncFakeTransport", "FakeTransport"]


class FakeTransport:
    """Answers every request from ``service`` (a new default :class:`FakeService` if None).

    It keeps the one transport rule a fake could break: a body larger than the request's
    ``max_response_bytes`` is a ``too_large`` failure, as on the wire.
    """

    def __init__(self, service: FakeService | None = None) -> None:
        self.service = service if service is not None else FakeService()

    def send(self, request: HttpRequest) -> Result[HttpResponse, TransportFailed]:
        return capped(request, self.service.handle(request))

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
