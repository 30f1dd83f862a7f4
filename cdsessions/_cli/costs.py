"""The cost commands of ``cdsessions``: ``prices``, ``list`` (with what each session costs) and
``reap``, plus the option types they and ``create --max-cost`` share.

:mod:`cdsessions._cli.main` registers them (``add_*_options``) and runs them. Each command returns
``Success(exit code)`` once it has printed its answer, or the ``Failure`` the CLI reports the way
it reports every failure. Everything printed goes through
:func:`~cdsessions._cli.text.safe` or :func:`~cdsessions._cli.text.json_text`: GPU names, ids and
error texts come from the server. Money is computed exactly and rounded only here, for display;
``--json`` carries exact decimal strings (``"1.3143"``) and durations in seconds.
"""

from __future__ import annotations

import argparse
import re
import sys
from collections.abc import Callable, Sequence
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Any, Final

import msgspec
from returns.result import Failure, Result, Success

from cdsessions._cli.text import PROG, json_text, safe
from cdsessions._core.money import exact_text, format_usd, total, usd_from
from cdsessions._core.pricing import GpuPricing, NoPrice
from cdsessions.client import SessionsClient
from cdsessions.costs.figures import SessionCosts, Unknown, costs_of
from cdsessions.costs.reaper import Reaped, ReapReport, Selection, reap
from cdsessions.errors import ApiError
from cdsessions.models import Session

__all__ = [
    "add_create_options",
    "add_list_options",
    "add_reap_options",
    "cmd_list",
    "cmd_prices",
    "cmd_reap",
    "duration",
    "moment",
    "usd",
]

OK: Final = 0
USAGE: Final = 2
_DURATION: Final = re.compile(r"(?:(\d+)d)?(?:(\d+)h)?(?:(\d+)m)?(?:(\d+)s)?")


# -- option types ------------------------------------------------------------------------------


def duration(text: str) -> timedelta:
    """An argparse ``type``: ``90s``, ``30m``, ``2h``, ``1h30m``, ``1d`` (units d, h, m, s)."""
    match = _DURATION.fullmatch(text.strip().lower())
    if match is None or not text.strip() or not any(match.groups()):
        raise argparse.ArgumentTypeError(
            f"{text!r} is not a duration (e.g. 90s, 30m, 2h, 1h30m, 1d)"
        )
    days, hours, minutes, seconds = (int(part or 0) for part in match.groups())
    try:
        return timedelta(days=days, hours=hours, minutes=minutes, seconds=seconds)
    except OverflowError:
        raise argparse.ArgumentTypeError(f"{text!r} is too long a duration") from None


def usd(text: str) -> Decimal:
    """An argparse ``type``: an amount of US dollars, exactly (``2.50``; a leading ``$`` is
    allowed)."""
    parsed = usd_from(text.strip().removeprefix("$"))
    if not isinstance(parsed, Success):
        raise argparse.ArgumentTypeError(f"{safe(text)!r}: {parsed.failure()}")
    amount: Decimal = parsed.unwrap()
    return amount


def moment(text: str) -> datetime:
    """An argparse ``type``: an ISO 8601 date-time, UTC when it has no offset."""
    try:
        value = datetime.fromisoformat(text.strip())
    except ValueError:
        raise argparse.ArgumentTypeError(
            f"{safe(text)!r} is not an ISO 8601 date-time (e.g. 2025-11-02T14:00:00Z)"
        ) from None
    return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)


def _add_now(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--now",
        type=moment,
        metavar="TIME",
        help="work out ages and costs as of this ISO 8601 time (UTC if no offset; default: now)",
    )


def add_list_options(parser: argparse.ArgumentParser) -> None:
    """``list``'s cost options (its ``--machine-id`` is the CLI's own)."""
    _add_now(parser)


