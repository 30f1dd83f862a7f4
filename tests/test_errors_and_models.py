"""Failure values read well, and models keep secrets out of their reprs."""

from __future__ import annotations

import msgspec
import pytest

from cdsessions import (
    ApiError,
    CreateSessionResponse,
    DecodeFailed,
    GPUEventModel,
    GPUProviderType,
    HttpError,
    InvalidRequest,
    MachineGPU,
    Session,
    TransportFailed,
    ValidationFailed,
    ValidationItem,
)
from tests.support import samples

ERRORS: list[ApiError] = [
    InvalidRequest("get session ..", "session_id", "'..' is not an id"),
    HttpError("get session 3f0c6f1e", 404, "GPUEvent not found"),
    HttpError("list sessions", 401, "Invalid or missing token"),
    HttpError("get session x", 500, None),
    HttpError("get session x", 500, "line one\nline two\r\n" + "x" * 5000),
    ValidationFailed(
        "create session on machine m",
        422,
        [],
        (ValidationItem(("body", "gpu"), "Input should be 'CPU', 'T4'", "enum"),),
    ),
    DecodeFailed("get session x", 200, "$.url", "Expected `str | null`, got `int`"),
    TransportFailed("cancel session x", "timeout", "the server did not answer in time", True),
]


@pytest.mark.parametrize("error", ERRORS, ids=lambda e: type(e).__name__)
def test_every_error_reads_as_one_bounded_line_naming_the_operation(error: ApiError) -> None:
    text = str(error)
    assert "\n" not in text
    assert "\r" not in text
    assert len(text) < 500
    assert text.startswith(error.operation + ": ")


def test_messages_say_what_happened() -> None:
    assert str(ERRORS[1]) == "get session 3f0c6f1e: GPUEvent not found (404)"
    assert "check the API key" in str(ERRORS[2])
    assert str(ERRORS[5]).endswith("body.gpu: Input should be 'CPU', 'T4' (422)")
    assert str(ERRORS[6]) == (
        "get session x: unexpected response (200) at $.url: Expected `str | null`, got `int`"
    )
    assert str(ERRORS[7]) == "cancel session x: timed out: the server did not answer in time"
    assert "nothing was sent" in str(ERRORS[0])


def test_errors_are_frozen_values() -> None:
    assert HttpError("op", 404, "x") == HttpError("op", 404, "x")
    assert isinstance(ERRORS[5], HttpError)  # a 422 is an HTTP error too
    error = HttpError("op", 404, "x")
    with pytest.raises(AttributeError):
        error.status = 500  # type: ignore[misc]


def test_session_urls_never_show_in_reprs() -> None:
    session = msgspec.json.decode(samples.LIVE_SESSION_READY, type=Session)
    created = CreateSessionResponse(session_id="s", url=samples.TUNNEL_URL)
    event = msgspec.json.decode(samples.SEED_EVENT, type=GPUEventModel)
    for value in (session, created, event, event.to_session()):
        assert samples.TUNNEL_URL not in repr(value)
        assert "<redacted url>" in repr(value)
    # The value itself is still there for the user who asked for it.
    assert session.url == samples.TUNNEL_URL


def test_unknown_enum_values_round_trip_and_do_not_grow_the_enum() -> None:
    before = len(MachineGPU.__members__)
    for name in ("RTX-9090", "RTX-9090", "Z1"):
        gpu = MachineGPU(name)
        assert gpu.value == name
        assert msgspec.json.encode(gpu) == f'"{name}"'.encode()
    assert len(MachineGPU.__members__) == before
    assert GPUProviderType("runpod") is GPUProviderType.RUNPOD
    assert not GPUProviderType("lambda").is_known
    with pytest.raises(ValueError, match="is not a valid"):
        MachineGPU(7)  # type: ignore[arg-type]


def test_known_gpu_list_matches_the_live_server() -> None:
    assert [g.value for g in MachineGPU] == [
        "CPU",
        "T4",
        "L4",
        "A10G",
        "L40S",
        "A100",
        "A100-80GB",
        "H100",
        "H200",
        "B200",
    ]
