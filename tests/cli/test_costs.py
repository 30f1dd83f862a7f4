"""``cdsessions prices``, ``list``, ``reap`` and ``create --max-cost``, run as a user runs them:
subprocesses, against the fake served over HTTP from this process on a :class:`ManualClock`
(``--now`` fixes the CLI's side of the clock), with ``--json`` parsed and checked. A few run
:func:`cdsessions._cli.main.main` in this process instead, and the option parsers on their own."""

from __future__ import annotations

import json
import re
import shlex
import subprocess
import time
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from pathlib import Path
from typing import Any, Final

import pytest

from cdsessions import CreateSessionBody, SessionsClient
from cdsessions._cli._failures import REFUSED
from cdsessions._cli._parser import moment, usd
from cdsessions._cli.main import main
from cdsessions._core.wire import HttpRequest, HttpResponse
from cdsessions.fake import DEFAULT_GPU_PRICES, DEFAULT_MACHINE_ID, FakeService, ManualClock
from cdsessions.fake.server import serve_in_thread
from tests.support.cli import run_cli
from tests.support.scenes import KEY, NOW, OTHER_KEY, Scene, scene

NOW_ARG: Final = ("--now", NOW.isoformat())
CREATE: Final = ("POST", "/session")


def cdsessions(*args: str, server: str, key: str = KEY) -> subprocess.CompletedProcess[str]:
    return run_cli(*args, "--server", server, key=key)


def _json(result: subprocess.CompletedProcess[str]) -> Any:
    assert result.returncode == 0, result.stderr
    assert result.stderr == ""
    lines = result.stdout.splitlines()
    assert len(lines) == 1, "--json prints one line"
    return json.loads(lines[0])


def _money(value: object) -> Decimal:
    """A money field: a string holding an exact decimal (no float, no exponent)."""
    assert isinstance(value, str), value
    assert "e" not in value.lower(), value
    return Decimal(value)


def _one_line_failure(result: subprocess.CompletedProcess[str], code: int) -> str:
    assert result.returncode == code, (result.returncode, result.stdout, result.stderr)
    lines = result.stderr.splitlines()
    assert len(lines) == 1, result.stderr
    assert "Traceback" not in result.stderr
    assert KEY not in result.stderr + result.stdout
    return lines[0]


# -- prices ------------------------------------------------------------------------------------


def test_prices_as_text_and_json(cdsessions_fake_url: str) -> None:
    text = cdsessions("prices", server=cdsessions_fake_url)
    data = _json(cdsessions("prices", "--json", server=cdsessions_fake_url))
    assert text.returncode == 0, text.stderr
    assert text.stdout.splitlines()[0].split() == ["GPU", "USD/S", "USD/H"]
    assert "A10G       0.000337  $1.21" in text.stdout
    assert "H100       0.002338  $8.42" in text.stdout
    listed = {item["gpu"]: item for item in data["prices"]}
    assert set(listed) == set(DEFAULT_GPU_PRICES)
    for gpu, price in DEFAULT_GPU_PRICES.items():
        assert _money(listed[gpu]["usd_per_second"]) == Decimal(price)
        assert _money(listed[gpu]["usd_per_hour"]) == Decimal(price) * 3600
    assert listed["A10G"]["usd_per_second"] == "0.000337"  # the server's digits, exactly


# -- list --------------------------------------------------------------------------------------


