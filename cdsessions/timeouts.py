"""How long a call may take: an immutable value, resolved per call."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Final

__all__ = ["CREATE_AND_WAIT_READ", "DEFAULT_TIMEOUT", "Timeout"]


@dataclass(frozen=True, slots=True)
class Timeout:
    """Seconds allowed to connect, to wait between bytes of the answer (``read``), and in all
    for one call across every retry (``total``; None means no overall limit)."""

    connect: float = 10.0
    read: float = 30.0
    total: float | None = None

    @classmethod
    def of(cls, value: Timeout | float | None, default: Timeout | None = None) -> Timeout:
        """A ``Timeout`` from what a caller passed: a plain number sets connect and read alike."""
        if value is None:
            return default if default is not None else cls()
        if isinstance(value, Timeout):
            return value
        return cls(connect=float(value), read=float(value))

    def at_least(self, read: float) -> Timeout:
        """This timeout with ``read`` raised to ``read`` seconds if it is shorter."""
        if self.read >= read:
            return self
        total = None if self.total is None else max(self.total, read)
        return Timeout(self.connect, read, total)


DEFAULT_TIMEOUT: Final = Timeout()

#: ``create`` with ``wait_for_server=True`` can legitimately take 10 minutes before the server
#: answers, so its read timeout is never shorter than 11.
CREATE_AND_WAIT_READ: Final = 11 * 60.0
