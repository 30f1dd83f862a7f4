"""The cost commands: ``prices`` (the price table) and ``reap`` (cancel forgotten sessions).

``list``, which shows what each live session costs, is a session command (see
:mod:`cdsessions._cli.sessions`); both share the cost display of :mod:`cdsessions._cli._output`.
"""

from __future__ import annotations

import argparse
from typing import Any, Final

from cdsessions._cli._failures import OK, USAGE, Fail, Failed, ok, stopped
from cdsessions._cli._keyfile import client_for
from cdsessions._cli._ledger import add_label_option, add_ledger_options
from cdsessions._cli._output import (
    PROG,
    columns,
    costs_data,
    err,
    exact,
    exact_or_none,
    hint,
    money_text,
    out,
    print_json,
    span_text,
)
from cdsessions._cli._parser import Command, add_now_option, duration, gpu, machine_id, now, usd
from cdsessions._core.money import format_usd
from cdsessions._core.pricing import GpuPricing
from cdsessions._core.text import escape
from cdsessions.costs.reaper import Reaped, ReapProgress, ReapReport, Selection, reap

__all__ = ["PRICES", "REAP"]


# -- prices ----------------------------------------------------------------------------------------


def _prices(args: argparse.Namespace) -> int:
    with client_for(args) as client:
        pricing: GpuPricing = ok(client.gpu_pricing())
    if args.json:
        listed = [
            {
                "gpu": price.gpu,
                "usd_per_second": exact(price.usd_per_second),
                "usd_per_hour": exact(price.usd_per_hour),
            }
            for price in pricing.prices
        ]
        print_json({"prices": listed})
        return OK
    rows = [("GPU", "USD/S", "USD/H")]
    rows += [
        (price.gpu, exact(price.usd_per_second), format_usd(price.usd_per_hour))
        for price in pricing.prices
    ]
    out(columns(rows, right=frozenset({1, 2})))
    return OK


PRICES: Final = Command(
    "prices", "Show what each GPU costs (USD per second and per hour).", _prices
)


# -- reap ------------------------------------------------------------------------------------------


def _reap_arguments(parser: argparse.ArgumentParser) -> None:
    chosen = parser.add_argument_group("which sessions (all given must match)")
    chosen.add_argument("--machine-id", type=machine_id, help="sessions on this machine")
    chosen.add_argument(
        "--older-than", type=duration, metavar="DURATION", help="created longer ago (30m, 2h)"
    )
    chosen.add_argument(
        "--gpu", type=gpu, metavar="GPU", help="sessions on this GPU (known names in any case)"
    )
    chosen.add_argument(
        "--cost-over", type=usd, metavar="USD", help="sessions that have cost more than USD"
    )
    chosen.add_argument("--user-id", metavar="ID", help="sessions started by this user")
    chosen.add_argument(
        "--mine", action="store_true", help="sessions this machine's ledger recorded"
    )
    add_label_option(chosen, "sessions recorded in the ledger with this label")
    chosen.add_argument(
        "--owner-gone",
        action="store_true",
        help="sessions whose recorded owner process, on this host, no longer runs",
    )
    chosen.add_argument(
        "--all", action="store_true", help="every session (needed when no selector is given)"
    )
    parser.add_argument(
        "--yes", action="store_true", help="cancel them (without it: a dry run, nothing is sent)"
    )
    add_now_option(parser)
    add_ledger_options(parser, label=False)


def _selection(args: argparse.Namespace) -> Selection:
    return Selection(
        machine_id=args.machine_id,
        older_than=args.older_than,
        gpu=args.gpu,
        cost_over=args.cost_over,
        user_id=args.user_id,
        mine=args.mine,
        label=args.label,
        owner_gone=args.owner_gone,
        everything=args.all,
    )


def _reaped_data(item: Reaped) -> dict[str, Any]:
    data = costs_data(item.costs)
    data["outcome"] = item.outcome
    saves = None if item.outcome == "failed" else exact_or_none(item.costs.remaining_cost)
    data["saves_usd"] = saves
    data["error"] = None if item.error is None else str(item.error)
    return data


def _report_json(report: ReapReport) -> dict[str, Any]:
    return {
        "now": report.now.isoformat().replace("+00:00", "Z"),
        "dry_run": report.dry_run,
        "considered": report.considered,
        "selected": len(report.reaped),
        "sessions": [_reaped_data(item) for item in report.reaped],
        "saves_usd": exact(report.saves),
        "unpriced": report.unpriced,
        "failed": len(report.failed),
    }


def _saves_text(report: ReapReport) -> str:
    text = format_usd(report.saves)
    return text + (f" (+ {report.unpriced} unpriced)" if report.unpriced else "")


