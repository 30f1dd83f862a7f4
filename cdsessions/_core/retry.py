"""When to try a request again, and how long to wait first: pure functions of immutable values.

A retried ``create`` can start a second paid GPU session, so the rule that matters most here is
that a request which may have reached the server is only repeated when repeating it is harmless
(get, list, cancel) or when the caller has said, with ``allow_duplicates=True``, that a duplicate
is acceptable. A request that certainly never left (``TransportFailed.sent is False``) and a 429
(the server refused it without acting) are safe to repeat for every operation.

Nothing here sleeps, reads a clock or draws a random number: :func:`plan` is a generator the
client drives (with ``time.sleep`` or ``asyncio.sleep``), and the clock and the source of jitter
are passed in, so tests fix them and every client shares exactly the same decisions.
"""

from __future__ import annotations

import math
import re
from collections.abc import Callable, Generator
from datetime import UTC
from typing import Final, Literal, TypeAlias

import msgspec
from returns.result import Failure, Result, Success

from cdsessions._core.timeouts import Timeout, clamp_seconds
from cdsessions._core.wire import HttpResponse
from cdsessions.errors import TransportFailed

__all__ = [
    "DEFAULT_RETRY",
    "NO_RETRY",
    "Attempt",
    "Done",
    "OperationKind",
    "Outcome",
    "Retry",
    "RetryPolicy",
    "Step",
    "Stop",
    "Wait",
    "attempt_timeout",
    "backoff_delay",
    "decide",
    "parse_retry_after",
    "plan",
    "policy_from",
    "retry_reason",
]

#: What a call does, which decides what may be repeated.
OperationKind: TypeAlias = Literal["get", "list", "cancel", "create", "extend"]
#: What one attempt gave: a response (any status), or why none arrived.
Outcome: TypeAlias = Result[HttpResponse, TransportFailed]

#: Repeating these changes nothing on the server (a second cancel is at worst a 404).
_IDEMPOTENT: Final[frozenset[str]] = frozenset({"get", "list", "cancel"})
#: These only read, so even a 500 (which may be a transient fault) is worth another try.
_READ_ONLY: Final[frozenset[str]] = frozenset({"get", "list"})


class RetryPolicy(msgspec.Struct, frozen=True):
    """How often and how patiently to repeat a failed call.

    Attempt ``n`` (1-based) that fails is followed, if the failure is retryable, by a wait of
    ``min(max_delay, backoff * multiplier ** (n - 1))`` seconds shortened by a random fraction
    of up to ``jitter`` (so ``jitter=0`` waits exactly that long, ``jitter=1`` anywhere between
    0 and that long). A ``Retry-After`` header replaces the computed wait; one longer than
    ``max_retry_after`` stops instead. No wait ever runs past the call's overall deadline
    (``Timeout.total``): a wait that would is not started.

    ``statuses`` are retried for every operation that may be repeated, ``read_statuses`` only
    for get and list. ``create`` and ``extend`` are repeated only when the request never reached
    the server or was refused with 429, unless ``allow_duplicates=True`` accepts that a retry
    may start a second paid session or extend a session twice.
    """

    max_attempts: int = 3
    backoff: float = 0.5
    multiplier: float = 2.0
    max_delay: float = 8.0
    jitter: float = 0.5
    max_retry_after: float = 60.0
    statuses: frozenset[int] = frozenset({429, 502, 503, 504})
    read_statuses: frozenset[int] = frozenset({500})
    allow_duplicates: bool = False

    def problem(self) -> str | None:
        """Why this policy cannot be used, or None."""
        if isinstance(self.max_attempts, bool) or not isinstance(self.max_attempts, int):
            return "max_attempts must be a whole number"
        if self.max_attempts < 1:
            return "max_attempts must be at least 1 (1 means no retries)"
        for name in ("backoff", "multiplier", "max_delay", "jitter", "max_retry_after"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int | float):
                return f"{name} must be a number"
            if not 0 <= value < math.inf:  # also rejects NaN
                return f"{name} must be a finite number ≥ 0, not {value!r}"
        if self.multiplier < 1:
            return "multiplier must be at least 1"
        if self.jitter > 1:
            return "jitter must be between 0 and 1"
        for name in ("statuses", "read_statuses"):
            codes = getattr(self, name)
            if not isinstance(codes, frozenset) or not all(
                isinstance(code, int) and 100 <= code <= 599 for code in codes
            ):
                return f"{name} must be a frozenset of HTTP status codes"
        if not isinstance(self.allow_duplicates, bool):
            return "allow_duplicates must be True or False"
        return None


