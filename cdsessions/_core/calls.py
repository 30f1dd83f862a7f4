"""What every call does between the caller and the transport, shared by both clients.

:class:`ClientCore` holds a client's configuration and turns each operation into :data:`CallSteps`:
check the configuration, build and authorize the request, then follow the retry
:func:`~cdsessions._core.retry.plan` (telling the observers about every attempt), and decode the
last answer. The steps *yield* the :class:`~cdsessions._core.wire.HttpRequest` to send (its
``timeout`` and ``max_response_bytes`` set for that attempt) or a
:class:`~cdsessions._core.retry.Wait`, and are sent what the transport answered; they never do I/O
themselves. Every answer has the key masked out of it here (:func:`~cdsessions._core.wire.scrub`)
before anything reads it, so no error, log line or observer event can quote it.
:class:`~cdsessions.SessionsClient` drives them with ``transport.send`` and its clock's ``sleep``,
:class:`~cdsessions.AsyncSessionsClient` with an async transport and its clock's ``asleep`` (see
:mod:`cdsessions._core.steps`), so the two cannot differ in what they send, when they retry, or what
they return.
"""

from __future__ import annotations

import builtins  # ``list`` is a method name below; annotations need the type
import logging
import os
from collections.abc import Callable, Iterable
from typing import TYPE_CHECKING, Final, TypeAlias, TypeVar

import msgspec
from returns.result import Failure, Result, Success

from cdsessions._core import builders, decoding, logs, observe
from cdsessions._core.clocks import SYSTEM_CLOCK, Clock
from cdsessions._core.logs import FetchLogs, Mode
from cdsessions._core.observe import AttemptFinished, AttemptStarted, Observer
from cdsessions._core.retry import (
    DEFAULT_RETRY,
    Attempt,
    OperationKind,
    Outcome,
    RetryPolicy,
    Wait,
    plan,
    policy_from,
)
from cdsessions._core.servers import refuse_plain_http, resolve_server
from cdsessions._core.steps import Steps
from cdsessions._core.timeouts import CREATE_AND_WAIT_READ, DEFAULT_TIMEOUT, Timeout, timeout_from
from cdsessions._core.wire import (
    DEFAULT_MAX_RESPONSE_BYTES,
    HttpRequest,
    HttpResponse,
    key_forms,
    scrub,
    without_secret_fields,
)
from cdsessions._version import __version__
from cdsessions.errors import ApiError, InvalidReason, InvalidRequest
from cdsessions.models import (
    CreateSessionBody,
    CreateSessionResponse,
    DeleteSessionResponse,
    ExtendSessionResponse,
    LogLine,
    Machine,
    Session,
)

if TYPE_CHECKING:
    from cdsessions._core.pricing import GpuPricing

__all__ = [
    "API_KEY_ENV",
    "MAX_LIST_BYTES",
    "MAX_OBJECT_BYTES",
    "Bearer",
    "CallSteps",
    "ClientCore",
]

T = TypeVar("T")

#: The environment variable read when no ``bearer`` is given.
API_KEY_ENV: Final = "COMFY_DEPLOY_API_KEY"
#: A key, or a zero-argument function returning one (called for every request, so a rotating
#: key from a secret store just works).
Bearer: TypeAlias = str | Callable[[], str]
#: Caps on a response body: one session is small; a list has no pagination.
MAX_OBJECT_BYTES: Final = DEFAULT_MAX_RESPONSE_BYTES
MAX_LIST_BYTES: Final = 256 * 1024 * 1024
#: The cap on a log stream, over all of it (a followed stream included): 1 GiB.
MAX_LOG_BYTES: Final = 1024 * 1024 * 1024
#: A failure's log tail is read within this long (connect, a pause, in all).
LOG_TAIL_TIMEOUT: Final = Timeout(connect=3.0, read=1.0, total=5.0)
#: What reading a snapshot of the log gives.
LogsAnswer: TypeAlias = "Result[list[LogLine], ApiError]"
_Decoder: TypeAlias = Callable[[HttpResponse, str], Result[T, ApiError]]
_Settings: TypeAlias = tuple[Timeout, RetryPolicy, int]


#: One call: yields requests to send (each sent back its
#: :data:`~cdsessions._core.retry.Outcome`) and waits, returns the decoded ``Result``.
CallSteps: TypeAlias = Steps[HttpRequest, Outcome, Result[T, ApiError]]


