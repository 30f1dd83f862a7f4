"""What a session's ComfyUI answers, as frozen values.

The shapes are those of ComfyUI's own server, modelled on ComfyUI v0.3.x (``server.py``:
``post_prompt``, ``get_history``, ``get_queue``, ``view_image``, ``upload_image``,
``post_interrupt``, ``system_stats``; ``execution.py``: ``validate_prompt`` for
``node_errors``). Only the fields a client acts on are typed; ComfyUI adds fields between
releases, and unknown ones are ignored.
"""

from __future__ import annotations

from decimal import Decimal
from pathlib import Path
from typing import Any, Literal, TypeAlias

import msgspec

from cdsessions._core.unknown import Unknown

__all__ = [
    "ComfyFile",
    "ComfyHistory",
    "ComfyQueue",
    "ComfySystemStats",
    "NodeError",
    "PromptAnswer",
    "PromptQueued",
    "PromptRejected",
    "RunOutput",
    "RunProgress",
    "RunResult",
]

#: Where a file lives on the ComfyUI server (its ``folder_paths`` directories).
FileType: TypeAlias = Literal["input", "output", "temp"]


class ComfyFile(msgspec.Struct, frozen=True):
    """One file on the ComfyUI server, as ``/view`` and ``/upload/image`` name it. Names are
    the server's words: they are sanitised before anything is written locally."""

    filename: str
    subfolder: str = ""
    type: FileType = "output"


class NodeError(msgspec.Struct, frozen=True):
    """Why one node of a workflow was refused: its id, its ``class_type`` and the messages."""

    node_id: str
    class_type: str
    messages: tuple[str, ...]


class PromptQueued(msgspec.Struct, frozen=True):
    """``POST /prompt`` accepted the workflow: ``prompt_id`` follows it through the history."""

    prompt_id: str
    number: int


class PromptRejected(msgspec.Struct, frozen=True):
    """``POST /prompt`` refused the workflow (HTTP 400): ``error`` is ComfyUI's summary and
    ``node_errors`` names each node it refused (empty when the workflow as a whole was bad)."""

    error: str
    node_errors: tuple[NodeError, ...] = ()


#: What queueing a workflow gives: accepted, or refused with the reasons.
PromptAnswer: TypeAlias = PromptQueued | PromptRejected


class ComfyHistory(msgspec.Struct, frozen=True):
    """One prompt's entry in ``GET /history/{prompt_id}``. ``found`` is False while ComfyUI has
    no entry yet (queued or running: the history answers ``{}``)."""

    prompt_id: str
    found: bool
    completed: bool = False
    #: ComfyUI's ``status_str``: ``"success"`` or ``"error"`` once it ran, else None.
    status: str | None = None
    #: The output files, node id → its files, in the order ComfyUI lists them.
    outputs: tuple[tuple[str, tuple[ComfyFile, ...]], ...] = ()
    #: Text outputs (a node's ``"text"`` list), node id → its strings.
    texts: tuple[tuple[str, tuple[str, ...]], ...] = ()
    #: The nodes an ``execution_error`` in the status messages names (a failed run).
    failed_nodes: tuple[NodeError, ...] = ()

    @property
    def files(self) -> tuple[ComfyFile, ...]:
        """Every output file, node by node."""
        return tuple(file for _, files in self.outputs for file in files)


class RunOutput(msgspec.Struct, frozen=True):
    """One file a run brought home: where it is now, its size, and what ComfyUI called it."""

    path: Path
    size: int
    node_id: str
    remote: ComfyFile


#: What a run is doing: uploading its inputs, queued (waiting for the history), downloading.
RunStage: TypeAlias = Literal["uploading", "waiting", "downloading"]


class RunProgress(msgspec.Struct, frozen=True):
    """A run's progress, given to ``on_progress``: the stage, the prompt id once queued,
    ``seconds`` since the run began (client clock), ``polls`` of the history so far, and the
    file name (local) being uploaded or downloaded, with how many of how many."""

    stage: RunStage
    seconds: float
    prompt_id: str | None = None
    polls: int = 0
    file: str | None = None
    index: int = 0
    count: int = 0


class RunResult(msgspec.Struct, frozen=True):
    """What a run produced: the files written under ``outputs_to`` (in ComfyUI's order), the
    text outputs, the prompt id, how long it took (``seconds``, from the first upload to
    the last byte written, on the client's clock) and what that time cost (``cost``: USD,
    exactly, at the session's GPU price, or an :class:`~cdsessions.costs.Unknown` saying why
    not, e.g. the price table could not be fetched; see
    :func:`cdsessions._core.pricing.run_cost`)."""

    prompt_id: str
    outputs: tuple[RunOutput, ...]
    texts: tuple[tuple[str, tuple[str, ...]], ...]
    seconds: float
    cost: Decimal | Unknown = Unknown("not priced")

    @property
    def paths(self) -> tuple[Path, ...]:
        return tuple(output.path for output in self.outputs)

    @property
    def total_bytes(self) -> int:
        return sum(output.size for output in self.outputs)


class ComfyQueue(msgspec.Struct, frozen=True):
    """``GET /queue``: the prompt ids running and waiting."""

    running: tuple[str, ...] = ()
    pending: tuple[str, ...] = ()

    def holds(self, prompt_id: str) -> bool:
        return prompt_id in self.running or prompt_id in self.pending


class ComfySystemStats(msgspec.Struct, frozen=True):
    """``GET /system_stats``: the ComfyUI version and the devices it sees."""

    comfyui_version: str | None = None
    python_version: str | None = None
    devices: tuple[str, ...] = ()
    raw: dict[str, Any] = msgspec.field(default_factory=dict)
