"""Session lifecycle helpers: wait until a session is ready, and never leave one running.

A session bills per second until it times out or is cancelled, so the helpers here are built
around one promise: **a session started by** :class:`SessionScope` **is cancelled when the block
ends**, whether it ends normally, by an exception or by Ctrl-C (``KeyboardInterrupt``)::

    with client.session(CreateSessionBody(machine_id=...)) as started:
        match started:
            case Success(session):
                use(session.url)
            case Failure(error):
                print(error)  # nothing is left running

What the context manager yields is a ``Result``, like every other call in cdsessions: an
anticipated failure (bad key, unknown machine, the session never became ready) comes back as a
``Failure`` value instead of an exception, so the ``with`` body decides what to do. When the
failure happens after the session was created (it vanished or was not ready in time), the
session is cancelled at once, before the body runs.

A cancel answered with 404, or with 400 ``"Modal function id not found"`` (the live server's
answer when a session is cancelled in its first moments; it is closed anyway), counts as closed.
A cancel that fails for a transient reason (connection, 5xx) is tried again, since cancelling
twice is harmless; if it still fails, the failure is kept on :attr:`SessionScope.closed` and
logged at ERROR level with the session id, so a running session is never silently forgotten.

One gap no client can close: if ``create`` itself is interrupted after the request went out,
the server may have started a session whose id never arrived. ``cdsessions list`` finds it.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from types import TracebackType
from typing import Final, Protocol

import msgspec
from returns.result import Failure, Result, Success

from cdsessions.builders import describe_id
from cdsessions.errors import ApiError, HttpError, TransportFailed
from cdsessions.models import (
    CreateSessionBody,
    CreateSessionResponse,
    DeleteSessionResponse,
    Session,
)
from cdsessions.retry import Wait
from cdsessions.steps import Steps, drive
from cdsessions.timeouts import DEFAULT_READY_TIMEOUT

__all__ = [
    "DEFAULT_READY_TIMEOUT",
    "Backoff",
    "Cancel",
    "NotReady",
    "OpenSession",
    "Poll",
    "ScopeState",
    "SessionGone",
    "SessionOps",
    "SessionScope",
    "cancel_steps",
    "cancel_until_closed",
    "counts_as_closed",
    "ready_steps",
    "report_unclosed",
    "wait_until_ready",
]

logger = logging.getLogger("cdsessions.lifecycle")

_EARLY_CANCEL: Final = "Modal function id not found"

Sleep = Callable[[float], None]
Clock = Callable[[], float]
#: Called after every poll with (polls so far, seconds waited so far).
OnPoll = Callable[[int, float], None]


class SessionGone(ApiError, frozen=True):
    """While waiting, the server stopped knowing the session (404): it was cancelled, timed
    out or failed to start. Nothing is running."""

    session_id: str

    def reason(self) -> str:
        return "the session ended before it became ready (404); nothing is running"


class NotReady(ApiError, frozen=True):
    """The deadline passed with the session still starting. It may still be running (and
    billing): cancel it unless you mean to wait more."""

    session_id: str
    waited: float
    polls: int

    def reason(self) -> str:
        return (
            f"not ready after {self.waited:.0f} s ({self.polls} polls); the session may still "
            "be starting and billing: cancel it if you no longer need it"
        )


class Backoff(msgspec.Struct, frozen=True):
    """Poll delays: ``first`` seconds, growing by ``factor``, never above ``cap``."""

    first: float = 1.0
    factor: float = 1.5
    cap: float = 4.0

    def delay(self, attempt: int) -> float:
        """The pause before poll number ``attempt + 2`` (the first poll is immediate)."""
        return float(min(self.cap, self.first * self.factor ** min(attempt, 64)))


_DEFAULT_BACKOFF: Final = Backoff()


class SessionOps(Protocol):
    """The three calls the helpers need; :class:`~cdsessions.SessionsClient` has them."""

    def create(self, body: CreateSessionBody) -> Result[CreateSessionResponse, ApiError]: ...

    def get(self, session_id: str) -> Result[Session, ApiError]: ...

    def cancel(self, session_id: str) -> Result[DeleteSessionResponse, ApiError]: ...


class Poll(msgspec.Struct, frozen=True):
    """Ask the server about ``session_id`` (a ``get``); send its ``Result`` back."""

    session_id: str


class Cancel(msgspec.Struct, frozen=True):
    """Cancel ``session_id``; send the ``Result`` back."""

    session_id: str


def ready_steps(
    session_id: str,
    *,
    timeout: float = DEFAULT_READY_TIMEOUT,
    backoff: Backoff = _DEFAULT_BACKOFF,
    on_poll: OnPoll | None = None,
    clock: Clock = time.monotonic,
) -> Steps[Poll, Result[Session, ApiError], Result[Session, ApiError]]:
    """The steps of :func:`wait_until_ready`, for any driver (see :mod:`cdsessions.steps`)."""
    operation = f"wait for session {describe_id(session_id)}"
    started = clock()
    deadline = started + timeout
    polls = 0
    while True:
        answer = yield Poll(session_id)
        assert answer is not None, "the driver must send back the answer to each poll"
        polls += 1
        if not isinstance(answer, Success):
            error = answer.failure()
            if isinstance(error, HttpError) and error.status == 404:
                return Failure(SessionGone(operation, session_id))
            return Failure(error)
        session = answer.unwrap()
        now = clock()
        if on_poll is not None:
            on_poll(polls, now - started)
        if session.url is not None:
            return Success(session)
        if now >= deadline:
            return Failure(NotReady(operation, session_id, now - started, polls))
        yield Wait(min(backoff.delay(polls - 1), deadline - now), "not ready yet")


def wait_until_ready(
    get: Callable[[str], Result[Session, ApiError]],
    session_id: str,
    *,
    timeout: float = DEFAULT_READY_TIMEOUT,
    backoff: Backoff = _DEFAULT_BACKOFF,
    on_poll: OnPoll | None = None,
    sleep: Sleep = time.sleep,
    clock: Clock = time.monotonic,
) -> Result[Session, ApiError]:
    """Poll ``get(session_id)`` until the session has a ``url``.

    The endings are distinct values: ``Success(session)`` once ready; ``Failure(SessionGone)``
    when get answers 404; ``Failure(NotReady)`` when ``timeout`` seconds pass first (the session
    is left as it is); any other failure of ``get`` is returned as it came (retrying transient
    ones is the client's retry policy's job). The first poll is immediate.
    """
    steps = ready_steps(session_id, timeout=timeout, backoff=backoff, on_poll=on_poll, clock=clock)
    return drive(steps, lambda poll: get(poll.session_id), sleep)


def counts_as_closed(error: ApiError) -> bool:
    """A cancel failure that means the session is closed anyway: 404 (already gone), or the
    live server's 400 for a session cancelled in its first moments."""
    if not isinstance(error, HttpError):
        return False
    return error.status == 404 or (error.status == 400 and error.detail == _EARLY_CANCEL)


