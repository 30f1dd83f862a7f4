"""A long seed-shaped list never holds more than the sessions it returns (besides its body).

``list`` decodes the seed's ``GPUEventModel`` elements and converts them to :class:`Session` in
place; the date-times a Session will not keep are let go as each element is decoded, so the
decoding's peak is the result's own size. Checked with ``tracemalloc``, which is deterministic:
the same input allocates the same blocks on every run.
"""

from __future__ import annotations

import gc
import tracemalloc
from datetime import UTC, datetime

import msgspec
from returns.result import Failure, Success

from bench import payloads
from cdsessions._core.decoding import decode_session_list
from cdsessions._core.wire import HttpResponse
from cdsessions.errors import DecodeFailed
from cdsessions.models import SeedListItem

_JSON = (("Content-Type", "application/json"),)


def _response(body: bytes) -> HttpResponse:
    return HttpResponse(200, _JSON, body)


def test_decoding_a_seed_list_peaks_at_the_size_of_its_result() -> None:
    response = _response(payloads.list_body("seed", 2000))
    gc.collect()
    tracemalloc.start()
    try:
        decoded = decode_session_list(response, "list sessions")
        kept, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert isinstance(decoded, Success)
    assert len(decoded.unwrap()) == 2000
    assert peak <= kept * 1.01, (peak, kept)


def test_the_times_a_session_drops_are_let_go_once_checked() -> None:
    item = (
        b'{"id":"e","user_id":"u","org_id":null,"machine_id":"m","gpu":"A10G",'
        b'"gpu_provider":"modal","start_time":"2025-11-02T12:00:00Z",'
        b'"end_time":"2025-11-02T13:00:00Z"%s}'
    )
    with_created = msgspec.json.decode(
        item % b',"created_at":"2025-11-02T11:00:00Z"', type=SeedListItem
    )
    assert (with_created.start_time, with_created.end_time) == (None, None)
    assert with_created.created_at == datetime(2025, 11, 2, 11, 0, tzinfo=UTC)
    without = msgspec.json.decode(item % b"", type=SeedListItem)
    assert without.start_time == datetime(2025, 11, 2, 12, 0, tzinfo=UTC)  # the fallback
    assert without.end_time is None


def test_a_bad_time_the_session_drops_still_fails_the_seed_shape() -> None:
    """Let go after checking, not instead of it: the seed shape requires them well formed."""
    for field in ("start_time", "end_time"):
        body = (
            b'[{"id":"e","user_id":"u","org_id":null,"machine_id":"m","gpu":"A10G",'
            b'"gpu_provider":"modal","start_time":"2025-11-02T12:00:00Z","end_time":null,'
            b'"created_at":"2025-11-02T11:00:00Z"}]'
        ).replace(f'"{field}":'.encode(), f'"{field}":"not a time","x":'.encode())
        decoded = decode_session_list(_response(body), "list sessions")
        assert isinstance(decoded, Failure), field
        assert isinstance(decoded.failure(), DecodeFailed), field
