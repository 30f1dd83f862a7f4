"""The machine commands: ``machine ID`` (one machine, its default GPU included) and
``machines [--search S]``. Never the machine's ``auth_token``: the client's
:class:`~cdsessions.models.Machine` has no field for it."""

from __future__ import annotations

import argparse
from typing import Any, Final

import msgspec

from cdsessions._cli._failures import OK, ok
from cdsessions._cli._keyfile import client_for
from cdsessions._cli._output import columns, fields, out, print_json
from cdsessions._cli._parser import Command, machine_id
from cdsessions.models import Machine

__all__ = ["MACHINE", "MACHINES"]


def machine_json(machine: Machine) -> dict[str, Any]:
    data: dict[str, Any] = msgspec.to_builtins(machine)
    return data


def machine_text(machine: Machine) -> str:
    rows = [
        ("machine", machine.id),
        ("name", machine.name or "-"),
        ("gpu", machine.gpu or "-"),
        ("status", machine.status or "-"),
        ("type", machine.type or "-"),
        ("builder", machine.machine_builder_version or "-"),
        ("version", machine.machine_version_id or "-"),
    ]
    return fields(rows)


def _machine_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("machine_id", metavar="MACHINE_ID", type=machine_id, help="a UUID")


def _machine(args: argparse.Namespace) -> int:
    with client_for(args) as client:
        machine: Machine = ok(client.machine(args.machine_id))
    if args.json:
        print_json(machine_json(machine))
    else:
        out(machine_text(machine))
    return OK


MACHINE: Final = Command(
    "machine",
    "Show one machine (its default GPU, status and versions).",
    _machine,
    _machine_arguments,
    "Its auth_token, a secret the server sends along, is never kept or shown.",
)


def _machines_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--search", metavar="TEXT", help="only machines whose name contains it")


def _machines(args: argparse.Namespace) -> int:
    with client_for(args) as client:
        machines: list[Machine] = ok(client.machines(args.search))
    if args.json:  # one document, like list's
        print_json({"machines": [machine_json(machine) for machine in machines]})
        return OK
    if not machines:
        out("no machines")
        return OK
    rows = [("MACHINE", "NAME", "GPU", "STATUS")]
    rows += [(m.id, m.name or "-", m.gpu or "-", m.status or "-") for m in machines]
    out(columns(rows))
    return OK


MACHINES: Final = Command(
    "machines",
    "List the account's machines.",
    _machines,
    _machines_arguments,
)
