"""The commands that need no account: ``fake-server`` (a fake ComfyDeploy on 127.0.0.1) and
``demo`` (the whole session lifecycle, a workflow run included, against a fake inside this
process). The fake is imported only when one of them runs."""

from __future__ import annotations

import argparse
import errno
import socket
import tempfile
import time
from pathlib import Path
from typing import Final

from returns.result import Success

from cdsessions._cli._failures import OK, REFUSED, UNREACHABLE, USAGE, Fail, Failed, ok
from cdsessions._cli._output import end_progress, err, out, progress, when
from cdsessions._cli._parser import Command, non_negative_int, port, seconds
from cdsessions._core.servers import LOCAL_PORT, is_loopback_host
from cdsessions.client import SessionsClient
from cdsessions.comfy_models import RunResult
from cdsessions.errors import HttpError
from cdsessions.models import CreateSessionBody, Session

__all__ = ["DEMO", "FAKE_SERVER"]


def _fake_server_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--host", default="127.0.0.1", help="loopback address (default 127.0.0.1)")
    parser.add_argument(
        "--port",
        type=port,
        default=LOCAL_PORT,
        help=f"port (default {LOCAL_PORT}, the `local` server)",
    )
    parser.add_argument(
        "--machine-id",
        action="append",
        default=[],
        metavar="ID",
        help="another machine to accept (repeatable; the default machine always exists)",
    )
    parser.add_argument(
        "--ready-after-polls",
        type=non_negative_int,
        default=1,
        metavar="N",
        help="gets that still see url null before it appears (default 1)",
    )
    parser.add_argument(
        "--never-ready",
        action="store_true",
        help="sessions never get their url (a ready wait ends in NotReady)",
    )
    parser.add_argument(
        "--ready-after-seconds",
        type=seconds,
        metavar="S",
        help="also set the url once a session is this old",
    )
    parser.add_argument(
        "--seed-shapes",
        action="store_true",
        help="answer in the seed document's shapes (3-field Session, GPUEventModel list)",
    )
    parser.add_argument(
        "--manual-clock",
        action="store_true",
        help='the fake\'s time starts now and moves only by POST /_fake/clock {"advance": S}',
    )
    parser.add_argument(
        "--key",
        action="append",
        default=[],
        metavar="K",
        help="accept only this API key (repeatable, one account each; default: any key)",
    )
    parser.add_argument("--quiet", action="store_true", help="do not log each request")
    parser.add_argument(
        "--comfyui",
        action="store_true",
        help="serve a small ComfyUI at each session's url (for `cdsessions run`)",
    )


def _fake_server(args: argparse.Namespace) -> int:
    from datetime import timedelta

    from cdsessions.fake.server import make_server, run
    from cdsessions.fake.service import DEFAULT_MACHINE_ID, FakeService

    if not is_loopback_host(args.host):
        raise Fail(f"--host must be a loopback address, not {args.host!r}", USAGE)
    ready_after = args.ready_after_seconds
    from datetime import UTC, datetime

    from cdsessions.fake.clock import ManualClock, system_clock

    clock = ManualClock(datetime.now(UTC)) if args.manual_clock else system_clock
    service = FakeService(
        machines=[DEFAULT_MACHINE_ID, *args.machine_id],
        ready_after_polls=args.ready_after_polls,
        ready_after=None if ready_after is None else timedelta(seconds=ready_after),
        seed_shapes=args.seed_shapes,
        clock=clock,
        # Named by position, never by the key itself: account names show up in answers.
        keys={key: f"user_key{n}" for n, key in enumerate(args.key, 1)} if args.key else None,
        comfyui=args.comfyui,
    )
    try:
        server = make_server(service, args.host, args.port, log=None if args.quiet else err)
    except OSError as error:
        why = (error.strerror or "cannot bind").lower()
        where = f"[{args.host.strip('[]')}]" if ":" in args.host else args.host
        if _host_unusable(error):
            # The host passes the loopback rule but this machine has no such address (IPv6
            # disabled, no loopback interface): the argument is wrong here, not the network.
            raise Fail(
                f"--host {args.host} is not an address of this machine ({why}); "
                "try --host 127.0.0.1",
                USAGE,
            ) from None
        raise Fail(f"cannot listen on {where}:{args.port}: {why}", UNREACHABLE) from None
    out(server.base_url)
    err(
        f"fake ComfyDeploy serving on {server.base_url} "
        f"({f'{len(args.key)} API key(s)' if args.key else 'any non-empty API key'}; "
        f"machines: {', '.join(service.machine_ids)}). Ctrl-C to stop."
    )
    if args.never_ready:
        service.never_ready()
    run(server)
    err("fake ComfyDeploy stopped")
    return OK


def _host_unusable(error: OSError) -> bool:
    """Whether binding failed because of the host itself, rather than the port (in use, or
    privileged): an address the machine does not have, a family it does not support, or a
    name that does not resolve."""
    unusable = (errno.EADDRNOTAVAIL, errno.EAFNOSUPPORT, errno.EPROTONOSUPPORT)
    return isinstance(error, socket.gaierror) or error.errno in unusable


