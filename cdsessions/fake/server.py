"""The fake ComfyDeploy served over real HTTP on the loopback interface.

The same :class:`~cdsessions.fake.service.FakeService` that ``FakeTransport`` calls in memory,
behind a stdlib ``http.server``: for integration tests that need a real socket (and for the
``cdsessions fake-server`` and ``cdsessions demo`` commands). The API lives under ``/api``, like
the ``"local"`` server (``http://localhost:3011/api``).

In a test::

    from cdsessions import SessionsClient
    from cdsessions.fake.server import serve_in_thread

    with serve_in_thread() as base_url:  # a free port on 127.0.0.1
        with SessionsClient("any-key", server=base_url) as client:
            ...

It binds loopback addresses only (the rule of :func:`cdsessions._core.servers.is_loopback_host`,
which the client also uses to decide where the API key may go over plain http): the fake
accepts any key, so it has no business on a network. IPv6 loopback (``::1``) binds as IPv6.
Each request can be logged as one line (method, path, status, milliseconds): never headers,
bodies, query strings or session urls. The log function is called by one thread at a time, with
the path escaped and clipped, so concurrent requests never share or split a line. Closing the
server (``server_close``, the end of :func:`serve_in_thread`) also closes the kept-alive
connections it accepted, so a client's pool cannot reach a fake that was stopped (issue #18).

Scripted faults (:meth:`FakeService.fail_next`) happen for real: a ``timeout`` holds the
connection open without answering until the client gives up, a ``reset`` (and ``no_answer``,
after the fake acted on the request) resets the socket. A process that serves the fake
(``cdsessions fake-server``) is scripted over HTTP through the control routes under
``/_fake``, outside the API's ``/api`` (so they can never shadow an API route), loopback-only
like the server itself:

* ``POST /_fake/script`` with ``{"match": "create", "status": 500, "body": ..., "headers":
  {...}, "times": 1}`` or ``{"match": "get", "fault": "timeout"}``: :meth:`answer_next` /
  :meth:`fail_next`;
* ``POST /_fake/never-ready``: :meth:`FakeService.never_ready`;
* ``POST /_fake/sessions/{id}/end``: :meth:`FakeService.end_session` (404 if none);
* ``POST /_fake/clock`` with ``{"advance": SECONDS}``: :meth:`FakeService.advance_clock`
  (409 unless the fake runs on a :class:`~cdsessions.fake.ManualClock`, as
  ``cdsessions fake-server --manual-clock`` does).
"""

from __future__ import annotations

import ipaddress
import signal
import socket
import struct
import sys
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager, suppress
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from types import FrameType
from typing import Any, Final, TypeAlias, cast
from urllib.parse import parse_qsl, unquote

import msgspec

from cdsessions._core.servers import API_PREFIX, LOCAL_PORT, is_loopback_host
from cdsessions._core.text import clip
from cdsessions._core.wire import HttpRequest, HttpResponse
from cdsessions.fake._responses import detail_response, json_response
from cdsessions.fake.comfyui import COMFY_PREFIX
from cdsessions.fake.script import Fault, parse_control
from cdsessions.fake.service import FakeService

__all__ = ["FakeHTTPServer", "make_server", "run", "serve_in_thread"]

#: Request bodies are tiny JSON objects; anything larger is refused unread.
MAX_REQUEST_BYTES: Final = 1024 * 1024
#: How much of a request's path a log line shows.
LOGGED_PATH_CHARS: Final = 200
#: Where the routes that script the fake live (outside ``/api``).
CONTROL_PREFIX: Final = "/_fake"
#: How long a scripted timeout holds a connection whose client never gives up.
STALL_LIMIT: Final = 300.0

Log = Callable[[str], None]
_Request: TypeAlias = socket.socket | tuple[bytes, socket.socket]


def _bind_address(host: str) -> tuple[socket.AddressFamily, str]:
    """The socket family and address to bind a loopback ``host`` with: an IPv6 literal as IPv6
    (brackets removed), but an IPv4-mapped one as the IPv4 address it is; a name as IPv4."""
    bare = host.strip("[]")  # a loopback host (checked), so only an IPv6 literal has brackets
    try:
        address = ipaddress.ip_address(bare)
    except ValueError:
        return socket.AF_INET, host  # localhost
    if isinstance(address, ipaddress.IPv6Address):
        if address.ipv4_mapped is not None:
            return socket.AF_INET, str(address.ipv4_mapped)
        return socket.AF_INET6, str(address)
    return socket.AF_INET, str(address)


