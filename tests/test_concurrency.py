"""One client shared by many threads, against the fake ComfyDeploy over real HTTP on 127.0.0.1:
every call succeeds, the pool never opens more than ``max_connections`` connections, and closing
the client closes them all."""

from __future__ import annotations

import socket
import threading
import time
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from typing import Any

import pytest
from returns.result import Result, Success

from cdsessions import ApiError, CreateSessionBody, SessionsClient
from cdsessions.fake import DEFAULT_MACHINE_ID, FakeService
from cdsessions.fake.server import FakeHTTPServer

KEY = "sk-concurrency-key"
THREADS = 16
CALLS_PER_THREAD = 200


class CountingServer(FakeHTTPServer):
    """The fake server, also counting the TCP connections clients open and close."""

    def __init__(self) -> None:
        self.peers: set[tuple[str, int]] = set()
        self.open = 0
        self._count_lock = threading.Lock()
        super().__init__(("127.0.0.1", 0), FakeService(), None)

    def verify_request(self, request: Any, client_address: Any) -> bool:
        with self._count_lock:  # called once per accepted connection
            self.peers.add(client_address)
            self.open += 1
        return True

    def shutdown_request(self, request: socket.socket | tuple[bytes, socket.socket]) -> None:
        with self._count_lock:  # called once the connection's handler is done with it
            self.open -= 1
        super().shutdown_request(request)


@contextmanager
def counting_server() -> Iterator[CountingServer]:
    server = CountingServer()
    thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05})
    thread.start()
    try:
        yield server
    finally:
        server.shutdown()
        server.server_close()
        thread.join(timeout=5)


def hammer(client: SessionsClient, session_id: str, thread: int) -> list[Result[Any, ApiError]]:
    operations: list[Callable[[], Result[Any, ApiError]]] = [
        lambda: client.get(session_id),
        lambda: client.list(),
        lambda: client.list(DEFAULT_MACHINE_ID),
        lambda: client.get(session_id, timeout=5),
    ]
    return [operations[(thread + i) % len(operations)]() for i in range(CALLS_PER_THREAD)]


def wait_until(condition: Callable[[], bool], seconds: float) -> bool:
    ends = time.monotonic() + seconds
    while time.monotonic() < ends:
        if condition():
            return True
        time.sleep(0.02)
    return condition()


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
