"""The session commands: ``create``, ``get``, ``list`` (with what each session costs),
``cancel``, ``extend`` and ``wait``."""

from __future__ import annotations

import argparse
from typing import Any, Final

from returns.result import Success

from cdsessions._cli._failures import (
    NOT_FOUND,
    OK,
    STRANDED,
    USAGE,
    Fail,
    Failed,
    describe,
    exit_code_for,
    ok,
    stopped,
)
from cdsessions._cli._keyfile import client_for
from cdsessions._cli._ledger import add_label_option, add_ledger_options
from cdsessions._cli._output import (
    PROG,
    columns,
    costs_data,
    end_progress,
    err,
    exact,
    hint,
    money_text,
    notes,
    out,
    print_json,
    progress,
    session_json,
    session_text,
    span_text,
    total,
    unknowns,
)
from cdsessions._cli._parser import (
    Command,
    add_now_option,
    gpu,
    machine_id,
    non_negative_int,
    now,
    positive_int,
    seconds,
    usd,
)
from cdsessions._core.builders import check_id, describe_id
from cdsessions._core.money import format_usd
from cdsessions._core.pricing import NO_TABLE, GpuPricing
from cdsessions._core.session_steps import counts_as_closed
from cdsessions._core.text import escape
from cdsessions.client import SessionsClient
from cdsessions.costs.figures import costs_of
from cdsessions.costs.reaper import known_from
from cdsessions.errors import ApiError, SessionGone
from cdsessions.ledger import Owned, ownership
from cdsessions.lifecycle import DEFAULT_READY_TIMEOUT
from cdsessions.models import CreateSessionBody, CreateSessionResponse, MachineGPU, Session

__all__ = ["CANCEL", "CREATE", "EXTEND", "GET", "LIST", "WAIT", "send_create", "wait_ready"]


def _wait_options(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--ready-timeout",
        type=seconds,
        default=DEFAULT_READY_TIMEOUT,
        metavar="SECONDS",
        help=f"give up waiting after this long (default {DEFAULT_READY_TIMEOUT:.0f})",
    )
    parser.add_argument(
        "--show-url", action="store_true", help="print the session's url (it is a secret)"
    )


def wait_ready(client: SessionsClient, session_id: str, args: argparse.Namespace) -> Session:
    try:
        waited = client.wait_until_ready(
            session_id, timeout=args.ready_timeout, on_poll=progress(session_id)
        )
    finally:
        end_progress()
    if not isinstance(waited, Success):
        raise Failed(waited.failure(), waiting=True)
    session: Session = waited.unwrap()
    return session


# -- create ------------------------------------------------------------------------------------


def _create_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--machine-id", required=True, type=machine_id, help="the machine to run on (a UUID)"
    )
    parser.add_argument(
        "--gpu",
        type=gpu,
        metavar="GPU",
        help=f"GPU type, in any case ({', '.join(g.value for g in MachineGPU)}; "
        "default: the machine's)",
    )
    parser.add_argument(
        "--timeout",
        type=non_negative_int,
        metavar="MINUTES",
        help="minutes until the session ends by itself (0 or unset: the server's 15)",
    )
    how = parser.add_mutually_exclusive_group()
    how.add_argument(
        "--wait",
        action="store_true",
        help="poll until the session is ready before returning; Ctrl-C or SIGTERM then "
        "cancels the session (unless --keep)",
    )
    how.add_argument(
        "--wait-for-server",
        action="store_true",
        help="ask the server to answer only once ComfyUI is up (can take 10 minutes)",
    )
    _wait_options(parser)
    parser.add_argument(
        "--keep",
        action="store_true",
        help="with --wait: leave the session running if interrupted (it stays billed)",
    )
    _quiet_option(parser, "print only the new session's id")
    parser.add_argument(
        "--max-cost",
        type=usd,
        metavar="USD",
        help="refuse (nothing is started) unless the worst case, the timeout's minutes (15 if "
        "unset) at the GPU's price, is at most USD; needs --gpu",
    )
    add_ledger_options(parser, label=True)


def _quiet_option(parser: argparse.ArgumentParser, what: str) -> None:
    parser.add_argument("-q", "--quiet", action="store_true", help=what + " (not with --json)")


def _refuse_quiet_json(args: argparse.Namespace) -> None:
    if args.quiet and args.json:  # two answers to "what shape is the output"
        raise Fail(f"{PROG} {args.command}: -q/--quiet and --json do not go together", USAGE)


def _create(args: argparse.Namespace) -> int:
    _refuse_quiet_json(args)
    with client_for(args) as client:
        return _create_with(client, args)