def test_list_shows_gpu_age_time_left_rate_cost_and_a_total() -> None:
    with scene() as s:
        text = cdsessions("list", *NOW_ARG, server=s.base_url)
        data = _json(cdsessions("list", "--json", *NOW_ARG, server=s.base_url))
    assert text.returncode == 0, text.stderr
    lines = text.stdout.splitlines()
    assert lines[0].split() == [
        "SESSION", "GPU", "READY", "AGE", "LEFT", "USD/H", "SO", "FAR", "MACHINE"
    ]  # fmt: skip
    old = next(line for line in lines if line.startswith(s.ids["old"]))
    # 40 min old, 20 min left, A10G at $1.2132/h, 2400 s x 0.000337 = $0.8088 so far.
    assert old.split()[1:7] == ["A10G", "no", "40m00s", "20m00s", "$1.21", "$0.81"]
    total = lines[-1].split()
    # Five sessions: three A10G, one H100, one T4 per hour; their costs so far.
    per_hour = 3 * Decimal("1.2132") + Decimal("8.4168") + Decimal("0.648")
    so_far = (40 + 39 + 5) * 60 * Decimal("0.000337") + 2400 * (
        Decimal("0.002338") + Decimal("0.00018")
    )
    assert total == ["total:", "5", "sessions", f"${per_hour:.2f}", f"${so_far:.2f}"]
    # The same figures for a program: exact strings for money, seconds for durations.
    assert data["now"] == "2025-11-02T12:40:00Z"
    assert len(data["sessions"]) == 5
    assert s.ids["theirs"] not in {item["session_id"] for item in data["sessions"]}
    for item in data["sessions"]:
        assert isinstance(item["age_seconds"], float | int)
        assert isinstance(item["time_left_seconds"], float | int)
        assert item["usd_per_second"] == DEFAULT_GPU_PRICES[item["gpu"]]
        rate = _money(item["usd_per_second"])
        assert _money(item["usd_per_hour"]) == rate * 3600
        assert _money(item["cost_so_far_usd"]) == rate * Decimal(item["age_seconds"])
        assert _money(item["max_cost_usd"]) == rate * 3600  # 60-minute sessions
        assert "url" not in item
    by_id = {item["session_id"]: item for item in data["sessions"]}
    assert by_id[s.ids["old"]]["age_seconds"] == 2400
    assert by_id[s.ids["old"]]["cost_so_far_usd"] == "0.8088"
    assert _money(data["total"]["usd_per_hour"]) == per_hour
    assert _money(data["total"]["cost_so_far_usd"]) == so_far
    assert data["total"]["sessions"] == 5
    assert data["total"]["unpriced"] == 0


def test_list_with_a_gpu_missing_from_the_table_says_so() -> None:
    prices = {gpu: price for gpu, price in DEFAULT_GPU_PRICES.items() if gpu != "A10G"}
    fake = FakeService(prices=prices)
    with serve_in_thread(fake) as base_url:
        assert cdsessions(
            "create", "--machine-id", DEFAULT_MACHINE_ID, server=base_url
        ).returncode == 0  # fmt: skip
        text = cdsessions("list", server=base_url)
        data = _json(cdsessions("list", "--json", server=base_url))
    assert text.returncode == 0, text.stderr
    assert "no price for A10G: not in the price table" in text.stdout
    (item,) = data["sessions"]
    assert item["cost_so_far_usd"] is None
    assert item["usd_per_hour"] is None
    assert data["total"]["unpriced"] == 1
    assert data["notes"] == ["no price for A10G: not in the price table"]


# -- reap --------------------------------------------------------------------------------------


def _deletes(s: Scene) -> list[str]:
    return s.deletes()


def test_reap_without_any_selector_refuses_and_sends_nothing() -> None:
    with scene() as s:
        seen = len(s.fake.requests_seen)
        line = _one_line_failure(cdsessions("reap", "--yes", server=s.base_url), 2)
        assert "--all" in line
        assert len(s.fake.requests_seen) == seen


@pytest.mark.parametrize("bad", ["30", "30x", "h", "-5m", ""])
def test_reap_refuses_a_malformed_duration(bad: str) -> None:
    with scene() as s:
        result = cdsessions("reap", "--older-than", bad, server=s.base_url)
        assert result.returncode == 2
        assert "Traceback" not in result.stderr
        assert _deletes(s) == []


TYPICAL_ARGS: Final = ("--machine-id", DEFAULT_MACHINE_ID, "--older-than", "30m", "--gpu", "A10G")


