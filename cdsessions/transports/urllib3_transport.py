"""Real HTTP through one shared urllib3 ``PoolManager``.

This is the only module that imports urllib3, and the only place its exceptions are turned into
:class:`TransportFailed` values. TLS is verified, redirects are never followed (the API key must
not travel to another host) and urllib3's own retries are off: retrying is the client's decision.
"""

from __future__ import annotations

import time

import urllib3
from returns.result import Failure, Result, Success
from urllib3.exceptions import (
    ConnectTimeoutError,
    HTTPError,
    NewConnectionError,
    ReadTimeoutError,
    SSLError,
)

from cdsessions.errors import TransportFailed
from cdsessions.http import HttpRequest, HttpResponse
from cdsessions.timeouts import Timeout

__all__ = ["Urllib3Transport"]

_CHUNK = 64 * 1024


def _failure(operation: str, error: BaseException) -> TransportFailed:
    """The single place urllib3's (and the socket layer's) errors become values."""
    reason = getattr(error, "reason", None)
    if isinstance(reason, BaseException):  # MaxRetryError and friends wrap the real cause
        error = reason
    name = type(error).__name__
    # The order matters: NewConnectionError is a subclass of ConnectTimeoutError.
    if isinstance(error, NewConnectionError):
        # "HTTPConnection(host=…, port=…): Failed to establish …: [Errno 111] Connection refused"
        cause = str(error).rpartition("] ")[2] or name
        return TransportFailed(operation, "connect", cause.lower(), sent=False)
    if isinstance(error, ConnectTimeoutError):
        return TransportFailed(operation, "timeout", "connecting took too long", sent=False)
    if isinstance(error, ReadTimeoutError):
        return TransportFailed(operation, "timeout", "the server did not answer in time", True)
    if isinstance(error, SSLError):
        return TransportFailed(operation, "connect", f"TLS failed ({name})", sent=False)
    if isinstance(error, ConnectionRefusedError):
        return TransportFailed(operation, "connect", "connection refused", sent=False)
    if isinstance(error, TimeoutError):
        return TransportFailed(operation, "timeout", "the server did not answer in time", True)
    return TransportFailed(operation, "broken", f"{name}: the response was cut short", True)


class Urllib3Transport:
    """Sends requests over a pooled, thread-safe urllib3 ``PoolManager``.

    ``max_connections`` bounds the connections per host; callers beyond it wait for a free one.
    """

    def __init__(self, *, max_connections: int = 10) -> None:
        self._pool = urllib3.PoolManager(
            num_pools=4,
            maxsize=max_connections,
            block=True,
            retries=False,
            cert_reqs="CERT_REQUIRED",
        )

    def send(
        self,
        request: HttpRequest,
        *,
        timeout: Timeout,
        max_response_bytes: int,
        operation: str,
    ) -> Result[HttpResponse, TransportFailed]:
        started = time.monotonic()
        deadline = None if timeout.total is None else started + timeout.total
        try:
            response = self._pool.request(
                request.method,
                request.url,
                body=request.body,
                headers=dict(request.headers),
                timeout=urllib3.Timeout(connect=timeout.connect, read=timeout.read),
                retries=False,
                redirect=False,
                preload_content=False,
                pool_timeout=timeout.total,
            )
        except (HTTPError, OSError) as error:
            return Failure(_failure(operation, error))
        try:
            return self._read(response, max_response_bytes, deadline, operation)
        except (HTTPError, OSError) as error:
            response.close()
            return Failure(_failure(operation, error))
        finally:
            response.release_conn()

    @staticmethod
    def _read(
        response: urllib3.BaseHTTPResponse,
        limit: int,
        deadline: float | None,
        operation: str,
    ) -> Result[HttpResponse, TransportFailed]:
        chunks: list[bytes] = []
        size = 0
        while chunk := response.read1(_CHUNK):
            size += len(chunk)
            if size > limit:
                response.close()  # do not reuse a connection with unread bytes on it
                return Failure(
                    TransportFailed(
                        operation, "too_large", f"body exceeds {limit} bytes", sent=True
                    )
                )
            if deadline is not None and time.monotonic() > deadline:
                response.close()
                return Failure(
                    TransportFailed(
                        operation, "timeout", "the body did not finish in time", sent=True
                    )
                )
            chunks.append(chunk)
        return Success(
            HttpResponse(
                status=response.status,
                headers=tuple(response.headers.items()),
                body=b"".join(chunks),
                reason=response.reason or "",
            )
        )

    def close(self) -> None:
        self._pool.clear()

    def __repr__(self) -> str:
        return "Urllib3Transport()"
