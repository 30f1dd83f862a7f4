"""``SessionsClient``: the thin shell that chains build → send → decode.

It holds configuration (server, key, transport, timeouts) and adds no logic a pure function could
hold: builders make the request, :func:`~cdsessions.builders.authorize` adds the server and
headers, the transport does the I/O, a decoder turns the answer into a ``Result``.
"""

from __future__ import annotations

import builtins  # ``list`` is a method name below; annotations need the type
import os
import random
import threading
import time
from collections.abc import Callable, Iterable
from types import TracebackType
from typing import Final, TypeAlias, TypeVar

import msgspec
from returns.result import Failure, Result, Success

from cdsessions import builders, decoding, lifecycle, observe
from cdsessions._version import __version__
from cdsessions.errors import ApiError, InvalidRequest, TransportFailed
from cdsessions.http import HttpRequest, HttpResponse
from cdsessions.models import (
    CreateSessionBody,
    CreateSessionResponse,
    DeleteSessionResponse,
    ExtendSessionResponse,
    Session,
)
from cdsessions.observe import AttemptFinished, AttemptStarted, Observer
from cdsessions.retry import (
    DEFAULT_RETRY,
    OperationKind,
    RetryPolicy,
    Send,
    Wait,
    plan,
    policy_from,
)
from cdsessions.servers import is_loopback, resolve_server
from cdsessions.timeouts import CREATE_AND_WAIT_READ, DEFAULT_TIMEOUT, Timeout, timeout_from
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

    Configuration problems (no key, an unusable server, timeout or retry policy) come back from
    each call as an :class:`~cdsessions.errors.InvalidRequest`, never as an exception.

    ``timeout`` is a :class:`~cdsessions.Timeout` or seconds for connect and read alike; its
    ``total`` (120 s by default) bounds the whole call, retries and waits included. ``retry`` is a
    :class:`~cdsessions.RetryPolicy` (the default retries get, list and cancel; create and
    extend only when the request never reached the server or got a 429), or False for none.
    Both can be overridden per call. ``observers`` are functions called with an
    :class:`~cdsessions.observe.AttemptStarted` before and an
    :class:`~cdsessions.observe.AttemptFinished` after every attempt.
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
        retry: RetryPolicy | bool | None = None,
        observers: Iterable[Observer] = (),
    ) -> None:
        self._bearer = bearer
        self._server = server
        self._base_url = resolve_server(server)
        self._transport = transport
        self._owns_transport = transport is None
        # Checked here, reported by each call: a constructor that raises would be an exception
        # for a configuration mistake.
        self._timeout = timeout_from(timeout, DEFAULT_TIMEOUT)
        self._retry = policy_from(retry, DEFAULT_RETRY)
        self._observers: tuple[Observer, ...] = (observe.log_event, *observers)
        self._max_response_bytes = max_response_bytes
        self._max_connections = max_connections
        self._allow_insecure_http = allow_insecure_http
        self._user_agent = user_agent or f"cdsessions/{__version__}"
        self._lock = threading.Lock()

    # -- operations ------------------------------------------------------------------------

    def get(
        self,
        session_id: str,
        *,
        timeout: Timeout | float | None = None,
        retry: RetryPolicy | bool | None = None,
    ) -> Result[Session, ApiError]:
        """One session. A 404 means unknown, ended, or another account's."""
        built = builders.build_get(session_id)
        return self._call(built, _decode_with(decoding.SESSION), timeout, kind="get", retry=retry)

    def cancel(
        self,
        session_id: str,
        wait_for_shutdown: bool = False,
        *,
        timeout: Timeout | float | None = None,
        retry: RetryPolicy | bool | None = None,
    ) -> Result[DeleteSessionResponse, ApiError]:
        """Stop a session (and its billing). ``wait_for_shutdown`` waits for the machine to stop."""
        built = builders.build_cancel(session_id, wait_for_shutdown)
        return self._call(
            built, _decode_with(decoding.DELETED), timeout, kind="cancel", retry=retry
        )

    def list(
        self,
        machine_id: str | None = None,
        *,
        timeout: Timeout | float | None = None,
        retry: RetryPolicy | bool | None = None,
    ) -> Result[builtins.list[Session], ApiError]:
        """Live sessions of the account, or of one machine. Always a list of :class:`Session`,
        whether the server answers in the live shape or the seed's ``GPUEventModel`` shape."""
        return self._call(
            builders.build_list(machine_id),
            decoding.decode_session_list,
            timeout,
            max_bytes=MAX_LIST_BYTES,
            kind="list",
            retry=retry,
        )

    def create(
        self,
        body: CreateSessionBody,
        *,
        timeout: Timeout | float | None = None,
        retry: RetryPolicy | bool | None = None,
    ) -> Result[CreateSessionResponse, ApiError]:
        """Start a paid session. With ``wait_for_server=True`` the read timeout is at least
        11 minutes, since the server may take 10 to answer.

        Never repeated once the request may have reached the server (a retry could start a
        second paid session) unless ``retry=RetryPolicy(allow_duplicates=True)``."""
        waits = isinstance(body, CreateSessionBody) and body.wait_for_server is True
        return self._call(
            builders.build_create(body),
            _decode_with(decoding.CREATED),
            timeout,
            kind="create",
            retry=retry,
            min_read=CREATE_AND_WAIT_READ if waits else None,
        )

    def extend(
        self,
        session_id: str,
        minutes: int,
        *,
        timeout: Timeout | float | None = None,
        retry: RetryPolicy | bool | None = None,
    ) -> Result[ExtendSessionResponse, ApiError]:
        """Add ``minutes`` to a live session's timeout (live server only). Repeated, like
        create, only when the request surely never reached the server or got a 429."""
        built = builders.build_extend(session_id, minutes)
        return self._call(
            built, _decode_with(decoding.EXTENDED), timeout, kind="extend", retry=retry
        )

    # -- lifecycle (see cdsessions.lifecycle) ----------------------------------------------

    def wait_until_ready(
        self,
        session_id: str,
        *,
        timeout: float = lifecycle.DEFAULT_READY_TIMEOUT,
        on_poll: lifecycle.OnPoll | None = None,
    ) -> Result[Session, ApiError]:
        """Poll :meth:`get` (1 s apart at first, then up to 4 s) until the session's ``url`` is
        set. Fails with :class:`~cdsessions.lifecycle.SessionGone` on a 404 and
        :class:`~cdsessions.lifecycle.NotReady` after ``timeout`` seconds."""
        return lifecycle.wait_until_ready(self.get, session_id, timeout=timeout, on_poll=on_poll)

    def session(
        self,
        body: CreateSessionBody,
        *,
        wait: bool = True,
        ready_timeout: float = lifecycle.DEFAULT_READY_TIMEOUT,
        on_poll: lifecycle.OnPoll | None = None,
    ) -> lifecycle.SessionScope:
        """A context manager that creates a session, waits until it is ready (unless
        ``wait=False``) and always cancels it on exit, exceptions and Ctrl-C included.
        ``with client.session(body) as started`` gives ``Result[OpenSession, ApiError]``."""
        return lifecycle.SessionScope(
            self, body, wait=wait, ready_timeout=ready_timeout, on_poll=on_poll
        )

    # -- the shell -------------------------------------------------------------------------

    def _call(
        self,
        built: Result[HttpRequest, InvalidRequest],
        decode: _Decoder[T],
        timeout: Timeout | float | None,
        *,
        max_bytes: int = MAX_OBJECT_BYTES,
        kind: OperationKind | None = None,
        retry: RetryPolicy | bool | None = None,
        min_read: float | None = None,
    ) -> Result[T, ApiError]:
        """Build, then send (retrying as the policy decides), then decode."""
        prepared = built.bind(self._prepare)
        if not isinstance(prepared, Success):
            return Failure(prepared.failure())
        request = prepared.unwrap()
        settings = self._settings(request.operation, timeout, retry, max_bytes)
        if not isinstance(settings, Success):
            return Failure(settings.failure())
        chosen_timeout, policy, limit = settings.unwrap()
        if min_read is not None:
            chosen_timeout = chosen_timeout.at_least(min_read)
        sent = self._exchange(request, kind or _kind_of(request), policy, chosen_timeout, limit)
        if not isinstance(sent, Success):
            return Failure(sent.failure())
        return decode(sent.unwrap(), request.operation)

    def _settings(
        self,
        operation: str,
        timeout: object,
        retry: object,
        max_bytes: int,
    ) -> Result[tuple[Timeout, RetryPolicy, int], InvalidRequest]:
        """This call's timeout, retry policy and body cap: the call's own, else the client's."""
        default_timeout = self._timeout.alt(
            lambda problem: InvalidRequest(operation, "timeout", problem)
        )
        if not isinstance(default_timeout, Success):
            return Failure(default_timeout.failure())
        chosen_timeout = timeout_from(timeout, default_timeout.unwrap())
        if not isinstance(chosen_timeout, Success):
            return Failure(InvalidRequest(operation, "timeout", chosen_timeout.failure()))
        default_policy = self._retry.alt(
            lambda problem: InvalidRequest(operation, "retry", problem)
        )
        if not isinstance(default_policy, Success):
            return Failure(default_policy.failure())
        policy = policy_from(retry, default_policy.unwrap())
        if not isinstance(policy, Success):
            return Failure(InvalidRequest(operation, "retry", policy.failure()))
        limit = self._max_response_bytes
        if limit is not None and (
            isinstance(limit, bool) or not isinstance(limit, int) or limit < 1
        ):
            problem = "max_response_bytes must be a whole number of bytes ≥ 1"
            return Failure(InvalidRequest(operation, "max_response_bytes", problem))
        return Success((chosen_timeout.unwrap(), policy.unwrap(), limit or max_bytes))

    def _exchange(
        self,
        request: HttpRequest,
        kind: OperationKind,
        policy: RetryPolicy,
        timeout: Timeout,
        max_bytes: int,
    ) -> Result[HttpResponse, TransportFailed]:
        """Drive :func:`~cdsessions.retry.plan`: every decision is made there; this only sends,
        sleeps and tells the observers."""
        transport = self._transport_for_use()
        shown = request.redacted()
        steps = plan(
            policy,
            kind,
            timeout,
            clock=time.monotonic,
            wallclock=time.time,
            unit=random.random,
        )
        step = next(steps)
        while True:
            if isinstance(step, Wait):
                time.sleep(step.seconds)
                step = steps.send(None)
            elif isinstance(step, Send):
                observe.notify(self._observers, AttemptStarted(shown, step.attempt))
                started = time.monotonic()
                outcome = transport.send(
                    request,
                    timeout=step.timeout,
                    max_response_bytes=max_bytes,
                    operation=request.operation,
                )
                elapsed = time.monotonic() - started
                attempt = step.attempt
                step = steps.send(outcome)
                retry_in = step.seconds if isinstance(step, Wait) else None
                finished = AttemptFinished(shown, attempt, outcome, elapsed, retry_in)
                observe.notify(self._observers, finished)
            else:
                steps.close()
                return step.outcome

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


def _kind_of(request: HttpRequest) -> OperationKind:
    """For a request whose caller named no kind: GET only reads; anything else that is not a
    DELETE is treated like create, the most careful choice."""
    if request.method == "GET":
        return "list" if request.path == "/sessions" else "get"
    return "cancel" if request.method == "DELETE" else "create"


def _decode_with(decoder: msgspec.json.Decoder[T]) -> _Decoder[T]:
    return lambda response, operation: decoding.decode(response, decoder, operation)
