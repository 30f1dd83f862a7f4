"""Real HTTP through one shared urllib3 ``PoolManager``.

This module and :mod:`~cdsessions.transports._urllib3_internals` (every urllib3 internal relied
on, in one place) are the only ones that import urllib3, and this is the only place its
exceptions are turned into :class:`TransportFailed` values. TLS is verified, redirects are never
followed (the API key must not travel to another host) and urllib3's own retries are off:
retrying is the client's decision.

Every attempt is bounded as a whole by ``timeout.total``: waiting for a free pooled connection,
resolving the host name, connecting, the TLS handshake, the headers and the body. urllib3's
timeouts only bound each wait for the next bytes, so a server trickling a byte every few seconds
would never trip them; a small watchdog closes such an attempt's socket at its deadline instead
(see :class:`_Watchdog`).

Whether a failed request may have reached the server (``TransportFailed.sent``) is decided by
*where* it failed, not by the exception's class: the connection class below records the moment
the request's first byte is handed to the socket. Everything before (waiting for a connection,
name resolution, connecting, the TLS handshake, a header value that cannot be written) is
``sent=False``; everything after, a TLS error included, is ``sent=True``.
"""

from __future__ import annotations

import contextlib
import functools
import http.client
import ipaddress
import itertools
import os
import socket
import ssl
import threading
import time
import weakref
from collections import deque
from collections.abc import Callable, Generator
from concurrent.futures import Future
from queue import Full
from typing import Any, Final, TypeVar, cast
from urllib.parse import urlsplit

import urllib3
from returns.result import Failure, Result, Success
from urllib3 import HTTPHeaderDict
from urllib3.connection import HTTPConnection
from urllib3.connectionpool import HTTPConnectionPool, HTTPSConnectionPool
from urllib3.exceptions import (
    ClosedPoolError,
    ConnectTimeoutError,
    EmptyPoolError,
    HTTPError,
    InvalidHeader,
    NameResolutionError,
    NewConnectionError,
    ReadTimeoutError,
    SSLError,
)
from urllib3.response import BaseHTTPResponse, HTTPResponse

from cdsessions._core.logs import Piece
from cdsessions._core.wire import HttpRequest, HttpResponse
from cdsessions.errors import TransportFailed, TransportFailureKind
from cdsessions.transports import _urllib3_internals as internals
from cdsessions.transports._cap import capped, content_codings, decode_content, too_large
from cdsessions.transports._fork import register as register_for_fork
from cdsessions.transports._secret_urls import remember as remember_secret_url

__all__ = ["Urllib3Transport"]

_CHUNK: Final = 64 * 1024
#: How long the watchdog thread waits for more work before it exits.
_WATCHDOG_IDLE: Final = 0.5
#: The longest wait every platform can express (a longer lock wait or socket timeout raises
#: OverflowError: past threading.TIMEOUT_MAX, or 2**31 ms in some C APIs). Every wait and socket
#: timeout here is clamped to it, so a huge ``Timeout`` means "very long", never a crash.
_LONGEST_WAIT: Final = min(threading.TIMEOUT_MAX, 2**31 / 1000 - 1)
#: How long a resolved host name is reused for new connections without resolving it again.
_RESOLVED_FOR: Final = 30.0


def _clamped(seconds: float) -> float:
    return min(seconds, _LONGEST_WAIT)


def _cause(error: BaseException) -> BaseException:
    """The underlying error of urllib3's wrappers (MaxRetryError.reason, ProtocolError's
    second argument, SSLError's first)."""
    reason = getattr(error, "reason", None)
    if isinstance(reason, BaseException):
        return reason
    wrapped = [argument for argument in error.args if isinstance(argument, BaseException)]
    return wrapped[0] if wrapped else error


def _tls_reason(error: BaseException) -> str:
    cause = _cause(error)
    reason = getattr(cause, "reason", None)  # ssl.SSLError: "CERTIFICATE_VERIFY_FAILED", …
    return reason if isinstance(reason, str) and reason else type(cause).__name__


def _failure(operation: str, error: BaseException, *, sent: bool) -> TransportFailed:
    """The single place urllib3's (and the socket layer's) errors become values. ``sent`` comes
    from where the failure happened (see the module doc); the class only picks the words."""
    reason = getattr(error, "reason", None)
    if isinstance(reason, BaseException):  # MaxRetryError and friends wrap the real cause
        error = reason
    return _sent_failure(operation, error) if sent else _unsent_failure(operation, error)


def _unsent_failure(operation: str, error: BaseException) -> TransportFailed:
    def unsent(kind: TransportFailureKind, problem: str) -> TransportFailed:
        return TransportFailed(operation, kind, problem, sent=False)

    # The order matters: NameResolutionError is a NewConnectionError, which is a
    # ConnectTimeoutError.
    if isinstance(error, _ResolvingTookTooLong):
        return unsent("timeout", "resolving the host name took too long")
    if isinstance(error, NameResolutionError):
        return unsent("connect", "the host name could not be resolved")
    if isinstance(error, NewConnectionError):
        # "HTTPConnection(…): Failed to establish …: [Errno 111] Connection refused"
        return unsent("connect", (str(error).rpartition("] ")[2] or "refused").lower())
    if isinstance(error, EmptyPoolError):
        problem = "no pooled connection became free in time (max_connections are all busy)"
        return unsent("timeout", problem)
    if isinstance(error, ClosedPoolError):
        return unsent("connect", "the client was closed")
    if isinstance(error, ReadTimeoutError | ConnectTimeoutError | TimeoutError):
        return unsent("timeout", "connecting took too long")
    if isinstance(error, SSLError | ssl.SSLError):
        return unsent("connect", f"TLS failed ({_tls_reason(error)})")
    if isinstance(error, ConnectionRefusedError):
        return unsent("connect", "connection refused")
    if isinstance(error, ValueError):  # http.client refuses a header value (a newline)
        return unsent("broken", "the request could not be written (an invalid header value)")
    return unsent("connect", f"{type(_cause(error)).__name__} before the request was written")


