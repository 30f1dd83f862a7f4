"""pytest fixtures for testing code that uses cdsessions, against the in-memory fake.

pytest loads this module through the ``pytest11`` entry point as soon as cdsessions is
installed; nothing else imports it, so the library never needs pytest. Loading it costs only
the ``cdsessions`` package itself: the fake, the async client and the HTTP server are imported
by the first test that asks for them.

Fixtures (each fresh for every test):

* ``cdsessions_clock``: a :class:`~cdsessions.fake.ManualClock` starting at the real present,
  the time of the fake and of the client fixtures: their retries and ready waits move it
  instead of sleeping, and
  ``cdsessions_clock.advance(minutes=16)`` makes sessions expire.
* ``cdsessions_fake``: a :class:`~cdsessions.fake.FakeService` on ``cdsessions_clock`` with its
  default machine (``cdsessions_fake.DEFAULT_MACHINE_ID``); script it with ``answer_next``,
  ``fail_next``, ``never_ready`` and ``end_session``. Override it in your ``conftest.py`` to
  configure the fake (more machines, ``seed_shapes=True``; pass ``clock=cdsessions_clock``
  to keep waits free); the fixtures below use yours.
* ``cdsessions_client``: a :class:`~cdsessions.SessionsClient` bound to ``cdsessions_fake`` in
  memory (API key ``"test-key"``, ``clock=cdsessions_clock``), closed after the test.
* ``cdsessions_async_client``: the same as an :class:`~cdsessions.AsyncSessionsClient`; use it
  inside your own event loop (``asyncio.run``, pytest-asyncio, anyio). Closed after the test.
* ``cdsessions_fake_url``: ``cdsessions_fake`` served over real HTTP on 127.0.0.1 (a free
  port); the value is its base URL, for ``server=`` or ``cdsessions --server``.

With pytest-recording installed, every cassette it records has the keys its requests carried
masked out of everything written, a response that echoes the ``Authorization`` header included
(see :mod:`cdsessions.transports._recording`).
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import TYPE_CHECKING, Any, Final

import pytest

if TYPE_CHECKING:
    from cdsessions.async_client import AsyncSessionsClient
    from cdsessions.client import SessionsClient
    from cdsessions.fake.clock import ManualClock
    from cdsessions.fake.service import FakeService

__all__ = [
    "TEST_API_KEY",
    "cdsessions_async_client",
    "cdsessions_client",
    "cdsessions_clock",
    "cdsessions_fake",
    "cdsessions_fake_url",
]

#: The API key the client fixtures send; the fake accepts any non-empty key.
TEST_API_KEY: Final = "test-key"


@pytest.hookimpl(optionalhook=True)  # pytest-recording's hook: absent without it
def pytest_recording_configure(config: pytest.Config, vcr: Any) -> None:
    """Mask the keys out of what pytest-recording writes: ``filter_headers`` drops only the
    request's header, while a server that echoes it puts the key in the recorded response."""
    from cdsessions.transports._recording import mask_keys_when_recording

    mask_keys_when_recording(vcr)


@pytest.fixture
def cdsessions_clock() -> ManualClock:
    """The test's time: the fake's and the client fixtures' clock; it moves only when a
    client waits on it or the test calls ``advance``."""
    from datetime import UTC, datetime

    from cdsessions.fake.clock import ManualClock

    # Starting from the real present: a program on the real time (the CLI, a client without
    # the clock, on cdsessions_fake_url) then sees sessions of the right age, not years old.
    return ManualClock(datetime.now(UTC))


@pytest.fixture
def cdsessions_fake(cdsessions_clock: ManualClock) -> FakeService:
    """A fresh in-memory fake ComfyDeploy (no sockets, no account, no bills)."""
    from cdsessions.fake.service import FakeService

    return FakeService(clock=cdsessions_clock)


@pytest.fixture
def cdsessions_client(
    cdsessions_fake: FakeService, cdsessions_clock: ManualClock
) -> Iterator[SessionsClient]:
    """A ``SessionsClient`` talking to ``cdsessions_fake`` in memory, waiting on
    ``cdsessions_clock``; closed after the test."""
    from cdsessions.client import SessionsClient
    from cdsessions.fake.transport import FakeTransport

    transport = FakeTransport(cdsessions_fake)
    with SessionsClient(TEST_API_KEY, transport=transport, clock=cdsessions_clock) as client:
        yield client


@pytest.fixture
def cdsessions_async_client(
    cdsessions_fake: FakeService, cdsessions_clock: ManualClock
) -> Iterator[AsyncSessionsClient]:
    """An ``AsyncSessionsClient`` talking to ``cdsessions_fake`` in memory; closed after the test.

    A plain fixture, so it works with any async test runner (or none: ``asyncio.run`` in a
    sync test). Closing waits for cancels the client still runs in the background."""
    import asyncio

    from cdsessions.async_client import AsyncSessionsClient
    from cdsessions.fake.transport import AsyncFakeTransport

    transport = AsyncFakeTransport(cdsessions_fake)
    client = AsyncSessionsClient(TEST_API_KEY, transport=transport, clock=cdsessions_clock)
    yield client
    asyncio.run(client.aclose())


@pytest.fixture
def cdsessions_fake_url(cdsessions_fake: FakeService) -> Iterator[str]:
    """``cdsessions_fake`` served over HTTP on 127.0.0.1; the value is the base URL
    (``http://127.0.0.1:PORT/api``). The server stops after the test and closes the
    connections it kept alive, so none of them reaches this test's fake from the next test."""
    from cdsessions.fake.server import serve_in_thread

    with serve_in_thread(cdsessions_fake) as base_url:
        yield base_url
