"""Project tasks. ``nox`` alone runs the default gate: tests, lint and typecheck.

Every session builds its own virtual environment from PyPI, so a fresh machine needs only
Python, pip and nox.
"""

from __future__ import annotations

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