def add_create_options(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--max-cost",
        type=usd,
        metavar="USD",
        help="refuse (nothing is started) unless the worst case, the timeout's minutes (15 if "
        "unset) at the GPU's price, is at most USD; needs --gpu",
    )


def add_reap_options(parser: argparse.ArgumentParser) -> None:
    chosen = parser.add_argument_group("which sessions (all given must match)")
    chosen.add_argument("--machine-id", help="sessions on this machine")
    chosen.add_argument(
        "--older-than", type=duration, metavar="DURATION", help="created longer ago (30m, 2h)"
    )
    chosen.add_argument("--gpu", metavar="GPU", help="sessions on this GPU (exact name)")
    chosen.add_argument(
        "--cost-over", type=usd, metavar="USD", help="sessions that have cost more than USD"
    )
    chosen.add_argument(
        "--all", action="store_true", help="every session (needed when no selector is given)"
    )
    parser.add_argument(
        "--yes", action="store_true", help="cancel them (without it: a dry run, nothing is sent)"
    )
    _add_now(parser)


# -- formatting ----------------------------------------------------------------------------------


def _out(text: str = "") -> None:
    print("\n".join(safe(line) for line in text.split("\n")), flush=True)


def _err(text: str) -> None:
    print(safe(text), file=sys.stderr, flush=True)


def _exact(amount: Decimal) -> str:
    """Exact decimal text for JSON: no exponent, no trailing zeros (``"1.3143"``)."""
    return exact_text(amount)


def _span_text(span: timedelta | Unknown) -> str:
    if isinstance(span, Unknown):
        return "?"
    seconds = int(span.total_seconds())
    days, rest = divmod(seconds, 86400)
    hours, rest = divmod(rest, 3600)
    minutes, seconds = divmod(rest, 60)
    if days:
        return f"{days}d{hours:02d}h"
    if hours:
        return f"{hours}h{minutes:02d}m"
    if minutes:
        return f"{minutes}m{seconds:02d}s"
    return f"{seconds}s"


def _money_text(amount: Decimal | Unknown) -> str:
    return "?" if isinstance(amount, Unknown) else format_usd(amount)


def _seconds(span: timedelta | Unknown) -> float | None:
    return None if isinstance(span, Unknown) else span.total_seconds()


def _money(amount: Decimal | Unknown) -> str | None:
    return None if isinstance(amount, Unknown) else _exact(amount)


def _columns(rows: Sequence[Sequence[str]], right: frozenset[int] = frozenset()) -> str:
    widths = [max(len(row[i]) for row in rows) for i in range(len(rows[0]))]
    return "\n".join(
        "  ".join(
            cell.rjust(width) if i in right else cell.ljust(width)
            for i, (cell, width) in enumerate(zip(row, widths, strict=True))
        ).rstrip()
        for row in rows
    )


def _notes(figures: Sequence[SessionCosts]) -> list[str]:
    """Why some figures are unknown, each reason once."""
    found: dict[str, None] = {}
    for costs in figures:
        for value in (costs.price, costs.age, costs.time_left, costs.cost_so_far):
            if isinstance(value, NoPrice):
                found[str(value)] = None
            elif isinstance(value, Unknown):
                found[value.reason] = None
    return list(found)


def _session_data(costs: SessionCosts) -> dict[str, Any]:
    session = costs.session
    data: dict[str, Any] = msgspec.to_builtins(session)
    data.pop("url", None)  # a secret; "ready" says whether there is one
    data["ready"] = session.url is not None
    price = costs.price
    data["usd_per_second"] = None if isinstance(price, NoPrice) else _exact(price.usd_per_second)
    data["usd_per_hour"] = _money(costs.usd_per_hour)
    data["age_seconds"] = _seconds(costs.age)
    data["time_left_seconds"] = _seconds(costs.time_left)
    data["cost_so_far_usd"] = _money(costs.cost_so_far)
    data["max_cost_usd"] = _money(costs.max_cost)
    data["remaining_cost_usd"] = _money(costs.remaining_cost)
    return data


