"""Real HTTP through one shared urllib3 ``PoolManager``.

This is the only module that imports urllib3, and the only place its exceptions are turned into
:class:`TransportFailed` values. TLS is verified, redirects are never followed (the API key must
not travel to another host) and urllib3's own retries are off: retrying is the client's decision.

Every attempt is bounded as a whole by ``timeout.total``: waiting for a free pooled connection,
connecting, the headers and the body. urllib3's timeouts only bound each wait for the next bytes,
so a server trickling a byte every few seconds would never trip them; a small watchdog closes
such an attempt's socket at its deadline instead (see :class:`_Watchdog`).
"""

from __future__ import annotations

import contextlib
import functools
import itertools
import socket
import threading
import time
from typing import Any, Final, TypeVar
from urllib.parse import urlsplit

import urllib3
from returns.result import Failure, Result, Success
from urllib3.connection import HTTPConnection
from urllib3.connectionpool import HTTPConnectionPool, HTTPSConnectionPool
from urllib3.exceptions import (
    ClosedPoolError,
    ConnectTimeoutError,
    EmptyPoolError,
    HTTPError,
    NewConnectionError,
    ReadTimeoutError,
    SSLError,
)
from urllib3.response import BaseHTTPResponse, HTTPResponse

from cdsessions.errors import TransportFailed
from cdsessions.http import HttpRequest, HttpResponse
from cdsessions.timeouts import Timeout

__all__ = ["Urllib3Transport"]

_CHUNK: Final = 64 * 1024
#: How long the watchdog thread waits for more work before it exits.
_WATCHDOG_IDLE: Final = 0.5


def _failure(operation: str, error: BaseException) -> TransportFailed:
    """The single place urllib3's (and the socket layer's) errors become values."""
    reason = getattr(error, "reason", None)
    if isinstance(reason, BaseException):  # MaxRetryError and friends wrap the real cause
        error = reason
    name = type(error).__name__
    # The order matters: NewConnectionError is a subclass of ConnectTimeoutError.
    if isinstance(error, NewConnectionError):
        # "HTTPConnection(host=…, port=…): Failed to establish …: [Errno 111] Connection refused"
        cause = str(error).rpartition("] ")[2] or name
        return TransportFailed(operation, "connect", cause.lower(), sent=False)
    if isinstance(error, ConnectTimeoutError):
        return TransportFailed(operation, "timeout", "connecting took too long", sent=False)
    if isinstance(error, EmptyPoolError):
        problem = "no pooled connection became free in time (max_connections are all busy)"
        return TransportFailed(operation, "timeout", problem, sent=False)
    if isinstance(error, ClosedPoolError):
        return TransportFailed(operation, "connect", "the client was closed", sent=False)
    if isinstance(error, ReadTimeoutError):
        return TransportFailed(operation, "timeout", "the server did not answer in time", True)
    if isinstance(error, SSLError):
        return TransportFailed(operation, "connect", f"TLS failed ({name})", sent=False)
    if isinstance(error, ConnectionRefusedError):
        return TransportFailed(operation, "connect", "connection refused", sent=False)
    if isinstance(error, TimeoutError):
        return TransportFailed(operation, "timeout", "the server did not answer in time", True)
    # Anything else happened once the request may have been written: a reset, a response that
    # is not HTTP, a body shorter than its Content-Length, a chunk that never ended.
    return TransportFailed(operation, "broken", f"{name}: the response was cut short", True)


_DEADLINE_PASSED: Final = "the overall deadline passed before the answer was complete"


