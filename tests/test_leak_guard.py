"""The suite-wide log-leak guard (``tests/conftest.py``) itself: it must catch a key in any
shape a log line shows it, and must not take a session id ``Bearer`` in a path for a key."""

from __future__ import annotations

import logging
import types
from typing import Final

import pytest

from tests.conftest import is_leak, module_keys

pytest_plugins = ["pytester"]

KEY: Final = "sk-leak-guard-0123456789"


@pytest.mark.parametrize(
    "line",
    [
        'urllib3.connectionpool DEBUG http://127.0.0.1:1 "GET /api/session/Bearer HTTP/1.1" 200 2',
        "cdsessions INFO get session Bearer: 200 in 3 ms",
        "cdsessions DEBUG headers (('Authorization', '<redacted>'),)",
        "cdsessions DEBUG Authorization: Bearer <redacted>",
        "cdsessions INFO a key starting with sk-leak (not the whole key)",
    ],
)
def test_harmless_lines_are_not_leaks(line: str) -> None:
    assert not is_leak(line, {KEY})


@pytest.mark.parametrize(
    "line",
    [
        "cdsessions DEBUG Authorization: Bearer abc",
        "cdsessions DEBUG headers (('Authorization', 'Bearer abc'),)",
        'cdsessions DEBUG {"authorization": "Bearer abc"}',
        "cdsessions DEBUG authorization=Bearer abc",
        f"cdsessions WARNING refused with key {KEY}",
        "cdsessions INFO ready at https://x-1.modal.run",
    ],
)
def test_leaks_in_any_shape_are_caught(line: str) -> None:
    assert is_leak(line, {KEY})


def test_module_keys_are_the_long_key_constants_of_the_module() -> None:
    module = types.SimpleNamespace(
        KEY="sk-0123456789", OTHER_KEY="k", KEYS=("key-alice", "key-bob", 3), MONKEY=7, NAME="x" * 9
    )
    assert module_keys(module) == {"sk-0123456789", "key-alice", "key-bob"}


def test_a_key_logged_by_a_test_fails_that_test(pytester: pytest.Pytester) -> None:
    """End to end through the fixture: the same line fails with the key, passes with a path."""
    pytester.makeconftest("from tests.conftest import _no_secret_in_logs  # noqa: F401\n")
    pytester.makepyfile(
        test_it="""
import logging
KEY = "sk-pytester-0123456789"
def test_path_word():
    logging.getLogger("cdsessions").info("GET /api/session/Bearer HTTP/1.1")
def test_key():
    logging.getLogger("cdsessions").info("calling with %s", KEY)
"""
    )
    result = pytester.runpytest_inprocess("-p", "no:cacheprovider")
    result.assert_outcomes(passed=2, errors=1)
    result.stdout.fnmatch_lines(["*secret in log lines*sk-pytester-0123456789*"])


def test_the_guard_is_active_in_this_module(caplog: pytest.LogCaptureFixture) -> None:
    # Lines the guard sees, logged for real from this test: none is a leak, so this test passes.
    logging.getLogger("cdsessions").info("GET /api/session/Bearer HTTP/1.1")
    assert "Bearer" in caplog.text