def _sum(amounts: Sequence[Decimal | Unknown]) -> Decimal:
    return total(amount for amount in amounts if not isinstance(amount, Unknown))


def _unknowns(amounts: Sequence[Decimal | Unknown]) -> int:
    return sum(1 for amount in amounts if isinstance(amount, Unknown))


# -- prices ----------------------------------------------------------------------------------------


def cmd_prices(client: SessionsClient, args: argparse.Namespace) -> Result[int, ApiError]:
    """``cdsessions prices``: the price table."""
    fetched = client.gpu_pricing()
    if not isinstance(fetched, Success):
        return Failure(fetched.failure())
    pricing = fetched.unwrap()
    if args.json:
        listed = [
            {
                "gpu": price.gpu,
                "usd_per_second": _exact(price.usd_per_second),
                "usd_per_hour": _exact(price.usd_per_hour),
            }
            for price in pricing.prices
        ]
        print(json_text({"prices": listed}), flush=True)
        return Success(OK)
    rows = [("GPU", "USD/S", "USD/H")]
    rows += [
        (price.gpu, _exact(price.usd_per_second), format_usd(price.usd_per_hour))
        for price in pricing.prices
    ]
    _out(_columns(rows, right=frozenset({1, 2})))
    return Success(OK)


# -- list ------------------------------------------------------------------------------------------


def _now(args: argparse.Namespace) -> datetime:
    chosen: datetime | None = getattr(args, "now", None)
    return chosen if chosen is not None else datetime.now(UTC)


def _pricing_or_none(client: SessionsClient) -> GpuPricing | ApiError:
    fetched = client.gpu_pricing()
    return fetched.unwrap() if isinstance(fetched, Success) else fetched.failure()


def cmd_list(client: SessionsClient, args: argparse.Namespace) -> Result[int, ApiError]:
    """``cdsessions list``: live sessions with GPU, age, time left, USD/h and cost so far, and
    a total. If the prices cannot be had, the sessions are still listed (costs unknown) and a
    warning goes to stderr: knowing what runs matters more than what it costs."""
    listed = client.list(args.machine_id)
    if not isinstance(listed, Success):
        return Failure(listed.failure())
    sessions: list[Session] = listed.unwrap()
    pricing = _pricing_or_none(client)
    if isinstance(pricing, ApiError):
        _err(f"{PROG}: warning: costs unknown: {pricing}")
        pricing = GpuPricing()
    now = _now(args)
    figures = [costs_of(session, pricing, now) for session in sessions]
    per_hour = [costs.usd_per_hour for costs in figures]
    so_far = [costs.cost_so_far for costs in figures]
    if args.json:
        total = {
            "sessions": len(figures),
            "usd_per_hour": _exact(_sum(per_hour)),
            "cost_so_far_usd": _exact(_sum(so_far)),
            "unpriced": _unknowns(so_far),
        }
        document = {
            "now": now.isoformat().replace("+00:00", "Z"),
            "sessions": [_session_data(costs) for costs in figures],
            "total": total,
            "notes": _notes(figures),
        }
        print(json_text(document), flush=True)
        return Success(OK)
    if not figures:
        _out("no live sessions")
        return Success(OK)
    rows = [("SESSION", "GPU", "READY", "AGE", "LEFT", "USD/H", "SO FAR", "MACHINE")]
    for costs in figures:
        session = costs.session
        rows.append(
            (
                session.session_id,
                session.gpu or "-",
                "yes" if session.ready else "no",
                _span_text(costs.age),
                _span_text(costs.time_left),
                _money_text(costs.usd_per_hour),
                _money_text(costs.cost_so_far),
                session.machine_id or "-",
            )
        )
    count = f"{len(figures)} session" + ("s" if len(figures) != 1 else "")
    totals = (format_usd(_sum(per_hour)), format_usd(_sum(so_far)))
    rows.append((f"total: {count}", "", "", "", "", *totals, ""))
    _out(_columns(rows, right=frozenset({3, 4, 5, 6})))
    unpriced = _unknowns(so_far)
    if unpriced:
        _out(f"({unpriced} not in the total: " + "; ".join(_notes(figures)) + ")")
    return Success(OK)