def _token_problem(token: object) -> tuple[str, InvalidReason | None] | None:
    """(problem, why) when ``token`` cannot be sent as the API key, else None."""
    if not isinstance(token, str):
        return f"must be a string, not {type(token).__name__}", None
    if not token.strip():
        return f"is empty; pass bearer= or set {API_KEY_ENV}", "empty_key"
    if not token.isascii() or not token.isprintable() or any(c.isspace() for c in token):
        return "must be printable ASCII without spaces", None
    return None


class ClientCore:
    """A client's configuration, and the steps of each of its calls. No I/O.

    The options are the clients' constructor options (see :class:`~cdsessions.SessionsClient`).
    They are checked here and a problem is reported by each call as an
    :class:`~cdsessions.errors.InvalidRequest`, never raised: a constructor that raised would be
    an exception for a configuration mistake.
    """

    def __init__(
        self,
        bearer: Bearer | None,
        *,
        server: str,
        timeout: Timeout | float | None,
        max_response_bytes: int | None,
        max_connections: int,
        allow_insecure_http: bool,
        user_agent: str | None,
        retry: RetryPolicy | bool | None,
        observers: Iterable[Observer],
        clock: Clock = SYSTEM_CLOCK,
    ) -> None:
        self._bearer = bearer
        #: What every deadline, Retry-After date and wait of this client is measured on.
        self.clock = clock
        self.max_connections = max_connections
        self.server = server
        # Parsed once: an unusable URL, or plain http to a host that is not loopback, is
        # refused by every call (see cdsessions._core.servers).
        self._base_url = resolve_server(server).bind(
            lambda url: refuse_plain_http(url, allowed=allow_insecure_http is True)
        )
        self._timeout = timeout_from(timeout, DEFAULT_TIMEOUT)
        self._retry = policy_from(retry, DEFAULT_RETRY)
        watchers = _observers_from(observers)
        self._observers: tuple[Observer, ...] = (observe.log_event, *watchers.value_or(()))
        #: Whether anyone besides the library's own log reads every event.
        self._observed = len(self._observers) > 1
        self._max_response_bytes = max_response_bytes
        self._allow_insecure_http = allow_insecure_http
        self._user_agent = user_agent or f"cdsessions/{__version__}"
        # Options with no Result of their own: a problem is reported by every call (as for the
        # server, timeout and retry), never raised by the constructor.
        self._option_problem = _option_problem(watchers, self._user_agent)
        # What every call would work out again from the same configuration: kept after its
        # first success (a failure is worked out again each time, to name its operation).
        self._usual_settings: dict[int, Result[_Settings, InvalidRequest]] = {}
        self._checked_url: str | None = None
        self._checked_token: str | None = None
        # The price table, once fetched: kept for the client's lifetime (gpu_pricing(refresh=True)
        # fetches it again). Replaced whole, so readers in other threads see one table or the other.
        self._pricing: GpuPricing | None = None

    # -- the operations, as steps ----------------------------------------------------------

    def get(self, session_id: str, timeout: object, retry: object) -> CallSteps[Session]:
        built = builders.build_get(session_id)
        return self.call(built, _DECODE_SESSION, timeout, kind="get", retry=retry)

    def cancel(
        self, session_id: str, wait_for_shutdown: bool, timeout: object, retry: object
    ) -> CallSteps[DeleteSessionResponse]:
        built = builders.build_cancel(session_id, wait_for_shutdown)
        return self.call(built, _DECODE_DELETED, timeout, kind="cancel", retry=retry)

    def list(
        self, machine_id: str | None, timeout: object, retry: object
    ) -> CallSteps[builtins.list[Session]]:
        return self.call(
            builders.build_list(machine_id),
            decoding.decode_session_list,
            timeout,
            max_bytes=MAX_LIST_BYTES,
            kind="list",
            retry=retry,
        )

    def create(
        self, body: CreateSessionBody, timeout: object, retry: object
    ) -> CallSteps[CreateSessionResponse]:
        # The server may take 10 minutes to answer a create that waits for the machine.
        waits = isinstance(body, CreateSessionBody) and body.wait_for_server is True
        return self.call(
            builders.build_create(body),
            _DECODE_CREATED,
            timeout,
            kind="create",
            retry=retry,
            min_read=CREATE_AND_WAIT_READ if waits else None,
        )

    def extend(
        self, session_id: str, minutes: int, timeout: object, retry: object
    ) -> CallSteps[ExtendSessionResponse]:
        built = builders.build_extend(session_id, minutes)
        return self.call(built, _DECODE_EXTENDED, timeout, kind="extend", retry=retry)

    def machine(self, machine_id: str, timeout: object, retry: object) -> CallSteps[Machine]:
        built = builders.build_machine(machine_id)
        return self.call(built, _DECODE_MACHINE, timeout, kind="get", retry=retry)

    def machines(
        self, search: str | None, timeout: object, retry: object
    ) -> CallSteps[builtins.list[Machine]]:
        return self.call(
            builders.build_machines(search),
            _DECODE_MACHINES,
            timeout,
            max_bytes=MAX_LIST_BYTES,
            kind="get",  # a read: retried like get and list
            retry=retry,
        )

    def gpu_pricing(self, refresh: bool, timeout: object, retry: object) -> CallSteps[GpuPricing]:
        """The price table: the one already fetched, unless ``refresh`` (or none yet)."""
        known = self._pricing
        if known is not None and not refresh:
            return Success(known)
        from cdsessions._core import pricing  # decimal is loaded by those who ask for prices

        fetched = yield from self.call(
            Success(builders.build_gpu_pricing()),
            pricing.decode_gpu_pricing,
            timeout,
            kind="get",  # a read: retried like get and list
            retry=retry,
        )
        if isinstance(fetched, Success):
            self._pricing = fetched.unwrap()
        return fetched

    # -- the session's log stream (cdsessions._core.logs) ----------------------------------

    def log_stream(
        self, session_id: object, level: object, timeout: object, mode: Mode
    ) -> Result[FetchLogs, InvalidRequest]:
        """The log stream's request, authorized and bounded: the call's timeout (else the
        client's), a snapshot's reads cut to :data:`~cdsessions._core.logs.QUIET_SECONDS`, and
        the body cap :data:`MAX_LOG_BYTES` over the whole stream. Never retried: a stream that
        failed midway would repeat its lines."""
        built = logs.build_logs(session_id, level)
        prepared = built.bind(self.prepare)
        if not isinstance(prepared, Success):
            return Failure(prepared.failure())
        request = prepared.unwrap()
        settings = self.settings(request.operation, timeout, None, MAX_LOG_BYTES)
        if not isinstance(settings, Success):
            return Failure(settings.failure())
        chosen, _policy, limit = settings.unwrap()
        if mode == logs.SNAPSHOT:
            chosen = logs.snapshot_timeout(chosen)
        request = msgspec.structs.replace(request, timeout=chosen, max_response_bytes=limit)
        key = _key_sent(request)
        return Success(FetchLogs(request, key_forms(key) if key else ()))

    def logs(
        self, session_id: object, level: object, timeout: object
    ) -> Steps[FetchLogs, Result[builtins.list[LogLine], ApiError], LogsAnswer]:
        """A snapshot of the session's log: the lines it holds now (see :mod:`.logs`)."""
        fetch = self.log_stream(session_id, level, timeout, logs.SNAPSHOT)
        if not isinstance(fetch, Success):
            return Failure(fetch.failure())
        got = yield fetch.unwrap()
        assert got is not None, "the driver must send back what the stream gave"
        return got

    def log_tail(self, session_id: str) -> Steps[FetchLogs, LogsAnswer, tuple[str, ...]]:
        """The last few lines of the session's log as safe text, for a failure's message; ()
        when there are none or they cannot be read (the failure stays what it was). Bounded by
        :data:`LOG_TAIL_TIMEOUT`, so a failure is never held up long by its explanation."""
        got = yield from self.logs(session_id, None, LOG_TAIL_TIMEOUT)
        return logs.tail_text(got.unwrap()) if isinstance(got, Success) else ()

    # -- the pure steps --------------------------------------------------------------------

    def call(
        self,
        built: Result[HttpRequest, InvalidRequest],
        decode: _Decoder[T],
        timeout: object,
        *,
        kind: OperationKind,
        retry: object,
        max_bytes: int = MAX_OBJECT_BYTES,
        min_read: float | None = None,
    ) -> CallSteps[T]:
        """Build, then send (retrying as the policy decides), then decode."""
        prepared = built.bind(self.prepare)
        if not isinstance(prepared, Success):
            return Failure(prepared.failure())
        request = prepared.unwrap()
        settings = self.settings(request.operation, timeout, retry, max_bytes)
        if not isinstance(settings, Success):
            return Failure(settings.failure())
        chosen_timeout, policy, limit = settings.unwrap()
        if min_read is not None:
            chosen_timeout = chosen_timeout.at_least(min_read)
        sent = yield from self.exchange(request, kind, policy, chosen_timeout, limit)
        if not isinstance(sent, Success):
            return Failure(sent.failure())
        return decode(sent.unwrap(), request.operation)

    def settings(
        self,
        operation: str,
        timeout: object,
        retry: object,
        max_bytes: int,
    ) -> Result[tuple[Timeout, RetryPolicy, int], InvalidRequest]:
        """This call's timeout, retry policy and body cap: the call's own, else the client's."""
        usual = timeout is None and retry is None
        if usual and max_bytes in self._usual_settings:
            return self._usual_settings[max_bytes]
        chosen = self._settings(operation, timeout, retry, max_bytes)
        if usual and isinstance(chosen, Success):
            self._usual_settings[max_bytes] = chosen
        return chosen

    def _settings(
        self,
        operation: str,
        timeout: object,
        retry: object,
        max_bytes: int,
    ) -> Result[_Settings, InvalidRequest]:
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
        if limit is not None and not _whole_and_positive(limit):
            problem = "max_response_bytes must be a whole number of bytes ≥ 1"
            return Failure(InvalidRequest(operation, "max_response_bytes", problem))
        if not _whole_and_positive(self.max_connections):
            # Checked before any transport is made: a pool of 0 would wait out every deadline.
            problem = "max_connections must be a whole number ≥ 1"
            return Failure(InvalidRequest(operation, "max_connections", problem))
        if self._option_problem is not None:
            return Failure(InvalidRequest(operation, *self._option_problem))
        return Success((chosen_timeout.unwrap(), policy.unwrap(), limit or max_bytes))

    def exchange(
        self,
        request: HttpRequest,
        kind: OperationKind,
        policy: RetryPolicy,
        timeout: Timeout,
        max_bytes: int,
    ) -> Steps[HttpRequest, Outcome, Outcome]:
        """Follow :func:`~cdsessions._core.retry.plan`, which makes every decision; this only passes
        its attempts (as the request to send) and waits on to the driver, masks the key out of
        every answer, and tells the observers."""
        key = _key_sent(request)
        if request.timeout != timeout or request.max_response_bytes != max_bytes:
            request = msgspec.structs.replace(
                request, timeout=timeout, max_response_bytes=max_bytes
            )
        # Events, and the redacted copy of the request they carry, are built only when something
        # will read them: an observer of the caller's, or the ``cdsessions`` logger at DEBUG (a
        # dictionary lookup, checked once per call). Retries are logged at INFO, so an attempt
        # that is followed by a wait is described whenever INFO is on.
        watched = self._observed or _logs(logging.DEBUG)
        shown = request.redacted() if watched else None
        steps = plan(
            policy,
            kind,
            timeout,
            clock=self.clock.monotonic,
            wallclock=self.clock.time,
            unit=_jitter_unit,
        )
        step = next(steps)
        while True:
            if isinstance(step, Wait):
                yield step
                step = steps.send(None)
            elif isinstance(step, Attempt):
                attempt = step.attempt
                if shown is not None:
                    observe.notify(self._observers, AttemptStarted(shown, attempt))
                if request.timeout != step.timeout:  # usually the same from one attempt to the next
                    request = msgspec.structs.replace(request, timeout=step.timeout)
                started = self.clock.monotonic()
                outcome = yield request
                assert outcome is not None, "the driver must send back what the transport gave"
                elapsed = self.clock.monotonic() - started
                if isinstance(outcome, Success):
                    # Secrets out before anything reads the answer: the key a proxy echoed,
                    # and a machine's auth_token (no model keeps it, but observers and
                    # errors see the body).
                    answer = outcome.unwrap()
                    scrubbed = without_secret_fields(answer)
                    scrubbed = scrub(scrubbed, key) if key is not None else scrubbed
                    outcome = outcome if scrubbed is answer else Success(scrubbed)
                step = steps.send(outcome)
                retry_in = step.seconds if isinstance(step, Wait) else None
                if shown is None and retry_in is not None and _logs(logging.INFO):
                    shown = request.redacted()
                if shown is not None:
                    finished = AttemptFinished(shown, attempt, outcome, elapsed, retry_in)
                    observe.notify(self._observers, finished)
            else:
                steps.close()
                return step.outcome

    def prepare(self, request: HttpRequest) -> Result[HttpRequest, InvalidRequest]:
        """The request with server and headers, or why it must not be sent."""
        known_url, known_token = self._checked_url, self._checked_token
        if known_url is not None and known_token is not None and self._bearer is known_token:
            return Success(
                builders.authorize(
                    request, base_url=known_url, token=known_token, user_agent=self._user_agent
                )
            )
        base_url = self._base_url.alt(
            lambda error: msgspec.structs.replace(error, operation=request.operation)
        )
        if not isinstance(base_url, Success):
            return Failure(base_url.failure())
        url = base_url.unwrap()
        token = self._token()
        if not isinstance(token, Success):
            problem, why = token.failure()
            return Failure(InvalidRequest(request.operation, "bearer", problem, why))
        if isinstance(self._bearer, str):  # a fixed key: checked once is checked for good
            self._checked_url, self._checked_token = url, self._bearer
        return Success(
            builders.authorize(
                request, base_url=url, token=token.unwrap(), user_agent=self._user_agent
            )
        )

    def _token(self) -> Result[str, tuple[str, InvalidReason | None]]:
        bearer = self._bearer
        if bearer is None:
            bearer = os.environ.get(API_KEY_ENV, "")
        if callable(bearer):
            try:
                bearer = bearer()
            except Exception as error:  # a secret store failing is a value, but its message
                # may quote the secret: keep only the type.
                return Failure((f"the bearer callable raised {type(error).__name__}", None))
        problem = _token_problem(bearer)
        return Failure(problem) if problem else Success(str(bearer))