def _worth_retrying(error: ApiError) -> bool:
    # Cancelling is idempotent (a repeat gets 404, which counts as closed), so any failure
    # that might be transient is worth another try.
    if isinstance(error, TransportFailed):
        return True
    return isinstance(error, HttpError) and (error.status >= 500 or error.status == 429)


#: How often, and how patiently, a scope's cancel is tried.
CANCEL_ATTEMPTS: Final = 3
CANCEL_BACKOFF: Final = Backoff(first=0.5, factor=2.0, cap=2.0)


def cancel_steps(
    session_id: str,
    *,
    attempts: int = CANCEL_ATTEMPTS,
    backoff: Backoff = CANCEL_BACKOFF,
) -> Steps[Cancel, Result[DeleteSessionResponse, ApiError], Result[str, ApiError]]:
    """The steps of :func:`cancel_until_closed`, for any driver (see :mod:`cdsessions.steps`)."""
    error: ApiError | None = None
    for attempt in range(max(1, attempts)):
        if attempt:
            yield Wait(backoff.delay(attempt - 1), "cancel failed")
        answer = yield Cancel(session_id)
        assert answer is not None, "the driver must send back the answer to each cancel"
        if isinstance(answer, Success):
            return Success("cancelled")
        error = answer.failure()
        if counts_as_closed(error):
            return Success("already closed")
        if not _worth_retrying(error):
            break
    assert error is not None  # the loop ran at least once and did not return
    return Failure(error)


def cancel_until_closed(
    cancel: Callable[[str], Result[DeleteSessionResponse, ApiError]],
    session_id: str,
    *,
    attempts: int = CANCEL_ATTEMPTS,
    backoff: Backoff = CANCEL_BACKOFF,
    sleep: Sleep = time.sleep,
) -> Result[str, ApiError]:
    """Cancel until the server confirms the session is closed.

    ``Success("cancelled")`` or ``Success("already closed")`` (see :func:`counts_as_closed`);
    otherwise the last failure, after up to ``attempts`` tries for transient ones.
    """
    steps = cancel_steps(session_id, attempts=attempts, backoff=backoff)
    return drive(steps, lambda order: cancel(order.session_id), sleep)


def report_unclosed(session_id: str, closed: Result[str, ApiError] | None) -> None:
    """Log, at ERROR, a session a scope could not confirm closed: it may still be billing."""
    if closed is not None and not isinstance(closed, Success):
        logger.error(
            "session %s may still be running: %s; cancel it with `cdsessions cancel %s`",
            session_id,
            closed.failure(),
            session_id,
        )