def _create_with(client: SessionsClient, args: argparse.Namespace) -> int:
    body = CreateSessionBody(
        machine_id=args.machine_id,
        gpu=MachineGPU(args.gpu) if args.gpu else None,
        timeout=args.timeout,
        wait_for_server=args.wait_for_server,
    )
    created = send_create(client, args, body)
    session_id: str = created.session_id
    url: str | None = created.url
    usable = check_id(session_id, "session_id", "create session")
    if not isinstance(usable, Success):
        # Paid for, yet no command can name it: the id is printed, and the failure says so
        # (not "invalid SESSION_ID ... nothing was sent", which the wait would report).
        _print_created(args, session_id, url, waitable=False)
        raise Fail(
            f"create session on machine {args.machine_id}: a session was started and is billing, "
            f"but the id the server gave it ({describe_id(session_id)}) "
            f"{usable.failure().problem}, so no cdsessions command can wait for it or cancel "
            "it: stop it from the ComfyDeploy dashboard, or it ends at its timeout",
            STRANDED,
        )
    if args.wait and url is None:
        try:
            url = wait_ready(client, session_id, args).url
        except KeyboardInterrupt as stop:
            word, code = stopped(stop)
            raise Fail(f"{word}; {_after_interrupt(client, session_id, args)}", code) from None
        except Failed as failure:
            raise Fail(
                _wait_failed(failure, session_id, args), exit_code_for(failure.error, "create")
            ) from None
    _print_created(args, session_id, url, waitable=True)
    return OK


def _wait_failed(failure: Failed, session_id: str, args: argparse.Namespace) -> str:
    """Why ``create --wait`` gave up, with a cancel hint only where one is due: a session that
    ended (404 while waiting: nothing is running) needs none."""
    said = describe(failure.error, args, waiting=failure.waiting)
    if isinstance(failure.error, SessionGone):
        return said
    cancel = hint(args, "cancel", session_id)
    return f"{said}; session {session_id} may still be running (cancel it with {cancel})"


def _after_interrupt(client: SessionsClient, session_id: str, args: argparse.Namespace) -> str:
    """What became of the session a ``create --wait`` started when it was stopped: cancelled
    (unless ``--keep``), and said so; or still running, with the command that stops it. Never
    advice to cancel what was cancelled, nor a claim of a cancel that failed."""
    cancel = hint(args, "cancel", session_id)
    if args.keep:
        return f"session {session_id} is still running, as --keep asked (stop it with {cancel})"
    try:
        cancelled = client.cancel(session_id)
    except KeyboardInterrupt:  # stopped again while cancelling: the cancel may not have landed
        return (
            f"stopped again while cancelling session {session_id}; it may still be running "
            f"(cancel it with {cancel})"
        )
    done = f"cancelled session {session_id}, which this command started (--keep keeps it)"
    if isinstance(cancelled, Success):
        return done
    failure = cancelled.failure()
    if exit_code_for(failure, "cancel") == NOT_FOUND:
        return f"session {session_id}, which this command started, has already ended"
    if counts_as_closed(failure):  # the live server's 400 for a cancel in the first moments
        return done
    why = describe(failure, args)
    return (
        f"could not cancel session {session_id} ({why}): it may still be running "
        f"(cancel it with {cancel})"
    )


def _print_created(
    args: argparse.Namespace, session_id: str, url: str | None, *, waitable: bool
) -> None:
    if args.quiet:
        out(escape(session_id))  # one line, even if the server's id holds a line break
        return
    if args.json:
        data: dict[str, Any] = {"session_id": session_id, "ready": url is not None}
        if args.show_url:
            data["url"] = url
        print_json(data)
        return
    if url is not None:
        state = "ready"
    else:
        state = f"starting; run {hint(args, 'wait', session_id)}" if waitable else "starting"
    out(f"created session {escape(session_id)} ({state})")
    if args.show_url and url is not None:
        out(f"url {escape(url)}")


CREATE: Final = Command(
    "create",
    "Start a session on a machine (billed from now until it ends).",
    _create,
    _create_arguments,
    "Prints the new session id. Without --wait the session is still starting: its url\n"
    "appears later (see `cdsessions wait`). The session runs until its timeout or\n"
    "`cdsessions cancel`.",
    changes=True,
)


