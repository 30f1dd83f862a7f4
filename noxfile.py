"""Project tasks. ``nox`` alone runs the default gate: tests, lint and typecheck.

Every session builds its own virtual environment from PyPI, so a fresh machine needs only
Python, pip and nox.
"""

from __future__ import annotations

import os
import sys
from pathlib import Path

import nox

nox.options.default_venv_backend = "uv|virtualenv"
nox.options.sessions = ["tests", "lint", "typecheck"]


@nox.session
def tests(session: nox.Session) -> None:
    """The whole test suite, contract tests included (pass pytest options after ``--``)."""
    session.install("-e", ".[test]")
    session.run("pytest", *session.posargs)


@nox.session
def lint(session: nox.Session) -> None:
    """ruff: lint rules and import order."""
    session.install(".[lint]")
    session.run("ruff", "check", ".")
    session.run("ruff", "format", "--check", ".")


@nox.session
def typecheck(session: nox.Session) -> None:
    """mypy --strict with the returns plugin, over the package, the tests and this file."""
    session.install("-e", ".[test,typecheck]", "nox")
    session.run("mypy")


@nox.session
def bench(session: nox.Session) -> None:
    """The benchmark against the official SDK and a bare-urllib3 floor (slow; not in the default
    run). The official SDK ``comfydeploy==0.6.3`` gets a virtual environment of its own, beside
    this one. ``nox -s bench -- --quick`` is a smoke run; results go to bench/results/latest.json.
    """
    session.install(".")
    official = Path(session.create_tmp()) / "official-sdk"
    python = official / ("Scripts/python.exe" if sys.platform == "win32" else "bin/python")
    if not python.exists():
        session.run("python", "-m", "venv", str(official))
    session.run(str(python), "-m", "pip", "install", "--quiet", "comfydeploy==0.6.3", external=True)
    session.run("python", "-m", "bench.run", "--official-python", str(python), *session.posargs)


@nox.session
def contracts(session: nox.Session) -> None:
    """The contract tests alone: Hypothesis against contracts/*.json (also part of ``tests``)."""
    session.install("-e", ".[test]")
    session.run("pytest", "-m", "contract", *session.posargs)


@nox.session
def cassettes(session: nox.Session) -> None:
    """Re-record cassettes/ against the fake server on 127.0.0.1, then replay and check them.

    With COMFY_DEPLOY_API_KEY and COMFY_DEPLOY_MACHINE_ID both set it records against the
    production API instead: that starts (and cancels) real, billed sessions.
    """
    session.install("-e", ".[test]")
    record = ["pytest", "tests/test_cassettes.py", "-k", "test_replay", "--record-mode=rewrite"]
    loopback_only = ["--block-network", "--allowed-hosts=127.0.0.1,localhost"]
    if os.environ.get("COMFY_DEPLOY_API_KEY") and os.environ.get("COMFY_DEPLOY_MACHINE_ID"):
        session.log("recording against production: real sessions are started and cancelled")
        session.run(*record, env={"CDSESSIONS_RECORD_REAL": "1"})
    else:
        session.run(*record, *loopback_only, env={"CDSESSIONS_RECORD_REAL": "0"})
    # Replay every cassette both ways and check none holds a key or a session url (the real key,
    # when given, is checked too).
    check = ["tests/test_cassettes.py", "tests/test_cassette_transport.py"]
    session.run("pytest", *check, *loopback_only, *session.posargs)
