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

import itertools
import zlib
from collections.abc import Generator, Iterator
from typing import Final

import msgspec
from returns.result import Failure, Result, Success

from cdsessions._core.logs import Piece
from cdsessions._core.wire import Headers, HttpRequest, HttpResponse
from cdsessions.errors import TransportFailed

__all__ = [
    "DEFAULT_MAX_DECODED_BYTES",
    "Undecodable",
    "capped",
    "content_codings",
    "decode_content",
    "decoded_size",
    "pieces_of",
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


#: How much of a body one streamed piece holds (the network would cut it somewhere too).
STREAM_PIECE: Final = 16 * 1024


def pieces_of(request: HttpRequest, response: HttpResponse) -> Generator[Piece, None, None]:
    """A whole response as a stream: the head, then the body in pieces, under the request's
    size cap (as :meth:`Urllib3Transport.stream` reads one)."""
    yield Success(msgspec.structs.replace(response, body=b""))
    body, size = response.body, 0
    for start in range(0, len(body), STREAM_PIECE):
        piece = body[start : start + STREAM_PIECE]
        size += len(piece)
        if size > request.max_response_bytes:
            yield Failure(too_large(request))
            return
        yield Success(piece)


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
    bytes of output; or why not (it would pass ``limit``, or it is corrupt). The layers are
    undone as one stream, a piece at a time, so no layer's whole output is held but the last.

    gzip (x-gzip) and deflate are undone only when the bytes carry their mark (gzip's magic
    bytes, a zlib header): vcrpy with urllib3 2.x records bodies already decoded under their
    ``Content-Encoding`` (vcrpy issue 719), and such a recording is replayed through a cassette
    or, by vcrpy itself, through the urllib3 transport. Any other coding (br, zstd, raw deflate)
    is left as it is, as urllib3 leaves a coding it has no decoder for."""
    return _pieces(body, codings, limit, keep=True).map(lambda got: b"".join(got[1]))


def decoded_size(body: bytes, codings: tuple[str, ...], limit: int) -> Result[int, Undecodable]:
    """How long ``body`` is once :func:`decode_content` undoes ``codings``, or why it cannot be
    decoded, in a few pieces' worth of memory whatever the answer: a body meant to inflate to
    gigabytes is refused without holding even ``limit`` bytes of it."""
    return _pieces(body, codings, limit, keep=False).map(lambda got: got[0])


def _pieces(
    body: bytes, codings: tuple[str, ...], limit: int, *, keep: bool
) -> Result[tuple[int, list[bytes]], Undecodable]:
    """The decoded length and, with ``keep``, the decoded pieces; or why not."""
    parts: list[bytes] = []
    size = 0
    try:
        for piece in _decoded(body, codings):
            size += len(piece)
            if size > limit:
                return Failure(Undecodable(True, f"it inflates past {limit} bytes"))
            if keep:
                parts.append(piece)
    except _Corrupt as corrupt:
        return Failure(Undecodable(False, str(corrupt)))
    except zlib.error as error:
        return Failure(Undecodable(False, f"the compressed body is corrupt ({error})"))
    return Success((size, parts))


class _Corrupt(Exception):
    """Internal: the compressed body is corrupt; its text says how."""


#: The most output one inflate step makes: what a stream holds of a layer at a time.
_PIECE: Final = 64 * 1024


def _decoded(body: bytes, codings: tuple[str, ...]) -> Iterator[bytes]:
    """``body`` with ``codings`` undone, last applied first, as a stream of pieces."""
    stream: Iterator[bytes] = iter((body,))
    for coding in reversed(codings):
        head, stream = _peek(stream, 2)
        wbits = _wbits(coding, head)
        if wbits is not None:
            stream = _inflated(stream, wbits)
    return stream


def _peek(stream: Iterator[bytes], size: int) -> tuple[bytes, Iterator[bytes]]:
    """The first ``size`` bytes of ``stream`` (fewer if it is shorter), and the whole stream."""
    taken: list[bytes] = []
    held = 0
    while held < size:
        piece = next(stream, None)
        if piece is None:
            break
        taken.append(piece)
        held += len(piece)
    return b"".join(taken)[:size], itertools.chain(taken, stream)


def _wbits(coding: str, head: bytes) -> int | None:
    """How to inflate a body that starts with ``head`` in ``coding``, or None to leave it (see
    :func:`decode_content`)."""
    if coding in ("gzip", "x-gzip") and head.startswith(_GZIP_MAGIC):
        return _GZIP
    if coding == "deflate" and _looks_like_zlib(head):
        return _ZLIB
    return None


def _looks_like_zlib(body: bytes) -> bool:
    return len(body) >= 2 and body[0] & 0x0F == 8 and (body[0] << 8 | body[1]) % 31 == 0


def _inflated(stream: Iterator[bytes], wbits: int) -> Iterator[bytes]:
    """The stream inflated, at most :data:`_PIECE` bytes a step. A gzip body may hold several
    members (each is inflated in turn), then only zero padding; bytes after a zlib stream are
    ignored, as ``zlib.decompress`` ignores them. Raises :class:`_Corrupt` or ``zlib.error``."""
    inflater = zlib.decompressobj(wbits)
    for data in stream:
        while data or not inflater.eof:
            if inflater.eof:
                if wbits != _GZIP:
                    return
                data = data.lstrip(b"\0")
                if not data:
                    break
                if len(data) >= 2 and not data.startswith(_GZIP_MAGIC):
                    raise _Corrupt("the compressed body has bytes after its end")
                inflater = zlib.decompressobj(wbits)
            piece = inflater.decompress(data, _PIECE)
            data = inflater.unused_data if inflater.eof else inflater.unconsumed_tail
            if piece:
                yield piece
            if not data and not inflater.eof and len(piece) < _PIECE:
                break  # all of this input is taken and nothing is pending: the next input
    if not inflater.eof:
        raise _Corrupt("the compressed body ends early")
