"""The response-size cap: one rule, kept by every transport, and kept by content decoding.

Every transport (urllib3 against a real 127.0.0.1 server, the cassette, the fake, and the two
async adapters) hands back a body of exactly ``request.max_response_bytes`` and refuses one byte
more as ``too_large`` (sent). A compressed body is capped as the caller would receive it:
inflating stops at the cap, so a 2 KB ``gzip, gzip`` body meant to become 1 GB costs a few
megabytes at most (measured with ``tracemalloc``).
"""

from __future__ import annotations

import asyncio
import base64
import copy
import functools
import gzip
import tracemalloc
import zlib
from collections.abc import Callable
from typing import Final, TypeVar

import pytest
import yaml
from hypothesis import example, given, settings
from hypothesis import strategies as st
from returns.result import Failure, Result, Success

from cdsessions._core.timeouts import Timeout
from cdsessions._core.wire import HttpRequest, HttpResponse
from cdsessions.errors import TransportFailed
from cdsessions.fake import FakeService, FakeTransport
from cdsessions.transports._cap import capped, content_codings, decode_content, decoded_size
from cdsessions.transports._cassette import CassetteError, CassetteTransport
from cdsessions.transports._inline import InlineTransport
from cdsessions.transports._threaded import ThreadedTransport
from cdsessions.transports._urllib3 import Urllib3Transport
from tests.support.hostile import answer, hostile, response
from tests.support.loopback import Reply, serve

T = TypeVar("T")
KEY: Final = "cap-test-key-0123456789"
TIMEOUT: Final = Timeout(5, 5, 10)
MiB: Final = 1024 * 1024
Outcome = Result[HttpResponse, TransportFailed]


def _request(base_url: str, cap: int) -> HttpRequest:
    return HttpRequest(
        "GET",
        "/session/abc",
        headers=(("Authorization", f"Bearer {KEY}"),),
        base_url=base_url,
        operation="get session abc",
        timeout=TIMEOUT,
        max_response_bytes=cap,
    )


def _is_too_large(outcome: Outcome) -> bool:
    if not isinstance(outcome, Failure):
        return False
    failure = outcome.failure()
    return failure.kind == "too_large" and failure.sent is True


# -- every transport, one rule -----------------------------------------------------------------


def _cassette_yaml(body: bytes, headers: dict[str, list[str]] | None = None) -> str:
    document = {
        "version": 1,
        "interactions": [
            {
                "request": {"method": "GET", "uri": "http://h/api/session/abc", "body": None},
                "response": {
                    "status": {"code": 200, "message": "OK"},
                    "headers": headers or {},
                    "body": {"string": body},
                },
            }
        ],
    }
    return yaml.safe_dump(document)


def _fake_answering(body: bytes) -> FakeTransport:
    return FakeTransport(FakeService(intercept=lambda _: HttpResponse(200, (), body)))


@functools.cache
def _urllib3() -> Urllib3Transport:
    return Urllib3Transport()


def _send_with(kind: str, body: bytes, cap: int) -> Outcome:
    """What transport ``kind`` hands back for a server answering ``body``, with ``cap``."""
    if kind in ("urllib3", "urllib3-unframed"):
        if kind == "urllib3":
            with serve(lambda _: Reply(200, body)) as server:
                return _urllib3().send(_request(server.base_url, cap))
        # No Content-Length: read until the server closes, counting as it goes.
        with hostile(answer(response("200 OK", "Connection: close", body=body))) as bare:
            return _urllib3().send(_request(bare.base_url, cap))
    if kind == "cassette":
        cassette = CassetteTransport.from_yaml(_cassette_yaml(body)).unwrap()
        return cassette.send(_request("", cap))
    if kind == "fake":
        return _fake_answering(body).send(_request("", cap))
    if kind == "threaded":
        threaded = ThreadedTransport(_fake_answering(body), max_workers=1)

        async def run() -> Outcome:
            try:
                return await threaded.send(_request("", cap))
            finally:
                await threaded.aclose()

        return asyncio.run(run())
    assert kind == "inline"
    return asyncio.run(InlineTransport(_fake_answering(body)).send(_request("", cap)))


KINDS: Final = ["urllib3", "urllib3-unframed", "cassette", "fake", "threaded", "inline"]