FAKE_SERVER: Final = Command(
    "fake-server",
    "Serve a fake ComfyDeploy on 127.0.0.1 for testing (Ctrl-C to stop).",
    _fake_server,
    _fake_server_arguments,
    "It answers like the live API (same routes, statuses and error texts), accepts any\n"
    "non-empty API key (each key is its own account), and forgets everything on exit.\n"
    "Point a client at it with --server local, or --server http://127.0.0.1:PORT/api.\n"
    "Script it while it runs with POST /_fake/script, /_fake/never-ready,\n"
    '/_fake/sessions/ID/end and /_fake/clock (see docs/testing.md, "Simulating failures").',
    connects=False,
)


def _wait_quietly(client: SessionsClient, session_id: str) -> Session:
    waited = client.wait_until_ready(session_id, timeout=30, on_poll=progress(session_id))
    end_progress()
    session: Session = ok(waited)
    return session


#: The demo's workflow: a text saved as a file by the fake ComfyUI, so its output is known.
_DEMO_TEXT: Final = "made by the demo"
_DEMO_WORKFLOW: Final = {
    "1": {"class_type": "PrimitiveString", "inputs": {"value": _DEMO_TEXT}},
    "2": {"class_type": "SaveImage", "inputs": {"images": ["1", 0], "filename_prefix": "demo"}},
}


def _demo_run(client: SessionsClient, session: Session) -> str:
    """Run the demo's workflow on the session's ComfyUI into a temporary directory, check what
    came home, and say so: ``1 output (16 bytes) in 0.0 s``."""
    with tempfile.TemporaryDirectory(prefix="cdsessions-demo-") as directory:
        result: RunResult = ok(client.run(session, _DEMO_WORKFLOW, outputs_to=directory))
        made = [Path(path).read_bytes() for path in result.paths]
    if made != [_DEMO_TEXT.encode()]:
        raise Fail("demo failed: the run did not bring its one output home", REFUSED)
    return f"{len(made)} output ({result.total_bytes} bytes) in {result.seconds:.1f} s"


def _demo(args: argparse.Namespace) -> int:
    from cdsessions.fake.server import serve_in_thread
    from cdsessions.fake.service import DEFAULT_MACHINE_ID, FakeService

    steps = 8

    def step(number: int, name: str, text: str) -> None:
        out(f"{number}/{steps} {name:<7} {text}")

    service = FakeService(ready_after_polls=1, comfyui=True)
    with (
        serve_in_thread(service) as base_url,
        SessionsClient("demo-key", server=base_url) as client,
    ):
        out(f"fake ComfyDeploy serving on {base_url} (in this process; no account needed)")
        body = CreateSessionBody(machine_id=DEFAULT_MACHINE_ID, timeout=15)
        created = ok(client.create(body))
        sid: str = created.session_id
        state = "ready" if created.url else "starting, url not set yet"
        step(1, "create", f"session {sid} on machine {DEFAULT_MACHINE_ID} ({state})")
        started = time.monotonic()
        _wait_quietly(client, sid)
        step(2, "wait", f"ready after {time.monotonic() - started:.1f} s (url set, not shown)")
        session: Session = ok(client.get(sid))
        ends = when(session.timeout_end)
        step(3, "get", f"{session.status} on {session.gpu}, {session.timeout} min, ends {ends}")
        listed: list[Session] = ok(client.list(DEFAULT_MACHINE_ID))
        ours = "ours among them" if any(s.session_id == sid for s in listed) else "ours MISSING"
        step(4, "list", f"{len(listed)} live session(s) on the machine, {ours}")
        step(5, "run", _demo_run(client, session))
        extended = ok(client.extend(sid, 10))
        step(6, "extend", f"+10 min: {extended.message}")
        cancelled = ok(client.cancel(sid))
        step(7, "cancel", f"success={str(cancelled.success).lower()}")
        gone = client.get(sid)
        if isinstance(gone, Success):
            raise Fail("demo failed: the session still exists after cancel", REFUSED)
        error = gone.failure()
        if not (isinstance(error, HttpError) and error.status == 404):
            raise Failed(error)
        step(8, "get", f"{error.reason()}: the session is gone")
    out("demo finished: the whole session lifecycle worked.")
    return OK


DEMO: Final = Command(
    "demo",
    "Run the whole session lifecycle against a built-in fake server.",
    _demo,
    details="Starts a fake ComfyDeploy on a free port of 127.0.0.1 inside this process, then runs\n"
    "create, wait, get, list, a workflow run on the session's fake ComfyUI (its output\n"
    "downloaded to a temporary directory), extend, cancel and a final get (which must be a\n"
    "404) through the real HTTP client. Needs no account, no key and no network.",
    connects=False,
)
