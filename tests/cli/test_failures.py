"""The command line decides from a failure's structured fields, never from the library's prose:
rewording any library message leaves every exit code and every hint the CLI gives unchanged.

Each case runs the command twice in this process, once as shipped and once with the library's
messages reworded (every ``InvalidRequest.problem`` a client produces, and every HTTP status
hint), and the two runs must end with the same exit code and the same stderr line."""

from __future__ import annotations

import argparse
from collections.abc import Iterator
from decimal import Decimal
from pathlib import Path
from typing import Final, get_args

import msgspec
import pytest
from hypothesis import example, given, settings
from hypothesis import strategies as st
from returns.result import Result

from cdsessions import errors
from cdsessions._cli import _parser
from cdsessions._cli._failures import (
    AUTH,
    INSECURE_HTTP,
    NOT_FOUND,
    NOT_READY,
    REFUSED,
    RUN_FAILED,
    RUN_TIMEOUT,
    UNREACHABLE,
    USAGE,
    describe,
    exit_code_for,
)
from cdsessions._cli.main import main
from cdsessions._core.calls import ClientCore
from cdsessions._core.wire import HttpRequest, HttpResponse
from cdsessions.client import API_KEY_ENV
from cdsessions.errors import HttpError, InvalidRequest
from cdsessions.fake import FakeService
from cdsessions.fake.server import serve_in_thread

KEY: Final = "sk-cli-failures-0123456789"
REWORDED: Final = "worded quite otherwise"


def _reword_the_library(monkeypatch: pytest.MonkeyPatch) -> None:
    """Every message the CLI used to read, reworded; every structured field kept."""
    prepare = ClientCore.prepare

    def reworded(self: ClientCore, request: HttpRequest) -> Result[HttpRequest, InvalidRequest]:
        return prepare(self, request).alt(
            lambda error: msgspec.structs.replace(error, problem=REWORDED)
        )

    monkeypatch.setattr(ClientCore, "prepare", reworded)
    hints = {status: f"{REWORDED} ({status})" for status in (401, 403, 404, 429)}
    monkeypatch.setattr(errors, "_STATUS_HINTS", hints)


def _unauthorized(body: bytes) -> FakeService:
    def refuse(request: HttpRequest) -> HttpResponse:
        return HttpResponse(401, (("content-type", "application/json"),), body)

    return FakeService(intercept=refuse)


@pytest.fixture
def refusing_key() -> Iterator[str]:
    with serve_in_thread(_unauthorized(b'{"detail":"Invalid or missing token"}')) as url:
        yield url


@pytest.fixture
def refusing_key_silently() -> Iterator[str]:
    with serve_in_thread(_unauthorized(b"")) as url:
        yield url