@pytest.mark.parametrize("kind", KINDS)
def test_every_transport_hands_back_a_body_at_the_cap_and_refuses_one_byte_more(kind: str) -> None:
    body = b"x" * 5000
    at_cap = _send_with(kind, body, cap=len(body))
    assert isinstance(at_cap, Success), at_cap
    assert at_cap.unwrap().body == body
    over = _send_with(kind, body, cap=len(body) - 1)
    assert _is_too_large(over), over
    assert str(len(body) - 1) in over.failure().problem
    assert over.failure().operation == "get session abc"  # labelled from the request itself


def test_capped_is_the_one_check() -> None:
    request = _request("", 3)
    assert capped(request, HttpResponse(200, body=b"abc")) == Success(
        HttpResponse(200, body=b"abc")
    )
    assert _is_too_large(capped(request, HttpResponse(200, body=b"abcd")))


# -- compressed bodies -----------------------------------------------------------------------


@functools.cache
def _zeros_gzipped(size: int) -> bytes:
    """``size`` zero bytes (a whole number of MiB) gzipped, as one gzip member per MiB: about
    1 KB per MiB, made at once (a gzip body may hold many members, as ``gzip.decompress``
    reads them)."""
    return gzip.compress(bytes(MiB)) * (size // MiB)


@functools.cache
def _one_member(size: int) -> bytes:
    """``size`` zero bytes (a whole number of MiB) as a single gzip member, made a MiB at a
    time: the case where only ``max_length`` keeps inflating from producing it all at once."""
    packer = zlib.compressobj(6, zlib.DEFLATED, 16 + zlib.MAX_WBITS)
    block = bytes(MiB)
    return b"".join([*(packer.compress(block) for _ in range(size // MiB)), packer.flush()])


@functools.cache
def _gigabyte_bomb() -> bytes:
    """1 GiB of zeros as ``Content-Encoding: gzip, gzip``: about 2 KB."""
    return gzip.compress(_zeros_gzipped(1024 * MiB), 9)


def _peak_while(work: Callable[[], T]) -> tuple[T, int]:
    """What ``work`` gives, and the most memory (bytes) Python allocated meanwhile."""
    tracemalloc.start()
    try:
        tracemalloc.reset_peak()
        result = work()
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    return result, peak


def test_a_gzip_gzip_cassette_meant_to_reach_a_gigabyte_is_refused_in_a_few_megabytes() -> None:
    bomb = _gigabyte_bomb()
    assert len(bomb) < 4096
    text = _cassette_yaml(bomb, {"Content-Encoding": ["gzip, gzip"]})
    loaded, peak = _peak_while(lambda: CassetteTransport.from_yaml(text, max_decoded_bytes=MiB))
    assert isinstance(loaded, Failure), loaded
    error = loaded.failure()
    assert isinstance(error, CassetteError)
    assert error.where == "interactions[0].response.body"
    assert "max_decoded_bytes" in error.problem
    assert peak < 8 * MiB, f"{peak / MiB:.1f} MiB allocated"


@pytest.mark.parametrize("coding", ["gzip", "gzip, gzip", "x-gzip, gzip", "one member"])
def test_a_cassette_body_inflating_past_the_requests_cap_is_too_large(coding: str) -> None:
    packed = _zeros_gzipped(2 * MiB)
    if coding == "one member":
        packed, coding = _one_member(32 * MiB), "gzip"
    elif coding != "gzip":
        packed = gzip.compress(packed)
    text = _cassette_yaml(packed, {"Content-Encoding": [coding]})
    cassette = CassetteTransport.from_yaml(text).unwrap()
    sent, peak = _peak_while(lambda: cassette.send(_request("", MiB)))
    assert _is_too_large(sent), sent
    assert peak < 4 * MiB


@pytest.mark.parametrize("coding", ["gzip", "gzip, gzip"])
def test_the_urllib3_transport_stops_inflating_at_the_cap(coding: str) -> None:
    body = _gigabyte_bomb() if coding == "gzip, gzip" else _one_member(64 * MiB)
    headers = (("Content-Type", "application/json"), ("Content-Encoding", coding))
    with serve(lambda _: Reply(200, body, headers)) as server:
        request = _request(server.base_url, MiB)
        sent, peak = _peak_while(lambda: Urllib3Transport().send(request))
    assert _is_too_large(sent), sent
    assert peak < 8 * MiB, f"{peak / MiB:.1f} MiB allocated"


@pytest.mark.parametrize("coding", [None, "br"])
def test_the_urllib3_transport_stops_reading_an_unframed_body_at_the_cap(
    coding: str | None,
) -> None:
    # No Content-Length: read until the server closes. A coding left as it is (br) too.
    headers = ["Connection: close"] + ([f"Content-Encoding: {coding}"] if coding else [])
    flood = response("200 OK", *headers, body=b"x" * (32 * MiB))
    with hostile(answer(flood)) as server:
        request = _request(server.base_url, MiB)
        sent, peak = _peak_while(lambda: Urllib3Transport().send(request))
    assert _is_too_large(sent), sent
    assert peak < 8 * MiB, f"{peak / MiB:.1f} MiB allocated"


def test_the_urllib3_transport_decodes_what_fits() -> None:
    data = b'{"session_id": "abc"}' * 100
    packed = zlib.compress(gzip.compress(data))
    headers = (("Content-Encoding", "gzip"), ("Content-Encoding", "deflate"))
    with serve(lambda _: Reply(200, packed, headers)) as server:
        fits = Urllib3Transport().send(_request(server.base_url, len(data)))
        over = Urllib3Transport().send(_request(server.base_url, len(data) - 1))
    assert isinstance(fits, Success), fits
    assert fits.unwrap().body == data
    assert _is_too_large(over), over


def test_a_corrupt_gzip_body_from_a_server_is_a_broken_answer_not_an_exception() -> None:
    corrupt = _zeros_gzipped(MiB)[:-12] + b"\x00" * 12  # the right length, a wrong trailer
    with serve(lambda _: Reply(200, corrupt, (("Content-Encoding", "gzip"),))) as server:
        sent = Urllib3Transport().send(_request(server.base_url, 2 * MiB))
    assert isinstance(sent, Failure), sent
    assert (sent.failure().kind, sent.failure().sent) == ("broken", True)
    assert "could not be decoded" in sent.failure().problem


# -- the decoder on its own ------------------------------------------------------------------


def test_content_codings_are_read_from_every_header_in_order() -> None:
    headers = (("content-encoding", "GZIP, deflate"), ("X", "y"), ("Content-Encoding", " br "))
    assert content_codings(headers) == ("gzip", "deflate", "br")


def test_decoding_undoes_stacked_codings_and_leaves_what_is_not_coded() -> None:
    data = b"hello " * 50
    assert decode_content(gzip.compress(gzip.compress(data)), ("gzip", "gzip"), 300) == Success(
        data
    )
    # Two gzip members, then zero padding: all of it, as gzip.decompress reads it.
    members = gzip.compress(data[:100]) + gzip.compress(data[100:]) + b"\0\0"
    assert decode_content(members, ("gzip",), 300) == Success(data)
    assert decode_content(data, ("gzip",), 300) == Success(data)  # stored decoded (vcrpy)
    assert decode_content(data, ("br", "identity"), 300) == Success(data)  # unknown: as it is
    assert decode_content(gzip.compress(data), ("gzip",), 299).failure().too_large
    truncated = decode_content(gzip.compress(data)[:-4], ("gzip",), 300).failure()
    assert not truncated.too_large


def test_a_compressed_body_cut_short_is_corrupt_and_says_it_ends_early() -> None:
    cut = gzip.compress(b"hello " * 50)[:-4]  # no size trailer: the member never ends
    assert decode_content(cut, ("gzip",), 300).failure().problem == (
        "the compressed body ends early"
    )
    text = _cassette_yaml(cut, {"Content-Encoding": ["gzip"]})
    loaded = CassetteTransport.from_yaml(text, name="c.yaml")
    assert "the gzip/deflate body is corrupt: the compressed body ends early" in str(
        loaded.failure()
    )


def test_stacked_layers_are_undone_as_a_stream_so_the_cap_is_met_before_a_later_fault() -> None:
    # The outer gzip hands the inner layer on one byte at a time (a member per byte). Read as
    # a stream, the inner layer passes the cap within its first bytes: too large, before the
    # outer layer's last member (cut short) is even reached. A decoder that read a layer ahead
    # would hold all of it and find the fault first.
    inner = gzip.compress(bytes(4 * MiB))
    outer = b"".join(gzip.compress(inner[i : i + 1]) for i in range(len(inner)))
    body = outer + gzip.compress(b"x")[:-4]
    assert decoded_size(body, ("gzip", "gzip"), MiB).failure().too_large
    assert decode_content(body, ("gzip", "gzip"), MiB).failure().too_large
    assert not decode_content(body, ("gzip", "gzip"), 8 * MiB).failure().too_large  # the fault


_MAGIC: Final = b"\x1f\x8b"
gzipish = st.one_of(
    st.binary(max_size=300),
    st.binary(max_size=300).map(lambda data: _MAGIC + data),
    st.binary(max_size=2000).map(gzip.compress),
    st.tuples(st.binary(max_size=2000), st.integers(0, 40)).map(
        lambda pair: gzip.compress(pair[0])[: -pair[1] or None]
    ),
    st.tuples(st.binary(max_size=2000), st.binary(max_size=8)).map(
        lambda pair: gzip.compress(pair[0]) + pair[1]
    ),
    st.integers(0, 64).map(lambda kib: gzip.compress(bytes(kib * 1024))),
)


@settings(max_examples=300, deadline=None)
@given(
    body=gzipish,
    coding=st.sampled_from(["gzip", "x-gzip", "gzip, gzip", "deflate, gzip", "gzip, deflate"]),
    cap=st.integers(0, 4096),
)
@example(body=b"", coding="gzip", cap=0)
@example(body=gzip.compress(b"x" * 5000), coding="gzip", cap=0)
@example(body=gzip.compress(gzip.compress(b"x" * 5000)), coding="gzip, gzip", cap=4096)
def test_any_bytes_as_a_gzip_body_never_raise_and_never_exceed_the_cap(
    body: bytes, coding: str, cap: int
) -> None:
    decoded = decode_content(body, content_codings((("Content-Encoding", coding),)), cap)
    if isinstance(decoded, Success):
        assert len(decoded.unwrap()) <= max(cap, len(body))  # undecoded bytes pass as they are
    # Through a cassette: loading never raises, and a send never hands back more than the cap.
    loaded = CassetteTransport.from_yaml(
        _cassette_yaml(body, {"Content-Encoding": [coding]}), max_decoded_bytes=4096
    )
    if isinstance(loaded, Success):
        sent = loaded.unwrap().send(_request("", cap))
        assert _is_too_large(sent) or len(sent.unwrap().body) <= cap
    else:
        assert isinstance(loaded.failure(), CassetteError)


# -- malformed cassettes stay values -----------------------------------------------------------


def _aliased_body(copies: int, part_size: int = 16) -> str:
    part = base64.b64encode(b"A" * part_size).decode()  # as !!binary
    aliases = ", ".join(["*p"] * copies)
    return (
        "version: 1\ninteractions:\n"
        "- request: {method: GET, uri: 'http://h/api/session/abc', body: null}\n"
        "  response:\n    status: {code: 200}\n"
        f"    body: {{string: [&p !!binary {part!r}, {aliases}]}}\n"
    )


def test_a_list_body_of_yaml_aliases_is_measured_before_it_is_joined() -> None:
    fits = CassetteTransport.from_yaml(_aliased_body(10), max_decoded_bytes=1000)
    assert isinstance(fits, Success), fits
    assert fits.unwrap().interactions[0].response.body == b"A" * 16 * 11
    many = CassetteTransport.from_yaml(_aliased_body(10_000), max_decoded_bytes=100_000)
    assert isinstance(many, Failure)
    assert "max_decoded_bytes" in many.failure().problem
    # 20 000 aliases of a 4 KB part: 80 MB if joined, refused without joining.
    text = _aliased_body(20_000, 4096)
    assert len(text) < 200_000
    refused, peak = _peak_while(lambda: CassetteTransport.from_yaml(text, max_decoded_bytes=MiB))
    assert isinstance(refused, Failure)
    assert peak < 32 * MiB, f"{peak / MiB:.1f} MiB allocated"


def test_yaml_merge_keys_are_refused_as_a_cassette_error() -> None:
    # Merges of merges grow a few lines into millions of entries; no recorder writes them.
    laughs = "a: &a {x0: 0, x1: 1}\nb: &b {<<: [*a, *a]}\nversion: 1\ninteractions: []\n"
    loaded = CassetteTransport.from_yaml(laughs)
    assert isinstance(loaded, Failure)
    assert "merge keys" in loaded.failure().problem


def test_the_bodies_of_a_cassette_share_one_budget() -> None:
    recorded = {
        "request": {"method": "GET", "uri": "http://h/api/session/abc", "body": None},
        "response": {"status": {"code": 200}, "body": {"string": "x" * 600}},
    }
    # Two copies, not one dict twice: safe_dump would write an alias, which shares the body.
    copies = [recorded, copy.deepcopy(recorded)]
    text = yaml.safe_dump({"version": 1, "interactions": copies})
    assert "*id" not in text
    assert isinstance(CassetteTransport.from_yaml(text, max_decoded_bytes=1200), Success)
    over = CassetteTransport.from_yaml(text, max_decoded_bytes=1199)
    assert isinstance(over, Failure)
    assert over.failure().where == "interactions[1].response.body"
