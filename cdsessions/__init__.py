"""cdsessions: a typed client for the ComfyDeploy Session API.

Every operation returns a ``returns`` ``Result``: ``Success(value)`` or ``Failure(ApiError)``.
"""

from typing import TYPE_CHECKING, Any

from cdsessions._version import __version__
from cdsessions.client import SessionsClient
from cdsessions.errors import (
    ApiError,
    DecodeFailed,
    HttpError,
    InvalidRequest,
    TransportFailed,
    ValidationFailed,
    ValidationItem,
)
from cdsessions.models import (
    CreateSessionBody,
    CreateSessionResponse,
    DeleteSessionResponse,
    ExtendSessionResponse,
    GPUEventModel,
    GPUProviderType,
    HTTPValidationError,
    MachineGPU,
    Session,
    ValidationError,
)
from cdsessions.retry import RetryPolicy
from cdsessions.timeouts import Timeout

if TYPE_CHECKING:
    from cdsessions.async_client import AsyncSessionsClient
    from cdsessions.budget import OverBudget
    from cdsessions.costs import SessionCosts, Unknown, costs_of
    from cdsessions.fake_service import FakeService
    from cdsessions.lifecycle import NotReady, OpenSession, SessionGone, SessionScope
    from cdsessions.pricing import GpuPricing, NoPrice, Price
    from cdsessions.reaper import Reaped, ReapReport, Selection, reap, reap_async
    from cdsessions.transports.cassette import CassetteError, CassetteTransport
    from cdsessions.transports.fake import FakeTransport
    from cdsessions.transports.inline import AsyncFakeTransport

__all__ = [
    "ApiError",
    "AsyncFakeTransport",
    "AsyncSessionsClient",
    "CassetteError",
    "CassetteTransport",
    "CreateSessionBody",
    "CreateSessionResponse",
    "DecodeFailed",
    "DeleteSessionResponse",
    "ExtendSessionResponse",
    "FakeService",
    "FakeTransport",
    "GPUEventModel",
    "GPUProviderType",
    "GpuPricing",
    "HTTPValidationError",
    "HttpError",
    "InvalidRequest",
    "MachineGPU",
    "NoPrice",
    "NotReady",
    "OpenSession",
    "OverBudget",
    "Price",
    "ReapReport",
    "Reaped",
    "RetryPolicy",
    "Selection",
    "Session",
    "SessionCosts",
    "SessionGone",
    "SessionScope",
    "SessionsClient",
    "Timeout",
    "TransportFailed",
    "Unknown",
    "ValidationError",
    "ValidationFailed",
    "ValidationItem",
    "__version__",
    "costs_of",
    "reap",
    "reap_async",
]

# The cost guard's names, each from the module that holds it; loaded on first use.
_LAZY: dict[str, str] = {
    "GpuPricing": "cdsessions.pricing",
    "NoPrice": "cdsessions.pricing",
    "Price": "cdsessions.pricing",
    "OverBudget": "cdsessions.budget",
    "SessionCosts": "cdsessions.costs",
    "Unknown": "cdsessions.costs",
    "costs_of": "cdsessions.costs",
    "ReapReport": "cdsessions.reaper",
    "Reaped": "cdsessions.reaper",
    "Selection": "cdsessions.reaper",
    "reap": "cdsessions.reaper",
    "reap_async": "cdsessions.reaper",
}


def __getattr__(name: str) -> Any:
    # asyncio and the thread pool are loaded only by those who use the async client.
    if name == "AsyncSessionsClient":
        from cdsessions.async_client import AsyncSessionsClient

        return AsyncSessionsClient
    if name == "AsyncFakeTransport":
        from cdsessions.transports.inline import AsyncFakeTransport

        return AsyncFakeTransport
    # Loaded with the first lifecycle call, or when asked for here.
    if name in ("NotReady", "OpenSession", "SessionGone", "SessionScope"):
        from cdsessions import lifecycle

        return getattr(lifecycle, name)
    # The fake is for tests and demos: loaded only when asked for.
    if name == "FakeService":
        from cdsessions.fake_service import FakeService

        return FakeService
    if name == "FakeTransport":
        from cdsessions.transports.fake import FakeTransport

        return FakeTransport
    if name in ("CassetteTransport", "CassetteError"):  # PyYAML is needed only on load
        from cdsessions.transports import cassette

        return getattr(cassette, name)
    if name in _LAZY:
        from importlib import import_module

        return getattr(import_module(_LAZY[name]), name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
