"""The ledger on the command line: ``--ledger PATH``, ``--no-ledger`` and ``--label``, the
:class:`~cdsessions.ledger.Ledger` a command's client records its creates in (on by default
here, unlike the library: a person at a shell wants ``list --mine`` to work), and its problems
as warnings on stderr, never a failure.

A command that creates sessions (``create``; ``with`` too) calls :func:`add_ledger_options`
with ``label=True`` and builds its client with :func:`~cdsessions._cli._keyfile.client_for`,
which attaches the ledger: every create that client sends is then recorded, by any path.
"""

from __future__ import annotations

import argparse
from typing import Final

from cdsessions._cli._output import PROG, err
from cdsessions._core.text import escape
from cdsessions.ledger import LEDGER_ENV, Ledger, LedgerProblem

__all__ = ["MAX_LABEL", "add_label_option", "add_ledger_options", "label_text", "ledger_for"]

#: A label is a short name for a job ("nightly-render"), not a document.
MAX_LABEL: Final = 200


def label_text(text: str) -> str:
    """An argparse ``type``: a label, non-blank, printable, at most :data:`MAX_LABEL` long."""
    if not text.strip():
        raise argparse.ArgumentTypeError("a label must not be blank")
    if len(text) > MAX_LABEL:
        raise argparse.ArgumentTypeError(f"a label is at most {MAX_LABEL} characters")
    if escape(text) != text:
        raise argparse.ArgumentTypeError("a label must be printable (no control characters)")
    return text


def add_label_option(parser: argparse._ActionsContainer, helptext: str) -> None:
    """``--label TEXT`` (a create records it; list and reap select by it)."""
    parser.add_argument("--label", type=label_text, metavar="TEXT", help=helptext)


def add_ledger_options(parser: argparse.ArgumentParser, *, label: bool) -> None:
    """``--ledger PATH`` and ``--no-ledger``; with ``label``, ``--label`` for the creates."""
    group = parser.add_argument_group("ledger (the sessions this machine started)")
    group.add_argument(
        "--ledger",
        dest="ledger_path",
        metavar="PATH",
        help=f"the ledger file (default: ${LEDGER_ENV}, else "
        "$XDG_STATE_HOME/cdsessions/ledger.sqlite3)",
    )
    group.add_argument(
        "--no-ledger", action="store_true", help="do not record or read the local ledger"
    )
    if label:
        add_label_option(group, "record the session with this label (see list/reap --label)")


def _warn(problem: LedgerProblem) -> None:
    err(f"{PROG}: warning: {problem}")


def ledger_for(args: argparse.Namespace, secrets: tuple[str, ...] = ()) -> Ledger | None:
    """The ledger of a command that takes the ledger options, None for the others or with
    ``--no-ledger``. ``secrets`` (the key read from a file) are masked out of the stored command
    line, as is the ``COMFY_DEPLOY_API_KEY`` key."""
    if not hasattr(args, "no_ledger") or args.no_ledger:
        return None
    return Ledger(
        args.ledger_path or None,
        label=getattr(args, "label", None),
        secrets=secrets,
        on_problem=_warn,
    )