class _Watchdog:
    """Shuts down the socket of any attempt still running at its deadline.

    One daemon thread, started when there is something to watch and gone soon after there is
    not, sleeps until the earliest deadline. Shutting a socket down makes the read blocked on it
    return at once, in whichever thread it is; the attempt then reports a timeout.
    """

    def __init__(self) -> None:
        self._changed = threading.Condition()
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
                self._running = True
                self._wake_at = deadline
                threading.Thread(target=self._run, name="cdsessions-deadlines", daemon=True).start()
            elif deadline < self._wake_at:
                # Only an earlier deadline needs the thread awake now. Waking it for every
                # request cost a thread switch (and a GIL hand-over) per call.
                self._changed.notify()
            return token

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
                    self._changed.wait(wait)
                    continue
                idle_since = now if idle_since is None else idle_since
                if self._closing or now - idle_since >= _WATCHDOG_IDLE:
                    self._running = False
                    return
                self._wake_at = now + _WATCHDOG_IDLE
                self._changed.wait(_WATCHDOG_IDLE)

    def close(self) -> None:
        """Let the thread exit as soon as nothing is watched, rather than after a pause."""
        with self._changed:
            self._closing = True
            self._changed.notify()


def _shut(sock: socket.socket) -> None:
    # OSError: already closed by the other side, so nothing is left to interrupt.
    with contextlib.suppress(OSError):
        sock.shutdown(socket.SHUT_RDWR)


# The attempt running in this thread: its watchdog and deadline, and the watch token once its
# socket is known. Thread-local because urllib3 offers no other way into the connection.
_current = threading.local()


def _watch_this(sock: socket.socket | None) -> None:
    watchdog: _Watchdog | None = getattr(_current, "watchdog", None)
    deadline: float | None = getattr(_current, "deadline", None)
    if watchdog is not None and deadline is not None and sock is not None:
        _current.token = watchdog.watch(deadline, sock)


_C = TypeVar("_C", bound=HTTPConnection)


@functools.cache
def _watched(base: type[_C]) -> type[_C]:
    """``base`` with the watchdog started once the request is out (in ``getresponse``)."""

    def getresponse(self: HTTPConnection) -> HTTPResponse:
        # The request is out; from here on we only wait on the server. (A recorder's stub
        # connection may have no socket: then there is nothing to watch.)
        _watch_this(getattr(self, "sock", None))
        return base.getresponse(self)

    return type(f"_Watched{base.__name__}", (base,), {"getresponse": getresponse})


class _WatchedHTTPPool(HTTPConnectionPool):
    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        # Subclass the connection class in use *now*, not one fixed at import: recorders such
        # as vcrpy / pytest-recording patch HTTPConnectionPool.ConnectionCls, and a fixed
        # subclass would hide every request from them (nothing recorded, replays hit the net).
        self.ConnectionCls = _watched(HTTPConnectionPool.ConnectionCls)


class _WatchedHTTPSPool(HTTPSConnectionPool):
    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.ConnectionCls = _watched(HTTPSConnectionPool.ConnectionCls)


#: urllib3 never retries or follows redirects here; one shared value (it is immutable) instead of
#: a new ``Retry`` built for every request.
_NO_RETRY: Final = urllib3.Retry(total=False, redirect=False)
_CUT_SHORT: Final = "the body ended before its Content-Length"


@functools.lru_cache(maxsize=64)
def _urllib3_timeout(connect: float | None, read: float | None) -> urllib3.Timeout:
    # urllib3 clones a Timeout before using it, so one per distinct pair can be shared.
    return urllib3.Timeout(connect=connect, read=read)


def _too_large(operation: str, limit: int) -> TransportFailed:
    return TransportFailed(operation, "too_large", f"body exceeds {limit} bytes", sent=True)


def _declared_length(response: BaseHTTPResponse) -> int | None:
    value = response.headers.get("content-length", "").strip()
    return int(value) if value.isdigit() else None


