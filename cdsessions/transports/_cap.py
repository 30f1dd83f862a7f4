"""The response-size cap, in one place: the check every transport makes, and content decoding
that never produces more than the cap.

A body is capped *as the caller receives it*, after ``Content-Encoding`` is undone, so a small
compressed body cannot become a large one in memory: :func:`decode_content` inflates one bounded
piece at a time (``zlib``'s ``max_length``) and stops as soon as the output passes the limit, at
every layer of a stacked coding (``gzip, gzip``). Whatever is over the cap is the same failure
everywhere: ``TransportFailed(kind="too_large", sent=True)`` (the request went out; the same
request would get the same answer, so it is not retried).
"""

from __future__ import annotations

import zlib
from typing import Final

import msgspec
from returns.result import Failure, Result, Success

from cdsessions._core.wire import Headers, HttpRequest, HttpResponse
from cdsessions.errors import TransportFailed

__all__ = [
    "DEFAULT_MAX_DECODED_BYTES",
    "Undecodable",
    "capped",
    "content_codings",
    "decode_content",
    "too_large",
]

#: The most a cassette's response bodies may add up to once decoded: as much as the largest body
#: any call accepts (a session list), so whatever a call could be answered can be replayed.
DEFAULT_MAX_DECODED_BYTES: Final = 256 * 1024 * 1024

_GZIP_MAGIC: Final = b"\x1f\x8b"
#: ``wbits`` for zlib: a gzip member, a zlib stream.
_GZIP: Final = 16 + zlib.MAX_WBITS
_ZLIB: Final = zlib.MAX_WBITS


def too_large(request: HttpRequest) -> TransportFailed:
    """The failure for a body larger than ``request.max_response_bytes``."""
    limit = request.max_response_bytes
    return TransportFailed(request.operation, "too_large", f"body exceeds {limit} bytes", sent=True)


def capped(request: HttpRequest, response: HttpResponse) -> Result[HttpResponse, TransportFailed]:
    """``response``, unless its body is larger than ``request.max_response_bytes``."""
    if len(response.body) > request.max_response_bytes:
        return Failure(too_large(request))
    return Success(response)


class Undecodable(msgspec.Struct, frozen=True):
    """Why a body could not be content-decoded: it would pass the limit (``too_large``), or it
    is corrupt."""

    too_large: bool
    problem: str


def content_codings(headers: Headers) -> tuple[str, ...]:
    """The ``Content-Encoding`` codings of ``headers`` (every such header, every comma-separated
    token, lowercase), in the order they were applied: the last one is undone first."""
    return tuple(
        token.strip().lower()
        for name, value in headers
        if name.lower() == "content-encoding"
        for token in value.split(",")
    )


def decode_content(body: bytes, codings: tuple[str, ...], limit: int) -> Result[bytes, Undecodable]:
    """``body`` with ``codings`` undone, last applied first, never holding more than ``limit``
    bytes of output at any layer; or why not (it would pass ``limit``, or it is corrupt).

    gzip (x-gzip) and deflate are undone only when the bytes carry their mark (gzip's magic
    bytes, a zlib header): vcrpy with urllib3 2.x records bodies already decoded under their
    ``Content-Encoding`` (vcrpy issue 719), and such a recording is replayed through a cassette
    or, by vcrpy itself, through the urllib3 transport. Any other coding (br, zstd, raw deflate)
    is left as it is, as urllib3 leaves a coding it has no decoder for."""
    for coding in reversed(codings):
        wbits = _wbits(coding, body)
        if wbits is None:
            continue
        inflated = _inflate(body, wbits, limit)
        if not isinstance(inflated, Success):
            return inflated
        body = inflated.unwrap()
    return Success(body)


def _wbits(coding: str, body: bytes) -> int | None:
    """How to inflate ``body`` in ``coding``, or None to leave it (see :func:`decode_content`)."""
    if coding in ("gzip", "x-gzip") and body.startswith(_GZIP_MAGIC):
        return _GZIP
    if coding == "deflate" and _looks_like_zlib(body):
        return _ZLIB
    return None


def _looks_like_zlib(body: bytes) -> bool:
    return len(body) >= 2 and body[0] & 0x0F == 8 and (body[0] << 8 | body[1]) % 31 == 0


def _inflate(data: bytes, wbits: int, limit: int) -> Result[bytes, Undecodable]:
    """``data`` inflated, or why not; stops as soon as the output passes ``limit`` bytes. A gzip
    body may hold several members (each is inflated in turn), then only zero padding."""
    parts: list[bytes] = []
    size = 0
    while True:
        inflater = zlib.decompressobj(wbits)
        try:
            while not inflater.eof:
                # At most one byte past the limit: enough to know it is passed. (max_length 0
                # would mean "no limit"; size <= limit keeps it at 1 or more.)
                chunk = inflater.decompress(data, limit - size + 1)
                data = inflater.unconsumed_tail
                if not chunk and not data:
                    break  # the input ended before the stream did
                size += len(chunk)
                if size > limit:
                    return Failure(Undecodable(True, f"it inflates past {limit} bytes"))
                parts.append(chunk)
        except zlib.error as error:
            return Failure(Undecodable(False, f"the compressed body is corrupt ({error})"))
        if not inflater.eof:
            return Failure(Undecodable(False, "the compressed body ends early"))
        if wbits != _GZIP:
            break  # bytes after a zlib or deflate stream are ignored, as zlib.decompress does
        data = inflater.unused_data.lstrip(b"\0")
        if not data:
            break
        if not data.startswith(_GZIP_MAGIC):
            return Failure(Undecodable(False, "the compressed body has bytes after its end"))
    return Success(b"".join(parts))