def _vcr_miss(operation: str, error: Exception) -> TransportFailed | None:
    """vcrpy's refusal to send (pytest-recording replaying, urllib3 patched), as what it is:
    a missing cassette, or a request the cassette does not hold; nothing was sent. None for any
    other error. Known by its class name: vcrpy is not a dependency."""
    if type(error).__name__ != "CannotOverwriteExistingCassetteException":
        return None
    path = getattr(getattr(error, "cassette", None), "_path", None)
    shown = "the cassette" if not isinstance(path, str) else f"the cassette {path}"
    missing = getattr(error, "reason", None) == "cassette_not_found" or (
        isinstance(path, str) and not os.path.exists(path)
    )
    if missing:
        problem = f"{shown} does not exist: record it first (pytest --record-mode=once)"
        return TransportFailed(operation, "no_cassette", problem, sent=False)
    return TransportFailed(operation, "unmatched", f"the request is not in {shown}", sent=False)


def _sent_failure(operation: str, error: BaseException) -> TransportFailed:
    def sent(kind: TransportFailureKind, problem: str) -> TransportFailed:
        return TransportFailed(operation, kind, problem, sent=True)

    if isinstance(error, ReadTimeoutError | ConnectTimeoutError | TimeoutError):
        return sent("timeout", "the server did not answer in time")
    if isinstance(error, SSLError | ssl.SSLError):
        # A bad record, an alert or bytes that are not TLS, after the request went out: the
        # server may have acted on it, so a paid create must not be repeated.
        return sent("broken", f"TLS failed after the request was written ({_tls_reason(error)})")
    if isinstance(error, InvalidHeader):
        return sent("broken", "the response's framing is invalid (its Content-Length)")
    # Anything else happened once the request may have been written: a reset, a response that
    # is not HTTP, a body shorter than its Content-Length, a chunk that never ended.
    return sent("broken", f"{type(error).__name__}: the response was cut short")


class _Seams:
    """The moments the transport's races turn on, as hooks that do nothing by default.

    A test subclasses this and passes it as ``Urllib3Transport(_seams=...)`` (or to a
    :class:`_Watchdog` or :class:`_FairQueue` directly) to stop a thread at one of these moments
    with a ``threading.Event`` and drive the other side meanwhile: each race is then run in one
    chosen order, never left to timing. Private, and not a clock: every wait here is on a lock,
    a condition or a socket, which a :class:`~cdsessions._core.clocks.Clock` cannot drive, so the
    transport reads the real ``time.monotonic`` (deadlines are tested with ones already passed
    or far off). Called only off the fast path (a caller that must wait, a wake-up).
    """

    def waiting(self) -> None:
        """A caller found no free connection and is queued, about to wait for one."""

    def gave_up(self) -> None:
        """A waiter's time ran out; it has not yet looked whether a connection came meanwhile."""

    def handed(self) -> None:
        """A connection was handed straight to a waiter. Called under the queue's lock."""

    def watchdog_sleeping(self, seconds: float) -> None:
        """The watchdog is about to sleep ``seconds`` (or until woken). Under its lock."""

    def watchdog_woke(self) -> None:
        """The watchdog woke: a deadline came, or it was notified. Under its lock."""

    def joined_lookup(self) -> None:
        """A caller is about to wait for a name's lookup another caller started. Under the
        resolver's lock."""


#: The default: every hook a no-op.
_NO_SEAMS: Final = _Seams()


_DEADLINE_PASSED: Final = "the overall deadline passed before the answer was complete"
_DEADLINE_BEFORE_SENDING: Final = "the overall deadline passed before the request was written"


