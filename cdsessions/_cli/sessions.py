"""The session commands: ``create``, ``get``, ``list`` (with what each session costs),
``cancel``, ``extend`` and ``wait``."""

from __future__ import annotations

import argparse
from typing import Any, Final

from returns.result import Success

from cdsessions._cli._failures import OK, Fail, Failed, describe, exit_code_for, ok, stopped
from cdsessions._cli._keyfile import client_for
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
    non_negative_int,
    now,
    positive_int,
    seconds,
    usd,
)
from cdsessions._core.money import format_usd
from cdsessions._core.pricing import NO_TABLE, GpuPricing
from cdsessions.client import SessionsClient
from cdsessions.costs.figures import costs_of
from cdsessions.errors import ApiError
from cdsessions.lifecycle import DEFAULT_READY_TIMEOUT
from cdsessions.models import CreateSessionBody, MachineGPU, Session

__all__ = ["CANCEL", "CREATE", "EXTEND", "GET", "LIST", "WAIT"]


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


def _wait(client: SessionsClient, session_id: str, args: argparse.Namespace) -> Session:
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
    parser.add_argument("--machine-id", required=True, help="the machine to run on")
    parser.add_argument(
        "--gpu",
        metavar="GPU",
        help=f"GPU type ({', '.join(g.value for g in MachineGPU)}; default: the machine's)",
    )
    parser.add_argument(
        "--timeout",
        type=non_negative_int,
        metavar="MINUTES",
        help="minutes until the session ends by itself (0 or unset: the server's 15)",
    )
    how = parser.add_mutually_exclusive_group()
    how.add_argument(
        "--wait", action="store_true", help="poll until the session is ready before returning"
    )
    how.add_argument(
        "--wait-for-server",
        action="store_true",
        help="ask the server to answer only once ComfyUI is up (can take 10 minutes)",
    )
    _wait_options(parser)
    parser.add_argument(
        "--max-cost",
        type=usd,
        metavar="USD",
        help="refuse (nothing is started) unless the worst case, the timeout's minutes (15 if "
        "unset) at the GPU's price, is at most USD; needs --gpu",
    )


def _create(args: argparse.Namespace) -> int:
    with client_for(args) as client:
        return _create_with(client, args)


def _create_with(client: SessionsClient, args: argparse.Namespace) -> int:
    gpu = MachineGPU(args.gpu) if args.gpu else None
    body = CreateSessionBody(
        machine_id=args.machine_id,
        gpu=gpu,
        timeout=args.timeout,
        wait_for_server=args.wait_for_server,
    )
    try:
        created = ok(client.create(body, max_cost=args.max_cost))
    except KeyboardInterrupt as stop:
        word, code = stopped(stop)
        raise Fail(
            f"{word} while creating a session; one may have started (see {hint(args, 'list')})",
            code,
        ) from None
    session_id: str = created.session_id
    url: str | None = created.url
    cancel = hint(args, "cancel", session_id)
    if args.wait and url is None:
        try:
            url = _wait(client, session_id, args).url
        except KeyboardInterrupt as stop:
            word, code = stopped(stop)
            raise Fail(
                f"{word}; session {session_id} is still running (cancel it with {cancel})", code
            ) from None
        except Failed as failure:
            raise Fail(
                f"{describe(failure.error, args, waiting=failure.waiting)}; session {session_id} "
                f"may still be running (cancel it with {cancel})",
                exit_code_for(failure.error, args.command),
            ) from None
    if args.json:
        data: dict[str, Any] = {"session_id": session_id, "ready": url is not None}
        if args.show_url:
            data["url"] = url
        print_json(data)
    else:
        state = "ready" if url is not None else f"starting; run {hint(args, 'wait', session_id)}"
        out(f"created session {session_id} ({state})")
        if args.show_url and url is not None:
            out(f"url {url}")
    return OK


CREATE: Final = Command(
    "create",
    "Start a session on a machine (billed from now until it ends).",
    _create,
    _create_arguments,
    "Prints the new session id. Without --wait the session is still starting: its url\n"
    "appears later (see `cdsessions wait`). The session runs until its timeout or\n"
    "`cdsessions cancel`.",
)


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
    parser.add_argument("--machine-id", help="only sessions of this machine")
    add_now_option(parser)


def _pricing_or_failure(client: SessionsClient) -> GpuPricing | ApiError:
    fetched = client.gpu_pricing()
    return fetched.unwrap() if isinstance(fetched, Success) else fetched.failure()


def _list(args: argparse.Namespace) -> int:
    """Live sessions with GPU, age, time left, USD/h and cost so far, and a total. If the prices
    cannot be had, the sessions are still listed (costs unknown) and a warning goes to stderr:
    knowing what runs matters more than what it costs."""
    with client_for(args) as client:
        sessions: list[Session] = ok(client.list(args.machine_id))
        pricing = _pricing_or_failure(client)
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
        document = {
            "now": moment.isoformat().replace("+00:00", "Z"),
            "sessions": [costs_data(costs) for costs in figures],
            "total": summary,
            "notes": notes(figures),
        }
        print_json(document)
        return OK
    if not figures:
        out("no live sessions")
        return OK
    rows = [("SESSION", "GPU", "READY", "AGE", "LEFT", "USD/H", "SO FAR", "MACHINE")]
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
            )
        )
    count = f"{len(figures)} session" + ("s" if len(figures) != 1 else "")
    totals = (format_usd(total(per_hour)), format_usd(total(so_far)))
    rows.append((f"total: {count}", "", "", "", "", *totals, ""))
    out(columns(rows, right=frozenset({3, 4, 5, 6})))
    unpriced = unknowns(so_far)
    if unpriced:
        out(f"({unpriced} not in the total: " + "; ".join(notes(figures)) + ")")
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


def _cancel(args: argparse.Namespace) -> int:
    with client_for(args) as client:
        answer = ok(client.cancel(args.session_id, args.wait_for_shutdown))
    if args.json:
        print_json({"session_id": args.session_id, "success": answer.success})
    else:
        out(f"cancelled session {args.session_id}")
    return OK


CANCEL: Final = Command("cancel", "Stop a session (and its billing).", _cancel, _cancel_arguments)


def _extend_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("session_id", metavar="SESSION_ID")
    parser.add_argument("minutes", type=positive_int, metavar="MINUTES")


def _extend(args: argparse.Namespace) -> int:
    with client_for(args) as client:
        answer = ok(client.extend(args.session_id, args.minutes))
    if args.json:
        print_json({"session_id": args.session_id, "message": answer.message})
    else:
        out(f"extended session {args.session_id} by {args.minutes} min ({answer.message})")
    return OK


EXTEND: Final = Command(
    "extend",
    "Add minutes to a running session's timeout.",
    _extend,
    _extend_arguments,
    "Refused before sending if it would run past 24 h from creation (the platform's cap).",
)


def _wait_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("session_id", metavar="SESSION_ID")
    _wait_options(parser)


def _wait_command(args: argparse.Namespace) -> int:
    with client_for(args) as client:
        session = _wait(client, args.session_id, args)
    if args.json:
        print_json(session_json(session, args.show_url))
    else:
        out(f"session {session.session_id} is ready")
        if args.show_url and session.url is not None:
            out(f"url {session.url}")
    return OK


WAIT: Final = Command(
    "wait",
    "Wait until a session is ready (its url is set).",
    _wait_command,
    _wait_arguments,
    "Polls every 1-4 s. Exit code 3 if the session ends first, 7 if the deadline passes.",
)