class Urllib3Transport:
    """Sends requests over a pooled, thread-safe urllib3 ``PoolManager``.

    ``max_connections`` bounds the connections per host; callers beyond it wait for a free one
    (for at most what remains of their deadline, then fail with a timeout, nothing sent).
    """

    def __init__(self, *, max_connections: int = 10) -> None:
        self._pool = urllib3.PoolManager(
            num_pools=4,
            maxsize=max_connections,
            block=True,
            retries=False,
            cert_reqs="CERT_REQUIRED",
        )
        self._pool.pool_classes_by_scheme = {"http": _WatchedHTTPPool, "https": _WatchedHTTPSPool}
        self._watchdog = _Watchdog()
        self._pools: dict[str, tuple[HTTPConnectionPool, str]] = {}

    def _pool_for(self, base_url: str) -> tuple[HTTPConnectionPool, str]:
        """The connection pool for ``base_url`` and its path prefix, looked up once."""
        found = self._pools.get(base_url)
        if found is not None and found[0].pool is not None:  # None: closed or evicted
            return found
        pool = self._pool.connection_from_url(base_url)
        found = (pool, urlsplit(base_url).path.rstrip("/"))
        self._pools[base_url] = found
        return found

    def send(
        self,
        request: HttpRequest,
        *,
        timeout: Timeout,
        max_response_bytes: int,
        operation: str,
    ) -> Result[HttpResponse, TransportFailed]:
        deadline = None if timeout.total is None else time.monotonic() + timeout.total
        _current.watchdog, _current.deadline, _current.token = self._watchdog, deadline, None
        try:
            return self._send(request, timeout, max_response_bytes, operation)
        finally:
            token: int | None = _current.token
            _current.watchdog = _current.deadline = _current.token = None
            if token is not None:
                self._watchdog.release(token)

    def _send(
        self,
        request: HttpRequest,
        timeout: Timeout,
        limit: int,
        operation: str,
    ) -> Result[HttpResponse, TransportFailed]:
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
                pool_timeout=timeout.total,  # type: ignore[arg-type]  # a float works
            )
        except (HTTPError, OSError) as error:
            return Failure(self._explain(operation, error))
        except ValueError:  # http.client refuses a header value (a newline in the user agent)
            problem = "the request could not be written (an invalid header value)"
            return Failure(TransportFailed(operation, "broken", problem, sent=False))
        try:
            read = self._read(response, limit, operation)
        except (HTTPError, OSError) as error:
            response.close()  # never hand a half-read connection back to the pool
            read = Failure(self._explain(operation, error))
        finally:
            response.release_conn()
        if isinstance(read, Success) and self._cut_off():
            # The watchdog ended the body early; what arrived may look complete but is not.
            return Failure(TransportFailed(operation, "timeout", _DEADLINE_PASSED, sent=True))
        return read

    def _explain(self, operation: str, error: BaseException) -> TransportFailed:
        failure = _failure(operation, error)
        if failure.sent and self._cut_off():
            return TransportFailed(operation, "timeout", _DEADLINE_PASSED, sent=True)
        return failure

    def _cut_off(self) -> bool:
        """Whether the watchdog stopped this attempt at its overall deadline."""
        token: int | None = _current.token
        _current.token = None
        return token is not None and self._watchdog.release(token)

    @staticmethod
    def _read(
        response: BaseHTTPResponse, limit: int, operation: str
    ) -> Result[HttpResponse, TransportFailed]:
        declared = _declared_length(response)
        if declared is not None and declared > limit:
            response.close()  # refuse before reading a byte of it
            return Failure(_too_large(operation, limit))
        if declared is not None and not response.headers.get("content-encoding"):
            # The usual case: one read of exactly the declared size. One allocation, no chunk
            # list and no join, which briefly held a large body twice.
            body = response.read(declared)
            if len(body) < declared:
                response.close()
                return Failure(TransportFailed(operation, "broken", _CUT_SHORT, sent=True))
            return Success(
                HttpResponse(
                    status=response.status,
                    headers=tuple(response.headers.items()),
                    body=body,
                    reason=response.reason or "",
                )
            )
        chunks: list[bytes] = []
        size = 0
        while chunk := response.read1(_CHUNK):
            size += len(chunk)
            if size > limit:
                response.close()  # do not reuse a connection with unread bytes on it
                return Failure(_too_large(operation, limit))
            chunks.append(chunk)
        return Success(
            HttpResponse(
                status=response.status,
                headers=tuple(response.headers.items()),
                body=b"".join(chunks),
                reason=response.reason or "",
            )
        )

    def close(self) -> None:
        self._pool.clear()
        self._watchdog.close()

    def __repr__(self) -> str:
        return "Urllib3Transport()"
