"""CLI promises the older tests left open (found by applying deliberate bugs), run in this
process through :func:`cdsessions._cli.main.main` against the fake served on 127.0.0.1."""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Any, Final

import pytest

from cdsessions import CreateSessionBody, SessionsClient
from cdsessions._cli._failures import NOT_FOUND, NOT_READY, REFUSED, exit_code_for
from cdsessions._cli._output import json_text
from cdsessions._cli._parser import moment, usd
from cdsessions._cli.main import main
from cdsessions._core.wire import HttpRequest, HttpResponse
from cdsessions.fake import DEFAULT_MACHINE_ID, FakeService, ManualClock
from cdsessions.fake.server import serve_in_thread
from cdsessions.lifecycle import NotReady, SessionGone

KEY: Final = "sk-promises-cli-0123456789"
T0: Final = datetime(2025, 11, 2, 12, 0, tzinfo=UTC)


class Served:
    def __init__(self, service: FakeService, url: str, clock: ManualClock) -> None:
        self.service, self.url, self.clock = service, url, clock

    def create(self, **fields: Any) -> str:
        body = CreateSessionBody(machine_id=DEFAULT_MACHINE_ID, **fields)
        with SessionsClient(KEY, server=self.url) as client:
            session_id: str = client.create(body).unwrap().session_id
        return session_id


@pytest.fixture
def refusing() -> Iterator[Served]:
    """The fake on a ManualClock whose DELETEs of the first session created fail (500)."""
    clock = ManualClock(T0)
    doomed: list[str] = []

    def intercept(request: HttpRequest) -> HttpResponse | None:
        if request.method == "DELETE" and doomed and request.path.endswith(doomed[0]):
            return HttpResponse(500, (("content-type", "text/plain"),), b"Internal Server Error")
        return None

    service = FakeService(clock=clock, intercept=intercept)
    with serve_in_thread(service) as url:
        served = Served(service, url, clock)
        doomed.append(served.create(timeout=60))
        yield served


def _run(
    served: Served, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch, *args: str
) -> tuple[int, str, str]:
    monkeypatch.setenv("COMFY_DEPLOY_API_KEY", KEY)
    code = main([*args, "--server", served.url])
    out, err = capsys.readouterr()
    return code, out, err


def test_reap_json_reports_no_savings_for_a_cancel_that_failed(
    refusing: Served, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    doomed = refusing.service.live_sessions()[0].session_id
    stopped = refusing.create(timeout=60)
    refusing.clock.advance(minutes=15)
    young = refusing.create(timeout=60)  # 5 min old at --now: not selected
    now = (T0 + timedelta(minutes=20)).isoformat()
    code, out, _ = _run(
        refusing,
        capsys,
        monkeypatch,
        "reap",
        "--older-than",
        "10m",
        "--yes",
        "--json",
        "--now",
        now,
    )
    assert code == REFUSED  # a cancel failed (500): the command fails
    document = json.loads(out)
    by_id = {item["session_id"]: item for item in document["sessions"]}
    assert by_id[doomed]["outcome"] == "failed"
    assert by_id[doomed]["saves_usd"] is None  # still running: it saves nothing
    assert by_id[doomed]["error"]
    assert by_id[stopped]["outcome"] == "cancelled"
    assert by_id[stopped]["saves_usd"] == by_id[stopped]["remaining_cost_usd"]
    assert document["saves_usd"] == by_id[stopped]["saves_usd"]
    assert document["failed"] == 1
    assert (document["considered"], document["selected"], document["dry_run"]) == (3, 2, False)
    assert young not in by_id
    assert by_id[stopped]["age_seconds"] == 1200  # as of --now, not the wall clock
    assert by_id[stopped]["ready"] is False  # never polled: no url yet
    assert [s.session_id for s in refusing.service.live_sessions()] == [doomed, young]


@pytest.fixture
def far_from_utc(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """The process's local time zone set to UTC+5:30 for the test (then put back)."""
    if not hasattr(time, "tzset"):
        pytest.skip("time.tzset is POSIX only")
    monkeypatch.setenv("TZ", "IST-5:30")
    time.tzset()
    yield
    monkeypatch.undo()
    time.tzset()


@pytest.mark.usefixtures("far_from_utc")
def test_a_now_without_an_offset_is_utc_whatever_the_local_time_zone() -> None:
    assert time.localtime(0).tm_hour == 5  # the zone took effect: a buggy parse would differ
    assert moment("2025-11-02T12:00:00") == T0
    assert moment("2025-11-02T12:00:00Z") == T0
    assert moment("2025-11-02T17:30:00+05:30") == T0


def test_list_still_lists_the_sessions_when_the_prices_cannot_be_had(
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    def no_prices(request: HttpRequest) -> HttpResponse | None:
        if request.path == "/platform/gpu-pricing":
            return HttpResponse(403, (("content-type", "application/json"),), b'{"detail":"no"}')
        return None

    clock = ManualClock(T0)
    service = FakeService(clock=clock, intercept=no_prices)
    with serve_in_thread(service) as url:
        served = Served(service, url, clock)
        sid = served.create()
        code, out, err = _run(served, capsys, monkeypatch, "list", "--json")
    assert code == 0, err  # knowing what runs matters more than what it costs
    assert "warning: costs unknown" in err
    document = json.loads(out)
    assert [item["session_id"] for item in document["sessions"]] == [sid]
    assert document["sessions"][0]["cost_so_far_usd"] is None
    assert document["total"]["unpriced"] == 1


def test_a_session_that_vanished_while_waiting_is_exit_3_and_a_late_one_exit_7() -> None:
    assert exit_code_for(SessionGone("wait for session s", "s"), "wait") == NOT_FOUND
    assert exit_code_for(NotReady("wait for session s", "s", 5.0, 3), "create") == NOT_READY


@pytest.mark.parametrize(("text", "amount"), [("2.50", "2.50"), ("$2.50", "2.50"), (" $0 ", "0")])
def test_usd_options_take_an_optional_dollar_sign(text: str, amount: str) -> None:
    assert usd(text) == Decimal(amount)


def test_json_text_escapes_astral_format_characters_and_round_trips() -> None:
    # U+E0001 (a tag character) and U+F0000 (private use) are not printable: escaped as a
    # UTF-16 surrogate pair, which must decode back to the very same character.
    value = {"gpu": "A\U000e0001B\U000f0000C\U0001f600"}
    text = json_text(value)
    assert all(ch.isprintable() for ch in text)
    assert "\U000e0001" not in text
    assert json.loads(text) == value