def _json_reply(status: int, body: bytes) -> HttpResponse:
    return HttpResponse(status, (("content-type", "application/json"),), body)


class FakeHTTPServer(ThreadingHTTPServer):
    """A threading HTTP server holding the :class:`FakeService` it serves. It binds loopback
    addresses only: any other host is a ``ValueError``, raised before a socket exists."""

    daemon_threads = True
    allow_reuse_address = True
    # Many clients connect at once in load tests; the default backlog of 5 would drop SYNs.
    request_queue_size = 128

    def __init__(self, address: tuple[str, int], service: FakeService, log: Log | None) -> None:
        host, port = address
        if not is_loopback_host(host):  # checked here, so no way around it binds elsewhere
            raise ValueError(f"the fake server only binds loopback addresses, not {host!r}")
        self.service = service
        self._log = log
        self._log_lock = threading.Lock()
        # Connections accepted and not yet finished, and those inside a request right now: at
        # close the idle ones are shut at once, the busy ones after their answer.
        self._guard = threading.Lock()
        self._open: set[socket.socket] = set()
        self._busy: set[socket.socket] = set()
        self._closing = False
        # The class default is IPv4 only, which cannot bind "::1" (issue #18).
        self.address_family, bind_host = _bind_address(host)
        super().__init__((bind_host, port), _Handler)
        if service.serves_comfyui and service.comfy_base_url is None:  # served here
            service.comfy_base_url = self.base_url.removesuffix(API_PREFIX)

    def log_request(self, method: str, path: str, status: int | str, milliseconds: float) -> None:
        """One whole line per request. ``print`` writes the text and its newline separately,
        so without the lock two threads' lines could run together."""
        if self._log is None:
            return
        # Path only: the query may carry anything, and headers carry the key. Escaped, since a
        # raw request line may hold terminal escapes.
        line = f"{method} {clip(path, LOGGED_PATH_CHARS)} {status} {milliseconds:.1f}ms"
        with self._log_lock:
            self._log(line)

    # -- the connections it accepted (socketserver calls these) --------------------------------

    def process_request(self, request: _Request, client_address: object) -> None:
        with self._guard:
            closing = self._closing
            if not closing and isinstance(request, socket.socket):
                self._open.add(request)
        if closing:  # accepted in the moment the server was closing: not served
            super().shutdown_request(request)
            return
        super().process_request(request, client_address)

    def shutdown_request(self, request: _Request) -> None:
        with self._guard:
            if isinstance(request, socket.socket):
                self._open.discard(request)
        super().shutdown_request(request)

    def begin_answer(self, connection: socket.socket) -> None:
        with self._guard:
            self._busy.add(connection)

    def end_answer(self, connection: socket.socket) -> bool:
        """Whether the connection must close now (the server is closing)."""
        with self._guard:
            self._busy.discard(connection)
            return self._closing

    def server_close(self) -> None:
        """Stop listening, and close every kept-alive connection: idle ones now (their thread
        then reads end of file and ends), busy ones once their answer is sent."""
        super().server_close()
        with self._guard:
            self._closing = True
            idle = self._open - self._busy
        for connection in idle:
            with suppress(OSError):  # already closed by its peer
                connection.shutdown(socket.SHUT_RDWR)

    def handle_error(self, request: _Request, client_address: object) -> None:
        """A client that went away mid-answer is not the fake's error: no traceback for it."""
        if isinstance(sys.exc_info()[1], ConnectionError | TimeoutError):
            return
        super().handle_error(request, client_address)

    @property
    def base_url(self) -> str:
        host = str(self.server_address[0])
        port = self.server_address[1]
        shown = f"[{host}]" if ":" in host else host
        return f"http://{shown}:{port}{API_PREFIX}"


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"  # keep-alive, as urllib3 pools expect
    # http.server's default, "HTTP/0.9", answers a malformed or version-less request line with a
    # bare body and no status line; the live server's answer to those is a real HTTP response.
    default_request_version = "HTTP/1.0"
    server_version = "cdsessions-fake"
    sys_version = ""
    timeout = 30  # an idle keep-alive connection does not hold a thread forever

    @property
    def fake(self) -> FakeHTTPServer:
        # Only FakeHTTPServer creates this handler. (Re-annotating ``server`` instead narrows a
        # mutable base attribute, which pyright rejects.)
        return cast("FakeHTTPServer", self.server)

    def setup(self) -> None:
        super().setup()
        # Headers and body go out as two writes; with Nagle's algorithm the second waits for
        # the client's delayed ACK, adding ~40 ms to every request.
        self.connection.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)

    def _handle(self) -> None:
        started = time.perf_counter()
        self.fake.begin_answer(self.connection)
        path, _, query = self.path.partition("?")
        try:
            response = self._answer(path, query)
            # Logged before a byte of the answer is sent: a client that has its answer can
            # stop the server at once, and the line must already be out.
            elapsed = (time.perf_counter() - started) * 1000
            outcome = (
                f"{response.kind} (scripted)" if isinstance(response, Fault) else response.status
            )
            self.fake.log_request(self.command, path, outcome, elapsed)
            if isinstance(response, Fault):
                self._fail(response)
                return
            self.send_response(response.status)
            for name, value in response.headers:
                self.send_header(name, value)
            self.send_header("Content-Length", str(len(response.body)))
            self.end_headers()
            if self.command != "HEAD":
                self.wfile.write(response.body)
        finally:
            if self.fake.end_answer(self.connection):
                self.close_connection = True

    def _fail(self, fault: Fault) -> None:
        """Fail on the wire as scripted: never answer (until the client leaves), or reset."""
        self.close_connection = True
        if fault.kind == "timeout":
            self.connection.settimeout(STALL_LIMIT)
            try:
                while self.connection.recv(65536):  # until the client closes: b""
                    pass
            except OSError:
                pass
            return
        # Linger on, with a zero timeout: closing then sends RST instead of FIN. Closed here,
        # since socketserver would shut the socket down (a FIN) before closing it.
        self.connection.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
        self.connection.close()

    def _control(self, path: str, body: bytes | None) -> HttpResponse:
        """The routes that script the fake (see the module's docs)."""
        service = self.fake.service
        if self.command != "POST":
            return _json_reply(405, b'{"detail":"Method Not Allowed"}')
        route = path[len(CONTROL_PREFIX) :]
        if route == "/never-ready":
            service.never_ready()
            return _json_reply(200, b'{"never_ready":true}')
        if route == "/clock":
            return _advanced(service, body or b"")
        if route == "/script":
            rule = parse_control(body or b"")
            if isinstance(rule, str):
                return detail_response(400, rule)
            try:
                service.script.add(*rule)
            except ValueError as error:
                return detail_response(400, str(error))
            return json_response(200, {"pending": service.script.pending})
        parts = route.split("/")  # ["", "sessions", id, "end"]
        if len(parts) == 4 and parts[1] == "sessions" and parts[3] == "end":
            if service.end_session(unquote(parts[2])):
                return _json_reply(200, b'{"ended":true}')
            return _json_reply(404, b'{"detail":"no such live session"}')
        return _json_reply(404, b'{"detail":"Not Found"}')

    def _answer(self, path: str, query: str) -> HttpResponse | Fault:
        length_text = self.headers.get("Content-Length")
        try:
            length = int(length_text) if length_text else 0
        except ValueError:
            self.close_connection = True
            return _json_reply(400, b'{"detail":"Invalid Content-Length"}')
        if length > MAX_REQUEST_BYTES or length < 0:
            self.close_connection = True
            return _json_reply(413, b'{"detail":"Request body too large"}')
        body = self.rfile.read(length) if length else None
        if path.startswith(CONTROL_PREFIX + "/"):
            return self._control(path, body)
        if path.startswith(COMFY_PREFIX + "/"):
            return self._comfyui(path, query, body)
        if path != API_PREFIX and not path.startswith(API_PREFIX + "/"):
            return _json_reply(404, b'{"detail":"Not Found"}')
        request = HttpRequest(
            method=self.command,
            path=path[len(API_PREFIX) :] or "/",
            query=tuple(parse_qsl(query, keep_blank_values=True)),
            headers=tuple(self.headers.items()),
            body=body,
            base_url=self.fake.base_url,
        )
        return self.fake.service.respond(request)

    def _comfyui(self, path: str, query: str, body: bytes | None) -> HttpResponse:
        """A session's ComfyUI: ``/comfy/<its tunnel host>/<ComfyUI route>``."""
        host, _, route = path[len(COMFY_PREFIX) + 1 :].partition("/")
        comfy = self.fake.service.comfyui_at(host)
        if comfy is None:
            return _json_reply(404, b'{"detail":"Not Found"}')
        target = f"/{route}?{query}" if query else f"/{route}"
        content_type = self.headers.get("Content-Type", "")
        status, headers, answer = comfy.handle(self.command, target, body or b"", content_type)
        return HttpResponse(status, headers, answer)

    do_GET = do_POST = do_DELETE = do_PUT = do_PATCH = do_HEAD = _handle

    def __getattr__(self, name: str) -> Any:
        # Any other method (OPTIONS, TRACE, or one nobody defined) reaches the service, which
        # answers as the live server does (405 with Allow), not http.server's 501 HTML page.
        if name.startswith("do_"):
            return self._handle
        raise AttributeError(name)

    def log_message(self, format: str, *args: object) -> None:
        # http.server's own lines would print the request line (query included); ours suffice.
        return