class _Watchdog:
    """Shuts down the socket of any attempt still running at its deadline.

    One daemon thread, started when there is something to watch and gone soon after there is
    not, sleeps until the earliest deadline. Shutting a socket down makes the read blocked on it
    return at once, in whichever thread it is; the attempt then reports a timeout.

    The thread must never die while something is watched, or every later call on the transport
    loses its deadline: waits are clamped to what the platform can express, a failure to shut a
    socket is ignored (the token still counts as fired), and if the thread ends anyway the next
    :meth:`watch` starts another.
    """

    def __init__(self, seams: _Seams = _NO_SEAMS) -> None:
        self._seams = seams
        self._changed = threading.Condition(threading.Lock())
        self._watched: dict[int, tuple[float, socket.socket]] = {}
        self._fired: set[int] = set()
        self._tokens = itertools.count()
        self._running = False
        self._closing = False
        self._wake_at = 0.0  # when the thread will next wake up on its own

    def watch(self, deadline: float, sock: socket.socket) -> int:
        with self._changed:
            token = next(self._tokens)
            self._watched[token] = (deadline, sock)
            self._closing = False
            if not self._running:
                self._start(deadline)
            elif deadline < self._wake_at:
                # Only an earlier deadline needs the thread awake now. Waking it for every
                # request cost a thread switch (and a GIL hand-over) per call.
                self._changed.notify()
            return token

    def _start(self, deadline: float) -> None:
        thread = threading.Thread(target=self._run, name="cdsessions-deadlines", daemon=True)
        self._running, self._wake_at = True, deadline
        try:
            thread.start()
        except RuntimeError:  # no thread to be had (interpreter exit, thread limit)
            # The socket timeouts still bound each wait; the next watch() tries again.
            self._running = False

    def release(self, token: int) -> bool:
        """Stop watching; True if the deadline had already cut this attempt off."""
        with self._changed:
            self._watched.pop(token, None)
            fired = token in self._fired
            self._fired.discard(token)
            if not self._watched and self._wake_at > time.monotonic() + _WATCHDOG_IDLE:
                # Wake the thread from its wait for a far deadline, so it can idle out. Once it
                # idles it wakes by itself within _WATCHDOG_IDLE: no need to wake it per call.
                self._changed.notify()
            return fired

    def _run(self) -> None:
        with self._changed:
            try:
                self._loop()
            finally:  # whatever ended the loop, a later watch() must start a new thread
                self._running = False

    def _loop(self) -> None:
        idle_since: float | None = None
        while True:
            now = time.monotonic()
            for token, (deadline, sock) in list(self._watched.items()):
                if deadline <= now:
                    del self._watched[token]
                    self._fired.add(token)
                    _shut(sock)
            if self._watched:
                idle_since = None
                wait = min(d for d, _ in self._watched.values()) - now
                self._wake_at = now + wait
                self._sleep(_clamped(wait))
                continue
            idle_since = now if idle_since is None else idle_since
            if self._closing or now - idle_since >= _WATCHDOG_IDLE:
                return
            self._wake_at = now + _WATCHDOG_IDLE
            self._sleep(_WATCHDOG_IDLE)

    def _sleep(self, seconds: float) -> None:
        self._seams.watchdog_sleeping(seconds)
        self._changed.wait(seconds)
        self._seams.watchdog_woke()

    def close(self) -> None:
        """Let the thread exit as soon as nothing is watched, rather than after a pause."""
        with self._changed:
            self._closing = True
            self._changed.notify()


def _shut(sock: socket.socket) -> None:
    # OSError: already closed by the other side, so nothing is left to interrupt. Anything
    # else (a recorder's stub socket has no shutdown) must not end the watchdog's thread.
    with contextlib.suppress(Exception):
        sock.shutdown(socket.SHUT_RDWR)


# The attempt running in this thread: its watchdog and deadline, the watch token once its
# socket is known, and whether the request's first byte was handed to the socket. Thread-local
# because urllib3 offers no other way into the connection.
_current = threading.local()


def _watch_this(sock: socket.socket | None) -> None:
    watchdog: _Watchdog | None = getattr(_current, "watchdog", None)
    deadline: float | None = getattr(_current, "deadline", None)
    if watchdog is not None and deadline is not None and sock is not None:
        _current.token = watchdog.watch(deadline, sock)


class _FairQueue:
    """The pool's connections, handed to waiting callers first come, first served.

    urllib3's ``LifoQueue`` lets a thread that has just put a connection back take it again
    before the waiter it woke gets to run, so under load some callers wait their whole deadline
    while others are served again and again. Here a returned connection goes straight to the
    longest-waiting caller; a caller arriving while others wait queues behind them. Idle
    connections are kept last in, first out (the warmest is reused). The lock guards only list
    and deque updates; an uncontended ``get`` or ``put`` never hands over to another thread.
    """

    #: Set by the transport once it has the pool (urllib3 makes the queue: ``QueueCls(maxsize)``).
    seams: _Seams = _NO_SEAMS

    def __init__(self, maxsize: int) -> None:
        self.maxsize = maxsize
        self._lock = threading.Lock()
        self._idle: list[Any] = []  # urllib3 puts None for "may open a new connection"
        self._waiters: deque[_Waiter] = deque()
        self._closed = False

    def qsize(self) -> int:
        return len(self._idle)

    def waiting(self) -> int:
        return len(self._waiters)

    def get(self, block: bool = True, timeout: float | None = None) -> Any:
        with self._lock:
            if self._closed:
                # A closed pool is drained with get(block=False) until Empty. A blocking get
                # raises what urllib3's _get_conn turns into ClosedPoolError (see
                # _urllib3_internals): "the client was closed".
                if not block:
                    raise internals.EMPTY_QUEUE_ERROR
                raise internals.CLOSED_QUEUE_ERROR("the pool is closed")
            if self._idle:  # only ever non-empty while nobody waits
                return self._idle.pop()
            if not block:
                raise internals.EMPTY_QUEUE_ERROR
            waiter = _Waiter()
            self._waiters.append(waiter)
        self.seams.waiting()
        if timeout is None:
            in_time = waiter.ready.acquire()
        else:
            in_time = waiter.ready.acquire(timeout=_clamped(max(timeout, 0.0)))
        if not in_time:
            self.seams.gave_up()  # a connection may still be handed over until the lock is ours
        with self._lock:
            if waiter.handed and in_time and not self._closed:
                return waiter.item
            if not waiter.handed:
                self._waiters.remove(waiter)  # O(waiters), only when a wait runs out
            elif not self._closed:
                # Handed over just as this caller's time ran out: pass it on, unused.
                self._put(waiter.item)
            if not self._closed:
                raise internals.EMPTY_QUEUE_ERROR
        if waiter.item is not None:  # handed over, then the pool closed under it
            waiter.item.close()
        raise internals.CLOSED_QUEUE_ERROR("the pool is closed")

    def put(self, item: Any, block: bool = False) -> None:
        with self._lock:
            self._put(item)

    def _put(self, item: Any) -> None:
        if self._waiters:
            self._waiters.popleft().hand(item)
            self.seams.handed()
        elif len(self._idle) >= self.maxsize:
            raise Full
        else:
            self._idle.append(item)

    def close(self) -> list[Any]:
        """Wake every waiter (they fail as "closed") and give back the idle connections."""
        with self._lock:
            self._closed = True
            idle, self._idle = self._idle, []
            while self._waiters:
                self._waiters.popleft().hand(None)
            return idle

    def after_fork(self) -> list[Any]:
        """In a forked child: the lock may have been held by a thread that no longer exists,
        and the waiters are gone. Give back what the parent left idle (to be closed here)."""
        self._lock = threading.Lock()
        self._waiters = deque()
        return self.close()