def _twice(
    argv: list[str], capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> tuple[tuple[int, str], tuple[int, str]]:
    """(exit code, stderr) as shipped, then with the library reworded."""
    shipped = main(argv), capsys.readouterr().err
    with monkeypatch.context() as patch:
        _reword_the_library(patch)
        reworded = main(argv), capsys.readouterr().err
    return shipped, reworded


def test_no_api_key(capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(API_KEY_ENV, "")
    shipped, reworded = _twice(["list", "--server", "http://127.0.0.1:9/api"], capsys, monkeypatch)
    assert shipped == reworded
    assert shipped == (
        USAGE,
        f"cdsessions: list sessions: no API key: set {API_KEY_ENV} or use --api-key-file PATH "
        "(nothing was sent)\n",
    )


def test_plain_http_to_another_host(
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv(API_KEY_ENV, KEY)
    # The option's own check is bypassed, so that the client's refusal is what the CLI words.
    monkeypatch.setattr(_parser, "_server", lambda text: text)
    shipped, reworded = _twice(["list", "--server", "http://192.0.2.1/api"], capsys, monkeypatch)
    assert shipped == reworded
    assert shipped == (USAGE, f"cdsessions: list sessions: {INSECURE_HTTP} (nothing was sent)\n")


def test_a_refused_key_names_where_it_came_from(
    refusing_key: str, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv(API_KEY_ENV, KEY)
    shipped, reworded = _twice(["get", "s1", "--server", refusing_key], capsys, monkeypatch)
    assert shipped == reworded
    assert shipped == (
        AUTH,
        "cdsessions: get session s1: Invalid or missing token (401); "
        f"check the API key in {API_KEY_ENV}\n",
    )


def test_a_refused_key_from_a_file_without_detail(
    refusing_key_silently: str,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    key_file = tmp_path / "key"
    key_file.write_text(KEY)
    argv = ["get", "s1", "--server", refusing_key_silently, "--api-key-file", str(key_file)]
    shipped, reworded = _twice(argv, capsys, monkeypatch)
    assert shipped == reworded
    code, line = shipped
    assert code == AUTH
    assert line.endswith(f"check the API key in the file {key_file} (401)\n")


# -- the same, value by value: whatever the problem text says -------------------------------

_ARGS: Final = argparse.Namespace(command="list", server="production", api_key_file=None)
ANY_TEXT: Final = st.text(max_size=200)


@settings(max_examples=100, deadline=None)
@given(ANY_TEXT, ANY_TEXT)
@example("", "")
@example("x" * 200, "")
@example("\U0001f600", "is empty")
@example("--help", "http://")
def test_reasons_not_words_decide_the_message(problem: str, other: str) -> None:
    for why in ("empty_key", "insecure_http"):
        field = "bearer" if why == "empty_key" else "server"
        one = InvalidRequest("list sessions", field, problem, why)
        two = InvalidRequest("list sessions", field, other, why)
        assert describe(one, _ARGS) == describe(two, _ARGS)
        assert exit_code_for(one, "list") == exit_code_for(two, "list") == USAGE


@settings(max_examples=100, deadline=None)
@given(ANY_TEXT)
@example("")
@example("x" * 200)
@example("\n\x1b[2J")
@example("\U0001f600")
def test_a_problem_without_a_reason_is_shown_never_acted_on(problem: str) -> None:
    """An empty-looking or http-looking problem with no ``why`` is just a problem."""
    error = InvalidRequest("list sessions", "bearer", f"is empty {problem} http://", None)
    shown = describe(error, _ARGS)
    assert shown.startswith(f"list sessions: the API key in {API_KEY_ENV} is empty")
    assert exit_code_for(error, "list") == USAGE


def test_a_wait_timeout_names_the_waiting_option() -> None:
    error = InvalidRequest("anything at all", "timeout", "must be finite")
    assert "invalid --ready-timeout: must be finite" in describe(error, _ARGS, waiting=True)
    assert "invalid --timeout: must be finite" in describe(error, _ARGS)


@pytest.mark.parametrize("detail", ["Invalid or missing token", None, ["x"]])
def test_a_401_is_worded_from_its_fields(detail: errors.JsonValue) -> None:
    error = HttpError("get session s", 401, detail)
    line = describe(error, _ARGS)
    assert line.startswith("get session s: ")
    assert f"check the API key in {API_KEY_ENV}" in line
    assert f"({API_KEY_ENV})" not in line
    assert exit_code_for(error, "get") == AUTH


def test_every_code_has_its_exit_code() -> None:
    """One failure of each code (as the ``get`` command meets them), and what it exits with."""
    examples: dict[errors.ErrorCode, tuple[errors.ApiError, int]] = {
        "invalid_request": (InvalidRequest("o", "session_id", "p"), USAGE),
        "over_budget": (
            errors.OverBudget("o", "max_cost", "p", budget=Decimal(1), worst_case=None),
            USAGE,
        ),
        "http": (HttpError("o", 500, None), REFUSED),
        "validation": (errors.ValidationFailed("o", 422, None, ()), REFUSED),
        "decode": (errors.DecodeFailed("o", 200, "$", "p"), REFUSED),
        "transport": (errors.TransportFailed("o", "connect", "p", sent=False), UNREACHABLE),
        "session_gone": (errors.SessionGone("o", "s"), NOT_FOUND),
        "not_ready": (errors.NotReady("o", "s", 1.0, 1), NOT_READY),
        "run_failed": (errors.RunFailed("o", "p"), RUN_FAILED),
        "run_timeout": (errors.RunTimedOut("o", "p", 1.0, True), RUN_TIMEOUT),
    }
    assert set(examples) == set(get_args(errors.ErrorCode))
    for code, (error, exit_code) in examples.items():
        assert error.code == code
        assert exit_code_for(error, "get") == exit_code, code
