"""``cdsessions run WORKFLOW.json``: start a session (or use ``--session``), wait for it, run
the workflow on its ComfyUI, bring the outputs home, cancel the session, and say what was
produced and what it cost. Everything that can be checked is checked before the session is
started (the workflow's shape, the inputs, the output directory, ``--max-cost``): a mistake
costs nothing. Ctrl-C or SIGTERM during the run interrupts ComfyUI, then the session is
cancelled, and the exit code is 130 (143)."""

from __future__ import annotations

import argparse
import json
from pathlib import Path
from typing import Any, Final

from returns.result import Success

from cdsessions import _runs
from cdsessions._cli._failures import OK, USAGE, Fail, Failed, ok
from cdsessions._cli._keyfile import client_for
from cdsessions._cli._output import PROG, end_progress, err, out, run_progress
from cdsessions._cli._parser import Command, gpu, machine_id, seconds
from cdsessions._cli.lease import _lease_options, _told
from cdsessions._cli.sessions import send_create, wait_ready
from cdsessions._core import money
from cdsessions._core.comfy_run import run_plan
from cdsessions._core.text import escape
from cdsessions._core.unknown import Unknown
from cdsessions.client import SessionsClient
from cdsessions.comfy_models import RunResult
from cdsessions.lifecycle import DEFAULT_READY_TIMEOUT
from cdsessions.models import CreateSessionBody, MachineGPU

__all__ = ["RUN"]

#: The run's own deadline when none is given: ten minutes, as long as the ready wait's default.
DEFAULT_RUN_TIMEOUT: Final = 600.0
#: The largest workflow file read.
_MAX_WORKFLOW_BYTES: Final = 16 * 1024 * 1024


def _run_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("workflow", metavar="WORKFLOW.json", help="the workflow, in API format")
    parser.add_argument(
        "--input",
        action="append",
        default=[],
        metavar="FILE",
        help="a file to upload first, under its own name (repeat for more)",
    )
    parser.add_argument("--out", required=True, metavar="DIR", help="where the outputs go")
    parser.add_argument(
        "--session",
        metavar="SESSION_ID",
        help="run on this existing session (it is not cancelled) instead of starting one",
    )
    parser.add_argument("--machine-id", type=machine_id, help="the machine to start it on")
    parser.add_argument(
        "--gpu",
        type=gpu,
        metavar="GPU",
        help=f"GPU type ({', '.join(g.value for g in MachineGPU)}; default: the machine's)",
    )
    _lease_options(parser)
    parser.add_argument(
        "--ready-timeout",
        type=seconds,
        default=DEFAULT_READY_TIMEOUT,
        metavar="SECONDS",
        help="give up waiting for the session after this long "
        f"(default {DEFAULT_READY_TIMEOUT:.0f})",
    )
    parser.add_argument(
        "--run-timeout",
        type=seconds,
        default=DEFAULT_RUN_TIMEOUT,
        metavar="SECONDS",
        help=f"interrupt the run after this long (default {DEFAULT_RUN_TIMEOUT:.0f}; exit 12)",
    )


def _workflow(path: str) -> Any:
    try:
        with open(path, "rb") as file:
            data = file.read(_MAX_WORKFLOW_BYTES + 1)
    except OSError as error:
        raise Fail(
            escape(f"run: cannot read {path!r}: {error.strerror or type(error).__name__}"), USAGE
        ) from None
    if len(data) > _MAX_WORKFLOW_BYTES:
        raise Fail(escape(f"run: {path!r} is larger than {_MAX_WORKFLOW_BYTES} bytes"), USAGE)
    try:
        return json.loads(data)
    except (ValueError, RecursionError):
        raise Fail(escape(f"run: {path!r} is not JSON"), USAGE) from None


def _checked(args: argparse.Namespace) -> Any:
    """The workflow, once everything that can be checked without sending was: nothing is
    started for a run that cannot work."""
    if args.session is None and args.machine_id is None:
        raise Fail("run: give --machine-id (to start a session) or --session", USAGE)
    workflow = _workflow(args.workflow)
    for checked in (
        run_plan(workflow, args.run_timeout, 1.0, 1),
        _runs.read_inputs(args.input),
        _runs.outputs_dir(args.out),
    ):
        if not isinstance(checked, Success):
            raise Failed(checked.failure())
    return workflow


def _run(args: argparse.Namespace) -> int:
    workflow = _checked(args)
    args.max_cost = getattr(args, "max_cost", None)
    with client_for(args) as client:
        if args.session is not None:
            session = wait_ready(client, args.session, args)
            return _report(_ran(client, session, workflow, args), session.gpu)
        chosen = MachineGPU(args.gpu) if args.gpu else None
        body = CreateSessionBody(machine_id=args.machine_id, gpu=chosen, timeout=args.lease)
        created = send_create(client, args, body)  # budgeted: --max-cost refuses here
        with client.lease(
            created.session_id, args.lease, max_cost=args.max_cost, on_end=_told
        ) as leased:  # cancelled on the way out, however the run ends
            ok(leased)
            session = wait_ready(client, created.session_id, args)
            result = _ran(client, session, workflow, args)
        err(f"{PROG}: session {escape(created.session_id)} cancelled")
        return _report(result, session.gpu)


def _ran(
    client: SessionsClient, session: Any, workflow: Any, args: argparse.Namespace
) -> RunResult:
    named = escape(Path(args.workflow).name)
    err(f"{PROG}: running {named} on session {escape(session.session_id)}")
    try:
        got = client.run(
            session,
            workflow,
            inputs=args.input,
            outputs_to=args.out,
            timeout=args.run_timeout,
            on_progress=run_progress(),
        )
    finally:
        end_progress()
    result: RunResult = ok(got)
    return result


def _report(result: RunResult, gpu_name: str | None) -> int:
    for output in result.outputs:
        fields = (str(output.path), f"{output.size} bytes", f"node {output.node_id}")
        out("  ".join(escape(field) for field in fields))
    for node_id, texts in result.texts:
        for text in texts:
            out("  ".join(escape(field) for field in ("text", f"node {node_id}", text)))
    err(
        f"{PROG}: prompt {escape(result.prompt_id)}: {len(result.outputs)} file(s), "
        f"{result.total_bytes} bytes in {result.seconds:.1f} s{_cost(result, gpu_name)}"
    )
    return OK


def _cost(result: RunResult, gpu_name: str | None) -> str:
    """``; about X USD on GPU``, the library's figure (RunResult.cost), or why it is unknown."""
    if isinstance(result.cost, Unknown):
        return f"; cost {escape(str(result.cost))}"
    return f"; about {money.usd_text(result.cost)} on {escape(str(gpu_name))}"


RUN: Final = Command(
    "run",
    "Run a ComfyUI workflow on a new session (or --session) and download its outputs.",
    _run,
    _run_arguments,
    "Starts the session (leased, so it ends by itself if cdsessions is killed), waits for it,\n"
    "uploads each --input, queues WORKFLOW.json, waits for it (--run-timeout), downloads every\n"
    "output into --out (names made safe, nothing overwritten), cancels the session, and prints\n"
    "one line per file (path, size, node). The workflow, inputs, --out and --max-cost are\n"
    "checked before anything is started. Exit 11: node errors or a failed run; 12: the run\n"
    "was not done in time (ComfyUI was interrupted); 130: Ctrl-C (ComfyUI interrupted, the\n"
    "session cancelled).",
    changes=True,
)
