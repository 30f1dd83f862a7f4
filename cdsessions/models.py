"""The Session API's data, as frozen msgspec Structs with the wire's snake_case names.

Response models are permissive on purpose: unknown fields are ignored and unknown enum values
are kept as their string, so a new GPU type or a new server field never breaks a user's code.
Every datetime handed out is timezone-aware UTC (the live server sends ``timeout_end`` naive,
meaning UTC).

The response Structs that hold only scalars are ``gc=False``: frozen and scalar-only, they can
never be part of a reference cycle, and leaving them untracked spares the cycle collector its
passes over a long list (decoding 100 000 sessions takes about half the time).
"""

from __future__ import annotations

import enum
from datetime import UTC, datetime
from typing import Any

import msgspec
from msgspec.structs import force_setattr

__all__ = [
    "CreateSessionBody",
    "CreateSessionResponse",
    "DeleteSessionResponse",
    "ExtendSessionResponse",
    "GPUEventModel",
    "GPUProviderType",
    "HTTPValidationError",
    "LogLine",
    "Machine",
    "MachineGPU",
    "Session",
    "ValidationError",
]


class _OpenStrEnum(enum.StrEnum):
    """A string enum that accepts values it does not know yet.

    ``MachineGPU("X9")`` returns a member whose value is ``"X9"`` (``is_known`` is False) instead
    of raising, so msgspec decodes a GPU added to the server after this release, and re-encodes
    it unchanged. Unknown members are not cached, so hostile input cannot grow the class.
    """

    @classmethod
    def _missing_(cls, value: object) -> Any:
        if not isinstance(value, str):
            return None
        member = str.__new__(cls, value)
        member._name_ = value
        member._value_ = value
        return member

    @property
    def is_known(self) -> bool:
        return self._value_ in type(self)._value2member_map_


class MachineGPU(_OpenStrEnum):
    """GPU types. The list grows on the server; unknown values decode (``is_known`` False)."""

    CPU = "CPU"
    T4 = "T4"
    L4 = "L4"
    A10G = "A10G"
    L40S = "L40S"
    A100 = "A100"
    A100_80GB = "A100-80GB"
    H100 = "H100"
    H200 = "H200"
    B200 = "B200"


class GPUProviderType(_OpenStrEnum):
    RUNPOD = "runpod"
    MODAL = "modal"
    COMFY_DEPLOY = "comfy-deploy"


def _as_utc(value: datetime | None) -> datetime | None:
    if value is None:
        return None
    if value.tzinfo is None:  # the live server's naive timestamps mean UTC
        return value.replace(tzinfo=UTC)
    try:
        return value.astimezone(UTC)
    except OverflowError:
        # e.g. 0001-01-01T00:00+01:00 is before year 1 in UTC. A ValueError here becomes a
        # msgspec ValidationError naming the field, so decoding fails as a value, not a crash.
        raise ValueError(f"{value.isoformat()} is out of range in UTC") from None


def _normalise_datetimes(obj: msgspec.Struct, names: tuple[str, ...]) -> None:
    for name in names:
        value = getattr(obj, name)
        if value is not None and value.tzinfo is not UTC:
            force_setattr(obj, name, _as_utc(value))


def _mask(url: str | None) -> str:
    # A session URL is a public tunnel with no auth of its own: never print it whole.
    return "None" if url is None else "'<redacted url>'"


class CreateSessionBody(msgspec.Struct, frozen=True, kw_only=True):
    """What ``create`` sends. ``timeout`` is in minutes (the server turns None or 0 into 15).

    ``wait_for_server=True`` makes the server answer only once ComfyUI is up (up to ~10 min)
    and the response then carries the ``url``.
    """

    machine_id: str
    gpu: MachineGPU | None = None
    timeout: int | None = None
    wait_for_server: bool = False


class CreateSessionResponse(msgspec.Struct, frozen=True, kw_only=True, gc=False):
    session_id: str
    url: str | None = None

    def __repr__(self) -> str:
        return f"CreateSessionResponse(session_id={self.session_id!r}, url={_mask(self.url)})"


class DeleteSessionResponse(msgspec.Struct, frozen=True, kw_only=True, gc=False):
    success: bool


class ExtendSessionResponse(msgspec.Struct, frozen=True, kw_only=True, gc=False):
    """The live ``POST /session/{id}/increase-timeout`` answer (not in the seed)."""

    message: str | None = None


class Machine(msgspec.Struct, frozen=True, kw_only=True, gc=False):
    """A machine, as ``GET /machine/{id}`` and ``GET /machines`` return it (live server only).

    ``gpu`` is its default GPU, the one a create that names none gets. The server's answer also
    carries ``auth_token``, a secret the machine's runners use: this model has no field for it,
    so decoding drops it and it can never reach a repr, a log line or an error.
    """

    id: str
    name: str | None = None
    type: str | None = None
    gpu: str | None = None
    status: str | None = None
    machine_builder_version: str | None = None
    machine_version_id: str | None = None


