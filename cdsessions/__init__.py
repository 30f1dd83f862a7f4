"""cdsessions: a typed client for the ComfyDeploy Session API.

Every operation returns a ``returns`` ``Result``: ``Success(value)`` or ``Failure(ApiError)``.

The public faces: this package (the clients, the models, the failures, the settings, the
session scope's values and the observer events); :mod:`cdsessions.errors` (the closed family of
failures);
:mod:`cdsessions.transports` (urllib3, cassette replay, the transport contract);
:mod:`cdsessions.fake` (the fake ComfyDeploy, for tests and demos); :mod:`cdsessions.costs`
(prices, cost columns, the reaper); :mod:`cdsessions.ledger` (the local record of the
sessions this machine started, and who started them). Everything else (``_core``, ``_cli``,
``_``-prefixed modules) is internal.
"""

from typing import TYPE_CHECKING, Any

from cdsessions._core.observe import AttemptFinished, AttemptStarted, Observer
from cdsessions._core.retry import RetryPolicy
from cdsessions._core.timeouts import Timeout
from cdsessions._version import __version__
from cdsessions.client import SessionsClient
from cdsessions.errors import (
    ApiError,
    DecodeFailed,
    HttpError,
    InvalidRequest,
    NotReady,
    OverBudget,
    RunFailed,
    RunTimedOut,
    SessionGone,
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
    LogLine,
    Machine,
    MachineGPU,
    Session,
    ValidationError,
)

if TYPE_CHECKING:
    from cdsessions.async_client import AsyncSessionsClient
    from cdsessions.comfy import AsyncComfyUI, ComfyUI
    from cdsessions.comfy_models import (
        ComfyFile,
        ComfyHistory,
        ComfyQueue,
        ComfySystemStats,
        NodeError,
        PromptQueued,
        PromptRejected,
        RunOutput,
        RunProgress,
        RunResult,
    )
    from cdsessions.leases import AsyncLease, Lease, LeaseState
    from cdsessions.ledger import Ledger, LedgerProblem
    from cdsessions.lifecycle import AsyncSessionScope, Backoff, OpenSession, SessionScope

__all__ = [
    "ApiError",
    "AsyncComfyUI",
    "AsyncLease",
    "AsyncSessionScope",
    "AsyncSessionsClient",
    "AttemptFinished",
    "AttemptStarted",
    "Backoff",
    "ComfyFile",
    "ComfyHistory",
    "ComfyQueue",
    "ComfySystemStats",
    "ComfyUI",
    "CreateSessionBody",
    "CreateSessionResponse",
    "DecodeFailed",
    "DeleteSessionResponse",
    "ExtendSessionResponse",
    "GPUEventModel",
    "GPUProviderType",
    "HTTPValidationError",
    "HttpError",
    "InvalidRequest",
    "Lease",
    "LeaseState",
    "Ledger",
    "LedgerProblem",
    "LogLine",
    "Machine",
    "MachineGPU",
    "NodeError",
    "NotReady",
    "Observer",
    "OpenSession",
    "OverBudget",
    "PromptQueued",
    "PromptRejected",
    "RetryPolicy",
    "RunFailed",
    "RunOutput",
    "RunProgress",
    "RunResult",
    "RunTimedOut",
    "Session",
    "SessionGone",
    "SessionScope",
    "SessionsClient",
    "Timeout",
    "TransportFailed",
    "ValidationError",
    "ValidationFailed",
    "ValidationItem",
    "__version__",
]


_COMFY_MODELS = frozenset(
    {
        "ComfyFile",
        "ComfyHistory",
        "ComfyQueue",
        "ComfySystemStats",
        "NodeError",
        "PromptQueued",
        "PromptRejected",
        "RunOutput",
        "RunProgress",
        "RunResult",
    }
)


def __getattr__(name: str) -> Any:
    # asyncio and the thread pool are loaded only by those who use the async client.
    if name == "AsyncSessionsClient":
        from cdsessions import async_client

        return async_client.AsyncSessionsClient
    # Loaded with the first lifecycle call, or when asked for here.
    if name in ("AsyncSessionScope", "Backoff", "OpenSession", "SessionScope"):
        from cdsessions import lifecycle

        return getattr(lifecycle, name)
    # sqlite3 is loaded only by those who keep a ledger.
    if name in ("Ledger", "LedgerProblem"):
        from cdsessions import ledger

        return getattr(ledger, name)
    if name in ("AsyncLease", "Lease", "LeaseState"):
        from cdsessions import leases

        return getattr(leases, name)
    # A session's ComfyUI: loaded by those who run workflows.
    if name in ("AsyncComfyUI", "ComfyUI"):
        from cdsessions import comfy

        return getattr(comfy, name)
    if name in _COMFY_MODELS:
        from cdsessions import comfy_models

        return getattr(comfy_models, name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