def test_reap_is_a_dry_run_by_default() -> None:
    with scene() as s:
        text = cdsessions("reap", *TYPICAL_ARGS, *NOW_ARG, server=s.base_url)
        data = _json(cdsessions("reap", *TYPICAL_ARGS, *NOW_ARG, "--json", server=s.base_url))
        assert _deletes(s) == []
        assert len(s.live()) == 5
    assert text.returncode == 0, text.stderr
    assert "dry run: would cancel 2 of 4 live session(s)" in text.stdout
    assert s.ids["old"] in text.stdout
    assert s.ids["old-too"] in text.stdout
    assert s.ids["young"] not in text.stdout
    assert "would save $0.83" in text.stdout  # 41 min of A10G left between them
    assert data["dry_run"] is True
    assert (data["considered"], data["selected"], data["failed"]) == (4, 2, 0)
    assert {item["session_id"]: item["outcome"] for item in data["sessions"]} == {
        s.ids["old"]: "would cancel",
        s.ids["old-too"]: "would cancel",
    }
    assert _money(data["saves_usd"]) == 41 * 60 * Decimal("0.000337")
    for item in data["sessions"]:
        assert _money(item["saves_usd"]) == _money(item["remaining_cost_usd"])
        assert item["error"] is None


def test_reap_yes_cancels_exactly_the_selected_ones() -> None:
    with scene() as s:
        result = cdsessions("reap", *TYPICAL_ARGS, *NOW_ARG, "--yes", server=s.base_url)
        assert result.returncode == 0, result.stderr
        assert sorted(_deletes(s)) == sorted(f"/session/{s.ids[n]}" for n in ("old", "old-too"))
        assert s.live() == {s.ids[n] for n in ("young", "elsewhere", "t4")}
        assert s.live(OTHER_KEY) == {s.ids["theirs"]}
    assert f"cancelled     {s.ids['old']}" in result.stdout
    assert "cancelled 2, already gone 0, failed 0 (of 4 live); saved $0.83" in result.stdout


def test_reap_yes_reports_a_failed_cancel_goes_on_and_exits_non_zero() -> None:
    with scene() as s:
        s.failing[s.ids["old-too"]] = HttpResponse(
            503, (("content-type", "application/json"),), b'{"detail":"try later"}'
        )
        result = cdsessions("reap", "--older-than", "30m", *NOW_ARG, "--yes", server=s.base_url)
        assert s.live() == {s.ids["young"], s.ids["old-too"]}
        assert s.live(OTHER_KEY) == {s.ids["theirs"]}
    line = _one_line_failure(result, 5)
    assert "try later (503)" in line
    assert f"failed        {s.ids['old-too']}: " in result.stdout
    for name in ("old", "elsewhere", "t4"):
        assert f"cancelled     {s.ids[name]}" in result.stdout
    assert "cancelled 3, already gone 0, failed 1" in result.stdout


def test_reap_json_with_yes_reports_each_outcome() -> None:
    with scene() as s:
        gone = b'{"detail":"GPUEvent not found session_id: x, the event might be already closed"}'
        s.failing[s.ids["t4"]] = HttpResponse(404, (("content-type", "application/json"),), gone)
        result = cdsessions("reap", "--gpu", "T4", "--json", "--yes", *NOW_ARG, server=s.base_url)
    data = _json(result)
    assert data["dry_run"] is False
    (item,) = data["sessions"]
    assert (item["session_id"], item["outcome"]) == (s.ids["t4"], "already gone")
    assert _money(data["saves_usd"]) == 20 * 60 * Decimal("0.00018")


# -- create --max-cost -------------------------------------------------------------------------


