"""Every urllib3 (and ``http.client``) internal the urllib3 transport relies on, in one place.

urllib3 is pinned loosely (``urllib3>=2.2,<3``) and none of what follows is its documented API,
so an upgrade may change any of it. ``nox -s urllib3_range`` runs the transport's tests against
the lowest and the newest version the pin allows; when one fails, this is the module to read.
Each item says what it relies on and what would break without it.

Documented, or public by convention, and used directly by :mod:`cdsessions.transports._urllib3`
(listed so an upgrade has the whole picture): ``PoolManager.pool_classes_by_scheme``,
``HTTPConnectionPool.ConnectionCls``, ``HTTPConnectionPool.urlopen`` (its ``pool_timeout`` is
typed ``int`` but is used as a float of seconds), ``HTTPConnection.timeout / port /
source_address / socket_options``, ``HTTPResponse.read(amt, decode_content=False)``,
``HTTPHeaderDict.iteritems``, ``MaxRetryError.reason``.
"""

from __future__ import annotations

import http.client
import socket
from collections.abc import Callable
from queue import Empty
from typing import Any, Final, TypeVar, cast

from urllib3.connection import HTTPConnection
from urllib3.connectionpool import HTTPConnectionPool
from urllib3.util import connection as _connection

__all__ = [
    "CLOSED_QUEUE_ERROR",
    "EMPTY_QUEUE_ERROR",
    "allowed_gai_family",
    "connection_class",
    "create_connection",
    "dns_host",
    "pool_class",
    "pool_queue",
]

_P = TypeVar("_P", bound=HTTPConnectionPool)
_C = TypeVar("_C", bound=HTTPConnection)

# -- the pool's queue of connections ---------------------------------------------------------

#: Relies on: ``HTTPConnectionPool._get_conn`` turning an ``AttributeError`` raised by
#: ``self.pool.get(...)`` into ``ClosedPoolError`` (it is what ``None.get`` raises once
#: ``close()`` has set ``pool.pool = None``). The fair queue raises it from a closed pool, so a
#: waiting caller fails as "the client was closed".
CLOSED_QUEUE_ERROR: Final = AttributeError
#: Relies on: ``_get_conn`` turning ``queue.Empty`` from a blocking ``get`` into
#: ``EmptyPoolError`` ("no pooled connection became free in time"), and ``close()`` draining
#: the queue with ``get(block=False)`` until ``Empty``.
EMPTY_QUEUE_ERROR: Final = Empty


def pool_queue(pool: HTTPConnectionPool) -> Any:
    """The queue of ``pool``'s idle connections, or None once the pool is closed.

    Relies on: ``HTTPConnectionPool.pool``, the ``QueueCls`` instance urllib3 makes in
    ``__init__`` (and fills with ``maxsize`` Nones, each "may open a new connection"), set to
    None by ``close()``."""
    return pool.pool


def pool_class(
    base: type[_P],
    queue_class: type,
    watch: Callable[[Any], Any],
    before_close: Callable[[HTTPConnectionPool], None],
) -> type[_P]:
    """``base`` (an HTTP or HTTPS pool class) keeping its idle connections in ``queue_class``,
    making connections of ``watch(ConnectionCls)``, and calling ``before_close`` on close.

    Relies on: the class attribute ``QueueCls`` (urllib3 builds ``pool.pool`` from it with
    ``QueueCls(maxsize)`` and uses only ``get(block, timeout)``, ``put(item, block=False)`` and
    ``qsize()``), and ``ConnectionCls`` being read per pool when a connection is made."""

    def __init__(self: _P, *args: Any, **kwargs: Any) -> None:
        base.__init__(self, *args, **kwargs)
        # The connection class in use *now*, not one fixed at import: recorders such as vcrpy /
        # pytest-recording patch ConnectionCls, and a fixed subclass would hide every request
        # from them (nothing recorded, replays hit the network).
        # urllib3 types ConnectionCls as protocols its own HTTPConnection misses under pyright.
        self.ConnectionCls = watch(base.ConnectionCls)  # pyright: ignore[reportAttributeAccessIssue]

    def close(self: _P) -> None:
        before_close(self)
        base.close(self)

    members = {"QueueCls": queue_class, "__init__": __init__, "close": close}
    return cast("type[_P]", type(f"_Watched{base.__name__}", (base,), members))


# -- connections -----------------------------------------------------------------------------


def dns_host(conn: HTTPConnection) -> str:
    """The host name as the caller gave it (brackets stripped from an IPv6 literal).

    Relies on: ``HTTPConnection._dns_host`` (urllib3 2.x), the name before urllib3 drops a final
    dot for ``host``; a lookup of ``host`` would resolve another name."""
    name: str = conn._dns_host
    return name.strip("[]")


def connection_class(
    base: type[_C],
    *,
    new_socket: Callable[[HTTPConnection, Callable[[], socket.socket]], socket.socket],
    members: dict[str, Any],
) -> type[_C]:
    """``base`` with ``members`` added, its sockets made by ``new_socket(conn, make)`` (``make``
    opens one as ``base`` would, for an IP literal), and interim responses skipped.

    Relies on: ``HTTPConnection._new_conn()``, the one method that opens a new connection's
    socket (resolving and connecting), called from ``connect()``; and ``http.client``'s
    ``response_class`` attribute, the class ``getresponse()`` builds its response with."""

    def _new_conn(self: _C) -> socket.socket:
        return new_socket(self, lambda: base._new_conn(self))

    added = {**members, "_new_conn": _new_conn, "response_class": _FinalResponse}
    return cast("type[_C]", type(f"_Watched{base.__name__}", (base,), added))


#: Interim (1xx) responses skipped before the final one; more means a hostile server.
_MAX_INTERIM: Final = 100


class _FinalResponse(http.client.HTTPResponse):
    """``http.client``'s response, skipping every interim (1xx) response before the final one,
    as HTTP/1.1 requires of a client (http.client skips only 100). 101 is final: it would switch
    protocols, which is never asked for here, so it reaches the caller as an error status.

    Relies on: ``HTTPResponse._read_status()`` (reads one status line) and
    ``http.client._read_headers(fp)`` (reads and drops one header block)."""

    def _read_status(self) -> tuple[str, int, str]:
        for _ in range(_MAX_INTERIM):
            version, status, reason = super()._read_status()  # type: ignore[misc]
            if not 100 <= status < 200 or status == 101:
                return version, status, reason
            http.client._read_headers(self.fp)  # type: ignore[attr-defined]
        raise http.client.HTTPException(f"more than {_MAX_INTERIM} interim (1xx) responses")


# -- name resolution -------------------------------------------------------------------------


def allowed_gai_family() -> socket.AddressFamily:
    """The address family urllib3 would resolve with (IPv4 only when IPv6 is unavailable).

    Relies on: ``urllib3.util.connection.allowed_gai_family``, not part of urllib3's documented
    API; resolving in the transport's own threads must pick the family urllib3 would."""
    return _connection.allowed_gai_family()


def create_connection(
    address: tuple[str, int],
    timeout: Any,
    source_address: tuple[str, int] | None,
    socket_options: Any,
) -> socket.socket:
    """A connected socket to an already-resolved ``address``, as urllib3 makes one.

    Relies on: ``urllib3.util.connection.create_connection`` (its ``socket_options`` applied
    before connecting: ``TCP_NODELAY`` and any the caller configured)."""
    return _connection.create_connection(
        address, timeout, source_address=source_address, socket_options=socket_options
    )
