"""Everything for testing code that uses cdsessions: the fake ComfyDeploy.

:class:`FakeService` is the service in memory (sessions, machines, prices, a clock you can
move); :class:`FakeTransport` and :class:`AsyncFakeTransport` put it behind the transport
interface, with no sockets and no threads; :func:`serve_in_thread` serves it over real HTTP on
127.0.0.1 (the ``fake-server`` command and the ``cdsessions_fake_url`` fixture use it)::

    from cdsessions import SessionsClient
    from cdsessions.fake import FakeService, FakeTransport

    fake = FakeService()
    client = SessionsClient("any-key", transport=FakeTransport(fake))

Scripting it: ``fake.answer_next("create", 500)``, ``fake.fail_next("get", "timeout")``
(:data:`FaultKind`: ``"timeout"``, ``"reset"``, ``"no_answer"``), ``fake.never_ready()``,
``fake.end_session(session_id)``. :class:`ManualClock` is also a client clock
(``SessionsClient(..., clock=clock)``): waits then move it instead of sleeping.
"""

from typing import TYPE_CHECKING, Any

from cdsessions.fake.comfyui import FakeComfyUI, serve_comfyui
from cdsessions.fake.script import FakeScript, FaultKind, Operation
from cdsessions.fake.service import (
    DEFAULT_GPU_PRICES,
    DEFAULT_MACHINE_ID,
    FakeMachine,
    FakeService,
    FakeSession,
    ManualClock,
)
from cdsessions.fake.transport import AsyncFakeTransport, FakeTransport

if TYPE_CHECKING:
    from cdsessions.fake.server import FakeHTTPServer, make_server, serve_in_thread

__all__ = [
    "DEFAULT_GPU_PRICES",
    "DEFAULT_MACHINE_ID",
    "AsyncFakeTransport",
    "FakeComfyUI",
    "FakeHTTPServer",
    "FakeMachine",
    "FakeScript",
    "FakeService",
    "FakeSession",
    "FakeTransport",
    "FaultKind",
    "ManualClock",
    "Operation",
    "make_server",
    "serve_comfyui",
    "serve_in_thread",
]


def __getattr__(name: str) -> Any:
    # The HTTP server (and http.server) is loaded only by those who serve the fake.
    if name in ("FakeHTTPServer", "make_server", "serve_in_thread"):
        from cdsessions.fake import server

        return getattr(server, name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
