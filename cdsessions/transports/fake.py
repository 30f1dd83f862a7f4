"""``FakeTransport``: the fake ComfyDeploy in memory, behind the transport interface.

No sockets, no threads: each ``send`` hands the request to a
:class:`~cdsessions.fake_service.FakeService` and returns its answer. Use it to test code that
starts sessions without a network or an API key::

    from cdsessions import FakeService, FakeTransport, SessionsClient

    fake = FakeService()
    client = SessionsClient("any-key", transport=FakeTransport(fake))
"""

from __future__ import annotations

from returns.result import Failure, Result, Success

from cdsessions.errors import TransportFailed
from cdsessions.fake_service import FakeService
from cdsessions.http import HttpRequest, HttpResponse
from cdsessions.timeouts import Timeout

__all__ = ["FakeTransport"]


class FakeTransport:
    """Answers every request from ``service`` (a new default :class:`FakeService` if None).

    It keeps the one transport rule a fake could break: a body larger than
    ``max_response_bytes`` is a ``too_large`` failure, as on the wire.
    """

    def __init__(self, service: FakeService | None = None) -> None:
        self.service = service if service is not None else FakeService()

    def send(
        self,
        request: HttpRequest,
        *,
        timeout: Timeout,
        max_response_bytes: int,
        operation: str,
    ) -> Result[HttpResponse, TransportFailed]:
        response = self.service.handle(request)
        if len(response.body) > max_response_bytes:
            problem = f"body exceeds {max_response_bytes} bytes"
            return Failure(TransportFailed(operation, "too_large", problem, sent=True))
        return Success(response)

    def close(self) -> None:
        """Nothing to release."""

    def __repr__(self) -> str:
        return f"FakeTransport({self.service!r})"
