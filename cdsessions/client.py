"""``SessionsClient``: the thin shell that chains build → send → decode.

It holds configuration (server, key, transport, timeouts) and adds no logic a pure function could
hold: builders make the request, :func:`~cdsessions.builders.authorize` adds the server and
headers, the transport does the I/O, a decoder turns the answer into a ``Result``.
"""

from __future__ import annotations

import builtins  # ``list`` is a method name below; annotations need the type
import os
import threading
from collections.abc import Callable
from types import TracebackType
from typing import Final, TypeAlias, TypeVar

import msgspec
from returns.result import Failure, Result, Success

from cdsessions import builders, decoding
from cdsessions._version import __version__
from cdsessions.errors import ApiError, InvalidRequest
from cdsessions.http import HttpRequest, HttpResponse
from cdsessions.models import (
    CreateSessionBody,
    CreateSessionResponse,
    DeleteSessionResponse,
    ExtendSessionResponse,
    Session,
)
from cdsessions.servers import is_loopback, resolve_server
from cdsessions.timeouts import CREATE_AND_WAIT_READ, DEFAULT_TIMEOUT, Timeout
from cdsessions.transports.base import Transport

__all__ = ["API_KEY_ENV", "Bearer", "SessionsClient"]

T = TypeVar("T")

#: The environment variable read when no ``bearer`` is given.
API_KEY_ENV: Final = "COMFY_DEPLOY_API_KEY"
#: A key, or a zero-argument function returning one (called for every request, so a rotating
#: key from a secret store just works).
Bearer: TypeAlias = str | Callable[[], str]
#: Caps on a response body: one session is small; a list has no pagination.
MAX_OBJECT_BYTES: Final = 1024 * 1024
MAX_LIST_BYTES: Final = 256 * 1024 * 1024
_Decoder: TypeAlias = Callable[[HttpResponse, str], Result[T, ApiError]]


def _token_problem(token: object) -> str | None:
    if not isinstance(token, str):
        return f"must be a string, not {type(token).__name__}"
    if not token.strip():
        return f"is empty; pass bearer= or set {API_KEY_ENV}"
    if not token.isascii() or not token.isprintable() or any(c.isspace() for c in token):
        return "must be printable ASCII without spaces"
    return None


