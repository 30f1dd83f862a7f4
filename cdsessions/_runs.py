"""The disk side of a workflow run (the steps are in :mod:`cdsessions._core.comfy_run`):
reading the input files before anything is sent, and streaming each output to a new file.

An output is written to a hidden temporary file in ``outputs_to`` (created exclusively), then
linked to its final name, which must not exist yet (``out.png``, else ``out (1).png``...): an
existing file is never overwritten, and a failed download leaves nothing behind.
"""

from __future__ import annotations

import contextlib
import os
import uuid
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Final

from returns.result import Failure, Result, Success

from cdsessions._core.comfy import check_name
from cdsessions._core.comfy_run import OPERATION, Download, Downloaded, numbered
from cdsessions._core.decoding import error_from
from cdsessions._core.logs import Piece
from cdsessions._core.wire import HttpResponse
from cdsessions.errors import InvalidRequest, TransportFailed

__all__ = ["MAX_INPUT_BYTES", "outputs_dir", "read_inputs", "write_download"]

#: The largest input file read (it is uploaded whole).
MAX_INPUT_BYTES: Final = 512 * 1024 * 1024
#: How many numbered names are tried before giving up on a clash.
_MAX_CLASHES: Final = 10_000
#: The most bytes of a failed download's body kept for its error.
_ERROR_BODY: Final = 4096


def _refused(field: str, problem: str) -> Failure[InvalidRequest]:
    return Failure(InvalidRequest(OPERATION, field, problem))


def read_inputs(
    inputs: Iterable[str | os.PathLike[str]] | Mapping[str, str | os.PathLike[str]],
) -> Result[tuple[tuple[str, bytes], ...], InvalidRequest]:
    """Each input file as (name to upload it as, its bytes): a path is uploaded under its own
    name, a mapping's key is the name. Any unreadable file refuses the run before it starts."""
    if isinstance(inputs, str | bytes | os.PathLike):
        return _refused("inputs", "must be a list of paths or a mapping of name to path")
    pairs = (
        list(inputs.items()) if isinstance(inputs, Mapping) else [(Path(p).name, p) for p in inputs]
    )
    read: list[tuple[str, bytes]] = []
    for given, path in pairs:
        checked = check_name(given, "inputs", OPERATION)
        name = checked.value_or("/")
        if "/" in name or "\\" in name or name in (".", ".."):
            return _refused("inputs", f"{given!r:.60} is not a bare file name")
        try:
            with open(path, "rb") as file:
                data = file.read(MAX_INPUT_BYTES + 1)
        except (OSError, TypeError, ValueError) as error:
            return _refused("inputs", f"cannot read {name!r:.60}: {type(error).__name__}")
        if len(data) > MAX_INPUT_BYTES:
            return _refused("inputs", f"{name!r:.60} is larger than {MAX_INPUT_BYTES} bytes")
        read.append((name, data))
    if len({name for name, _ in read}) != len(read):
        return _refused("inputs", "two inputs have the same name")
    return Success(tuple(read))


def outputs_dir(outputs_to: object) -> Result[Path, InvalidRequest]:
    """The output directory, created if missing, or why it cannot be one."""
    if not isinstance(outputs_to, str | os.PathLike):
        return _refused("outputs_to", f"must be a path, not {type(outputs_to).__name__}")
    directory = Path(outputs_to)
    try:
        directory.mkdir(parents=True, exist_ok=True)
    except OSError as error:
        return _refused("outputs_to", f"cannot be made a directory: {type(error).__name__}")
    if not directory.is_dir():
        return _refused("outputs_to", "is not a directory")
    return Success(directory)


def write_download(pieces: Iterable[Piece], directory: Path, action: Download) -> Downloaded:
    """Stream ``pieces`` (head, then body bytes) to a new file under ``directory``."""
    operation = action.request.operation
    temporary = directory / f".{uuid.uuid4().hex}.part"
    size = 0
    try:
        with open(temporary, "xb") as file:
            head: HttpResponse | None = None
            error_body = b""
            for piece in pieces:
                if not isinstance(piece, Success):
                    return Failure(piece.failure())
                part = piece.unwrap()
                if isinstance(part, HttpResponse):
                    head = part
                elif head is not None and not 200 <= head.status < 300:
                    error_body = (error_body + part)[:_ERROR_BODY]
                else:
                    file.write(part)
                    size += len(part)
            if head is None:
                failure = TransportFailed(operation, "broken", "no response", sent=True)
                return Failure(failure)
            if not 200 <= head.status < 300:
                failed = HttpResponse(head.status, head.headers, error_body, head.reason)
                return Failure(error_from(failed, operation))
        return _link(temporary, directory, action.name).map(lambda path: (path, size))
    except OSError as error:
        problem = f"could not write the file: {type(error).__name__}"
        return Failure(TransportFailed(operation, "broken", problem, sent=True))
    finally:
        with contextlib.suppress(OSError):
            temporary.unlink()


def _link(temporary: Path, directory: Path, name: str) -> Result[Path, InvalidRequest]:
    """Give the written file its name: the first of ``name``, ``name (1)``... that is free."""
    for n in range(_MAX_CLASHES):
        final = directory / numbered(name, n)
        try:
            os.link(temporary, final)  # fails if it exists: nothing is overwritten
        except FileExistsError:
            continue
        return Success(final)
    return _refused("outputs_to", f"{_MAX_CLASHES} files named like {name!r:.60} already exist")