DEFAULT_RETRY: Final = RetryPolicy()
NO_RETRY: Final = RetryPolicy(max_attempts=1)


def policy_from(value: object, default: RetryPolicy) -> Result[RetryPolicy, str]:
    """What a caller passed as ``retry=``: a policy, False for none, True for the defaults,
    None for ``default``; or why it is not usable."""
    if value is None:
        chosen = default
    elif value is False:
        chosen = NO_RETRY
    elif value is True:
        chosen = DEFAULT_RETRY
    elif isinstance(value, RetryPolicy):
        chosen = value
    else:
        return Failure(f"must be a RetryPolicy, True or False, not {type(value).__name__}")
    problem = chosen.problem()
    return Failure(problem) if problem else Success(chosen)


def backoff_delay(policy: RetryPolicy, attempt: int, unit: float) -> float:
    """Seconds to wait after failed attempt ``attempt`` (1-based). ``unit`` is a random number in
    [0, 1) that picks the jitter; the result lies in ``[d * (1 - jitter), d]`` where ``d`` is
    the capped exponential delay."""
    if policy.backoff == 0 or policy.max_delay == 0:
        return 0.0
    # Compared in log space: multiplier ** attempt overflows a float long before attempts run out.
    exponent = max(attempt - 1, 0)
    log_delay = math.log(policy.backoff) + exponent * math.log(policy.multiplier)
    full = policy.max_delay if log_delay >= math.log(policy.max_delay) else math.exp(log_delay)
    # No sleep may be longer than the platform can wait (time.sleep(1e10) raises).
    return clamp_seconds(full) * (1.0 - policy.jitter * min(max(unit, 0.0), 1.0))


# Compiled (and then cached by ``re``) on first use: most responses carry no Retry-After.
# ASCII digits only: ``\d`` alone also matches "١٢٠", which no HTTP peer may send.
_SECONDS: Final = r"(?a)\s*(\d{1,10}(?:\.\d{1,6})?)\s*"


def parse_retry_after(value: str | None, now: float) -> float | None:
    """Seconds to wait from a ``Retry-After`` header: delta-seconds (``"120"``) or an HTTP-date
    (``"Wed, 21 Oct 2015 07:28:00 GMT"``) measured from ``now`` (Unix time). A date in the
    past means 0. None when the header is absent or unreadable (the computed backoff applies)."""
    if value is None:
        return None
    seconds = re.fullmatch(_SECONDS, value)
    if seconds:
        return float(seconds.group(1))
    # Imported here: email.utils (and the socket, calendar and locale it pulls in) is ~8 ms of
    # every `import cdsessions`, for a header form the server has never sent.
    from email.utils import parsedate_to_datetime

    try:
        when = parsedate_to_datetime(value)
    except (TypeError, ValueError, IndexError, OverflowError):
        return None
    if when.tzinfo is None:  # "-0000" parses as naive; an HTTP-date is always GMT
        when = when.replace(tzinfo=UTC)
    return max(0.0, when.timestamp() - now)


def retry_reason(policy: RetryPolicy, kind: OperationKind, outcome: Outcome) -> str | None:
    """Why ``outcome`` may be retried for an operation of ``kind`` (``"503"``,
    ``"timeout (not sent)"``…), or None when it must not be."""
    repeatable = kind in _IDEMPOTENT or policy.allow_duplicates
    if isinstance(outcome, Success):
        status = outcome.unwrap().status
        if status == 429:  # refused before anything was done: safe for every operation
            return "429" if 429 in policy.statuses else None
        wanted = policy.statuses | (policy.read_statuses if kind in _READ_ONLY else frozenset())
        return str(status) if repeatable and status in wanted else None
    failure = outcome.failure()
    # The same request gets the same answer (and no cassette stays missing).
    if failure.kind in ("too_large", "unmatched", "no_cassette"):
        return None
    if not failure.sent:
        return f"{failure.kind} (not sent)"
    return failure.kind if repeatable else None


class Retry(msgspec.Struct, frozen=True):
    """Wait ``delay`` seconds, then try again."""

    delay: float
    reason: str


class Stop(msgspec.Struct, frozen=True):
    """Do not try again; ``reason`` says why (for logs)."""

    reason: str