class _Waiter:
    __slots__ = ("handed", "item", "ready")

    def __init__(self) -> None:
        self.ready = threading.Lock()
        self.ready.acquire()
        self.handed = False
        self.item: Any = None

    def hand(self, item: Any) -> None:
        self.item, self.handed = item, True
        self.ready.release()


class _ResolvingTookTooLong(ConnectTimeoutError):
    """The deadline passed while the host name was still being resolved."""


class _Resolver:
    """Resolves host names in helper threads, so a caller stops waiting at its deadline.

    The stdlib resolver cannot be interrupted: a lookup that never answers would hold the
    calling thread past any deadline. A lookup runs in its own daemon thread instead, shared by
    every caller asking for the same name meanwhile; its answer is kept for ``_RESOLVED_FOR``
    seconds, so new connections to a known host hand nothing over to a thread. IP literals are
    never resolved at all, and reused keep-alive connections never get here.
    """

    #: One resolver serves every transport: a test sets this (see _Seams), then restores it.
    seams: _Seams = _NO_SEAMS

    def __init__(self) -> None:
        self._after_fork_in_child()

    def _after_fork_in_child(self) -> None:
        """Empty, as new: in a forked child the lock may be held and the lookups pending are
        in threads that do not exist there (nor does anybody waiting for them)."""
        self._lock = threading.Lock()
        self._known: dict[tuple[str, int], tuple[float, list[tuple[str, int]]]] = {}
        self._pending: dict[tuple[str, int], Future[list[tuple[str, int]]]] = {}

    def resolve(self, host: str, port: int, wait: float | None) -> list[tuple[str, int]]:
        """The (address, port) pairs of ``host``; raises TimeoutError after ``wait`` seconds,
        or the resolver's ``socket.gaierror``."""
        key = (host, port)
        with self._lock:
            known = self._known.get(key)
            if known is not None and known[0] > time.monotonic():
                return known[1]
            pending = self._pending.get(key)
            if pending is None:
                pending = self._pending[key] = Future()
                thread = threading.Thread(
                    target=self._lookup, args=(key, pending), name="cdsessions-resolve", daemon=True
                )
                try:
                    thread.start()
                except RuntimeError:  # no thread to be had: resolve here, unbounded
                    del self._pending[key]
                    return _addresses(host, port)
            else:
                self.seams.joined_lookup()
        return pending.result(None if wait is None else _clamped(max(wait, 0.0)))

    def _lookup(self, key: tuple[str, int], pending: Future[list[tuple[str, int]]]) -> None:
        try:
            found = _addresses(*key)
        except BaseException as error:  # handed to the waiting callers, whatever it is
            with self._lock:
                self._pending.pop(key, None)
            pending.set_exception(error)
            return
        with self._lock:
            self._pending.pop(key, None)
            if len(self._known) >= 256:  # a client talks to a few hosts; never let it grow
                self._known.clear()
            self._known[key] = (time.monotonic() + _RESOLVED_FOR, found)
        pending.set_result(found)


def _addresses(host: str, port: int) -> list[tuple[str, int]]:
    family = internals.allowed_gai_family()
    found = socket.getaddrinfo(host, port, family, socket.SOCK_STREAM)
    return [(_literal(address), int(address[1])) for *_, address in found]


def _literal(address: tuple[Any, ...]) -> str:
    """An address as an IP literal; an IPv6 link-local one keeps its scope (``fe80::1%2``)."""
    scope = address[3] if len(address) == 4 else 0
    return f"{address[0]}%{scope}" if scope else str(address[0])


_resolver = _Resolver()
register_for_fork(_resolver)


class _Opened:
    """Every connection opened in this process, weakly. A forked child closes its copy of each
    socket: those idle in a pool are closed from the pool's queue too, but one another thread
    had checked out at the fork is in no queue, and its copy would stay open in the child (a
    file descriptor lost, and the parent's close would not end the connection while the child
    lives). Closing the child's copy leaves the parent's connection open."""

    def __init__(self) -> None:
        self._connections: weakref.WeakSet[HTTPConnection] = weakref.WeakSet()

    def add(self, conn: HTTPConnection) -> None:
        self._connections.add(conn)

    def _after_fork_in_child(self) -> None:
        connections, self._connections = list(self._connections), weakref.WeakSet()
        for conn in connections:
            sock = getattr(conn, "sock", None)
            if isinstance(sock, socket.socket):
                # Not sock.close(): a response being read holds the socket's file open, and
                # close() then leaves the descriptor open. Detached, the socket object no
                # longer owns it (nothing closes that number again later); then it is closed.
                with contextlib.suppress(OSError):
                    os.close(sock.detach())