# -- reap ------------------------------------------------------------------------------------------


def _selection(args: argparse.Namespace) -> Selection:
    return Selection(
        machine_id=args.machine_id,
        older_than=args.older_than,
        gpu=args.gpu,
        cost_over=args.cost_over,
        everything=args.all,
    )


def _reaped_data(item: Reaped) -> dict[str, Any]:
    data = _session_data(item.costs)
    data["outcome"] = item.outcome
    data["saves_usd"] = None if item.outcome == "failed" else _money(item.costs.remaining_cost)
    data["error"] = None if item.error is None else str(item.error)
    return data


def _report_json(report: ReapReport) -> dict[str, Any]:
    return {
        "now": report.now.isoformat().replace("+00:00", "Z"),
        "dry_run": report.dry_run,
        "considered": report.considered,
        "selected": len(report.reaped),
        "sessions": [_reaped_data(item) for item in report.reaped],
        "saves_usd": _exact(report.saves),
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
                _span_text(costs.age),
                _money_text(costs.cost_so_far),
                _money_text(costs.remaining_cost),
                costs.session.machine_id or "-",
            )
        )
    return (
        f"{head}:\n{_columns(rows, right=frozenset({2, 3, 4}))}\n"
        f"would save {_saves_text(report)} (their cost from now to their timeouts); "
        "run again with --yes to cancel them"
    )


def _done_text(report: ReapReport) -> str:
    lines = []
    for item in report.reaped:
        sid = item.session_id
        if item.outcome == "failed":
            lines.append(f"failed        {sid}: {item.error}")
        elif item.outcome == "cancelled":
            lines.append(f"cancelled     {sid} (saves {_money_text(item.costs.remaining_cost)})")
        else:
            lines.append(f"already gone  {sid}")
    counts = {
        outcome: sum(1 for item in report.reaped if item.outcome == outcome)
        for outcome in ("cancelled", "already gone", "failed")
    }
    summary = ", ".join(f"{outcome} {count}" for outcome, count in counts.items())
    lines.append(f"{summary} (of {report.considered} live); saved {_saves_text(report)}")
    return "\n".join(lines)


def cmd_reap(client: SessionsClient, args: argparse.Namespace) -> Result[int, ApiError]:
    """``cdsessions reap``: a dry run unless ``--yes``. Exit 2 (nothing sent) without any
    selector and without ``--all``; a failed cancel is reported with the others and makes the
    command fail (its exit code), after every other cancel was tried."""
    selection = _selection(args)
    if not selection.has_selector and not selection.everything:
        _err(
            f"{PROG} reap: no selector given: use --machine-id, --older-than, --gpu or "
            "--cost-over, or --all to select every session (nothing was sent)"
        )
        return Success(USAGE)
    reaped = reap(client, selection, _now(args), dry_run=not args.yes)
    if not isinstance(reaped, Success):
        return Failure(reaped.failure())
    report = reaped.unwrap()
    if args.json:
        print(json_text(_report_json(report)), flush=True)
    else:
        _out(_dry_run_text(report) if report.dry_run else _done_text(report))
    if report.failed:
        first = report.failed[0].error
        assert first is not None  # a failed item always holds its error
        return Failure(first)
    return Success(OK)


Command = Callable[[SessionsClient, argparse.Namespace], Result[int, ApiError]]
#: The cost commands, for :mod:`cdsessions._cli.main` to run.
COMMANDS: Final[dict[str, Command]] = {
    "prices": cmd_prices,
    "list": cmd_list,
    "reap": cmd_reap,
}
