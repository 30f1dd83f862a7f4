"""One client shared by many threads, against the fake ComfyDeploy over real HTTP on 127.0.0.1:
every call succeeds, the pool never opens more than ``max_connections`` connections, and closing
the client closes them all."""

from __future__ import annotations

import threading
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import pytest
from returns.result import Result, Success

from cdsessions import ApiError, CreateSessionBody, SessionsClient
from cdsessions.fake import DEFAULT_MACHINE_ID
from tests.support.clocks import wait_until
from tests.support.counting import counting_server

KEY = "sk-concurrency-key"
THREADS = 16
CALLS_PER_THREAD = 200


def hammer(client: SessionsClient, session_id: str, thread: int) -> list[Result[Any, ApiError]]:
    operations: list[Callable[[], Result[Any, ApiError]]] = [
        lambda: client.get(session_id),
        lambda: client.list(),
        lambda: client.list(DEFAULT_MACHINE_ID),
        lambda: client.get(session_id, timeout=5),
    ]
    return [operations[(thread + i) % len(operations)]() for i in range(CALLS_PER_THREAD)]


@pytest.mark.parametrize("max_connections", [4, 10])
def test_sixteen_threads_share_one_client_without_failure_or_extra_connections(
    max_connections: int,
) -> None:
    with counting_server() as server:
        client = SessionsClient(KEY, server=server.base_url, max_connections=max_connections)
        created = client.create(CreateSessionBody(machine_id=DEFAULT_MACHINE_ID, timeout=60))
        assert isinstance(created, Success), created
        session_id = created.unwrap().session_id
        with ThreadPoolExecutor(THREADS) as pool:
            batches = list(pool.map(lambda n: hammer(client, session_id, n), range(THREADS)))
        results = [result for batch in batches for result in batch]
        assert len(results) == THREADS * CALLS_PER_THREAD
        failures = [result for result in results if not isinstance(result, Success)]
        assert failures == []
        assert 1 <= len(server.peers) <= max_connections
        # Sixteen threads contended for the pool, so it was used to the full.
        assert len(server.peers) == max_connections
        client.close()
        assert wait_until(lambda: server.open == 0, 5), f"{server.open} connections left open"
        assert wait_until(lambda: not library_threads(), 2), library_threads()


def library_threads() -> list[str]:
    return [t.name for t in threading.enumerate() if t.name.startswith("cdsessions-deadlines")]
