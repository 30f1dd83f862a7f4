"""``cdsessions completion SHELL``: the shell's completion script, generated from the very parser
the command uses (so a new command or option completes without anything written here).

The script comes from shtab, a small, maintained generator for argparse parsers, installed by
the ``completion`` extra. Without it, the command says how to install it (exit 2): nothing is
vendored, and the rest of the command line does not need it.
"""

from __future__ import annotations

import argparse
import importlib
from typing import Final

from cdsessions._cli._failures import OK, USAGE, Fail
from cdsessions._cli._output import PROG, out_verbatim
from cdsessions._cli._parser import Command, build_parser

__all__ = ["COMPLETION", "SHELLS"]

#: The shells a script is printed for.
SHELLS: Final = ("bash", "zsh", "fish")

_INSTALL: Final = "pip install shtab ('.[completion]' in a clone)"


def _arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("shell", choices=SHELLS, metavar="SHELL", help="bash, zsh or fish")


def _completion(args: argparse.Namespace) -> int:
    try:
        shtab = importlib.import_module("shtab")
    except ImportError:
        raise Fail(
            f"{PROG} completion: shell completion needs the shtab package: {_INSTALL}", USAGE
        ) from None
    from cdsessions._cli.main import COMMANDS  # here: main imports this module

    script: str = shtab.complete(build_parser(COMMANDS), shell=args.shell)
    out_verbatim(script.rstrip("\n"))  # our own text, tabs and all: escaping would break it
    return OK


COMPLETION: Final = Command(
    "completion",
    "Print the shell completion script for bash, zsh or fish.",
    _completion,
    _arguments,
    "bash:  cdsessions completion bash > ~/.local/share/bash-completion/completions/cdsessions\n"
    "zsh:   cdsessions completion zsh > ~/.zfunc/_cdsessions  (with ~/.zfunc in fpath)\n"
    "fish:  cdsessions completion fish > ~/.config/fish/completions/cdsessions.fish\n"
    f"Needs the completion extra: {_INSTALL}",
    connects=False,
)