def _key_sent(request: HttpRequest) -> str | None:
    """The bearer token in ``request``'s ``Authorization`` header, as sent; None without one."""
    for name, value in request.headers:
        if name.lower() == "authorization":
            return value.removeprefix("Bearer ")
    return None


def _logs(level: int) -> bool:
    return observe.LOGGER.isEnabledFor(level)


def _observers_from(observers: Iterable[Observer]) -> Result[tuple[Observer, ...], str]:
    try:
        given = tuple(observers)
    except Exception:  # not iterable, or an iterator that raised: a value, like every problem
        return Failure(f"must be an iterable of functions, not {type(observers).__name__}")
    if not all(callable(observer) for observer in given):
        return Failure("every observer must be a function of one event")
    return Success(given)


def _option_problem(
    observers: Result[tuple[Observer, ...], str], user_agent: object
) -> tuple[str, str] | None:
    """(field, problem) for the first unusable option of those checked once, or None."""
    if not isinstance(observers, Success):
        return "observers", observers.failure()
    # http.client refuses a line break in a header value, and encodes it as Latin-1.
    if not isinstance(user_agent, str) or not user_agent.isascii() or not user_agent.isprintable():
        return "user_agent", "must be printable ASCII text, without line breaks"
    return None


def _whole_and_positive(value: object) -> bool:
    return isinstance(value, int) and not isinstance(value, bool) and value >= 1


def _jitter_unit() -> float:
    """A random number in [0, 1) for retry jitter."""
    # Imported on first use, not with cdsessions: urllib3 imports random anyway once it sends.
    from random import random

    return random()  # noqa: S311 - spreads retries out; nothing secret depends on it


def _decode_with(decoder: msgspec.json.Decoder[T]) -> _Decoder[T]:
    return lambda response, operation: decoding.decode(response, decoder, operation)


# Made once: a call would otherwise build its decoding function anew each time.
_DECODE_SESSION: Final = _decode_with(decoding.SESSION)
_DECODE_DELETED: Final = _decode_with(decoding.DELETED)
_DECODE_CREATED: Final = _decode_with(decoding.CREATED)
_DECODE_EXTENDED: Final = _decode_with(decoding.EXTENDED)
_DECODE_MACHINE: Final = _decode_with(decoding.MACHINE)
_DECODE_MACHINES: Final = _decode_with(decoding.MACHINES)
