"""How a command ends when it does not succeed: the exit codes, and each failure value in a shell
user's words.

Decisions are made from the failure's structured fields only (its class, ``status``, ``field``,
``why``), never from the library's wording, so rewording a library message cannot change an exit
code or a hint. The one text read is the live server's 404 ``detail`` for an unknown machine,
which is the API's own contract (see :func:`machine_missing`).
"""

from __future__ import annotations

import argparse
import shlex
from typing import Any, Final, assert_never

from returns.result import Result, Success

from cdsessions._cli._output import DEFAULT_SERVER
from cdsessions._core.servers import resolve_server
from cdsessions.client import API_KEY_ENV
from cdsessions.errors import (
    ApiError,
    HttpError,
    InvalidRequest,
    OverBudget,
)

__all__ = [
    "AUTH",
    "EXIT_CODES",
    "INSECURE_HTTP",
    "INTERNAL",
    "INTERRUPTED",
    "NOT_FOUND",
    "NOT_READY",
    "NO_MACHINE",
    "NO_OUTPUT",
    "OK",
    "REFUSED",
    "RUN_FAILED",
    "RUN_TIMEOUT",
    "STRANDED",
    "TERMINATED",
    "UNREACHABLE",
    "USAGE",
    "Fail",
    "Failed",
    "Terminated",
    "describe",
    "exit_code_for",
    "key_source",
    "machine_missing",
    "ok",
    "stopped",
]

OK: Final = 0
INTERNAL: Final = 1
USAGE: Final = 2
NOT_FOUND: Final = 3
AUTH: Final = 4
REFUSED: Final = 5
UNREACHABLE: Final = 6
NOT_READY: Final = 7
NO_MACHINE: Final = 8
NO_OUTPUT: Final = 9
STRANDED: Final = 10
RUN_FAILED: Final = 11
RUN_TIMEOUT: Final = 12
INTERRUPTED: Final = 130
TERMINATED: Final = 143  # 128 + SIGTERM, as shells report a process SIGTERM ended

#: Exit codes, as documented in ``cdsessions --help``.
EXIT_CODES: Final = {
    OK: "success",
    INTERNAL: "unexpected internal error (please report it)",
    USAGE: "bad arguments or input, or no usable API key (nothing was sent)",
    NOT_FOUND: "no such session: unknown, ended, or another account's (404)",
    AUTH: "the API key was refused (401) or lacks permission (403)",
    REFUSED: "the server refused or failed the request (other 4xx, 5xx) or answered unexpectedly",
    UNREACHABLE: "could not reach the server (connection, timeout), or could not listen",
    NOT_READY: "the session did not become ready in time (it may still be running)",
    NO_MACHINE: "create: no such machine, or another account's (404)",
    NO_OUTPUT: "could not write the output (stdout closed, disk full); see stderr",
    STRANDED: "create: the session started (billing), then a local failure; see stderr",
    RUN_FAILED: "run: ComfyUI refused the workflow (node errors) or failed running it",
    RUN_TIMEOUT: "run: the workflow was not done in time (ComfyUI was interrupted)",
    INTERRUPTED: "interrupted (Ctrl-C)",
    TERMINATED: "terminated (SIGTERM), handled like Ctrl-C",
}

#: Commands whose routes never answer 404: one means the base URL is wrong.
_NEVER_404: Final = frozenset({"list", "prices"})

#: Why plain http is refused, in the command line's terms (no Python option overrides it here).
INSECURE_HTTP: Final = (
    "plain http:// would carry the API key unencrypted, so it is allowed only to this machine "
    "(localhost, 127.0.0.0/8, ::1); use an https:// URL (no option overrides this)"
)

#: The CLI spelling of the library's ``InvalidRequest.field`` names.
_OPTION_FOR_FIELD: Final = {
    "session_id": "SESSION_ID",
    "machine_id": "--machine-id",
    "gpu": "--gpu",
    "minutes": "MINUTES",
    "server": "--server",
    "ready_timeout": "--ready-timeout",
}


class Fail(Exception):
    """Ends the command with one stderr line (``str()``) and an exit code."""

    def __init__(self, message: str, code: int) -> None:
        super().__init__(message)
        self.code = code


class Failed(Exception):
    """Ends the command with a failure value; :func:`describe` words it for the user.
    ``waiting``: it came from waiting for a session to be ready (``--ready-timeout`` applies)."""

    def __init__(self, error: ApiError, *, waiting: bool = False) -> None:
        super().__init__(type(error).__name__)
        self.error = error
        self.waiting = waiting


class Terminated(KeyboardInterrupt):
    """SIGTERM, raised in the main thread like Ctrl-C's ``KeyboardInterrupt`` so that both stop
    the command the same way (a subclass: code that handles Ctrl-C handles this too)."""


