"""A minimal, fast HTTP/1.1 server on 127.0.0.1 with canned answers, so the clients dominate.

One thread per connection: requests are split on the blank line (plus ``Content-Length`` bytes
of body), routed by method and path, and answered with bytes built once at start-up, handed to
the kernel whole (``sendall``; an asyncio transport copied a 60 MB list into its own buffer
and sent it in small pieces, a third of the list's transfer time). Connections are kept alive.
It understands exactly what the benchmark sends and nothing more; anything else gets a 404.
"""

from __future__ import annotations

import contextlib
import socket
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


class _Connection:
    """Serves one kept-alive connection until the client closes it."""

    def __init__(self, routes: Routes, sock: socket.socket) -> None:
        self._routes = routes
        self._sock = sock

    def run(self) -> None:
        with self._sock, contextlib.suppress(OSError):  # a client gone mid-answer: done
            buffer = b""
            while True:
                data = self._sock.recv(65536)
                if not data:
                    return
                left = self._answer_complete(buffer + data if buffer else data)
                if left is None:
                    return
                buffer = left

    def _answer_complete(self, buffer: bytes) -> bytes | None:
        """Answer every whole request in ``buffer``; what is left over, or None to close."""
        while True:
            end = buffer.find(b"\r\n\r\n")
            if end < 0:
                return buffer
            head = buffer[:end]
            length = _content_length(head)
            if len(buffer) < end + 4 + length:
                return buffer  # the body has not all arrived yet
            request_line = head.split(b"\r\n", 1)[0].split(b" ")
            buffer = buffer[end + 4 + length :]
            if len(request_line) != 3:
                return None
            self._sock.sendall(self._routes.answer(request_line[0], request_line[1]))


def _content_length(head: bytes) -> int:
    for line in head.split(b"\r\n")[1:]:
        name, _, value = line.partition(b":")
        if name.strip().lower() == b"content-length":
            return int(value.strip() or b"0")
    return 0


@contextmanager
def serve(routes: Routes) -> Iterator[str]:
    """Serve ``routes`` on 127.0.0.1 (a free port) from daemon threads; yield the API base URL."""
    listener = socket.create_server((HOST, 0), backlog=128)
    port = listener.getsockname()[1]
    lock = threading.Lock()

    def accept() -> None:
        with contextlib.suppress(OSError):  # the listener closed: the run is over
            while True:
                sock, _ = listener.accept()
                sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
                with lock:
                    routes.connections += 1
                handler = _Connection(routes, sock)
                threading.Thread(target=handler.run, name="bench-connection", daemon=True).start()

    thread = threading.Thread(target=accept, name="bench-server", daemon=True)
    thread.start()
    try:
        yield f"http://{HOST}:{port}/api"
    finally:
        # shutdown() wakes the blocked accept() on Linux; close() alone may not.
        with contextlib.suppress(OSError):
            listener.shutdown(socket.SHUT_RDWR)
        listener.close()
        thread.join(timeout=5)