class OpenSession(msgspec.Struct, frozen=True):
    """A session the scope started. ``url`` is None unless the scope waited (or the create
    used ``wait_for_server``); ``details`` is the last ``get`` answer when it waited."""

    session_id: str
    url: str | None
    details: Session | None = None

    @property
    def ready(self) -> bool:
        return self.url is not None

    def __repr__(self) -> str:
        shown = "None" if self.url is None else "'<redacted url>'"
        return f"OpenSession(session_id={self.session_id!r}, url={shown})"


class ScopeState:
    """What a session scope knows, in either form (this one, and the asyncio
    :class:`~cdsessions.async_client.AsyncSessionScope`): what to start, whether and how long to
    wait for it, and once known the session's id and how its cancel ended."""

    def __init__(
        self,
        body: CreateSessionBody,
        *,
        wait: bool = True,
        ready_timeout: float = DEFAULT_READY_TIMEOUT,
        on_poll: OnPoll | None = None,
    ) -> None:
        self._body = body
        self._wait = wait
        self._ready_timeout = ready_timeout
        self._on_poll = on_poll
        self.session_id: str | None = None
        self.closed: Result[str, ApiError] | None = None

    def _created(
        self, created: Result[CreateSessionResponse, ApiError]
    ) -> Result[OpenSession, ApiError] | None:
        """Take in the create's answer. Returns what the block gets when there is nothing to
        wait for (the create failed, ``wait=False``, or the url came with it), else None."""
        if not isinstance(created, Success):
            return Failure(created.failure())
        response = created.unwrap()
        self.session_id = response.session_id
        if not self._wait or response.url is not None:
            return Success(OpenSession(response.session_id, response.url))
        return None

    def _ready(self, waited: Result[Session, ApiError]) -> Result[OpenSession, ApiError]:
        """What the block gets once waiting ended (a failure was cancelled by the caller)."""
        session_id = self.session_id
        assert session_id is not None  # only called once a session exists
        return waited.map(lambda session: OpenSession(session_id, session.url, session))

    def __repr__(self) -> str:
        return f"{type(self).__name__}(session_id={self.session_id!r}, closed={self.closed!r})"


class SessionScope(ScopeState):
    """Creates a session on entry and always cancels it on exit.

    ``with scope as started`` gives ``Result[OpenSession, ApiError]``. With ``wait`` (the
    default) entry polls until the url is set, up to ``ready_timeout`` seconds. After the block,
    :attr:`closed` holds how the cancel ended (None when nothing was created), and
    :attr:`session_id` the id of the session that was started, if any.
    """

    def __init__(
        self,
        ops: SessionOps,
        body: CreateSessionBody,
        *,
        wait: bool = True,
        ready_timeout: float = DEFAULT_READY_TIMEOUT,
        on_poll: OnPoll | None = None,
        backoff: Backoff = _DEFAULT_BACKOFF,
        sleep: Sleep = time.sleep,
        clock: Clock = time.monotonic,
    ) -> None:
        super().__init__(body, wait=wait, ready_timeout=ready_timeout, on_poll=on_poll)
        self._ops = ops
        self._backoff = backoff
        self._sleep = sleep
        self._clock = clock

    def __enter__(self) -> Result[OpenSession, ApiError]:
        if self.session_id is not None:
            raise RuntimeError("a SessionScope can be entered only once")
        early = self._created(self._ops.create(self._body))
        if early is not None:
            return early
        assert self.session_id is not None  # _created recorded it
        try:
            waited = wait_until_ready(
                self._ops.get,
                self.session_id,
                timeout=self._ready_timeout,
                backoff=self._backoff,
                on_poll=self._on_poll,
                sleep=self._sleep,
                clock=self._clock,
            )
        except BaseException:
            # Ctrl-C while waiting: __exit__ never runs when __enter__ raises, so close here.
            self._close()
            raise
        if not isinstance(waited, Success):
            self._close()  # the body cannot use it: stop the billing now
        return self._ready(waited)

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        if self.session_id is not None and self.closed is None:
            self._close()

    def _close(self) -> None:
        session_id = self.session_id
        assert session_id is not None  # only called once a session exists
        try:
            self.closed = cancel_until_closed(self._ops.cancel, session_id, sleep=self._sleep)
        except KeyboardInterrupt:
            # A second Ctrl-C during the cancel: one last plain try, then let it through.
            self.closed = cancel_until_closed(self._ops.cancel, session_id, attempts=1)
            raise
        finally:
            report_unclosed(session_id, self.closed)
