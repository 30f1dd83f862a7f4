"""Transports: the only parts of cdsessions that do I/O.

``Urllib3Transport`` is imported lazily, so ``import cdsessions`` does not pay for urllib3
until a real HTTP call is made.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from cdsessions.transports.async_base import AsyncTransport
from cdsessions.transports.base import Transport

if TYPE_CHECKING:
    from cdsessions.transports.cassette import CassetteError, CassetteTransport
    from cdsessions.transports.fake import FakeTransport
    from cdsessions.transports.inline import (
        AsyncCassetteTransport,
        AsyncFakeTransport,
        InlineTransport,
    )
    from cdsessions.transports.threaded import ThreadedTransport
    from cdsessions.transports.urllib3_transport import Urllib3Transport

__all__ = [
    "AsyncCassetteTransport",
    "AsyncFakeTransport",
    "AsyncTransport",
    "CassetteError",
    "CassetteTransport",
    "FakeTransport",
    "InlineTransport",
    "ThreadedTransport",
    "Transport",
    "Urllib3Transport",
]


def __getattr__(name: str) -> Any:
    if name == "ThreadedTransport":
        from cdsessions.transports.threaded import ThreadedTransport

        return ThreadedTransport
    if name in ("InlineTransport", "AsyncFakeTransport", "AsyncCassetteTransport"):
        from cdsessions.transports import inline

        return getattr(inline, name)
    if name == "Urllib3Transport":
        from cdsessions.transports.urllib3_transport import Urllib3Transport

        return Urllib3Transport
    if name == "FakeTransport":
        from cdsessions.transports.fake import FakeTransport

        return FakeTransport
    if name in ("CassetteTransport", "CassetteError"):
        from cdsessions.transports import cassette

        return getattr(cassette, name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
