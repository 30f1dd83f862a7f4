"""The layers contract (``[tool.importlinter]`` in pyproject.toml), checked by import-linter as
``nox -s lint`` checks it: it holds for the package, and it fails when a layer is crossed.

Each crossing is made in a copy of the package in a temporary folder, never in the checkout.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
_LINT = (
    "import sys\n"
    "from importlinter.cli import lint_imports_command\n"
    "sys.exit(lint_imports_command(['--no-cache', '--no-logo']))\n"
)


def _lint(where: Path) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "PYTHONPATH": str(where)}
    return subprocess.run(
        [sys.executable, "-c", _LINT],
        cwd=where,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )


def _copy(tmp_path: Path) -> Path:
    shutil.copytree(
        ROOT / "cdsessions", tmp_path / "cdsessions", ignore=shutil.ignore_patterns("__pycache__")
    )
    shutil.copy(ROOT / "pyproject.toml", tmp_path / "pyproject.toml")
    return tmp_path


def test_the_package_keeps_every_layer(tmp_path: Path) -> None:
    result = _lint(_copy(tmp_path))
    assert result.returncode == 0, result.stdout + result.stderr
    assert "4 kept, 0 broken" in result.stdout


@pytest.mark.parametrize(
    ("module", "line", "contract"),
    [
        ("_core/wire.py", "import socket", "the core is sans-I/O"),
        ("_core/steps.py", "import asyncio", "the core is sans-I/O"),
        ("_core/calls.py", "import threading", "the core is sans-I/O"),
        ("_core/retry.py", "from cdsessions.transports import base", "the core is sans-I/O"),
        ("_core/budget.py", "from cdsessions.costs import figures", "the core is sans-I/O"),
        ("_core/decoding.py", "from cdsessions import client", "the core is sans-I/O"),
        ("transports/_threaded.py", "from cdsessions.fake import service", "transports know"),
        ("transports/base.py", "from cdsessions.costs import reaper", "transports know"),
        ("fake/service.py", "from cdsessions import lifecycle", "the fake is built"),
        ("client.py", "from cdsessions._cli import main", "nothing imports the command line"),
        ("costs/figures.py", "import cdsessions._cli.main", "nothing imports the command line"),
    ],
)
def test_crossing_a_layer_fails_the_check(
    tmp_path: Path, module: str, line: str, contract: str
) -> None:
    copy = _copy(tmp_path)
    target = copy / "cdsessions" / module
    target.write_text(target.read_text() + f"\n{line}  # crossing a layer on purpose\n")
    result = _lint(copy)
    assert result.returncode != 0
    assert f"{contract}" in result.stdout
    assert "BROKEN" in result.stdout
