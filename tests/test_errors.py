"""The closed family of failure values (:mod:`cdsessions.errors`): each kind has a stable
``code``, every ``ApiError`` subclass in the package is defined and exported there, structured
reasons (``InvalidRequest.why``) are set where the problem is found, and ``str``/``repr`` stay
one bounded, safe line whatever text the fields hold."""

from __future__ import annotations

import importlib
import pkgutil
from decimal import Decimal
from typing import Final, get_args

import msgspec
import pytest
from hypothesis import example, given, settings
from hypothesis import strategies as st
from returns.result import Failure

import cdsessions
from cdsessions import errors
from cdsessions._core.servers import refuse_plain_http, resolve_server
from cdsessions.client import API_KEY_ENV, SessionsClient
from cdsessions.errors import (
    REPR_LIMIT,
    ApiError,
    DecodeFailed,
    ErrorCode,
    HttpError,
    InvalidRequest,
    NotReady,
    OverBudget,
    RunFailed,
    RunTimedOut,
    SessionGone,
    TransportFailed,
    TransportFailureKind,
    ValidationFailed,
    ValidationItem,
)
from cdsessions.fake import FakeTransport

#: Each failure class and its code: a program's contract, so a change here is a breaking one.
EXPECTED_CODES: Final[dict[type[ApiError], str]] = {
    InvalidRequest: "invalid_request",
    OverBudget: "over_budget",
    HttpError: "http",
    ValidationFailed: "validation",
    DecodeFailed: "decode",
    TransportFailed: "transport",
    SessionGone: "session_gone",
    NotReady: "not_ready",
    RunFailed: "run_failed",
    RunTimedOut: "run_timeout",
}
#: The most characters ``str()`` of any failure has: operation (200) + the longest reason.
STR_LIMIT: Final = 800


def _all_subclasses(cls: type[ApiError]) -> set[type[ApiError]]:
    found: set[type[ApiError]] = set()
    for sub in cls.__subclasses__():
        found |= {sub, *_all_subclasses(sub)}
    return found


def _package_failure_classes() -> set[type[ApiError]]:
    """Every ApiError subclass defined anywhere in cdsessions (every module imported first)."""
    for module in pkgutil.walk_packages(cdsessions.__path__, "cdsessions."):
        if module.name != "cdsessions.__main__":  # running it would start the command
            importlib.import_module(module.name)
    return {cls for cls in _all_subclasses(ApiError) if cls.__module__.startswith("cdsessions.")}


def test_every_failure_class_has_its_own_stable_code() -> None:
    classes = _package_failure_classes()
    assert {cls: cls.code for cls in classes} == EXPECTED_CODES
    assert set(EXPECTED_CODES.values()) == set(get_args(ErrorCode))  # no code without a class


def test_the_family_is_closed_every_failure_lives_in_errors() -> None:
    for cls in _package_failure_classes() | {ApiError}:
        assert cls.__module__ == "cdsessions.errors", cls
        assert cls.__name__ in errors.__all__, cls
        assert getattr(cdsessions, cls.__name__, cls) is cls  # the package face agrees


def test_the_code_is_not_a_field() -> None:
    """A ClassVar: not part of equality, repr or the encoded value."""
    error = HttpError("get session s", 404, "Session not found")
    assert "code" not in error.__struct_fields__
    assert "code" not in msgspec.to_builtins(error)
    assert "code" not in repr(error)
    assert error.code == "http"


def test_over_budget_is_still_an_invalid_request_with_its_own_code() -> None:
    over = OverBudget("create session", "max_cost", "p", budget=Decimal(1), worst_case=None)
    assert isinstance(over, InvalidRequest)
    assert (over.code, over.why, over.budget, over.worst_case) == (
        "over_budget",
        None,
        Decimal(1),
        None,
    )


# -- structured reasons, set where the problem is found ---------------------------------------


@pytest.mark.parametrize("server", ["http://192.0.2.1/api", "HTTP://api.example/api"])
def test_plain_http_elsewhere_is_refused_as_insecure_http(server: str) -> None:
    refused = refuse_plain_http(resolve_server(server).unwrap(), allowed=False)
    assert isinstance(refused, Failure)
    error = refused.failure()
    assert (error.field, error.why) == ("server", "insecure_http")
    # ...and the clients report it with the call's own operation, the reason kept.
    with SessionsClient("a-key-1234", server=server) as client:
        from_call = client.get("s1").failure()
    assert isinstance(from_call, InvalidRequest)
    assert (from_call.operation, from_call.field, from_call.why) == (
        "get session s1",
        "server",
        "insecure_http",
    )