def send_create(
    client: SessionsClient, args: argparse.Namespace, body: CreateSessionBody
) -> CreateSessionResponse:
    """The one way the command line starts a session (``create`` and ``with`` both come
    here): the budgeted create, and on Ctrl-C a line saying one may have started."""
    try:
        created: CreateSessionResponse = ok(client.create(body, max_cost=args.max_cost))
    except KeyboardInterrupt as stop:
        word, code = stopped(stop)
        raise Fail(
            f"{word} while creating a session; one may have started (see {hint(args, 'list')})",
            code,
        ) from None
    return created


# -- get ---------------------------------------------------------------------------------------


def _get_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("session_id", metavar="SESSION_ID")
    parser.add_argument("--show-url", action="store_true", help="print the session's url (secret)")


def _get(args: argparse.Namespace) -> int:
    with client_for(args) as client:
        session: Session = ok(client.get(args.session_id))
    if args.json:
        print_json(session_json(session, args.show_url))
    else:
        out(session_text(session, args.show_url))
    return OK


GET: Final = Command("get", "Show one session.", _get, _get_arguments)


# -- list --------------------------------------------------------------------------------------


def _list_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--machine-id", type=machine_id, help="only sessions of this machine")
    parser.add_argument(
        "--mine",
        action="store_true",
        help="only sessions this machine's ledger recorded (and, marked as candidates, those "
        "that may come from a create whose answer was lost)",
    )
    add_label_option(parser, "only sessions recorded with this label (and its candidates)")
    add_now_option(parser)
    add_ledger_options(parser, label=False)
    _quiet_option(parser, "print only the sessions' ids, one a line")


def _owned(
    args: argparse.Namespace, client: SessionsClient, sessions: list[Session]
) -> dict[str, Owned] | None:
    """With --mine or --label: what the ledger knows of each listed session (None otherwise)."""
    if not args.mine and args.label is None:
        return None
    if client.ledger is None:
        raise Fail("--mine and --label need the ledger (no --no-ledger)", USAGE)
    known = known_from(client.ledger)
    return ownership(sessions, known.intents, known.gone)


def _kept(owned: Owned | None, args: argparse.Namespace) -> bool:
    return owned is not None and (args.label is None or owned.intent.label == args.label)


def _owner_data(owned: Owned) -> dict[str, Any]:
    return {
        "recorded": owned.certain,
        "label": owned.intent.label,
        "owner_gone": owned.gone,
        "requested_at": owned.intent.requested_at.isoformat().replace("+00:00", "Z"),
    }


def _owner_text(owned: Owned) -> str:
    text = "yes" if owned.certain else "candidate?"
    return text + (f" ({owned.intent.label})" if owned.intent.label else "")


def _pricing_or_failure(client: SessionsClient) -> GpuPricing | ApiError:
    fetched = client.gpu_pricing()
    return fetched.unwrap() if isinstance(fetched, Success) else fetched.failure()


def _list(args: argparse.Namespace) -> int:
    """Live sessions with GPU, age, time left, USD/h and cost so far, and a total. If the prices
    cannot be had, the sessions are still listed (costs unknown) and a warning goes to stderr:
    knowing what runs matters more than what it costs."""
    _refuse_quiet_json(args)
    with client_for(args) as client:
        sessions: list[Session] = ok(client.list(args.machine_id))
        owners = _owned(args, client, sessions)
        # Ids only (-q): no prices needed, and nothing but ids on stdout.
        pricing = NO_TABLE if args.quiet else _pricing_or_failure(client)
    if owners is not None:
        sessions = [s for s in sessions if _kept(owners.get(s.session_id), args)]
    if args.quiet:
        for session in sessions:
            out(escape(session.session_id))
        return OK
    if isinstance(pricing, ApiError):
        err(f"{PROG}: warning: costs unknown: {pricing}")
        pricing = NO_TABLE
    moment = now(args)
    figures = [costs_of(session, pricing, moment) for session in sessions]
    per_hour = [costs.usd_per_hour for costs in figures]
    so_far = [costs.cost_so_far for costs in figures]
    if args.json:
        summary = {
            "sessions": len(figures),
            "usd_per_hour": exact(total(per_hour)),
            "cost_so_far_usd": exact(total(so_far)),
            "unpriced": unknowns(so_far),
        }
        listed = [costs_data(costs) for costs in figures]
        if owners is not None:
            for data, costs in zip(listed, figures, strict=True):
                data["owner"] = _owner_data(owners[costs.session.session_id])
        document = {
            "now": moment.isoformat().replace("+00:00", "Z"),
            "sessions": listed,
            "total": summary,
            "notes": notes(figures),
        }
        print_json(document)
        return OK
    if not figures:
        out("no live sessions" + ("" if owners is None else " of this machine's ledger"))
        return OK
    mine = () if owners is None else ("MINE",)
    rows = [("SESSION", "GPU", "READY", "AGE", "LEFT", "USD/H", "SO FAR", "MACHINE", *mine)]
    for costs in figures:
        session = costs.session
        rows.append(
            (
                session.session_id,
                session.gpu or "-",
                "yes" if session.ready else "no",
                span_text(costs.age),
                span_text(costs.time_left),
                money_text(costs.usd_per_hour),
                money_text(costs.cost_so_far),
                session.machine_id or "-",
                *(() if owners is None else (_owner_text(owners[session.session_id]),)),
            )
        )
    count = f"{len(figures)} session" + ("s" if len(figures) != 1 else "")
    totals = (format_usd(total(per_hour)), format_usd(total(so_far)))
    rows.append((f"total: {count}", "", "", "", "", *totals, "", *("" for _ in mine)))
    # Too wide for the terminal: MACHINE, then AGE, then READY go; the session id never does.
    out(columns(rows, right=frozenset({3, 4, 5, 6}), optional=(7, 3, 2)))
    unpriced = unknowns(so_far)
    if unpriced:
        out(f"({unpriced} not in the total: " + "; ".join(notes(figures)) + ")")
    if owners is not None and any(not owners[c.session.session_id].certain for c in figures):
        out(
            "(candidate?: created on that machine while a create of this machine's ledger lost "
            "its answer; it may or may not be that create's session)"
        )
    return OK


