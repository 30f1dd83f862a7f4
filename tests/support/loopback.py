"""A real HTTP server on 127.0.0.1 whose answers each test scripts.

It records every request exactly as it arrived (the raw request target included), so tests can
assert what went over the wire and how many requests the server saw.
"""

from __future__ import annotations

import socket
import struct
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer


@dataclass(frozen=True)
class Received:
    method: str
    target: str  # the raw request-target, e.g. "/api/session/a%2Fb?x=1"
    headers: dict[str, str]
    body: bytes
    peer: str = ""  # the client's "host:port": one value per TCP connection it used


@dataclass(frozen=True)
class Reply:
    status: int = 200
    body: bytes = b""
    headers: tuple[tuple[str, str], ...] = (("Content-Type", "application/json"),)
    delay: float = 0.0  # seconds to wait before sending anything


@dataclass(frozen=True)
class Raw:
    """Bytes written to the socket as they are, after ``delay``; the connection then closes."""

    data: bytes
    delay: float = 0.0
    # Called with the socket's file after ``data``: for trickling or half-written bodies.
    then: Callable[[object], None] | None = None
    reset: bool = False  # end with a TCP reset (RST) instead of an orderly close


Script = Callable[[Received], Reply | Raw]


def json_reply(status: int, body: str) -> Reply:
    return Reply(status, body.encode())


@dataclass
class LoopbackServer:
    script: Script
    received: list[Received] = field(default_factory=list)
    port: int = 0
    _lock: threading.Lock = field(default_factory=threading.Lock)

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.port}/api"

    def record(self, item: Received) -> None:
        with self._lock:
            self.received.append(item)


def _handler(server: LoopbackServer) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def _handle(self) -> None:
            length = int(self.headers.get("Content-Length") or 0)
            body = self.rfile.read(length) if length else b""
            peer = "{}:{}".format(*self.client_address[:2])
            received = Received(self.command, self.path, dict(self.headers.items()), body, peer)
            server.record(received)
            reply = server.script(received)
            time.sleep(reply.delay)
            if isinstance(reply, Raw):
                self.wfile.write(reply.data)
                self.wfile.flush()
                if reply.then is not None:
                    reply.then(self.wfile)
                if reply.reset:  # linger 0: closing now sends RST, not FIN
                    linger = struct.pack("ii", 1, 0)
                    self.connection.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, linger)
                    self.rfile.close()  # the files hold the socket open; close them first
                    self.wfile.close()
                    self.connection.close()
                self.close_connection = True
                return
            self.send_response(reply.status)
            for name, value in reply.headers:
                self.send_header(name, value)
            self.send_header("Content-Length", str(len(reply.body)))
            self.end_headers()
            self.wfile.write(reply.body)

        do_GET = do_POST = do_DELETE = do_PUT = _handle

        def log_message(self, format: str, *args: object) -> None:  # quiet test output
            return

    return Handler


class _QuietServer(ThreadingHTTPServer):
    daemon_threads = True

    def handle_error(self, request: object, client_address: object) -> None:
        # Clients in fault tests hang up on purpose; a broken pipe here is expected.
        return


@contextmanager
def serve(script: Script) -> Iterator[LoopbackServer]:
    """Run a scripted server on a free port of 127.0.0.1 for the duration of the block."""
    state = LoopbackServer(script)
    httpd = _QuietServer(("127.0.0.1", 0), _handler(state))
    state.port = httpd.server_address[1]
    thread = threading.Thread(target=httpd.serve_forever, kwargs={"poll_interval": 0.05})
    thread.start()
    try:
        yield state
    finally:
        httpd.shutdown()
        httpd.server_close()
        thread.join(timeout=5)