def stopped(stop: KeyboardInterrupt) -> tuple[str, int]:
    """What a Ctrl-C or SIGTERM is called, and its exit code."""
    if isinstance(stop, Terminated):
        return "terminated", TERMINATED
    return "interrupted", INTERRUPTED


def ok(result: Result[Any, ApiError]) -> Any:
    """The success value, or end the command with the failure."""
    if not isinstance(result, Success):
        raise Failed(result.failure())
    return result.unwrap()


def machine_missing(error: HttpError) -> bool:
    """The live create's 404 for an unknown machine (``{"detail": "Machine not found"}``), as
    opposed to the bare 404 of a wrong base URL."""
    return isinstance(error.detail, str) and "machine" in error.detail.lower()


def exit_code_for(error: ApiError, command: str = "") -> int:
    """The exit code for a failure value of ``command`` (pure), from its ``code`` and, for an
    HTTP answer, its ``status``. Every code is decided here: a new one fails the type check.

    A 404 means "no such session" for the session commands; on ``create`` it means no such
    machine; ``list`` and ``prices`` never answer 404 (a wrong base URL does): a refusal.
    """
    code = error.code
    match code:
        case "not_ready":
            return NOT_READY
        case "session_gone":
            return NOT_FOUND
        case "invalid_request" | "over_budget":
            return USAGE
        case "transport":
            return UNREACHABLE
        case "http" | "validation":
            assert isinstance(error, HttpError)  # what the code says
            return _http_exit_code(error, command)
        case "decode":
            return REFUSED
        case "run_failed":
            return RUN_FAILED
        case "run_timeout":
            return RUN_TIMEOUT
        case _:
            assert_never(code)


def _http_exit_code(error: HttpError, command: str) -> int:
    if error.status == 404:
        if command == "create":
            return NO_MACHINE if machine_missing(error) else REFUSED
        return REFUSED if command in _NEVER_404 else NOT_FOUND
    if error.status in (401, 403):
        return AUTH
    return REFUSED


def key_source(args: argparse.Namespace) -> str:
    """Where this command took the API key from, for a message."""
    path = getattr(args, "api_key_file", None)
    return API_KEY_ENV if path is None else f"the file {shlex.quote(path)}"


def _base_url(args: argparse.Namespace) -> str:
    server: str = getattr(args, "server", DEFAULT_SERVER)
    resolved = resolve_server(server)
    return resolved.unwrap() if isinstance(resolved, Success) else server


def _invalid_text(error: InvalidRequest, args: argparse.Namespace, waiting: bool) -> str:
    """The CLI's words for a refused input. The library's ``problem`` is shown only where it
    names a plain input mistake; where it advises a Python caller (``why`` set) the CLI says
    it its own way."""
    if error.why == "empty_key":
        why = f"no API key: set {API_KEY_ENV} or use --api-key-file PATH"
        return f"{error.operation}: {why} (nothing was sent)"
    if error.why == "insecure_http":
        return f"{error.operation}: {INSECURE_HTTP} (nothing was sent)"
    if error.field == "bearer":
        why = f"the API key in {key_source(args)} {error.problem}"
        return f"{error.operation}: {why} (nothing was sent)"
    if error.field == "timeout":
        option = "--ready-timeout" if waiting else "--timeout"
    else:
        option = _OPTION_FOR_FIELD.get(error.field, "--" + error.field.replace("_", "-"))
    return f"{error.operation}: invalid {option}: {error.problem} (nothing was sent)"


def _unauthorized_text(error: HttpError, args: argparse.Namespace) -> str:
    """A 401 with the key's actual source named (the library's hint names only the variable)."""
    hint = f"check the API key in {key_source(args)}"
    detail = error.detail_text()
    if detail is None:
        return f"{error.operation}: {hint} ({error.status})"
    return f"{error.operation}: {detail} ({error.status}); {hint}"


def describe(error: ApiError, args: argparse.Namespace, *, waiting: bool = False) -> str:
    """One line saying what failed, with advice in the command line's terms (CLI options and
    environment variables, never Python arguments). ``waiting``: see :class:`Failed`. Not yet
    escaped for the terminal."""
    if isinstance(error, OverBudget):  # the price table may have been fetched: say what was not
        return f"{error.operation}: --max-cost: {error.reason()}"
    if isinstance(error, InvalidRequest):
        return _invalid_text(error, args, waiting)
    if isinstance(error, HttpError) and error.status == 404:
        command = getattr(args, "command", "")
        if command == "create" and machine_missing(error):
            return (
                f"{error.operation}: machine not found (404): "
                "the account has no machine with this id (check --machine-id)"
            )
        if command == "create" or command in _NEVER_404:
            return (
                f"{error.operation}: {error.reason()}, which this route never answers: "
                f"the base URL {_base_url(args)} is probably wrong "
                "(ComfyDeploy's ends in /api; see --server)"
            )
    if isinstance(error, HttpError) and error.status == 401:
        return _unauthorized_text(error, args)
    return str(error)
