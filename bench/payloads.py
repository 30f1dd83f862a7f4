"""Canned response bodies, identical for every client measured.

Stdlib only: the server imports this in whatever environment runs the benchmark. Values vary from
session to session (ids, GPUs, times) so no decoder can win by caching one string.
"""

from __future__ import annotations

import json
import uuid
from typing import Final

__all__ = [
    "CREATE_GPU",
    "CREATE_TIMEOUT",
    "MACHINE_ID",
    "SESSION_ID",
    "created_body",
    "list_body",
    "list_label",
    "parse_label",
    "session_body",
]

SESSION_ID: Final = "3f0c2a6e-8d1b-4c7a-9e55-2b6f1d0c9a11"
MACHINE_ID: Final = "9a8b7c6d-5e4f-4a3b-8c2d-1e0f9a8b7c6d"
#: What every client sends to ``POST /session``: this machine, this GPU (the official SDK's
#: enum knows ``A10G``), 15 minutes, ``wait_for_server`` false.
CREATE_GPU: Final = "A10G"
CREATE_TIMEOUT: Final = 15
# GPUs every decoder accepts: the official SDK's ``MachineGPUOutput`` stops at H100.
_GPUS: Final = ("T4", "L4", "A10G", "A100", "A100-80GB", "H100")


def _uuid(kind: int, i: int) -> str:
    return str(uuid.UUID(int=(kind << 96) | (i * 2654435761 % (1 << 64))))


def _stamp(i: int, base_hour: int = 10) -> str:
    day, hour, minute, second = 1 + i % 28, base_hour + i % 12, i % 60, (i * 7) % 60
    return f"2025-11-{day:02d}T{hour:02d}:{minute:02d}:{second:02d}.{(i * 7919) % 1_000_000:06d}Z"


def session_body() -> bytes:
    """``GET /session/{id}``: the live ``SessionResponse`` (it also satisfies the official SDK's
    stricter seed ``Session``, which requires every field it declares)."""
    return json.dumps(
        {
            "id": SESSION_ID,
            "session_id": SESSION_ID,
            "gpu_event_id": _uuid(2, 1),
            "url": "https://bench-3f0c2a6e.r5.modal.host",
            "gpu": "A10G",
            "created_at": "2025-11-28T10:00:00.123456Z",
            "timeout": 15,
            "timeout_end": "2025-11-28T10:15:00.123456",
            "machine_id": MACHINE_ID,
            "machine_version_id": _uuid(3, 1),
            "status": "running",
            "user_id": "user_2pQvBench0000000000000000",
            "org_id": "None",
        }
    ).encode()


def created_body() -> bytes:
    """``POST /session``: what the server answers when ``wait_for_server`` is false."""
    return json.dumps({"session_id": SESSION_ID, "url": None}).encode()


def _seed_event(i: int) -> dict[str, object]:
    """One element in the seed's ``GPUEventModel`` shape (about 600 bytes of JSON)."""
    session_id = _uuid(1, i)
    return {
        "id": _uuid(2, i),
        "user_id": f"user_2pQv{i:020d}",
        "org_id": f"org_2pQw{i % 97:020d}",
        "machine_id": _uuid(4, i % 13),
        "start_time": _stamp(i),
        "end_time": None,
        "gpu": _GPUS[i % len(_GPUS)],
        "ws_gpu": None,
        "gpu_provider": "modal",
        "created_at": _stamp(i),
        "updated_at": _stamp(i, 11),
        "session_timeout": 15 + i % 45,
        "session_id": session_id,
        "modal_function_id": f"fc-01JD{i:020d}",
        "tunnel_url": f"https://bench-{session_id[:8]}-{i}.r5.modal.host",
        "cost_item_title": f"{_GPUS[i % len(_GPUS)]} session",
        "cost": round(0.000_463 * (1 + i % 1000), 6),
    }


def _live_session(i: int) -> dict[str, object]:
    """One element in the live server's ``SessionResponse`` shape."""
    session_id = _uuid(1, i)
    return {
        "id": session_id,
        "session_id": session_id,
        "gpu_event_id": _uuid(2, i),
        "url": None if i % 3 == 0 else f"https://bench-{session_id[:8]}-{i}.r5.modal.host",
        "gpu": _GPUS[i % len(_GPUS)],
        "created_at": _stamp(i),
        "timeout": 15 + i % 45,
        "timeout_end": _stamp(i, 11)[:-1],  # naive, as the live server sends it
        "machine_id": _uuid(4, i % 13),
        "machine_version_id": _uuid(5, i % 13),
        "status": "running",
        "user_id": None,
        "org_id": "None",
    }


def list_body(shape: str, count: int) -> bytes:
    """A ``GET /sessions`` body of ``count`` sessions, ``shape`` ``"seed"`` or ``"live"``."""
    make = _seed_event if shape == "seed" else _live_session
    return json.dumps([make(i) for i in range(count)], separators=(",", ":")).encode()


def list_label(shape: str, count: int) -> str:
    """The ``machine_id`` query value that selects a canned list (the official SDK requires one)."""
    return f"{shape}-{count}"


def parse_label(label: str) -> tuple[str, int] | None:
    shape, _, count = label.partition("-")
    if shape in ("seed", "live") and count.isdigit():
        return shape, int(count)
    return None
