"""How long a call may take: an immutable value, resolved per call."""

from __future__ import annotations

from typing import Final

import msgspec
from returns.result import Failure, Result, Success

__all__ = [
    "CREATE_AND_WAIT_READ",
    "DEFAULT_READY_TIMEOUT",
    "DEFAULT_TIMEOUT",
    "DEFAULT_TOTAL",
    "Timeout",
    "timeout_from",
]

#: The default overall deadline of one call, retries included.
DEFAULT_TOTAL: Final = 120.0


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
        return Timeout(self.connect, read, total)

    def problem(self) -> str | None:
        """Why this timeout cannot be used (a transport would raise on it), or None."""
        for name, value in (("connect", self.connect), ("read", self.read), ("total", self.total)):
            if name == "total" and value is None:
                continue
            if isinstance(value, bool) or not isinstance(value, int | float):
                return f"{name} must be a number of seconds, not {type(value).__name__}"
            if not 0 < value < float("inf"):  # also rejects NaN
                return f"{name} must be a positive, finite number of seconds, not {value!r}"
        return None


def timeout_from(value: object, default: Timeout) -> Result[Timeout, str]:
    """What a caller passed as ``timeout=`` as a usable ``Timeout``, or why it is not one: a
    :class:`Timeout`, a number of seconds for connect and read alike, or None for ``default``."""
    if value is None:
        chosen = default
    elif isinstance(value, Timeout):
        chosen = value
    elif isinstance(value, int | float) and not isinstance(value, bool):
        # The overall deadline stays the default's, but never cuts one full attempt short.
        total = None if default.total is None else max(default.total, 2.0 * value)
        chosen = Timeout(connect=float(value), read=float(value), total=total)
    else:
        return Failure(f"must be a Timeout or a number of seconds, not {type(value).__name__}")
    problem = chosen.problem()
    return Failure(problem) if problem else Success(chosen)


DEFAULT_TIMEOUT: Final = Timeout()

#: ``create`` with ``wait_for_server=True`` can legitimately take 10 minutes before the server
#: answers, so its read timeout is never shorter than 11.
CREATE_AND_WAIT_READ: Final = 11 * 60.0

#: How long to wait for a session's url by default (:mod:`cdsessions.lifecycle`): the live server
#: itself gives up after 10 minutes. Kept here so the clients' signatures can name it without
#: importing the lifecycle module.
DEFAULT_READY_TIMEOUT: Final = 600.0
