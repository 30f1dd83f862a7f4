"""The urllib3 internals the transport builds on (cdsessions/transports/_urllib3_internals.py),
each checked on its own against a real 127.0.0.1 server, so an urllib3 upgrade that moves one
fails here by name rather than somewhere in the transport."""

from __future__ import annotations

import socket
from collections.abc import Callable

from urllib3.connection import HTTPConnection

from cdsessions.transports._urllib3_internals import connection_class
from tests.support.hostile import answer, hostile, response


def test_a_connection_class_makes_every_socket_through_new_socket() -> None:
    made: list[tuple[HTTPConnection, int]] = []  # (connection, the port its socket reached)

    def new_socket(conn: HTTPConnection, make: Callable[[], socket.socket]) -> socket.socket:
        sock = make()  # opened as urllib3 would
        made.append((conn, sock.getpeername()[1]))
        return sock

    watched = connection_class(HTTPConnection, new_socket=new_socket, members={})
    ok = response("200 OK", "Content-Length: 2", body=b"{}")
    with hostile(answer(ok)) as server:
        conn = watched("127.0.0.1", server.port, timeout=5)
        try:
            conn.request("GET", "/x")
            got = conn.getresponse()
            assert (got.status, got.data) == (200, b"{}")
        finally:
            conn.close()
    assert made == [(conn, server.port)]