_opened = _Opened()
register_for_fork(_opened)


@functools.lru_cache(maxsize=256)
def _is_ip_literal(host: str) -> bool:
    try:
        ipaddress.ip_address(host)
    except ValueError:
        return False
    return True


def _connect(
    conn: HTTPConnection, connect_to_literal: Callable[[], socket.socket]
) -> socket.socket:
    """A new connection's socket, with resolving and connecting bounded by the deadline. The
    connect timeout left is also the TLS handshake's (CPython bounds a whole handshake by the
    socket's timeout); the watchdog takes over once the request starts going out."""
    deadline: float | None = getattr(_current, "deadline", None)
    _opened.add(conn)
    host = internals.dns_host(conn)
    if deadline is not None:
        _bound_by(conn, deadline)
    if _is_ip_literal(host):
        return connect_to_literal()  # nothing to resolve: no thread, no cache
    wait = None if deadline is None else deadline - time.monotonic()
    try:
        addresses = _resolver.resolve(host, conn.port or 0, wait)
    except TimeoutError as error:
        raise _ResolvingTookTooLong(conn, "resolving the host name took too long") from error
    except socket.gaierror as error:
        raise NameResolutionError(conn.host, conn, error) from error
    if deadline is not None:
        _bound_by(conn, deadline)  # what resolving left of it
    return _first_that_connects(conn, addresses)


def _bound_by(conn: HTTPConnection, deadline: float) -> None:
    """Shorten the connect (and TLS handshake) timeout to what is left before the deadline."""
    left = deadline - time.monotonic()
    if left <= 0:
        raise ConnectTimeoutError(conn, "the deadline passed before connecting")
    timeout = conn.timeout
    conn.timeout = left if not isinstance(timeout, int | float) else min(timeout, left)


def _first_that_connects(conn: HTTPConnection, addresses: list[tuple[str, int]]) -> socket.socket:
    """What ``create_connection`` does after resolving: try each address in turn."""
    error: OSError | None = None
    for address in addresses:
        try:
            return internals.create_connection(
                address, conn.timeout, conn.source_address, conn.socket_options
            )
        except OSError as failed:
            error = failed
    if isinstance(error, TimeoutError):
        raise ConnectTimeoutError(conn, "connecting took too long") from error
    message = f"Failed to establish a new connection: {error or 'no address'}"
    raise NewConnectionError(conn, message) from error


_C = TypeVar("_C", bound=HTTPConnection)


@functools.cache
def _watched(base: type[_C]) -> type[_C]:
    """``base`` with the deadline enforced and the moment the request starts going out noted.

    For urllib3's own connection classes: new connections resolve and connect within the
    deadline and are watched from the first byte on; ``send`` marks the request as possibly
    sent just before its first byte is handed to the socket; interim responses are skipped.
    Any other class (a recorder's stub) is only known to have sent once it is asked for the
    response, and is taken as sent as soon as a request starts: the safe side for a create.
    """

    def getresponse(self: _C) -> HTTPResponse:
        # The request is out; from here on we only wait on the server. (A recorder's stub
        # connection may have no socket: then there is nothing to watch.)
        _current.sent = True
        if getattr(_current, "token", None) is None:
            _watch_this(getattr(self, "sock", None))
        return base.getresponse(self)

    members: dict[str, Any] = {"getresponse": getresponse}
    if issubclass(base, HTTPConnection):

        def send(self: HTTPConnection, data: Any) -> None:
            if self.sock is None:  # http.client connects here, lazily: nothing is out yet
                self.connect()
            if getattr(_current, "token", None) is None:  # a reused keep-alive connection
                _watch_this(self.sock)
            _current.sent = True  # from here on the server may see (part of) the request
            base.send(self, data)

        members["send"] = send
        return internals.connection_class(base, new_socket=_connect, members=members)

    def request(self: HTTPConnection, *args: Any, **kwargs: Any) -> None:
        _current.sent = True
        base.request(self, *args, **kwargs)

    members["request"] = request
    return cast("type[_C]", type(f"_Watched{base.__name__}", (base,), members))


def _close_queue(pool: HTTPConnectionPool) -> None:
    """Wake the callers waiting on ``pool``'s queue; they fail as "the client was closed"."""
    connections = internals.pool_queue(pool)
    if isinstance(connections, _FairQueue):
        for conn in connections.close():
            if conn is not None:
                conn.close()


_WatchedHTTPPool: Final = internals.pool_class(
    HTTPConnectionPool, _FairQueue, _watched, _close_queue
)
_WatchedHTTPSPool: Final = internals.pool_class(
    HTTPSConnectionPool, _FairQueue, _watched, _close_queue
)


#: urllib3 never retries or follows redirects here; one shared value (it is immutable) instead of
#: a new ``Retry`` built for every request.
_NO_RETRY: Final = urllib3.Retry(total=False, redirect=False)
_CUT_SHORT: Final = "the body ended before its Content-Length"


