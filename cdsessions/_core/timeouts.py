"""How long a call may take: an immutable value, resolved per call."""

from __future__ import annotations

import math
from typing import Final

import msgspec
from returns.result import Failure, Result, Success

__all__ = [
    "CREATE_AND_WAIT_READ",
    "DEFAULT_READY_TIMEOUT",
    "DEFAULT_TIMEOUT",
    "DEFAULT_TOTAL",
    "MAX_SECONDS",
    "Timeout",
    "clamp_seconds",
    "ready_timeout_from",
    "timeout_from",
]

#: The default overall deadline of one call, retries included.
DEFAULT_TOTAL: Final = 120.0

#: The longest wait any timeout may ask for; longer ones (``Timeout(total=1e10)``, a ready
#: timeout of a year) are clamped to it. 20 days: under 2**31 milliseconds (~24.8 days), the
#: longest single wait every platform's timed waits accept, and far under
#: ``threading.TIMEOUT_MAX`` (~49.7 days on Windows), past which a socket or lock timeout raises
#: ``OverflowError`` and a deadline thread dies.
MAX_SECONDS: Final = 20 * 24 * 3600.0


def clamp_seconds(seconds: float) -> float:
    """``seconds`` (a number already known to be ≥ 0 and not NaN) no longer than
    :data:`MAX_SECONDS`. Also turns a huge ``int`` into a float that cannot overflow."""
    return MAX_SECONDS if seconds > MAX_SECONDS else float(seconds)


def _number_text(value: float) -> str:
    # repr() of an int past sys.get_int_max_str_digits() raises; none is a sensible timeout.
    return repr(value) if isinstance(value, float) or abs(value) < 10**18 else "a huge number"


def _seconds_problem(value: object, *, zero_allowed: bool) -> str | None:
    if isinstance(value, bool) or not isinstance(value, int | float):
        return f"must be a number of seconds, not {type(value).__name__}"
    least_ok = value >= 0 if zero_allowed else value > 0
    if not least_ok or not value < math.inf:  # NaN fails both
        least = "≥ 0" if zero_allowed else "> 0"
        return f"must be a finite number of seconds {least}, not {_number_text(value)}"
    return None


class Timeout(msgspec.Struct, frozen=True):
    """Seconds allowed to connect, to wait between bytes of the answer (``read``), and in all
    for one call across every retry, waits between retries included (``total``).

    ``total`` defaults to 120 s so that nothing (a body trickling a byte at a time, a pool with
    no free connection) can hold a call forever; None lifts that limit deliberately."""

    connect: float = 10.0
    read: float = 30.0
    total: float | None = DEFAULT_TOTAL

    def at_least(self, read: float) -> Timeout:
        """This timeout with ``read`` raised to ``read`` seconds if it is shorter."""
        if self.read >= read:
            return self
        # The overall deadline must leave room for connecting and then waiting ``read``.
        total = None if self.total is None else max(self.total, self.connect + read)
        return Timeout(self.connect, read, total).clamped()

    def problem(self) -> str | None:
        """Why this timeout cannot be used (a transport would raise on it), or None. NaN,
        infinity, zero, negative numbers, bools and non-numbers are refused; a very large
        number is not a problem (:func:`timeout_from` clamps it to :data:`MAX_SECONDS`)."""
        for name, value in (("connect", self.connect), ("read", self.read), ("total", self.total)):
            if name == "total" and value is None:
                continue
            problem = _seconds_problem(value, zero_allowed=False)
            if problem:
                return f"{name} {problem}"
        return None

    def clamped(self) -> Timeout:
        """This (usable) timeout with no part longer than :data:`MAX_SECONDS`."""
        total = self.total
        if max(self.connect, self.read, total or 0) <= MAX_SECONDS:
            return self
        return Timeout(
            clamp_seconds(self.connect),
            clamp_seconds(self.read),
            None if total is None else clamp_seconds(total),
        )


def timeout_from(value: object, default: Timeout) -> Result[Timeout, str]:
    """What a caller passed as ``timeout=`` as a usable ``Timeout``, or why it is not one: a
    :class:`Timeout`, a number of seconds for connect and read alike, or None for ``default``.
    Parts longer than :data:`MAX_SECONDS` are clamped to it."""
    if value is None:
        chosen = default
    elif isinstance(value, Timeout):
        chosen = value
    elif isinstance(value, int | float) and not isinstance(value, bool):
        problem = _seconds_problem(value, zero_allowed=False)
        if problem:
            return Failure(problem)
        seconds = clamp_seconds(value)
        # The overall deadline stays the default's, but never cuts one full attempt short.
        total = None if default.total is None else max(default.total, 2.0 * seconds)
        chosen = Timeout(connect=seconds, read=seconds, total=total)
    else:
        return Failure(f"must be a Timeout or a number of seconds, not {type(value).__name__}")
    problem = chosen.problem()
    return Failure(problem) if problem else Success(chosen.clamped())


def ready_timeout_from(value: object) -> Result[float, str]:
    """A ready timeout (seconds to wait for a session's url) as a usable number, or why it is
    not one. 0 means look once; NaN, infinity, negative numbers, bools and non-numbers are
    refused; more than :data:`MAX_SECONDS` is clamped to it."""
    problem = _seconds_problem(value, zero_allowed=True)
    if problem:
        return Failure(problem)
    assert isinstance(value, int | float)  # _seconds_problem said so
    return Success(clamp_seconds(value))


DEFAULT_TIMEOUT: Final = Timeout()

#: ``create`` with ``wait_for_server=True`` can legitimately take 10 minutes before the server
#: answers, so its read timeout is never shorter than 11.
CREATE_AND_WAIT_READ: Final = 11 * 60.0

#: How long to wait for a session's url by default (:mod:`cdsessions.lifecycle`): the live server
#: itself gives up after 10 minutes. Kept here so the clients' signatures can name it without
#: importing the lifecycle module.
DEFAULT_READY_TIMEOUT: Final = 600.0
