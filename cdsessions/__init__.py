"""cdsessions: a typed client for the ComfyDeploy Session API.

Every operation returns a ``returns`` ``Result``: ``Success(value)`` or ``Failure(ApiError)``.
"""

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
from cdsessions.timeouts import Timeout

__all__ = [
    "ApiError",
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
    "MachineGPU",
    "Session",
    "SessionsClient",
    "Timeout",
    "TransportFailed",
    "ValidationError",
    "ValidationFailed",
    "ValidationItem",
    "__version__",
]