class _Advance(msgspec.Struct, forbid_unknown_fields=True):
    advance: float


def _advanced(service: FakeService, body: bytes) -> HttpResponse:
    """``POST /_fake/clock``: move a manual clock on by ``advance`` seconds (finite, >= 0)."""
    try:
        seconds = msgspec.json.decode(body, type=_Advance).advance
    except msgspec.DecodeError as error:
        return detail_response(400, f'expected {{"advance": SECONDS}}: {clip(str(error), 200)}')
    if not 0 <= seconds < float("inf"):
        return detail_response(400, "advance must be a finite number of seconds, at least 0")
    now = service.advance_clock(seconds)
    if now is None:
        return detail_response(
            409, "this fake runs on the real time (start it with --manual-clock)"
        )
    return json_response(200, {"now": now.isoformat().replace("+00:00", "Z")})


def make_server(
    service: FakeService | None = None,
    host: str = "127.0.0.1",
    port: int = LOCAL_PORT,
    *,
    log: Log | None = None,
) -> FakeHTTPServer:
    """A bound (not yet serving) server. Raises ``ValueError`` for a non-loopback ``host`` and
    ``OSError`` when the port cannot be bound."""
    return FakeHTTPServer((host, port), service if service is not None else FakeService(), log)


@contextmanager
def serve_in_thread(
    service: FakeService | None = None,
    host: str = "127.0.0.1",
    port: int = 0,
    *,
    log: Log | None = None,
) -> Iterator[str]:
    """Serve ``service`` (a new default :class:`FakeService` if None) from a background thread
    for the duration of the block; yields the base URL, e.g. ``http://127.0.0.1:41234/api``.

    ``port=0`` picks a free port. The server is thread-safe (one thread per connection, the
    service serialises state changes). On exit it stops accepting, closes the listening socket
    and every kept-alive connection (one in the middle of a request after its answer), and
    joins its thread: no client can reach this fake afterwards.
    """
    server = make_server(service, host, port, log=log)
    thread = threading.Thread(
        target=server.serve_forever,
        kwargs={"poll_interval": 0.05},
        name="cdsessions-fake-server",
        daemon=True,
    )
    thread.start()
    try:
        yield server.base_url
    finally:
        server.shutdown()
        server.server_close()
        thread.join(timeout=5)


_SignalHandler: TypeAlias = Callable[[int, FrameType | None], Any] | int | None


def run(server: FakeHTTPServer) -> None:
    """Serve until Ctrl-C or SIGTERM, then close the socket and return normally.

    The signal handlers only ask ``serve_forever`` to stop (from a thread: ``shutdown`` waits
    for the loop), never raise into it: an exception raised by a handler can land between a
    lock's acquire and its ``with`` block, leave the lock held, and hang the close. A Ctrl-C
    the parent ignores (a background job) stays ignored."""
    stopping: list[threading.Thread] = []

    def stop(signum: int, frame: FrameType | None) -> None:
        if not stopping:  # a second signal needs no second stop
            stopping.append(threading.Thread(target=server.shutdown, daemon=True))
            stopping[0].start()

    previous: dict[signal.Signals, _SignalHandler] = {}
    if threading.current_thread() is threading.main_thread():
        for number in (signal.SIGTERM, signal.SIGINT):
            if signal.getsignal(number) is not signal.SIG_IGN:
                previous[number] = signal.signal(number, stop)
    try:
        server.serve_forever(poll_interval=0.2)
    finally:
        server.server_close()
        for number, handler in previous.items():
            signal.signal(number, handler)
