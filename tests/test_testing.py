"""``cdsessions.testing``: ``expect_success`` / ``expect_failure`` fail a test with the
failure's own text, under pytest and without it."""

from __future__ import annotations

import subprocess
import sys

import pytest
from returns.result import Failure, Result, Success

from cdsessions import HttpError, NotReady, SessionGone
from cdsessions.errors import ApiError
from cdsessions.testing import expect_failure, expect_success

pytest_plugins = ["pytester"]

GONE = SessionGone("wait for session s1", "s1")
NOT_FOUND = HttpError("get session s1", 404, "GPUEvent not found")


def test_expect_success_gives_the_value() -> None:
    result: Result[int, ApiError] = Success(3)
    assert expect_success(result) == 3


def test_expect_success_fails_the_test_with_the_failures_text() -> None:
    with pytest.raises(pytest.fail.Exception) as failed:
        expect_success(Failure(NOT_FOUND))
    assert str(failed.value) == f"expected a success, got HttpError: {NOT_FOUND}"


def test_expect_failure_gives_the_error_of_the_type_asked_for_and_its_subclasses() -> None:
    assert expect_failure(Failure(GONE), SessionGone) is GONE
    assert expect_failure(Failure(GONE), ApiError) is GONE


def test_expect_failure_fails_on_another_failure_or_a_success_saying_what_came() -> None:
    with pytest.raises(pytest.fail.Exception) as other:
        expect_failure(Failure(GONE), NotReady)
    assert str(other.value) == f"expected a NotReady failure, got SessionGone: {GONE}"
    with pytest.raises(pytest.fail.Exception) as success:
        expect_failure(Success([1, 2]), NotReady)
    assert str(success.value) == "expected a NotReady failure, got a success: [1, 2]"


def test_both_helpers_fail_on_something_that_is_not_a_result_naming_its_type() -> None:
    # A forgotten ``.unwrap()`` or a call that returned its value bare, not a Result.
    for helper in (expect_success, lambda value: expect_failure(value, NotReady)):
        with pytest.raises(pytest.fail.Exception) as bare:
            helper(GONE)  # type: ignore[arg-type]
        assert str(bare.value) == "expected a Result, got SessionGone"


def test_a_huge_or_multiline_value_is_shown_bounded_on_one_line() -> None:
    with pytest.raises(pytest.fail.Exception) as failed:
        expect_failure(Success("x\n" * 10_000), NotReady)
    message = str(failed.value)
    assert "\n" not in message
    assert len(message) < 700


def test_without_pytest_loaded_it_is_an_assertion_error_with_the_same_text() -> None:
    code = (
        "import sys\n"
        "from returns.result import Failure\n"
        "from cdsessions import SessionGone\n"
        "from cdsessions.testing import expect_success\n"
        "try:\n"
        "    expect_success(Failure(SessionGone('wait for session s1', 's1')))\n"
        "except AssertionError as error:\n"
        "    print(type(error).__name__, error, 'pytest' in sys.modules)\n"
    )
    done = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, timeout=60, check=True
    )
    assert (
        done.stdout.strip() == f"AssertionError expected a success, got SessionGone: {GONE} False"
    )


def test_a_failing_test_reports_the_failure_without_a_traceback_into_the_helper(
    pytester: pytest.Pytester,
) -> None:
    pytester.makepyfile(
        """
        from cdsessions.testing import expect_success

        def test_get(cdsessions_client):
            expect_success(cdsessions_client.get("no-such-session"))
        """
    )
    result = pytester.runpytest("-p", "no:cacheprovider")
    result.assert_outcomes(failed=1)
    result.stdout.fnmatch_lines(
        ["*expected a success, got HttpError: get session no-such-session*"]
    )
    assert "testing.py" not in result.stdout.str()