def test_create_over_budget_sends_no_create(
    cdsessions_fake: FakeService, cdsessions_fake_url: str
) -> None:
    args = ("create", "--machine-id", DEFAULT_MACHINE_ID)
    over = cdsessions(
        *args, "--gpu", "H100", "--timeout", "60", "--max-cost", "8.41", server=cdsessions_fake_url
    )
    # No --gpu: priced at the machine's default (A10G), 15 min = $0.3033.
    no_gpu = cdsessions(*args, "--max-cost", "0.30", server=cdsessions_fake_url)
    assert CREATE not in cdsessions_fake.requests_seen
    within = cdsessions(*args, "--gpu", "A10G", "--max-cost", "$0.31", server=cdsessions_fake_url)
    assert cdsessions_fake.requests_seen.count(CREATE) == 1
    bad = cdsessions(*args, "--gpu", "A10G", "--max-cost", "lots", server=cdsessions_fake_url)
    line = _one_line_failure(over, 2)
    assert "8.4168" in line
    assert "8.41 USD" in line
    assert "(not sent)" in line
    assert "(A10G)" in _one_line_failure(no_gpu, 2)
    assert within.returncode == 0, within.stderr  # 15 min of A10G: $0.3033
    assert bad.returncode == 2
    assert len(cdsessions_fake.live_sessions()) == 1


# -- the transcript in docs/costs.md ---------------------------------------------------------

COSTS_DOC: Final = Path(__file__).resolve().parents[2] / "docs" / "costs.md"


def _readme_transcript(first: str) -> list[tuple[str, str]]:
    """The docs/costs.md console block that starts with ``$ <first>``: (command, shown output)
    pairs."""
    text = COSTS_DOC.read_text(encoding="utf-8")
    blocks = re.findall(r"```console\n(.*?)```", text, re.DOTALL)
    (block,) = [b for b in blocks if b.startswith(f"$ {first}")]
    pairs: list[tuple[str, list[str]]] = []
    for line in block.splitlines():
        if line.startswith("$ "):
            pairs.append((line[2:], []))
        else:
            pairs[-1][1].append(line)
    return [(command, "\n".join(lines)) for command, lines in pairs]


def test_the_readme_costs_transcript_is_real_output() -> None:
    transcript = _readme_transcript("cdsessions prices --server local")
    assert [command.split()[1] for command, _ in transcript] == ["prices", "list", "reap"]
    with scene() as s:
        for command, shown in transcript:
            argv = shlex.split(command)
            assert argv[0] == "cdsessions"
            assert argv[2:4] == ["--server", "local"]  # answered by the scene's fake instead
            done = cdsessions(*argv[1:2], *argv[4:], server=s.base_url)
            assert done.returncode == 0, done.stderr
            assert done.stdout.rstrip("\n") == shown, f"$ {command}"
        assert _deletes(s) == []


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


@pytest.fixture
def india_standard_time(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """The process's local time zone set to UTC+5:30 for the test (then put back)."""
    if not hasattr(time, "tzset"):
        pytest.skip("time.tzset is POSIX only")
    monkeypatch.setenv("TZ", "IST-5:30")
    time.tzset()
    yield
    monkeypatch.undo()
    time.tzset()


def test_reap_json_reports_no_savings_for_a_cancel_that_failed(
    refusing: Served, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    """Found by applying a deliberate bug the older tests let through."""
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


@pytest.mark.usefixtures("india_standard_time")
def test_a_now_without_an_offset_is_utc_whatever_the_local_time_zone() -> None:
    """Found by applying a deliberate bug the older tests let through."""
    assert time.localtime(0).tm_hour == 5  # the zone took effect: a buggy parse would differ
    assert moment("2025-11-02T12:00:00") == T0
    assert moment("2025-11-02T12:00:00Z") == T0
    assert moment("2025-11-02T17:30:00+05:30") == T0


def test_list_still_lists_the_sessions_when_the_prices_cannot_be_had(
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    """Found by applying a deliberate bug the older tests let through."""

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


@pytest.mark.parametrize(("text", "amount"), [("2.50", "2.50"), ("$2.50", "2.50"), (" $0 ", "0")])
def test_usd_options_take_an_optional_dollar_sign(text: str, amount: str) -> None:
    """Found by applying a deliberate bug the older tests let through."""
    assert usd(text) == Decimal(amount)
