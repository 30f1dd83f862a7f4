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
from typing import Any, BinaryIO, Final

import msgspec
from returns.result import Failure, Result, Success

from cdsessions._core.calls import ClientCore
from cdsessions._core.comfy import ComfySteps, check_name
from cdsessions._core.comfy_run import (
    OPERATION,
    Download,
    Downloaded,
    numbered,
    run_flow,
    run_plan,
)
from cdsessions._core.decoding import error_from
from cdsessions._core.logs import Piece
from cdsessions._core.steps import Flow
from cdsessions._core.wire import HttpRequest, HttpResponse
from cdsessions.comfy import session_url
from cdsessions.comfy_models import RunResult
from cdsessions.errors import ApiError, InvalidRequest, TransportFailed

__all__ = [
    "MAX_INPUT_BYTES",
    "DownloadWriter",
    "outputs_dir",
    "prepare_run",
    "read_inputs",
    "session_gpu",
    "write_download",
]

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


class DownloadWriter:
    """Writes one download's pieces (head, then body bytes) to a hidden temporary file in the
    directory, then gives it its name; both clients feed it (the blocking one from
    ``transport.stream``, the asyncio one from ``astream``), so the rules live here once.
    Use as a context manager: the temporary file goes whatever happens."""

    def __init__(self, directory: Path, action: Download) -> None:
        self._directory = directory
        self._action = action
        self._temporary = directory / f".{uuid.uuid4().hex}.part"
        self._file: BinaryIO | None = None
        self._head: HttpResponse | None = None
        self._error_body = b""
        self._size = 0
        self._failed: Downloaded | None = None

    def __enter__(self) -> DownloadWriter:
        return self

    def __exit__(self, *exc: object) -> None:
        if self._file is not None:
            self._file.close()
        with contextlib.suppress(OSError):
            self._temporary.unlink()

    def take(self, piece: Piece) -> bool:
        """Take one piece; False once the download has failed (stop feeding it)."""
        if self._failed is not None:
            return False
        if not isinstance(piece, Success):
            self._failed = Failure(piece.failure())
            return False
        part = piece.unwrap()
        if isinstance(part, HttpResponse):
            self._head = part
        elif self._head is not None and not 200 <= self._head.status < 300:
            self._error_body = (self._error_body + part)[:_ERROR_BODY]
        else:
            try:
                if self._file is None:
                    self._file = open(self._temporary, "xb")  # noqa: SIM115 (closed on exit)
                self._file.write(part)
            except OSError as error:
                self._failed = Failure(self._write_failed(error))
                return False
            self._size += len(part)
        return True

    def finish(self) -> Downloaded:
        """The file's path and size once every piece was taken, or why not."""
        operation = self._action.request.operation
        if self._failed is not None:
            return self._failed
        head = self._head
        if head is None:
            return Failure(TransportFailed(operation, "broken", "no response", sent=True))
        if not 200 <= head.status < 300:
            failed = HttpResponse(head.status, head.headers, self._error_body, head.reason)
            return Failure(error_from(failed, operation))
        try:
            if self._file is None:  # an empty file
                self._file = open(self._temporary, "xb")  # noqa: SIM115 (closed on exit)
            self._file.close()
            linked = _link(self._temporary, self._directory, self._action.name)
        except OSError as error:
            return Failure(self._write_failed(error))
        size = self._size
        return linked.map(lambda path: (path, size))

    def _write_failed(self, error: OSError) -> TransportFailed:
        problem = f"could not write the file: {type(error).__name__}"
        return TransportFailed(self._action.request.operation, "broken", problem, sent=True)


def write_download(pieces: Iterable[Piece], directory: Path, action: Download) -> Downloaded:
    """Stream ``pieces`` (head, then body bytes) to a new file under ``directory``."""
    with DownloadWriter(directory, action) as writer:
        for piece in pieces:
            if not writer.take(piece):
                break
        return writer.finish()


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


def session_gpu(session: object) -> str | None:
    """The GPU of ``session`` (a :class:`~cdsessions.Session`, or a scope's open session with
    its details), to price the run; None for a bare URL or a create response."""
    gpu = getattr(session, "gpu", None)
    if gpu is None:
        gpu = getattr(getattr(session, "details", None), "gpu", None)
    return str(gpu) if isinstance(gpu, str) else None


def prepare_run(
    core: ClientCore,
    session: object,
    workflow: object,
    outputs_to: object,
    inputs: Any,
    timeout: object,
    poll_every: object,
    max_file_bytes: object,
    on_progress: Any = None,
) -> Result[tuple[Flow[HttpRequest | Download, Result[RunResult, ApiError]], Path], InvalidRequest]:
    """A run's steps and its output directory, once everything was checked (the workflow, the
    settings, the output directory, the input files read): both clients' ``run`` start here."""
    plan = run_plan(workflow, timeout, poll_every, max_file_bytes, on_progress)
    directory = outputs_dir(outputs_to)
    uploads = read_inputs(inputs)
    if not isinstance(plan, Success):
        return Failure(plan.failure())
    if not isinstance(directory, Success):
        return Failure(directory.failure())
    if not isinstance(uploads, Success):
        return Failure(uploads.failure())
    checked = msgspec.structs.replace(
        plan.unwrap(), uploads=uploads.unwrap(), gpu=session_gpu(session)
    )
    flow = run_flow(ComfySteps(core, session_url(session)), core.clock, checked)
    return Success((flow, directory.unwrap()))