def _dry_run_text(report: ReapReport) -> str:
    selected = len(report.reaped)
    head = f"dry run: would cancel {selected} of {report.considered} live session(s)"
    if not selected:
        return head
    rows = [("SESSION", "GPU", "AGE", "SO FAR", "SAVES", "MACHINE")]
    for item in report.reaped:
        costs = item.costs
        rows.append(
            (
                costs.session.session_id,
                costs.session.gpu or "-",
                span_text(costs.age),
                money_text(costs.cost_so_far),
                money_text(costs.remaining_cost),
                costs.session.machine_id or "-",
            )
        )
    return (
        f"{head}:\n{columns(rows, right=frozenset({2, 3, 4}), optional=(5,))}\n"
        f"would save {_saves_text(report)} (their cost from now to their timeouts); "
        "run again with --yes to cancel them"
    )


def _done_text(report: ReapReport) -> str:
    lines = []
    for item in report.reaped:
        sid = escape(item.session_id)  # one line each, whatever the server's id holds
        if item.outcome == "failed":
            lines.append(f"failed        {sid}: {item.error}")
        elif item.outcome == "cancelled":
            lines.append(f"cancelled     {sid} (saves {money_text(item.costs.remaining_cost)})")
        else:
            lines.append(f"already gone  {sid}")
    counts = {
        outcome: sum(1 for item in report.reaped if item.outcome == outcome)
        for outcome in ("cancelled", "already gone", "failed")
    }
    summary = ", ".join(f"{outcome} {count}" for outcome, count in counts.items())
    lines.append(f"{summary} (of {report.considered} live); saved {_saves_text(report)}")
    return "\n".join(lines)


def _interrupted_text(word: str, progress: ReapProgress | None, args: argparse.Namespace) -> str:
    """What an interrupted ``reap --yes`` had done: each selected session's fate so far."""
    if progress is None:
        return f"{word} before any session was selected; none was cancelled"
    lines = [f"{word}; reap stopped after {len(progress.reaped)} of {len(progress.selected)}:"]
    lines += [f"{item.outcome:<14}{escape(item.session_id)}" for item in progress.reaped]
    for index, costs in enumerate(progress.pending):
        sid = costs.session.session_id
        if index == 0:  # its cancel may have reached the server
            check = hint(args, "get", sid)
            maybe = f"may or may not be cancelled: check with {check}"
            lines.append(f"{'in flight':<14}{escape(sid)} ({maybe})")
        else:
            lines.append(f"{'not attempted':<14}{escape(sid)}")
    return "\n".join(lines)


def _reap(args: argparse.Namespace) -> int:
    """A dry run unless ``--yes``. Exit 2 (nothing sent) without any selector and without
    ``--all``; a failed cancel is reported with the others and makes the command fail (its
    exit code), after every other cancel was tried. Interrupted (Ctrl-C, SIGTERM), it says
    which sessions it had cancelled and which it had not."""
    selection = _selection(args)
    if not selection.has_selector and not selection.everything:
        err(
            f"{PROG} reap: no selector given: use --machine-id, --older-than, --gpu, "
            "--cost-over, --user-id, --mine, --label or --owner-gone, or --all to select "
            "every session (nothing was sent)"
        )
        return USAGE
    seen: list[ReapProgress] = []
    try:
        with client_for(args) as client:
            if selection.needs_ledger and client.ledger is None:
                needs = "--mine, --label and --owner-gone need the ledger (no --no-ledger)"
                err(f"{PROG} reap: {needs}")
                return USAGE
            report: ReapReport = ok(
                reap(client, selection, now(args), dry_run=not args.yes, on_progress=seen.append)
            )
    except KeyboardInterrupt as stop:
        word, code = stopped(stop)
        if not args.yes:
            raise Fail(f"{word}; a dry run: nothing was cancelled", code) from None
        raise Fail(_interrupted_text(word, seen[-1] if seen else None, args), code) from None
    if report.prices_failed is not None:
        err(f"{PROG}: warning: savings unknown: {report.prices_failed}")
    if args.json:
        print_json(_report_json(report))
    else:
        out(_dry_run_text(report) if report.dry_run else _done_text(report))
    if report.failed:
        first = report.failed[0].error
        assert first is not None  # a failed item always holds its error
        raise Failed(first)
    return OK


REAP: Final = Command(
    "reap",
    "Cancel forgotten sessions: a dry run unless --yes.",
    _reap,
    _reap_arguments,
    "Selects live sessions by every selector given (--machine-id, --older-than, --gpu,\n"
    "--cost-over, --user-id; --mine, --label, --owner-gone from the local ledger) and\n"
    "prints what it would cancel and what that saves. --yes cancels\n"
    "them and reports each: cancelled, already gone, or failed (any failure: non-zero\n"
    "exit). Without any selector it refuses (exit 2) unless --all is given.",
    changes=True,
)
