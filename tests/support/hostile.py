"""A hostile server for tests: a raw socket on 127.0.0.1 that writes exactly the bytes a test
scripts, per connection, plain or over TLS with a certificate from a test CA made here.

Unlike ``tests/support/loopback.py`` (an ``http.server`` that speaks correct HTTP), nothing here is
HTTP unless the script writes it: a script gets each accepted connection as a :class:`Peer` and
may read requests, write any bytes (over TLS, or raw onto the TCP socket beneath it), trickle
them, stall, reset the connection or close it. The server counts the connections it accepted
and records every request it read, so tests can assert how many requests arrived.

    with hostile(answer(b"HTTP/1.1 200 OK\\r\\nContent-Length: 2\\r\\n\\r\\n[]")) as server:
        SessionsClient("key", server=server.base_url).list()
        assert len(server.requests) == 1

Over TLS (``hostile(script, tls=True)``) the server's certificate is issued by :func:`authority`
for the :data:`CERTIFIED_NAMES`; give the client :func:`ca_file` as ``ca_certs``.
"""

from __future__ import annotations

import atexit
import functools
import os
import socket
import ssl
import struct
import tempfile
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager, suppress
from dataclasses import dataclass, field

import trustme

__all__ = [
    "CERTIFIED_NAMES",
    "HostileServer",
    "Peer",
    "Request",
    "Script",
    "answer",
    "authority",
    "ca_file",
    "hostile",
    "response",
]

#: The names the server's certificate is valid for. ``hostile.test`` and its subdomains never
#: resolve by themselves: tests map them to 127.0.0.1 with a stand-in resolver.
CERTIFIED_NAMES = ("127.0.0.1", "localhost", "hostile.test", "*.hostile.test")
#: How long a server-side read or handshake waits before giving up on a silent client.
_PATIENCE = 10.0
_MAX_HEAD = 64 * 1024


@dataclass(frozen=True)
class Request:
    """A request as the server read it off the wire."""

    method: str
    target: str
    headers: tuple[tuple[str, str], ...]
    body: bytes
    connection: int  # which accepted connection it came on (0, 1, …)

    def header(self, name: str) -> str | None:
        wanted = name.lower()
        return next((v for k, v in self.headers if k.lower() == wanted), None)


class Peer:
    """One accepted connection, as a script drives it. Every method swallows the client going
    away (a test's client hangs up on purpose); :attr:`gone` says whether it did."""

    def __init__(self, server: HostileServer, sock: socket.socket, index: int) -> None:
        self.server = server
        self.sock = sock
        self.index = index
        self.gone = False
        self._buffer = b""

    def read_request(self) -> Request | None:
        """The next request on this connection (recorded on the server), or None if the client
        closed it, sent something that is not a request head, or stayed silent too long."""
        try:
            while b"\r\n\r\n" not in self._buffer:
                if len(self._buffer) > _MAX_HEAD:
                    return None
                chunk = self.sock.recv(65536)
                if not chunk:
                    self.gone = True
                    return None
                self._buffer += chunk
            head, _, rest = self._buffer.partition(b"\r\n\r\n")
            lines = head.decode("latin-1").split("\r\n")
            method, target, _version = lines[0].split(" ", 2)
            headers = tuple(
                (name.strip(), value.strip())
                for name, _, value in (line.partition(":") for line in lines[1:])
            )
            length = int(next((v for k, v in headers if k.lower() == "content-length"), "0"))
            while len(rest) < length:
                chunk = self.sock.recv(65536)
                if not chunk:
                    self.gone = True
                    return None
                rest += chunk
        except (OSError, ValueError):
            self.gone = True
            return None
        body, self._buffer = rest[:length], rest[length:]
        request = Request(method, target, headers, body, self.index)
        self.server.record(request)
        return request

    def write(self, data: bytes) -> None:
        """``data`` as it is (encrypted, on a TLS server)."""
        try:
            self.sock.sendall(data)
        except OSError:
            self.gone = True

    def write_raw(self, data: bytes) -> None:
        """``data`` straight onto the TCP socket, beneath TLS: to a TLS client, a bad record."""
        try:
            os.write(self.sock.fileno(), data)
        except OSError:
            self.gone = True

    def trickle(self, data: bytes, *, every: float = 0.05, lasting: float = 10.0) -> None:
        """Write ``data`` one byte every ``every`` seconds (cycling), for ``lasting`` seconds
        or until the client goes away or the server stops."""
        ends = time.monotonic() + lasting
        position = 0
        while not self.gone and time.monotonic() < ends and not self.server.stopping.is_set():
            self.write(data[position : position + 1])
            position = (position + 1) % len(data)
            self.server.stopping.wait(every)

    def stall(self, seconds: float = 10.0) -> None:
        """Say nothing for ``seconds`` (or until the server stops)."""
        self.server.stopping.wait(seconds)

    def reset(self) -> None:
        """End the connection with a TCP reset (RST) instead of an orderly close."""
        with suppress(OSError):
            self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
        self.close()

    def close(self) -> None:
        with suppress(OSError):
            self.sock.close()