class SessionsClient:
    """A client for the ComfyDeploy Session API. Every method returns a ``returns`` ``Result``.

    ``bearer`` is the API key or a zero-argument callable returning it; None reads
    ``COMFY_DEPLOY_API_KEY`` when a request is made. ``server`` is ``"production"``,
    ``"staging"``, ``"local"`` or a base URL. ``transport`` defaults to a
    :class:`~cdsessions.transports.Urllib3Transport` created on first use and closed by
    :meth:`close`; a transport you pass in is yours, and is never closed here.

    Configuration problems (no key, an unusable server) come back from each call as an
    :class:`~cdsessions.errors.InvalidRequest`, never as an exception.
    """

    def __init__(
        self,
        bearer: Bearer | None = None,
        *,
        server: str = "production",
        transport: Transport | None = None,
        timeout: Timeout | float | None = None,
        max_response_bytes: int | None = None,
        max_connections: int = 10,
        allow_insecure_http: bool = False,
        user_agent: str | None = None,
    ) -> None:
        self._bearer = bearer
        self._server = server
        self._base_url = resolve_server(server)
        self._transport = transport
        self._owns_transport = transport is None
        self._timeout = Timeout.of(timeout, DEFAULT_TIMEOUT)
        self._max_response_bytes = max_response_bytes
        self._max_connections = max_connections
        self._allow_insecure_http = allow_insecure_http
        self._user_agent = user_agent or f"cdsessions/{__version__}"
        self._lock = threading.Lock()

    # -- operations ------------------------------------------------------------------------

    def get(
        self, session_id: str, *, timeout: Timeout | float | None = None
    ) -> Result[Session, ApiError]:
        """One session. A 404 means unknown, ended, or another account's."""
        return self._call(builders.build_get(session_id), _decode_with(decoding.SESSION), timeout)

    def cancel(
        self,
        session_id: str,
        wait_for_shutdown: bool = False,
        *,
        timeout: Timeout | float | None = None,
    ) -> Result[DeleteSessionResponse, ApiError]:
        """Stop a session (and its billing). ``wait_for_shutdown`` waits for the machine to stop."""
        built = builders.build_cancel(session_id, wait_for_shutdown)
        return self._call(built, _decode_with(decoding.DELETED), timeout)

    def list(
        self, machine_id: str | None = None, *, timeout: Timeout | float | None = None
    ) -> Result[builtins.list[Session], ApiError]:
        """Live sessions of the account, or of one machine. Always a list of :class:`Session`,
        whether the server answers in the live shape or the seed's ``GPUEventModel`` shape."""
        return self._call(
            builders.build_list(machine_id),
            decoding.decode_session_list,
            timeout,
            max_bytes=MAX_LIST_BYTES,
        )

    def create(
        self, body: CreateSessionBody, *, timeout: Timeout | float | None = None
    ) -> Result[CreateSessionResponse, ApiError]:
        """Start a paid session. With ``wait_for_server=True`` the read timeout is at least
        11 minutes, since the server may take 10 to answer."""
        chosen = Timeout.of(timeout, self._timeout)
        if isinstance(body, CreateSessionBody) and body.wait_for_server is True:
            chosen = chosen.at_least(CREATE_AND_WAIT_READ)
        return self._call(builders.build_create(body), _decode_with(decoding.CREATED), chosen)

    def extend(
        self, session_id: str, minutes: int, *, timeout: Timeout | float | None = None
    ) -> Result[ExtendSessionResponse, ApiError]:
        """Add ``minutes`` to a live session's timeout (live server only)."""
        built = builders.build_extend(session_id, minutes)
        return self._call(built, _decode_with(decoding.EXTENDED), timeout)

    # -- the shell -------------------------------------------------------------------------

    def _call(
        self,
        built: Result[HttpRequest, InvalidRequest],
        decode: _Decoder[T],
        timeout: Timeout | float | None,
        *,
        max_bytes: int = MAX_OBJECT_BYTES,
    ) -> Result[T, ApiError]:
        prepared = built.bind(self._prepare)
        if not isinstance(prepared, Success):
            return Failure(prepared.failure())
        request = prepared.unwrap()
        sent = self._transport_for_use().send(
            request,
            timeout=Timeout.of(timeout, self._timeout),
            max_response_bytes=self._max_response_bytes or max_bytes,
            operation=request.operation,
        )
        if not isinstance(sent, Success):
            return Failure(sent.failure())
        return decode(sent.unwrap(), request.operation)

    def _prepare(self, request: HttpRequest) -> Result[HttpRequest, InvalidRequest]:
        """The request with server and headers, or why it must not be sent."""
        base_url = self._base_url.alt(
            lambda error: InvalidRequest(request.operation, error.field, error.problem)
        )
        if not isinstance(base_url, Success):
            return Failure(base_url.failure())
        url = base_url.unwrap()
        if url.startswith("http://") and not is_loopback(url) and not self._allow_insecure_http:
            return Failure(
                InvalidRequest(
                    request.operation,
                    "server",
                    "refusing to send the API key over plain http:// to a non-loopback host "
                    "(pass allow_insecure_http=True to override)",
                )
            )
        token = self._token()
        if not isinstance(token, Success):
            return Failure(InvalidRequest(request.operation, "bearer", token.failure()))
        return Success(
            builders.authorize(
                request, base_url=url, token=token.unwrap(), user_agent=self._user_agent
            )
        )

    def _token(self) -> Result[str, str]:
        bearer = self._bearer
        if bearer is None:
            bearer = os.environ.get(API_KEY_ENV, "")
        if callable(bearer):
            try:
                bearer = bearer()
            except Exception as error:  # a secret store failing is a value, but its message
                # may quote the secret: keep only the type.
                return Failure(f"the bearer callable raised {type(error).__name__}")
        problem = _token_problem(bearer)
        return Failure(problem) if problem else Success(str(bearer))

    def _transport_for_use(self) -> Transport:
        if self._transport is None:
            with self._lock:
                if self._transport is None:
                    from cdsessions.transports.urllib3_transport import Urllib3Transport

                    self._transport = Urllib3Transport(max_connections=self._max_connections)
        return self._transport

    # -- lifetime --------------------------------------------------------------------------

    def close(self) -> None:
        """Close the transport this client created (never one that was passed in)."""
        with self._lock:
            if self._owns_transport and self._transport is not None:
                self._transport.close()
                self._transport = None

    def __enter__(self) -> SessionsClient:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()

    def __repr__(self) -> str:
        return f"SessionsClient(server={self._server!r})"


def _decode_with(decoder: msgspec.json.Decoder[T]) -> _Decoder[T]:
    return lambda response, operation: decoding.decode(response, decoder, operation)