class Session(msgspec.Struct, frozen=True, kw_only=True, gc=False):
    """One session, as ``get`` and ``list`` return it.

    Decodes both the seed's 3-field ``Session`` and the live server's ``SessionResponse``: the
    fields the seed lacks are optional here. ``url`` is None until ComfyUI is up.
    ``org_id`` is whatever the server sent (the live server sends the string ``"None"`` for
    personal accounts). ``gpu`` is a plain string on the live server.
    """

    session_id: str
    gpu_event_id: str
    url: str | None = None
    id: str | None = None
    gpu: str | None = None
    created_at: datetime | None = None
    timeout: int | None = None
    timeout_end: datetime | None = None
    machine_id: str | None = None
    machine_version_id: str | None = None
    status: str | None = None
    user_id: str | None = None
    org_id: str | None = None

    def __post_init__(self) -> None:
        # Spelled out rather than a loop over names: this runs once per session of a list.
        created, end = self.created_at, self.timeout_end
        if created is not None and created.tzinfo is not UTC:
            force_setattr(self, "created_at", _as_utc(created))
        if end is not None and end.tzinfo is not UTC:
            force_setattr(self, "timeout_end", _as_utc(end))

    @property
    def ready(self) -> bool:
        """True once the server has a tunnel URL for ComfyUI."""
        return self.url is not None

    def __repr__(self) -> str:
        return (
            f"Session(session_id={self.session_id!r}, gpu={self.gpu!r}, "
            f"status={self.status!r}, url={_mask(self.url)}, timeout_end={self.timeout_end!r})"
        )


class GPUEventModel(msgspec.Struct, frozen=True, kw_only=True, gc=False):
    """A list element as the seed documents it (the live server sends :class:`Session`)."""

    id: str
    user_id: str
    org_id: str | None
    machine_id: str | None
    start_time: datetime | None
    end_time: datetime | None
    gpu: MachineGPU | None
    gpu_provider: GPUProviderType
    ws_gpu: str | None = None
    created_at: datetime | None = None
    updated_at: datetime | None = None
    session_timeout: int | None = None
    session_id: str | None = None
    modal_function_id: str | None = None
    tunnel_url: str | None = None
    cost_item_title: str | None = None
    cost: float | None = None

    def __post_init__(self) -> None:
        _normalise_datetimes(self, ("start_time", "end_time", "created_at", "updated_at"))

    def to_session(self) -> Session:
        """The same session in the shape ``list`` hands out."""
        return session_from_seed(self)

    def __repr__(self) -> str:
        return (
            f"GPUEventModel(id={self.id!r}, session_id={self.session_id!r}, gpu={self.gpu!r}, "
            f"gpu_provider={self.gpu_provider!r}, tunnel_url={_mask(self.tunnel_url)})"
        )


class SeedListItem(msgspec.Struct, frozen=True, kw_only=True, gc=False):
    """What ``list`` reads from each element of a seed-shaped (``GPUEventModel``) answer.

    The fields a :class:`Session` is made of, and the ones the seed requires, typed as in
    :class:`GPUEventModel`. The optional fields a Session drops (``ws_gpu``, ``updated_at``,
    ``modal_function_id``, ``cost_item_title``, ``cost``) are skipped unread: a list of 100 000
    sessions then never holds their ~25 MB, and decodes faster. The datetimes a Session keeps
    are normalised by ``Session`` itself.
    """

    id: str
    user_id: str
    org_id: str | None
    machine_id: str | None
    start_time: datetime | None
    end_time: datetime | None
    gpu: MachineGPU | None
    gpu_provider: GPUProviderType
    created_at: datetime | None = None
    session_timeout: int | None = None
    session_id: str | None = None
    tunnel_url: str | None = None

    def __post_init__(self) -> None:
        # Both are checked as the seed requires, then let go as soon as it is clear the Session
        # will not use them (it never uses end_time; start_time only without created_at): a
        # list of 100 000 items decoded whole then holds ~5 MB less at its peak.
        if self.end_time is not None:
            force_setattr(self, "end_time", None)
        if self.start_time is not None and self.created_at is not None:
            force_setattr(self, "start_time", None)


def session_from_seed(event: GPUEventModel | SeedListItem) -> Session:
    """A seed list element as the :class:`Session` that ``list`` hands out.

    Raises ``ValueError`` for a date-time that UTC cannot hold (as decoding a Session does)."""
    return Session(
        session_id=event.session_id if event.session_id is not None else event.id,
        gpu_event_id=event.id,
        url=event.tunnel_url,
        gpu=None if event.gpu is None else event.gpu.value,
        created_at=event.created_at if event.created_at is not None else event.start_time,
        timeout=event.session_timeout,
        machine_id=event.machine_id,
        user_id=event.user_id,
        org_id=event.org_id,
    )


class ValidationError(msgspec.Struct, frozen=True, kw_only=True):
    """One item of a 422 body (FastAPI's shape). ``input`` and ``ctx`` are kept as sent."""

    loc: list[str | int]
    msg: str
    type: str
    input: Any = None
    ctx: dict[str, Any] | None = None


class HTTPValidationError(msgspec.Struct, frozen=True, kw_only=True):
    detail: list[ValidationError] = msgspec.field(default_factory=list)


class LogLine(msgspec.Struct, frozen=True, gc=False):
    """One line of a session's log (``GET /v2/stream-logs``): when the server wrote it (UTC),
    its level (``info``, ``error``... as the server names it) and its text, as sent but with the
    API key masked. The text is the server's: escape it before showing it
    (``cdsessions._core.text.escape`` is what the CLI uses). Its ``repr`` masks URLs (a
    session's tunnel can appear in its log)."""

    timestamp: datetime
    level: str
    message: str

    def __repr__(self) -> str:
        # A session's tunnel url can appear in its own log: never whole in a repr.
        from cdsessions._core.text import mask_urls

        return (
            f"LogLine(timestamp={self.timestamp!r}, level={self.level!r}, "
            f"message={mask_urls(self.message)!r})"
        )
