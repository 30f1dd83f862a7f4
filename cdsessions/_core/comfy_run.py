"""A workflow run, written once as steps: upload the inputs, queue, follow the history under a
deadline, interrupt ComfyUI when the run is stopped or late, then download every output.

The steps never touch the disk: a download is a :class:`Download` action naming the prepared
request and a *safe* local file name (:func:`local_name`), which the client's shell streams to a
new file under ``outputs_to`` (never overwriting one) and answers with its path and size.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping
from decimal import Decimal
from pathlib import Path
from typing import Any, Final, TypeAlias

import msgspec
from returns.result import Failure, Result, Success

from cdsessions._core.clocks import Clock
from cdsessions._core.comfy import MAX_VIEW_BYTES, ComfySteps, build_view, prepare
from cdsessions._core.pricing import GpuPricing, run_cost
from cdsessions._core.retry import Wait
from cdsessions._core.steps import Flow
from cdsessions._core.timeouts import Timeout
from cdsessions._core.unknown import Unknown
from cdsessions._core.wire import HttpRequest
from cdsessions.comfy_models import (
    ComfyFile,
    ComfyHistory,
    PromptRejected,
    RunOutput,
    RunProgress,
    RunResult,
    RunStage,
)
from cdsessions.errors import ApiError, DecodeFailed, InvalidRequest, RunFailed, RunTimedOut

__all__ = [
    "Download",
    "Downloaded",
    "RunPlan",
    "local_name",
    "numbered",
    "run_flow",
    "run_plan",
    "with_uploaded_names",
]

OPERATION: Final = "run workflow"
#: The longest local file name made (bytes on most file systems stop at 255; room for " (n)").
_MAX_LOCAL: Final = 150
#: Names Windows reserves whatever the extension (``CON.png`` opens the console).
_DEVICES: Final = re.compile(r"(?i)^(con|prn|aux|nul|com[0-9¹²³]|lpt[0-9¹²³]|conin\$|conout\$)$")
_UNSAFE: Final = re.compile(r'[\x00-\x1f\x7f<>:"|?*\\/]')
#: A download's limits: no overall deadline (a large file takes its time), but no long silence.
_DOWNLOAD: Final = Timeout(connect=10.0, read=60.0, total=None)
#: How long an interrupt may take when the run is being stopped (it must not hold Ctrl-C up).
_INTERRUPT_TIMEOUT: Final = Timeout(connect=3.0, read=3.0, total=5.0)
#: The price table's fetch after a run: short, since the run is done and only its cost waits.
_PRICING_TIMEOUT: Final = Timeout(connect=3.0, read=5.0, total=10.0)


class Download(msgspec.Struct, frozen=True):
    """Stream ``request``'s body to a new file named ``name`` (or ``name (n)``) under the run's
    directory; answered with a :data:`Downloaded`."""

    request: HttpRequest
    name: str


#: What the shell answers a :class:`Download` with: the file's path and size, or why not.
Downloaded: TypeAlias = Result[tuple[Path, int], ApiError]


class RunPlan(msgspec.Struct, frozen=True):
    """A run's checked inputs: the workflow, the files to upload (name, bytes), the deadline in
    seconds for the run itself (uploads, queue, wait), how often to poll, the cap per output."""

    workflow: Mapping[str, Any]
    uploads: tuple[tuple[str, bytes], ...] = ()
    timeout: float = 600.0
    poll_every: float = 1.0
    max_file_bytes: int = MAX_VIEW_BYTES
    #: Told of the run's progress (see :class:`RunProgress`); it must not raise.
    on_progress: Callable[[RunProgress], None] | None = None
    #: The session's GPU, to price the run (None: not known, so the cost is unknown).
    gpu: str | None = None


def local_name(file: ComfyFile) -> str:
    """A file name for ``file`` that can only name a file directly in the output directory: the
    subfolder is flattened into the name (``a/b.png`` → ``a_b.png``), ``.``/``..`` parts,
    separators, NUL and control characters and Windows' reserved characters go, device names
    (``CON``, ``NUL.png``) get a ``_`` prefix, a leading dot goes (no hidden files), and it is cut
    to a length every file system takes. Never empty."""
    parts = re.split(r"[/\\]+", f"{file.subfolder}/{file.filename}")
    kept = [_UNSAFE.sub("_", part) for part in parts if part not in ("", ".", "..")]
    name = "_".join(part for part in kept if part.strip(" .")).lstrip(" .").rstrip(" .")
    if not name:
        return "output"
    stem, dot, suffix = name.rpartition(".")
    if not dot:
        stem, suffix = name, ""
    if _DEVICES.match(stem.split(".")[0]):
        name, stem = "_" + name, "_" + stem
    if len(name.encode()) > _MAX_LOCAL:
        suffix = suffix[:16]
        room = _MAX_LOCAL - len(suffix.encode()) - 1
        stem = stem.encode()[:room].decode("utf-8", errors="ignore")
        name = f"{stem}.{suffix}" if suffix else stem
    return name


def numbered(name: str, n: int) -> str:
    """``name`` for its ``n``-th clash: ``out.png``, ``out (1).png``, ``out (2).png``..."""
    if n == 0:
        return name
    stem, dot, suffix = name.rpartition(".")
    return f"{stem} ({n}).{suffix}" if dot and stem else f"{name} ({n})"


def with_uploaded_names(workflow: Mapping[str, Any], renamed: Mapping[str, str]) -> dict[str, Any]:
    """The workflow with every input that names an uploaded file by its local name naming it as
    ComfyUI stored it (it renames ``in.png`` to ``in (1).png`` rather than overwrite)."""
    result: dict[str, Any] = {}
    for node_id, node in workflow.items():
        inputs = node.get("inputs") if isinstance(node, Mapping) else None
        if not isinstance(inputs, Mapping) or not renamed:
            result[node_id] = node
            continue
        changed = {k: renamed.get(v, v) if isinstance(v, str) else v for k, v in inputs.items()}
        result[node_id] = {**node, "inputs": changed}
    return result


def _uploaded_as(file: ComfyFile) -> str:
    # LoadImage takes "subfolder/name" for a file in an input subfolder.
    return f"{file.subfolder}/{file.filename}" if file.subfolder else file.filename


def run_flow(
    comfy: ComfySteps, clock: Clock, plan: RunPlan
) -> Flow[HttpRequest | Download, Result[RunResult, ApiError]]:
    """The whole run (see the module doc). Stopped from outside (Ctrl-C, a cancelled task)
    while the workflow is queued or running, it interrupts ComfyUI, then lets the stop go on."""
    started = clock.monotonic()

    def tell(stage: RunStage, **details: Any) -> None:
        if plan.on_progress is not None:
            plan.on_progress(RunProgress(stage, clock.monotonic() - started, **details))

    renamed: dict[str, str] = {}
    for index, (name, data) in enumerate(plan.uploads):
        tell("uploading", file=name, index=index + 1, count=len(plan.uploads))
        uploaded = yield from comfy.upload(name, data)
        if not isinstance(uploaded, Success):
            return Failure(uploaded.failure())
        stored = _uploaded_as(uploaded.unwrap())
        if stored != name:
            renamed[name] = stored
    queued = yield from comfy.prompt(with_uploaded_names(plan.workflow, renamed))
    if not isinstance(queued, Success):
        return Failure(queued.failure())
    answer = queued.unwrap()
    if isinstance(answer, PromptRejected):
        return Failure(RunFailed(OPERATION, answer.error, answer.node_errors))
    prompt_id = answer.prompt_id
    try:
        done = yield from _wait(comfy, clock, plan, prompt_id, started + plan.timeout, tell)
    except GeneratorExit:  # closed unfinished: nothing may be yielded any more
        raise
    except BaseException:  # stopped from outside: ComfyUI must not go on using the GPU
        yield from comfy.interrupt(_INTERRUPT_TIMEOUT)
        raise
    if not isinstance(done, Success):
        return Failure(done.failure())
    entry = done.unwrap()
    if entry.status == "error" or entry.failed_nodes:
        problem = "ComfyUI failed running the workflow"
        return Failure(RunFailed(OPERATION, problem, entry.failed_nodes, prompt_id))
    # Every request is built before the first download: a file ComfyUI names that cannot be
    # asked for fails the run before anything is written, not half way through.
    planned: list[tuple[str, ComfyFile, HttpRequest]] = []
    for node_id, files in entry.outputs:
        for file in files:
            built = prepare(comfy.core, comfy.url, build_view(file), _DOWNLOAD, plan.max_file_bytes)
            if not isinstance(built, Success):
                where = f"$.{prompt_id}.outputs.{node_id}"
                problem = f"names a file that cannot be requested: {built.failure().problem}"
                return Failure(DecodeFailed(OPERATION, 200, where, problem))
            planned.append((node_id, file, built.unwrap()[0]))
    outputs: list[RunOutput] = []
    for index, (node_id, file, request) in enumerate(planned):
        name = local_name(file)
        tell("downloading", prompt_id=prompt_id, file=name, index=index + 1, count=len(planned))
        got: Downloaded = yield Download(request, name)
        if not isinstance(got, Success):
            return Failure(got.failure())
        path, size = got.unwrap()
        outputs.append(RunOutput(path, size, node_id, file))
    seconds = clock.monotonic() - started
    cost = yield from _priced(comfy, plan.gpu, seconds)
    return Success(RunResult(prompt_id, tuple(outputs), entry.texts, seconds, cost))


def _priced(
    comfy: ComfySteps, gpu: str | None, seconds: float
) -> Flow[HttpRequest, Decimal | Unknown]:
    """The run's cost (see :func:`run_cost`): the price table is fetched at most once (the
    client keeps it), not at all without a GPU, and a failed fetch only makes it unknown."""
    if gpu is None:
        return run_cost(GpuPricing(), None, seconds)
    fetched = yield from comfy.core.gpu_pricing(False, _PRICING_TIMEOUT, None)
    if not isinstance(fetched, Success):
        reason = f"the price table could not be fetched ({fetched.failure().code})"
        return run_cost(GpuPricing(unavailable=reason), gpu, seconds)
    return run_cost(fetched.unwrap(), gpu, seconds)


def _wait(
    comfy: ComfySteps,
    clock: Clock,
    plan: RunPlan,
    prompt_id: str,
    deadline: float,
    tell: Callable[..., None],
) -> Flow[HttpRequest, Result[ComfyHistory, ApiError]]:
    """Poll the history until the prompt is done; past ``deadline``, interrupt and say so."""
    polls = 0
    while True:
        tell("waiting", prompt_id=prompt_id, polls=polls)
        got = yield from comfy.history(prompt_id)
        polls += 1
        if isinstance(got, Success) and got.unwrap().found and _finished(got.unwrap()):
            return got
        now = clock.monotonic()
        if now >= deadline:
            stopped = yield from comfy.interrupt(_INTERRUPT_TIMEOUT)
            waited = now - (deadline - plan.timeout)
            return Failure(RunTimedOut(OPERATION, prompt_id, waited, isinstance(stopped, Success)))
        if not isinstance(got, Success) and got.failure().code != "transport":
            return got  # ComfyUI answers, but not as ComfyUI would: no use waiting
        yield Wait(min(plan.poll_every, deadline - now), "the workflow is not done yet")


def _finished(entry: ComfyHistory) -> bool:
    return entry.completed or entry.status in ("success", "error")


def _number_problem(value: object, *, whole: bool = False) -> str | None:
    if isinstance(value, bool) or not isinstance(value, int | float):
        return f"must be a number, not {type(value).__name__}"
    if not value > 0 or value == float("inf"):
        return "must be a finite number above 0"
    if whole and not isinstance(value, int):
        return "must be a whole number of bytes"
    return None


def run_plan(
    workflow: object,
    timeout: object,
    poll_every: object,
    max_file_bytes: object,
    on_progress: Callable[[RunProgress], None] | None = None,
) -> Result[RunPlan, InvalidRequest]:
    """The run's settings, checked (the workflow itself is checked by the prompt builder, and
    again here so that a bad one uploads nothing)."""
    from cdsessions._core.comfy import build_prompt

    built = build_prompt(workflow)
    if not isinstance(built, Success):
        return Failure(msgspec.structs.replace(built.failure(), operation=OPERATION))
    for field, value, whole in (
        ("timeout", timeout, False),
        ("poll_every", poll_every, False),
        ("max_file_bytes", max_file_bytes, True),
    ):
        problem = _number_problem(value, whole=whole)
        if problem is not None:
            return Failure(InvalidRequest(OPERATION, field, problem))
    # _number_problem checked them; the asserts narrow the types for the checkers.
    assert isinstance(workflow, Mapping)
    assert isinstance(timeout, int | float)
    assert isinstance(poll_every, int | float)
    assert isinstance(max_file_bytes, int)
    if on_progress is not None and not callable(on_progress):
        return Failure(InvalidRequest(OPERATION, "on_progress", "must be callable"))
    plan = RunPlan(workflow, (), float(timeout), float(poll_every), max_file_bytes, on_progress)
    return Success(plan)