@functools.lru_cache(maxsize=64)
def _urllib3_timeout(connect: float | None, read: float | None) -> urllib3.Timeout:
    # urllib3 clones a Timeout before using it, so one per distinct pair can be shared. Clamped:
    # a socket timeout beyond what the platform can wait raises OverflowError.
    return urllib3.Timeout(
        connect=None if connect is None else _clamped(connect),
        read=None if read is None else _clamped(read),
    )


def _present(headers: HTTPHeaderDict, name: str) -> bool:
    """Whether header ``name`` is there with a non-empty value: ``bool(headers.get(name))``,
    without the KeyError that urllib3's ``get`` raises and catches inside for every header a
    response does not have (most responses have neither Content-Encoding nor
    Transfer-Encoding)."""
    return name in headers and bool(headers[name])


def _declared_length(response: BaseHTTPResponse) -> int | None:
    """The body's declared size, or None when it has none (chunked, or read until close).

    A Content-Length that is not ASCII digits (``int()`` and ``str.isdigit`` accept other
    scripts' digits, and ``isdigit`` even ``²``, which ``int`` refuses) makes the response's
    framing invalid; HTTP/1.1 says to treat that as an unrecoverable error, so it raises
    ``InvalidHeader`` (a broken, sent failure, and the connection is not reused). Repeats of one
    value (``12, 12``) are allowed, as RFC 9110 permits."""
    headers = response.headers
    value = headers.get("content-length")
    if value is None or _present(headers, "transfer-encoding"):
        return None  # chunked (or another coding) overrides any Content-Length
    if value.isascii() and value.isdigit():
        return _length(value)  # the usual "1234": what the checks below would accept unchanged
    lengths = {part.strip() for part in value.split(",")}
    length = lengths.pop() if len(lengths) == 1 else ""
    if not (length.isascii() and length.isdigit()):
        raise InvalidHeader("the response's Content-Length is invalid")
    return _length(length)


#: More significant digits than any body the cap allows could need.
_MOST_DIGITS: Final = 30


def _length(digits: str) -> int:
    """ASCII ``digits`` as a number. int() refuses more than 4300 digits (ValueError, which
    would escape as an unexpected error); so many are simply more than any cap: too large."""
    significant = digits.lstrip("0")
    return int(significant or "0") if len(significant) <= _MOST_DIGITS else 10**_MOST_DIGITS


def _fired(watchdog: _Watchdog, token: int | None) -> bool:
    """Whether the watchdog cut the stream ``token`` watches off at its deadline."""
    return token is not None and watchdog.release(token)


def _pieces(
    response: BaseHTTPResponse, request: HttpRequest, cut_off: Callable[[], bool]
) -> Generator[Piece, None, None]:
    """A streamed response's head, then its body as it arrives (see ``Urllib3Transport.stream``).
    Nothing here may raise: every way it ends is a value. The connection is closed at the end,
    also when the reader stops early (the generator is closed)."""
    operation, limit = request.operation, request.max_response_bytes
    size = 0
    # The bytes as sent: a compressed stream is refused by its reader, never inflated here. Set
    # on the response, not passed to read1: vcrpy's replayed read1 takes no decode_content.
    response.decode_content = False
    try:
        yield Success(
            HttpResponse(
                status=response.status,
                headers=tuple(response.headers.iteritems()),
                reason=response.reason or "",
            )
        )
        while True:
            try:
                chunk = response.read1(_CHUNK)
            except (HTTPError, OSError, http.client.HTTPException) as error:
                if cut_off():
                    yield Failure(TransportFailed(operation, "timeout", _DEADLINE_PASSED, True))
                else:
                    yield Failure(_sent_failure(operation, error))
                return
            if not chunk:
                if cut_off():  # the watchdog shut the socket: an end that is not one
                    yield Failure(TransportFailed(operation, "timeout", _DEADLINE_PASSED, True))
                return
            size += len(chunk)
            if size > limit:
                yield Failure(too_large(request))
                return
            yield Success(chunk)
    except Exception as error:  # the boundary: not an error the HTTP stack is known to raise
        problem = f"unexpected {type(error).__name__} in the HTTP stack"
        yield Failure(TransportFailed(operation, "broken", problem, sent=True))
    finally:
        response.close()  # never pooled: a stream's connection may have bytes left on it
        response.release_conn()