Script = Callable[[Peer], None]


@dataclass
class HostileServer:
    script: Script
    tls: ssl.SSLContext | None = None
    #: False: a TLS server leaves the handshake to the script (which sees the raw TCP socket).
    handshake: bool = True
    port: int = 0
    requests: list[Request] = field(default_factory=list)
    connections: int = 0
    #: TLS handshakes that failed (the client refused the certificate, or spoke plain text).
    failed_handshakes: int = 0
    stopping: threading.Event = field(default_factory=threading.Event)
    _lock: threading.Lock = field(default_factory=threading.Lock)
    _peers: list[socket.socket] = field(default_factory=list)
    _threads: list[threading.Thread] = field(default_factory=list)

    @property
    def base_url(self) -> str:
        scheme = "https" if self.tls is not None else "http"
        return f"{scheme}://127.0.0.1:{self.port}/api"

    def record(self, request: Request) -> None:
        with self._lock:
            self.requests.append(request)

    def targets(self) -> list[str]:
        with self._lock:
            return [request.target for request in self.requests]

    def serve(self, listener: socket.socket) -> None:
        listener.settimeout(0.05)  # so that stopping is noticed
        while not self.stopping.is_set():
            try:
                sock, _address = listener.accept()
            except (TimeoutError, OSError):
                continue
            with self._lock:
                index = self.connections
                self.connections += 1
                self._peers.append(sock)
            thread = threading.Thread(target=self._run, args=(sock, index), daemon=True)
            self._threads.append(thread)
            thread.start()

    def _run(self, sock: socket.socket, index: int) -> None:
        sock.settimeout(_PATIENCE)
        try:
            if self.tls is not None and self.handshake:
                try:
                    sock = self.tls.wrap_socket(sock, server_side=True)
                except (OSError, ValueError):
                    with self._lock:
                        self.failed_handshakes += 1
                    return
                with self._lock:
                    self._peers.append(sock)
            self.script(Peer(self, sock, index))
        except Exception:  # a script's failure must not print from a server thread
            return
        finally:
            with suppress(OSError):
                sock.close()

    def stop(self) -> None:
        self.stopping.set()
        with self._lock:
            peers = list(self._peers)
        for sock in peers:
            with suppress(OSError):
                sock.shutdown(socket.SHUT_RDWR)
        for thread in self._threads:
            thread.join(timeout=5)


@contextmanager
def hostile(
    script: Script, *, tls: bool = False, handshake: bool = True
) -> Iterator[HostileServer]:
    """Run ``script`` for every connection to a fresh port of 127.0.0.1, for the block."""
    server = HostileServer(script, _server_context() if tls else None, handshake)
    listener = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    listener.bind(("127.0.0.1", 0))
    listener.listen(64)
    server.port = listener.getsockname()[1]
    acceptor = threading.Thread(target=server.serve, args=(listener,), daemon=True)
    acceptor.start()
    try:
        yield server
    finally:
        server.stop()
        acceptor.join(timeout=5)
        listener.close()


# -- scripts ------------------------------------------------------------------------------


def response(status: str = "200 OK", *headers: str, body: bytes = b"") -> bytes:
    """A response's bytes: the status line, ``headers`` as given (no Content-Length is added)
    and ``body``. The head is Latin-1 when it can be (as a client decodes it), else UTF-8."""
    head = f"HTTP/1.1 {status}\r\n" + "".join(f"{line}\r\n" for line in headers) + "\r\n"
    try:
        return head.encode("latin-1") + body  # how http.client decodes a head: "²" is b"\xb2"
    except UnicodeEncodeError:
        return head.encode() + body  # other scripts' characters go out as UTF-8


def answer(
    data: bytes | Callable[[Request], bytes],
    *,
    then: Callable[[Peer], None] | None = None,
    keep_alive: bool = False,
) -> Script:
    """Read a request, write ``data`` (or what it gives for the request), run ``then`` (trickle,
    stall, reset…) and close; with ``keep_alive``, answer every request on the connection."""

    def script(peer: Peer) -> None:
        while (request := peer.read_request()) is not None:
            peer.write(data(request) if callable(data) else data)
            if then is not None:
                then(peer)
            if not keep_alive:
                break
        peer.close()

    return script


# -- TLS ------------------------------------------------------------------------------------


@functools.cache
def authority() -> trustme.CA:
    """The test CA (made once per test run): it issues the hostile server's certificates."""
    return trustme.CA()


@functools.cache
def _server_context() -> ssl.SSLContext:
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    authority().issue_cert(*CERTIFIED_NAMES).configure_cert(context)
    return context


@functools.cache
def ca_file() -> str:
    """A PEM file holding the test CA's certificate (removed when the test run ends)."""
    handle, path = tempfile.mkstemp(prefix="cdsessions-test-ca-", suffix=".pem")
    with os.fdopen(handle, "wb") as file:
        file.write(authority().cert_pem.bytes())
    atexit.register(_remove, path)
    return path


def _remove(path: str) -> None:
    with suppress(OSError):
        os.remove(path)