def decide(
    policy: RetryPolicy,
    kind: OperationKind,
    attempt: int,
    outcome: Outcome,
    *,
    remaining: float | None,
    now: float,
    unit: float,
) -> Retry | Stop:
    """After attempt ``attempt`` (1-based) gave ``outcome``: try again, and after how long?

    ``remaining`` is what is left of the call's overall deadline (None: no deadline), ``now``
    the Unix time (for an HTTP-date ``Retry-After``) and ``unit`` a random number in [0, 1)."""
    if isinstance(outcome, Success) and 200 <= outcome.unwrap().status < 300:
        return Stop("succeeded")
    reason = retry_reason(policy, kind, outcome)
    if reason is None:
        return Stop("not retryable")
    if attempt >= policy.max_attempts:
        return Stop(f"{reason}; no attempts left ({policy.max_attempts} made)")
    asked = None
    if isinstance(outcome, Success):
        asked = parse_retry_after(outcome.unwrap().header("retry-after"), now)
    if asked is not None and asked > policy.max_retry_after:
        return Stop(f"{reason}; Retry-After {asked:g}s is over {policy.max_retry_after:g}s")
    delay = clamp_seconds(asked) if asked is not None else backoff_delay(policy, attempt, unit)
    if remaining is not None and delay >= remaining:
        return Stop(f"{reason}; waiting {delay:.2f}s would pass the overall deadline")
    return Retry(delay, reason)


def attempt_timeout(timeout: Timeout, remaining: float | None) -> Timeout:
    """The timeout for one attempt: no part of it may outlast the call's overall deadline."""
    if remaining is None or (
        remaining == timeout.total and timeout.connect <= remaining and timeout.read <= remaining
    ):
        return timeout  # the first attempt, usually: nothing to shorten, nothing to build
    return Timeout(min(timeout.connect, remaining), min(timeout.read, remaining), remaining)


class Attempt(msgspec.Struct, frozen=True):
    """Make attempt number ``attempt`` within ``timeout``, and send its :data:`Outcome` back.
    (Making it, by sending the request, is the caller's business: the plan only counts.)"""

    attempt: int
    timeout: Timeout


class Wait(msgspec.Struct, frozen=True):
    """Sleep ``seconds`` before the next attempt (send None back). ``reason`` is for logs."""

    seconds: float
    reason: str


class Done(msgspec.Struct, frozen=True):
    """The call is over: ``outcome`` is what the last attempt gave."""

    outcome: Outcome
    attempts: int
    reason: str


Step: TypeAlias = Attempt | Wait | Done


def plan(
    policy: RetryPolicy,
    kind: OperationKind,
    timeout: Timeout,
    *,
    clock: Callable[[], float],
    wallclock: Callable[[], float],
    unit: Callable[[], float],
) -> Generator[Step, Outcome | None, None]:
    """The steps of one call, as a generator a client drives until it yields :class:`Done`.

    ``clock`` is monotonic seconds (the overall deadline ``timeout.total`` counts from the first
    step), ``wallclock`` Unix time and ``unit`` the jitter source. The driver performs each
    :class:`Attempt` and sends the outcome back, and sleeps through each :class:`Wait`."""
    deadline = None if timeout.total is None else clock() + timeout.total
    attempt = 0
    remaining = timeout.total
    while True:
        attempt += 1
        outcome = yield Attempt(attempt, attempt_timeout(timeout, remaining))
        assert outcome is not None, "the driver must send back the outcome of each Attempt"
        if isinstance(outcome, Success) and 200 <= outcome.unwrap().status < 300:
            # What decide() answers first, without reading the clocks or drawing a random
            # number: the usual call ends here.
            yield Done(outcome, attempt, "succeeded")
            return
        remaining = None if deadline is None else deadline - clock()
        decision = decide(
            policy, kind, attempt, outcome, remaining=remaining, now=wallclock(), unit=unit()
        )
        if isinstance(decision, Stop):
            yield Done(outcome, attempt, decision.reason)
            return
        yield Wait(
            decision.delay, f"{decision.reason}; attempt {attempt + 1} of {policy.max_attempts}"
        )
        remaining = None if deadline is None else deadline - clock()
        if remaining is not None and remaining <= 0:  # the sleep overran: keep what we have
            yield Done(outcome, attempt, "the overall deadline passed while waiting")
            return
