"""Transports: the only parts of cdsessions that do I/O.

A transport turns one :class:`~cdsessions._core.wire.HttpRequest` into a response or a
``TransportFailed`` (see :mod:`cdsessions.transports.base`). ``Urllib3Transport`` does real
HTTP; ``CassetteTransport`` replays a recorded VCR cassette; ``ThreadedTransport`` and
``InlineTransport`` adapt a blocking transport for asyncio. The fake service's transports are in
:mod:`cdsessions.fake`. Each is imported on first use, so ``import cdsessions`` pays for neither
urllib3 nor PyYAML until they are needed.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from cdsessions.transports.base import (
    AsyncStreamingTransport,
    AsyncTransport,
    StreamingTransport,
    Transport,
)

if TYPE_CHECKING:
    from cdsessions.transports._cassette import CassetteError, CassetteTransport
    from cdsessions.transports._inline import AsyncCassetteTransport, InlineTransport
    from cdsessions.transports._threaded import ThreadedTransport
    from cdsessions.transports._urllib3 import Urllib3Transport

__all__ = [
    "AsyncCassetteTransport",
    "AsyncStreamingTransport",
    "AsyncTransport",
    "CassetteError",
    "CassetteTransport",
    "InlineTransport",
    "StreamingTransport",
    "ThreadedTransport",
    "Transport",
    "Urllib3Transport",
]

# Where each lazily loaded name lives.
_HOMES: dict[str, str] = {
    "AsyncCassetteTransport": "cdsessions.transports._inline",
    "InlineTransport": "cdsessions.transports._inline",
    "CassetteError": "cdsessions.transports._cassette",
    "CassetteTransport": "cdsessions.transports._cassette",
    "ThreadedTransport": "cdsessions.transports._threaded",
    "Urllib3Transport": "cdsessions.transports._urllib3",
}


def __getattr__(name: str) -> Any:
    if name in _HOMES:
        from importlib import import_module

        return getattr(import_module(_HOMES[name]), name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