LIST: Final = Command(
    "list",
    "List live sessions, newest first, with what each costs.",
    _list,
    _list_arguments,
    "Per session: GPU, age, time left, USD per hour and cost so far, then a total.\n"
    "Costs come from the price table (`cdsessions prices`); --json gives exact decimal\n"
    "strings for money and seconds for durations.",
)


# -- cancel, extend, wait ----------------------------------------------------------------------


def _cancel_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("session_id", metavar="SESSION_ID")
    parser.add_argument(
        "--wait-for-shutdown", action="store_true", help="return once the machine has stopped"
    )
    parser.add_argument(
        "--ignore-not-found",
        action="store_true",
        help="a session that is already gone (unknown, ended) is not a failure: exit 0",
    )


def _cancel(args: argparse.Namespace) -> int:
    with client_for(args) as client:
        cancelled = client.cancel(args.session_id, args.wait_for_shutdown)
    if not isinstance(cancelled, Success):
        failure = cancelled.failure()
        if not (args.ignore_not_found and exit_code_for(failure, "cancel") == NOT_FOUND):
            raise Failed(failure)
        err(f"{PROG}: note: {describe(failure, args)}; nothing to cancel (--ignore-not-found)")
        if args.json:
            print_json({"session_id": args.session_id, "success": False, "not_found": True})
        return OK
    answer = cancelled.unwrap()
    if args.json:
        print_json({"session_id": args.session_id, "success": answer.success})
    else:
        out(f"cancelled session {args.session_id}")
    return OK


CANCEL: Final = Command(
    "cancel", "Stop a session (and its billing).", _cancel, _cancel_arguments, changes=True
)


def _extend_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("session_id", metavar="SESSION_ID")
    parser.add_argument("minutes", type=positive_int, metavar="MINUTES")


def _extend(args: argparse.Namespace) -> int:
    with client_for(args) as client:
        answer = ok(client.extend(args.session_id, args.minutes))
    if args.json:
        print_json({"session_id": args.session_id, "message": answer.message})
    else:
        message = escape(answer.message)  # the server's words, on this one line
        out(f"extended session {escape(args.session_id)} by {args.minutes} min ({message})")
    return OK


EXTEND: Final = Command(
    "extend",
    "Add minutes to a running session's timeout.",
    _extend,
    _extend_arguments,
    "Refused before sending if it would run past 24 h from creation (the platform's cap).",
    changes=True,
)


def _wait_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("session_id", metavar="SESSION_ID")
    _wait_options(parser)


def _wait_command(args: argparse.Namespace) -> int:
    with client_for(args) as client:
        session = wait_ready(client, args.session_id, args)
    if args.json:
        print_json(session_json(session, args.show_url))
    else:
        out(f"session {escape(session.session_id)} is ready")
        if args.show_url and session.url is not None:
            out(f"url {escape(session.url)}")
    return OK


WAIT: Final = Command(
    "wait",
    "Wait until a session is ready (its url is set).",
    _wait_command,
    _wait_arguments,
    "Polls every 1-4 s. Exit code 3 if the session ends first, 7 if the deadline passes.",
)
