"""What both clients are made of: one constructor (so the two cannot accept different
options), the :class:`~cdsessions._core.calls.ClientCore` built from it, and the transport,
which each client creates on first use when none is given and drives in its own way."""

from __future__ import annotations

import contextlib
import threading
from collections.abc import Iterable
from typing import TYPE_CHECKING, Final, Generic, TypeVar

from cdsessions._core.calls import Bearer, ClientCore
from cdsessions._core.clocks import SYSTEM_CLOCK, Clock
from cdsessions._core.observe import Observer
from cdsessions._core.retry import RetryPolicy
from cdsessions._core.servers import resolve_server
from cdsessions._core.timeouts import Timeout
from cdsessions._core.wire import HttpRequest
from cdsessions.errors import TransportFailed
from cdsessions.transports._fork import register as register_for_fork

if TYPE_CHECKING:
    from cdsessions.ledger import Ledger

__all__ = ["CLIENT_CLOSED", "ClientBase"]

#: The ``problem`` of a request refused because the client was closed after its call began (the
#: same words as a call that was waiting for a pooled connection when the pool closed).
CLIENT_CLOSED: Final = "the client was closed"


def closed_under(request: HttpRequest) -> TransportFailed | None:
    """Why ``request``, of a call begun before the client was closed, is not sent: it is any
    request but a cancel. A cancel is always sent: it stops the billing of a session a scope
    made, and refusing it would leave that session running."""
    if request.method == "DELETE":
        return None
    return TransportFailed(request.operation, "connect", CLIENT_CLOSED, sent=False)


TransportT = TypeVar("TransportT")
ClockT = TypeVar("ClockT", bound=Clock)


class ClientBase(Generic[TransportT, ClockT]):
    """What both clients are made of: the options (one constructor, so the two cannot accept
    different ones), a :class:`ClientCore` built from them, and the transport, which each
    client creates on first use when none is given and drives in its own way."""

    def __init__(
        self,
        bearer: Bearer | None = None,
        *,
        server: str = "production",
        transport: TransportT | None = None,
        timeout: Timeout | float | None = None,
        max_response_bytes: int | None = None,
        max_connections: int = 10,
        allow_insecure_http: bool = False,
        user_agent: str | None = None,
        retry: RetryPolicy | bool | None = None,
        observers: Iterable[Observer] = (),
        clock: ClockT | None = None,
        ledger: Ledger | None = None,
    ) -> None:
        # The ledger (off unless given) is an observer: it sees every create, by any path.
        if ledger is not None:
            with contextlib.suppress(TypeError):  # not iterable: ClientCore refuses it, per call
                observers = (*observers, ledger)
        #: The :class:`~cdsessions.ledger.Ledger` this client records its creates in, or None.
        self.ledger = ledger
        self._core = ClientCore(
            bearer,
            server=server,
            timeout=timeout,
            max_response_bytes=max_response_bytes,
            max_connections=max_connections,
            allow_insecure_http=allow_insecure_http,
            user_agent=user_agent,
            retry=retry,
            observers=observers,
            clock=SYSTEM_CLOCK if clock is None else clock,
        )
        #: The clock given, None for the real time (each client then waits its own way).
        self._clock = clock
        self._transport = transport
        self._owns_transport = transport is None
        # Guards creating and closing the transport (the blocking client is shared by threads).
        self._lock = threading.Lock()
        # How many times the client was closed. A call notes it when it begins; if it changed
        # before one of its requests is sent, that request fails as "the client was closed"
        # (see closed_under) rather than reopening a transport nobody would close again.
        self._closes = 0
        register_for_fork(self)

    def _after_fork_in_child(self) -> None:
        # A thread that was creating or closing the transport when the process forked does not
        # exist in the child: the lock it held would be held forever. (The transport, if any,
        # starts afresh by itself.)
        self._lock = threading.Lock()

    def _refused(self, request: HttpRequest, began: int) -> TransportFailed | None:
        """The failure for ``request`` of a call that began when the client had been closed
        ``began`` times, if the client was closed since (see :func:`closed_under`)."""
        return None if began == self._closes else closed_under(request)

    def __repr__(self) -> str:
        # The base URL as it is used, never the argument as given: that may carry credentials.
        shown = resolve_server(self._core.server).value_or("<unusable>")
        return f"{type(self).__name__}(server={shown!r})"
