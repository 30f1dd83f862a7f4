"""Cassettes in a user's tests: a replay waits on the test clock (no real sleeping), and a
missing cassette is named as such, both by ``CassetteTransport.load`` and under
pytest-recording."""

from __future__ import annotations

import json
import time
from pathlib import Path

import pytest

from cdsessions import SessionsClient
from cdsessions.fake import ManualClock
from cdsessions.testing import expect_success
from cdsessions.transports import CassetteTransport

pytest_plugins = ["pytester"]

SID = "1c929088-d924-50c5-b50f-42c98bc51c5d"


def _session(url: str | None) -> str:
    return json.dumps(
        {
            "id": SID,
            "session_id": SID,
            "gpu_event_id": "b75fd246-fd8b-5ad8-80d3-dd2d25b90288",
            "url": url,
            "gpu": "A10G",
            "created_at": "2025-11-02T12:00:00Z",
            "timeout": 5,
            "timeout_end": "2025-11-02T12:05:00",
            "machine_id": "fa4e0000-0000-4000-8000-000000000001",
            "status": "running",
        }
    )


def _interaction(status: int, body: str) -> str:
    return (
        "- request:\n"
        "    body: null\n"
        "    headers: {}\n"
        "    method: GET\n"
        f"    uri: http://127.0.0.1:3011/api/session/{SID}\n"
        "  response:\n"
        f"    body: {{string: {json.dumps(body)}}}\n"
        "    headers: {content-type: [application/json]}\n"
        f"    status: {{code: {status}, message: x}}\n"
    )


def test_a_replayed_retry_and_ready_wait_sleep_on_the_test_clock_only(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    text = "version: 1\ninteractions:\n" + "".join(
        [
            _interaction(503, '{"detail":"busy"}'),
            _interaction(200, _session(None)),
            _interaction(200, _session(None)),
            _interaction(200, _session("https://session-url.redacted.invalid")),
        ]
    )
    transport = CassetteTransport.from_yaml(text).unwrap()
    clock = ManualClock()

    def refuse(seconds: float) -> None:
        raise AssertionError(f"slept {seconds} s of real time")

    monkeypatch.setattr(time, "sleep", refuse)
    with SessionsClient("any-key", transport=transport, clock=clock) as client:
        ready = expect_success(client.wait_until_ready(SID))
    assert ready.url is not None
    assert transport.all_played
    assert clock.slept >= 2  # a backoff after the 503, then two poll intervals of 1 s or more


def test_loading_a_missing_cassette_is_a_missing_cassette(tmp_path: Path) -> None:
    error = CassetteTransport.load(tmp_path / "nope.yaml").failure()
    assert error.kind == "missing"
    assert str(error) == f"cassette {tmp_path / 'nope.yaml'}: file: " + (
        "No such file: not recorded yet, or a wrong path"
    )
    (tmp_path / "bad.yaml").write_text("version: 2\n")
    assert CassetteTransport.load(tmp_path / "bad.yaml").failure().kind == "invalid"


def test_under_pytest_recording_a_missing_cassette_is_no_cassette_not_a_broken_connection(
    pytester: pytest.Pytester,
) -> None:
    """Found by a newcomer: it was TransportFailed(kind="broken"), like a network fault."""
    pytester.makepyfile(
        test_mine="""
        import pytest

        from cdsessions import SessionsClient
        from cdsessions.errors import TransportFailed
        from cdsessions.testing import expect_failure

        @pytest.mark.vcr
        def test_recorded(cdsessions_fake_url):
            with SessionsClient("k", server=cdsessions_fake_url) as client:
                error = expect_failure(client.list(), TransportFailed)
            assert (error.kind, error.sent) == ("no_cassette", False), error
            assert "test_recorded.yaml does not exist" in str(error)
            assert "--record-mode=once" in str(error)

        @pytest.mark.vcr
        def test_unmatched(cdsessions_fake_url):
            with SessionsClient("k", server=cdsessions_fake_url) as client:
                error = expect_failure(client.list(), TransportFailed)
            assert (error.kind, error.sent) == ("unmatched", False), error
            assert "test_unmatched.yaml" in str(error)
        """
    )
    cassettes = pytester.path / "cassettes" / "test_mine"
    cassettes.mkdir(parents=True)
    (cassettes / "test_unmatched.yaml").write_text(
        "version: 1\ninteractions:\n" + _interaction(200, _session(None))
    )
    result = pytester.runpytest("-p", "no:cacheprovider", "--record-mode=none")
    result.assert_outcomes(passed=2)
