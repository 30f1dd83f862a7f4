"""The in-memory fake transports (``cdsessions/fake/transport.py``): they cap bodies as the wire
does."""

from __future__ import annotations

from typing import Final

import msgspec
from returns.result import Failure, Success

from cdsessions import TransportFailed
from cdsessions._core.timeouts import DEFAULT_TIMEOUT
from cdsessions._core.wire import HttpRequest
from cdsessions.fake import FakeService, FakeTransport

KEY: Final = "sk-promises-core-0123456789"


def test_the_fake_transport_caps_bodies_like_the_wire() -> None:
    """Bugs: a body of exactly the cap refused; a too-large answer reported as never sent.

    Found by applying a deliberate bug the older tests let through."""
    fake = FakeService()
    request = HttpRequest(
        "GET",
        "/sessions",
        headers=(("Authorization", f"Bearer {KEY}"),),
        base_url="http://127.0.0.1:9/api",
    )
    size = len(fake.handle(request).body)
    at_cap = FakeTransport(fake).send(
        msgspec.structs.replace(
            request, timeout=DEFAULT_TIMEOUT, max_response_bytes=size, operation="list sessions"
        )
    )
    assert isinstance(at_cap, Success)
    over = FakeTransport(fake).send(
        msgspec.structs.replace(
            request, timeout=DEFAULT_TIMEOUT, max_response_bytes=size - 1, operation="list sessions"
        )
    )
    assert isinstance(over, Failure)
    assert over.failure() == TransportFailed(
        "list sessions", "too_large", f"body exceeds {size - 1} bytes", sent=True
    )