def test_a_malformed_server_has_no_reason_beyond_its_field() -> None:
    error = resolve_server("ftp://api.example").failure()
    assert (error.field, error.why) == ("server", None)


@pytest.mark.parametrize("key", ["", "   ", None])
def test_no_key_at_all_is_empty_key(key: str | None, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv(API_KEY_ENV, raising=False)
    with SessionsClient(key, transport=FakeTransport()) as client:
        error = client.get("s1").failure()
    assert isinstance(error, InvalidRequest)
    assert (error.field, error.why) == ("bearer", "empty_key")


@pytest.mark.parametrize("key", ["key with spaces", "k\r\nX-Evil: 1", "ключ"])
def test_a_malformed_key_is_a_bearer_problem_but_not_empty(key: str) -> None:
    with SessionsClient(key, transport=FakeTransport()) as client:
        error = client.get("s1").failure()
    assert isinstance(error, InvalidRequest)
    assert (error.field, error.why) == ("bearer", None)


# -- str and repr: bounded, one line, nothing a terminal acts on ------------------------------

# Every code point, lone surrogates and controls included, and sometimes a lot of them.
TEXT: Final = st.one_of(
    st.text(st.characters(exclude_categories=()), max_size=60),
    st.text(st.characters(exclude_categories=()), min_size=300, max_size=3000),
)
STATUS: Final = st.integers(min_value=100, max_value=599)
DETAIL: Final = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | TEXT,
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(TEXT, inner, max_size=4),
    max_leaves=20,
)
ITEMS: Final = st.lists(
    st.builds(
        ValidationItem,
        st.lists(st.one_of(TEXT, st.integers()), max_size=4).map(tuple),
        TEXT,
        TEXT,
    ),
    max_size=5,
).map(tuple)
MONEY: Final = st.decimals(allow_nan=False, allow_infinity=False, places=4)
FAILURES: Final = st.one_of(
    st.builds(InvalidRequest, TEXT, TEXT, TEXT, st.sampled_from([None, "empty_key"])),
    st.builds(
        OverBudget,
        TEXT,
        TEXT,
        TEXT,
        budget=MONEY,
        worst_case=st.none() | MONEY,
    ),
    st.builds(HttpError, TEXT, STATUS, DETAIL),
    st.builds(ValidationFailed, TEXT, STATUS, DETAIL, ITEMS),
    st.builds(DecodeFailed, TEXT, STATUS, TEXT, TEXT),
    st.builds(
        TransportFailed,
        TEXT,
        st.sampled_from(get_args(TransportFailureKind)),
        TEXT,
        st.booleans(),
    ),
    st.builds(SessionGone, TEXT, TEXT),
    st.builds(
        NotReady,
        TEXT,
        TEXT,
        st.floats(min_value=0, max_value=10**7),
        st.integers(min_value=0, max_value=10**6),
    ),
)
HOSTILE: Final = "\x1b]0;pwned\x07\x1b[2J\u202eevil\r\nline\ud800"


@settings(max_examples=300, deadline=None)
@given(FAILURES)
@example(OverBudget("o", "max_cost", HOSTILE * 100_000, budget=Decimal(1), worst_case=None))
@example(InvalidRequest(HOSTILE * 100_000, HOSTILE * 100_000, HOSTILE * 100_000))
@example(HttpError("o", 401, HOSTILE * 100_000))
@example(SessionGone(HOSTILE * 100_000, HOSTILE * 100_000))
def test_str_and_repr_are_one_bounded_printable_line(error: ApiError) -> None:
    for text, limit in ((str(error), STR_LIMIT), (repr(error), REPR_LIMIT)):
        assert len(text) <= limit
        assert text.isprintable()  # no line break, escape sequence or bidi control


@settings(max_examples=100, deadline=None)
@given(FAILURES)
@example(InvalidRequest("", "", ""))
@example(HttpError("o", 500, None))
@example(OverBudget("o", "max_cost", "", budget=Decimal(0), worst_case=Decimal(0)))
@example(SessionGone("\U0001f600", "-x"))
def test_a_failure_equals_itself_rebuilt_from_its_fields(error: ApiError) -> None:
    fields = {name: getattr(error, name) for name in error.__struct_fields__}
    rebuilt = type(error)(**fields)
    assert rebuilt == error
    assert rebuilt.code == error.code


@pytest.mark.parametrize("cancelled", [False, True])
def test_not_ready_quotes_the_last_log_lines_whether_or_not_it_was_cancelled(
    cancelled: bool,
) -> None:
    error = NotReady(
        "wait for session s",
        "s",
        60.0,
        12,
        last_log=("pulling image", "out of GPUs"),
        cancelled=cancelled,
    )
    assert str(error).endswith("; last log: pulling image | out of GPUs")
