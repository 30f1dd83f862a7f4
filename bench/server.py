"""A minimal, fast HTTP/1.1 server on 127.0.0.1 with canned answers, so the clients dominate.

One asyncio ``Protocol`` in a background thread: requests are split on the blank line (plus
``Content-Length`` bytes of body), routed by method and path, and answered with bytes built once
at start-up. Connections are kept alive. It understands exactly what the benchmark sends and
nothing more; anything else gets a 404.
"""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from typing import Final
from urllib.parse import parse_qs, urlsplit

from bench import payloads

__all__ = ["Routes", "build_routes", "serve"]

HOST: Final = "127.0.0.1"  # never anything else: the benchmark makes no outside connection
_NOT_FOUND: Final = (
    b"HTTP/1.1 404 Not Found\r\nContent-Type: application/json\r\n"
    b'Content-Length: 22\r\n\r\n{"detail":"Not Found"}'
)


def _response(body: bytes) -> bytes:
    head = (
        "HTTP/1.1 200 OK\r\nContent-Type: application/json\r\n"
        f"Content-Length: {len(body)}\r\nServer: bench\r\n\r\n"
    )
    return head.encode("ascii") + body


class Routes:
    """The canned responses, whole (status line, headers and body), keyed by what selects them."""

    def __init__(self, lists: dict[str, bytes]) -> None:
        self.session = _response(payloads.session_body())
        self.created = _response(payloads.created_body())
        self.lists = {label: _response(body) for label, body in lists.items()}
        #: Connections accepted so far: keep-alive clients open one per thread, not per call.
        self.connections = 0

    def answer(self, method: bytes, target: bytes) -> bytes:
        path = target.split(b"?", 1)[0]
        if method == b"GET" and path.startswith(b"/api/session/"):
            return self.session
        if method == b"POST" and path == b"/api/session":
            return self.created
        if method == b"GET" and path == b"/api/sessions":
            query = parse_qs(urlsplit(target.decode("latin-1")).query)
            label = query.get("machine_id", [""])[0]
            return self.lists.get(label, _NOT_FOUND)
        return _NOT_FOUND


def build_routes(shapes_and_sizes: Sequence[tuple[str, int]]) -> Routes:
    return Routes(
        {
            payloads.list_label(shape, count): payloads.list_body(shape, count)
            for shape, count in shapes_and_sizes
        }
    )


class _Http(asyncio.Protocol):
    def __init__(self, routes: Routes) -> None:
        self._routes = routes
        self._buffer = b""
        self._transport: asyncio.Transport | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        assert isinstance(transport, asyncio.Transport)
        self._transport = transport
        self._routes.connections += 1  # only the server's own thread writes it

    def data_received(self, data: bytes) -> None:
        buffer = self._buffer + data if self._buffer else data
        while True:
            end = buffer.find(b"\r\n\r\n")
            if end < 0:
                break
            head = buffer[:end]
            length = _content_length(head)
            if len(buffer) < end + 4 + length:
                break  # the body has not all arrived yet
            request_line = head.split(b"\r\n", 1)[0].split(b" ")
            buffer = buffer[end + 4 + length :]
            if len(request_line) != 3 or self._transport is None:
                self._close()
                return
            self._transport.write(self._routes.answer(request_line[0], request_line[1]))
        self._buffer = buffer

    def _close(self) -> None:
        if self._transport is not None:
            self._transport.close()


def _content_length(head: bytes) -> int:
    for line in head.split(b"\r\n")[1:]:
        name, _, value = line.partition(b":")
        if name.strip().lower() == b"content-length":
            return int(value.strip() or b"0")
    return 0


@contextmanager
def serve(routes: Routes) -> Iterator[str]:
    """Serve ``routes`` on 127.0.0.1 (a free port) in a daemon thread; yield the API base URL."""
    loop = asyncio.new_event_loop()

    async def start() -> asyncio.Server:
        return await loop.create_server(lambda: _Http(routes), HOST, 0, backlog=128)

    server = loop.run_until_complete(start())
    port = server.sockets[0].getsockname()[1]
    thread = threading.Thread(target=loop.run_forever, name="bench-server", daemon=True)
    thread.start()
    try:
        yield f"http://{HOST}:{port}/api"
    finally:
        loop.call_soon_threadsafe(server.close)
        loop.call_soon_threadsafe(loop.stop)
        thread.join(timeout=5)
        loop.close()
