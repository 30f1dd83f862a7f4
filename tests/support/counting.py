"""The fake ComfyDeploy over HTTP on 127.0.0.1, also counting the TCP connections clients open
and close: how tests see that a pool stays within its size and that closing leaves nothing."""

from __future__ import annotations

import socket
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from cdsessions.fake import FakeService
from cdsessions.fake.server import FakeHTTPServer


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
