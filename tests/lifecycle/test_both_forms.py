"""The session scope and ``wait_until_ready`` behave alike in the blocking and the asyncio
client: ``SystemExit`` in the block cancels, each poll is reported, and a scope whose create
failed is not entered again."""

from __future__ import annotations

import asyncio

import pytest
from returns.result import Failure, Success

from cdsessions import CreateSessionBody, SessionsClient
from cdsessions.async_client import AsyncSessionsClient
from cdsessions.fake import DEFAULT_MACHINE_ID, AsyncFakeTransport, FakeService, FakeTransport

KEY = "fake-key-promises"


BODY = CreateSessionBody(machine_id=DEFAULT_MACHINE_ID)


def _client(service: FakeService) -> SessionsClient:
    return SessionsClient(KEY, transport=FakeTransport(service), retry=False)


def _exit_in_a_blocking_block(client: SessionsClient) -> None:
    with client.session(BODY, wait=False) as started:
        assert isinstance(started, Success)
        raise SystemExit(3)


async def _exit_in_an_async_block(client: AsyncSessionsClient) -> None:
    async with client, client.session(BODY, wait=False) as started:
        assert isinstance(started, Success)
        raise SystemExit(4)


def test_sys_exit_in_the_block_cancels_the_session_in_both_forms() -> None:
    """Found by applying a deliberate bug the older tests let through."""
    # sys.exit() in a script's block is neither an Exception nor a KeyboardInterrupt.
    service = FakeService(ready_after_polls=0)
    with pytest.raises(SystemExit):
        _exit_in_a_blocking_block(_client(service))
    assert service.live_sessions() == ()
    aclient = AsyncSessionsClient(KEY, transport=AsyncFakeTransport(service))
    with pytest.raises(SystemExit):
        asyncio.run(_exit_in_an_async_block(aclient))
    assert service.live_sessions() == ()
    assert [m for m, _ in service.requests_seen].count("DELETE") == 2


def test_both_clients_report_each_poll_of_wait_until_ready() -> None:
    """Found by applying a deliberate bug the older tests let through."""
    service = FakeService(ready_after_polls=0)  # ready on the first poll: no waiting at all
    client = _client(service)
    sid = client.create(BODY).unwrap().session_id
    polls: list[int] = []
    waited = client.wait_until_ready(sid, timeout=30, on_poll=lambda n, _: polls.append(n))
    assert isinstance(waited, Success)
    assert polls == [1]

    async def main() -> None:
        async with AsyncSessionsClient(KEY, transport=AsyncFakeTransport(service)) as aclient:
            ready = await aclient.wait_until_ready(
                sid, timeout=30, on_poll=lambda n, _: polls.append(10 + n)
            )
            assert isinstance(ready, Success)

    asyncio.run(main())
    assert polls == [1, 11]


def test_a_scope_whose_create_failed_is_not_entered_again_in_either_form() -> None:
    """Found by applying a deliberate bug the older tests let through."""
    # The first entry was refused (unknown machine): a second ``with`` must not try again and
    # start a session behind the caller's back, in either form.
    service = FakeService()
    gone = CreateSessionBody(machine_id="fa4e0000-0000-4000-8000-00000000dead")
    scope = _client(service).session(gone, wait=False)
    with scope as started:
        assert isinstance(started, Failure)
    with pytest.raises(RuntimeError, match="only once"), scope:
        pass

    async def main() -> None:
        async with AsyncSessionsClient(KEY, transport=AsyncFakeTransport(service)) as client:
            ascope = client.session(gone, wait=False)
            async with ascope as begun:
                assert isinstance(begun, Failure)
            with pytest.raises(RuntimeError, match="only once"):
                async with ascope:
                    pass

    asyncio.run(main())
    assert [m for m, _ in service.requests_seen].count("POST") == 2