class Urllib3Transport:
    """Sends requests over a pooled, thread-safe urllib3 ``PoolManager``.

    ``max_connections`` bounds the connections per host; callers beyond it wait for a free one,
    first come first served (for at most what remains of their deadline, then fail with a
    timeout, nothing sent).

    TLS certificates are checked against the system's trusted CAs, or ``ca_certs`` (a path to
    a PEM bundle: a private CA, a corporate proxy's) or ``ssl_context`` (an ``ssl.SSLContext``
    of your own, for client certificates or pinned settings) when given. Either way the
    certificate must be valid for the host: verification cannot be turned off here.

    Safe to use after ``os.fork()``: the child gets fresh connections and its own deadline
    thread.
    """

    def __init__(
        self,
        *,
        max_connections: int = 10,
        ca_certs: str | os.PathLike[str] | None = None,
        ssl_context: ssl.SSLContext | None = None,
        _seams: _Seams = _NO_SEAMS,
    ) -> None:
        self._seams = _seams  # tests only: see _Seams
        self._max_connections = max_connections
        self._tls: dict[str, Any] = {"cert_reqs": "CERT_REQUIRED"}
        if ca_certs is not None:
            self._tls["ca_certs"] = os.fspath(ca_certs)
        if ssl_context is not None:
            self._tls["ssl_context"] = ssl_context
        self._start_afresh()
        register_for_fork(self)

    def _after_fork_in_child(self) -> None:
        """A forked child shares the parent's pooled sockets (each would read the other's
        answers) and has no watchdog thread, while locks in the pools and the watchdog may be
        held forever: let go of the parent's sockets (closing the child's copies leaves the
        parent's connections open), then start afresh. Only our own record of the pools is
        walked: the PoolManager's may be locked."""
        for pool, _path in self._pools.values():
            queue = internals.pool_queue(pool)
            if isinstance(queue, _FairQueue):
                for conn in queue.after_fork():
                    if conn is not None:
                        conn.close()
        self._start_afresh()

    def _start_afresh(self) -> None:
        """New pools and watchdog: the state before first use."""
        self._pool = urllib3.PoolManager(
            num_pools=4, maxsize=self._max_connections, block=True, retries=False, **self._tls
        )
        self._pool.pool_classes_by_scheme = {"http": _WatchedHTTPPool, "https": _WatchedHTTPSPool}
        self._watchdog = _Watchdog(self._seams)
        self._pools: dict[str, tuple[HTTPConnectionPool, str]] = {}

    @property
    def queued(self) -> int:
        """How many calls are waiting for a free connection right now."""
        count = 0
        for pool, _path in list(self._pools.values()):
            queue = internals.pool_queue(pool)
            if isinstance(queue, _FairQueue):
                count += queue.waiting()
        return count

    def _pool_for(self, base_url: str) -> tuple[HTTPConnectionPool, str]:
        """The connection pool for ``base_url`` and its path prefix, looked up once."""
        found = self._pools.get(base_url)
        if found is not None and internals.pool_queue(found[0]) is not None:  # closed, evicted
            return found
        pool = self._pool.connection_from_url(base_url)
        queue = internals.pool_queue(pool)
        if isinstance(queue, _FairQueue):
            queue.seams = self._seams
        found = (pool, urlsplit(base_url).path.rstrip("/"))
        self._pools[base_url] = found
        return found

    def send(self, request: HttpRequest) -> Result[HttpResponse, TransportFailed]:
        total = request.timeout.total
        deadline = None if total is None else time.monotonic() + total
        watchdog = self._watchdog
        _current.watchdog, _current.deadline, _current.token = watchdog, deadline, None
        _current.sent = False
        try:
            return self._send(request, deadline)
        except Exception as error:  # the boundary: nothing may escape a send
            replayed = _vcr_miss(request.operation, error)
            if replayed is not None:
                return Failure(replayed)
            # Not one of the errors urllib3, http.client or ssl are known to raise: still a
            # value, named by its class so it can be reported.
            problem = f"unexpected {type(error).__name__} in the HTTP stack"
            return Failure(TransportFailed(request.operation, "broken", problem, _current.sent))
        finally:
            token: int | None = _current.token
            _current.watchdog = _current.deadline = _current.token = None
            if token is not None:
                watchdog.release(token)

    def stream(self, request: HttpRequest) -> Generator[Piece, None, None]:
        """The response as it arrives: its head, then its body a piece at a time (whatever is
        there, up to 64 KiB), or a failure that ends it. The same bounds as :meth:`send`: the
        whole stream ends by ``timeout.total`` (the watchdog shuts its socket), each wait for
        more bytes by ``timeout.read``, and more than ``max_response_bytes`` in all is
        ``too_large``. A compressed body is handed on as it is (the reader refuses it). The
        connection is closed, never pooled, when the stream ends or is abandoned."""
        total = request.timeout.total
        deadline = None if total is None else time.monotonic() + total
        watchdog = self._watchdog
        _current.watchdog, _current.deadline, _current.token = watchdog, deadline, None
        _current.sent = False
        try:
            opened = self._open(request, deadline)
        except Exception as error:  # the boundary, as in send()
            problem = f"unexpected {type(error).__name__} in the HTTP stack"
            opened = Failure(TransportFailed(request.operation, "broken", problem, _current.sent))
        # The watch token is this stream's from now on: the thread-local is only for urlopen.
        token: int | None = _current.token
        _current.watchdog = _current.deadline = _current.token = None
        try:
            if not isinstance(opened, Success):
                yield Failure(opened.failure())
                return
            yield from _pieces(opened.unwrap(), request, lambda: _fired(watchdog, token))
        finally:
            if token is not None:
                watchdog.release(token)

    def _open(
        self, request: HttpRequest, deadline: float | None
    ) -> Result[BaseHTTPResponse, TransportFailed]:
        """The response with its head read and its body not, or why not."""
        if request.secret_url:  # urllib3 logs what it connects to: not this
            remember_secret_url(request.base_url)
        try:
            pool, base_path = self._pool_for(request.base_url)
            return Success(
                pool.urlopen(
                    request.method,
                    base_path + request.target,
                    body=request.body,
                    headers=dict(request.headers),
                    timeout=_urllib3_timeout(request.timeout.connect, request.timeout.read),
                    retries=_NO_RETRY,
                    redirect=False,
                    assert_same_host=False,
                    preload_content=False,
                    release_conn=False,
                    pool_timeout=None if deadline is None else deadline - time.monotonic(),  # type: ignore[arg-type]
                )
            )
        except (HTTPError, OSError, ValueError, http.client.HTTPException) as error:
            return Failure(self._explain(request.operation, error))

    def _send(
        self, request: HttpRequest, deadline: float | None
    ) -> Result[HttpResponse, TransportFailed]:
        operation, timeout = request.operation, request.timeout
        if request.secret_url:  # urllib3 logs what it connects to: not this
            remember_secret_url(request.base_url)
        try:
            pool, base_path = self._pool_for(request.base_url)
            # Straight to the host's pool with the request target, as PoolManager.urlopen
            # does after parsing the URL and looking the pool up again, every time.
            response = pool.urlopen(
                request.method,
                base_path + request.target,
                body=request.body,
                headers=dict(request.headers),
                timeout=_urllib3_timeout(timeout.connect, timeout.read),
                retries=_NO_RETRY,
                redirect=False,
                assert_same_host=False,
                preload_content=False,
                release_conn=False,
                # What is left of the deadline (a float works).
                pool_timeout=None if deadline is None else deadline - time.monotonic(),  # type: ignore[arg-type]
            )
        except (HTTPError, OSError, ValueError, http.client.HTTPException) as error:
            return Failure(self._explain(operation, error))
        try:
            read = self._read(response, request)
        except (HTTPError, OSError, http.client.HTTPException) as error:
            response.close()  # never hand a half-read connection back to the pool
            read = Failure(self._explain(operation, error))
        finally:
            response.release_conn()
        if isinstance(read, Success) and self._cut_off():
            # The watchdog ended the body early; what arrived may look complete but is not.
            return Failure(TransportFailed(operation, "timeout", _DEADLINE_PASSED, sent=True))
        return read

    def _explain(self, operation: str, error: BaseException) -> TransportFailed:
        sent: bool = _current.sent
        if self._cut_off():  # the watchdog shut the socket: whatever broke, time ran out
            problem = _DEADLINE_PASSED if sent else _DEADLINE_BEFORE_SENDING
            return TransportFailed(operation, "timeout", problem, sent)
        return _failure(operation, error, sent=sent)

    def _cut_off(self) -> bool:
        """Whether the watchdog stopped this attempt at its overall deadline."""
        token: int | None = _current.token
        _current.token = None
        return token is not None and self._watchdog.release(token)

    @staticmethod
    def _read(
        response: BaseHTTPResponse, request: HttpRequest
    ) -> Result[HttpResponse, TransportFailed]:
        limit, operation = request.max_response_bytes, request.operation
        declared = _declared_length(response)
        if declared is not None and declared > limit:
            response.close()  # refuse before reading a byte of it
            return Failure(too_large(request))
        # iteritems(), not tuple(headers.items()): tuple() asks urllib3's items view for its
        # length first, which walks every header once more just to count them. Same pairs,
        # same order (repeated names included).
        headers = tuple(response.headers.iteritems())
        if declared is not None and not _present(response.headers, "content-encoding"):
            # The usual case: one read of exactly the declared size. One allocation, no chunk
            # list and no join, which briefly held a large body twice. decode_content=False:
            # there is no Content-Encoding to undo, and it makes urllib3 hand the bytes back
            # as read instead of passing them through its decoded-data buffer first.
            body = response.read(declared, decode_content=False)
            while len(body) < declared:
                # Cut short: the server closed early, or the watchdog shut the socket at the
                # deadline. Read on, as urllib3's decoding read does: at the end of the stream
                # it raises IncompleteRead, which _send reports (as a timeout if the deadline
                # cut it off).
                more = response.read(declared - len(body), decode_content=False)
                if not more:
                    response.close()
                    return Failure(TransportFailed(operation, "broken", _CUT_SHORT, sent=True))
                body += more
            return Success(
                HttpResponse(
                    status=response.status,
                    headers=headers,
                    body=body,
                    reason=response.reason or "",
                )
            )
        # No declared length, or a Content-Encoding: read the bytes as sent (capped too: a
        # compressed body larger than the cap decodes to one larger still), then undo the
        # coding with the one bounded decoder (see cdsessions.transports._cap).
        chunks: list[bytes] = []
        size = 0
        # read, not read1: vcrpy's replayed response takes no decode_content in read1.
        while chunk := response.read(_CHUNK, decode_content=False):
            size += len(chunk)
            if size > limit:
                response.close()  # do not reuse a connection with unread bytes on it
                return Failure(too_large(request))
            chunks.append(chunk)
        decoded = decode_content(b"".join(chunks), content_codings(headers), limit)
        if not isinstance(decoded, Success):
            problem = decoded.failure()
            if problem.too_large:
                return Failure(too_large(request))
            undecodable = f"the body could not be decoded: {problem.problem}"
            return Failure(TransportFailed(operation, "broken", undecodable, sent=True))
        answer = HttpResponse(
            status=response.status,
            headers=headers,
            body=decoded.unwrap(),
            reason=response.reason or "",
        )
        return capped(request, answer)

    def close(self) -> None:
        """Close every pooled connection now (urllib3's ``clear`` leaves that to the garbage
        collector); calls still waiting for a connection fail at once, as never sent. The
        transport can be used again: new pools open on demand."""
        pools, self._pools = self._pools, {}
        self._pool.clear()
        for pool, _path in pools.values():
            pool.close()
        self._watchdog.close()

    def __repr__(self) -> str:
        return "Urllib3Transport()"
