"""The benchmark harness still works: a tiny run for cdsessions, the floor and the raw-socket
limit (no official SDK), and the tables it prints.

The full benchmark (``nox -s bench``) is slow and needs the official SDK's environment, so it is
not part of the test run; this keeps its code from rotting unnoticed.
"""

from __future__ import annotations

import itertools
import json
import logging
from pathlib import Path
from typing import Any

import pytest
import urllib3

from bench import payloads, run, server
from bench.clients import BenchCallFailed, make

pytestmark = pytest.mark.timeout(180)


def test_a_quick_run_measures_every_client_and_writes_the_table(tmp_path: Path) -> None:
    out = tmp_path / "results.json"
    assert run.main(["--quick", "--out", str(out)]) == 0
    results = json.loads(out.read_text())
    assert results["clients"] == ["cdsessions", "floor", "raw"]
    rows = {row["metric"]: row for row in results["rows"]}
    for metric in (
        "import, -X importtime",
        "get, 1 thread",
        "create, 1 thread",
        "get, 8 threads",
        "list of 200 (seed shape), time",
    ):
        row = rows[metric]
        for client in results["clients"]:
            assert row[client] > 0, (metric, client, row)
        assert row["ratio_vs_floor"] == pytest.approx(row["cdsessions"] / row["floor"])
        assert row["ratio_vs_raw"] == pytest.approx(row["cdsessions"] / row["raw"])
        assert row["ratio_vs_official"] is None  # no official SDK in this run
    assert "list of 200 (seed shape), peak memory" in rows
    in_flight = rows["get, asyncio, 10 tasks in flight"]
    assert in_flight["cdsessions"] > 0
    assert in_flight["floor"] is None  # no asyncio form: left out, not zero
    live = results["raw"]["live_list"]
    assert live["cdsessions"]["ok"]
    assert live["cdsessions"]["count"] == run.LIVE_SIZE
    assert "| get, 1 thread" in results["table"]
    assert "cd/floor" in results["table"]
    assert "cd/raw" in results["table"]
    assert run.table_of(results) == results["table"]  # the raw numbers are all kept
    # The scaling tables: every client at every scale size and thread count, with a verdict.
    lines = run.scaling(results)
    assert {(line.series, line.client) for line in lines} == {
        (series, client)
        for series in ("list time", "list peak memory", "get throughput")
        for client in results["clients"]
    }
    for line in lines:
        assert all(value is not None for _, value in line.points), line
        assert line.verdict != "—", line
    assert [n for n, _ in lines[-1].points] == list(run.QUICK.thread_counts)
    assert results["scaling"] == run.render_scaling(lines)


def test_a_quick_run_never_replaces_the_committed_results() -> None:
    assert run.QUICK_OUT != run.DEFAULT_OUT
    ignored = (run.ROOT / ".gitignore").read_text().splitlines()
    assert run.QUICK_OUT.relative_to(run.ROOT).as_posix() in ignored


def test_show_prints_the_readme_table_with_date_cores_load_and_ratios(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    results = _results_with_official()
    saved = tmp_path / "saved.json"
    saved.write_text(json.dumps(results))
    assert run.main(["--show", str(saved), "--markdown"]) == 0
    text = " ".join(capsys.readouterr().out.split())  # prose is wrapped at 100 columns
    assert "Run of 2026-11-30 18:00 UTC" in text
    assert "**2 CPU cores**" in text
    assert "load average 0.5 at the start, 1.5 at the end" in text
    header = (
        "| metric | unit | cdsessions | official | floor | raw | cd/official | cd/floor | cd/raw |"
    )
    assert header in text
    assert "| get, 1 thread | µs/call | 200 | 2,000 | 250 | 50.0 | 0.10 ok (≤0.25) |" in text
    assert "not run above 1,000 sessions" in text  # the official SDK's cap says why
    assert "linear (per-item cost x1.00 from first to last step)" in text


def _results_with_official() -> dict[str, Any]:
    """A saved results document, made by hand: figures chosen so every verdict is known."""
    clients = ["cdsessions", "official", "floor", "raw"]
    factor = {"cdsessions": 1.0, "official": 10.0, "floor": 1.25, "raw": 0.25}
    settings = run.Settings(
        sizes=(10, 1000),
        scale_sizes=(100, 1000, 4000),
        official_max_size=1000,
        thread_counts=(1, 2),
        threads=2,
    )
    calls = {
        c: {
            "get_us": [200.0 * factor[c]],
            "create_us": [300.0 * factor[c]],
            "get_threads_per_s": [4000.0 / factor[c]],
            "create_threads_per_s": [3000.0 / factor[c]],
            "get_sweep_per_s": {"1": [5000.0 / factor[c]], "2": [4000.0 / factor[c]]},
        }
        for c in clients
    }
    lists = {
        c: {
            str(n): {"ms": [0.5 + n * 0.004 * factor[c]], "peak_mb": [n * 0.0007 * factor[c]]}
            for n in (10, 100, 1000, 4000)
            if c != "official" or n <= 1000
        }
        for c in clients
    }
    imports = {c: {"importtime_ms": [10.0 * factor[c]]} for c in clients}
    return {
        "meta": {
            "started": "2026-11-30T18:00:00+00:00",
            "seconds": 300.0,
            "cpus": 2,
            "load_average_before": [0.5, 0.4, 0.3],
            "load_average_after": [1.5, 1.0, 0.5],
            "versions": {
                "cdsessions": {"python": "3.11.7", "urllib3": "2.8.0", "msgspec": "0.22.0"},
                "official": {"comfydeploy": "0.6.3", "httpx": "0.28.1", "pydantic": "2.10.6"},
            },
            "settings": settings.as_json(),
        },
        "clients": clients,
        "raw": {
            "imports": imports,
            "calls": calls,
            "in_flight": {"cdsessions": [3000.0], "official": [400.0]},
            "lists": lists,
            "live_list": {c: {"ok": True, "seconds": 0.004, "count": 1000} for c in clients},
        },
    }


def test_scaling_verdicts_follow_the_per_item_cost() -> None:
    lines = {(line.series, line.client): line for line in run.scaling(_results_with_official())}
    time = lines[("list time", "cdsessions")]
    assert time.verdict.startswith("linear")
    assert time.steps == pytest.approx((4.0, 4.0))  # µs per added session
    capped = lines[("list time", "official")]
    assert capped.points[-1] == (4000, None)  # not run above its cap
    sizes = (1000, 10_000, 100_000, 400_000)
    assert run._list_verdict(sizes, (2.0, 2.1, 1.9)).startswith("linear (per-item cost x0.95")
    quadratic = [2.0 * (a + b) / 2 for a, b in itertools.pairwise(sizes)]  # cost ∝ n²
    assert run._list_verdict(sizes, quadratic).startswith("faster than linear, ~n^2.00")
    assert run._list_verdict(sizes, (4.0, 2.0, 1.0)).startswith("slower than linear")
    assert run._list_verdict(sizes, (-1.0, 2.0, 2.0)) == "not measurable (noise)"
    speedups, verdict = run._thread_verdict([(1, 100.0), (2, 190.0), (4, 390.0)], cores=4)
    assert verdict == "linear"
    assert speedups == pytest.approx((1.0, 1.9, 3.9))
    assert run._thread_verdict([(1, 100.0), (32, 50.0)], cores=2)[1].startswith("drops")
    assert run._thread_verdict([(1, 100.0), (8, 110.0)], cores=2)[1].startswith("flat")


def test_the_server_serves_the_canned_lists_and_404s_the_rest() -> None:
    routes = server.build_routes([("seed", 3), ("live", 2)])
    with server.serve(routes) as base_url:
        assert base_url.startswith("http://127.0.0.1:")
        pool = urllib3.PoolManager(retries=False)
        seed = pool.request("GET", f"{base_url}/sessions?machine_id=seed-3")
        assert seed.status == 200
        assert [item["gpu_provider"] for item in json.loads(seed.data)] == ["modal"] * 3
        live = pool.request("GET", f"{base_url}/sessions?machine_id=live-2")
        assert len(json.loads(live.data)) == 2
        assert pool.request("GET", f"{base_url}/sessions?machine_id=seed-4").status == 404
        created = pool.request("POST", f"{base_url}/session", body=b'{"machine_id": "m"}')
        assert json.loads(created.data)["session_id"] == payloads.SESSION_ID
        pool.clear()


@pytest.mark.parametrize("client", ["cdsessions", "floor", "raw"])
def test_adapters_check_what_they_got(client: str) -> None:
    """A client that silently failed must not look fast: an unserved list raises."""
    with server.serve(server.build_routes([("seed", 5)])) as base_url:
        adapter = make(client, base_url)
        try:
            assert adapter.list(payloads.list_label("seed", 5)) == 5
            adapter.get()
            adapter.create()
            with pytest.raises(BenchCallFailed):
                adapter.list(payloads.list_label("seed", 6))
        finally:
            adapter.close()


@pytest.mark.parametrize("client", ["cdsessions", "floor", "raw"])
def test_calls_are_measured_over_one_kept_alive_connection(client: str) -> None:
    routes = server.build_routes([("seed", 10)])
    with server.serve(routes) as base_url:
        adapter = make(client, base_url)
        try:
            for _ in range(20):
                adapter.get()
                adapter.create()
        finally:
            adapter.close()
    assert routes.connections == 1


def test_importtime_sums_only_the_named_top_level_imports() -> None:
    stderr = "\n".join(
        [
            "import time: self [us] | cumulative | imported package",
            "import time:       100 |        100 |   json.decoder",
            "import time:       200 |        300 | json",
            "import time:        50 |       1000 |     urllib3.util",
            "import time:       400 |       4000 | urllib3",
            "import time:        10 |         10 | site",
        ]
    )
    assert run._importtime_us(stderr, ("json", "urllib3")) == 4300


def test_ratios_and_verdicts_follow_the_direction_of_the_metric() -> None:
    faster = run.Row("t", "ms", {"cdsessions": 2.0, "floor": 4.0}, targets=(("floor", 0.7),))
    assert faster.ratio("floor") == 0.5
    assert faster.verdicts() == {"floor": True}
    throughput = run.Row(
        "r", "calls/s", {"cdsessions": 300.0, "official": 100.0}, True, (("official", 4.0),)
    )
    assert throughput.verdicts() == {"official": False}
    assert "MISS" in run.render_table([throughput], ["cdsessions", "official"])


def test_per_call_work_is_counted_and_stays_near_the_floor(
    caplog: pytest.LogCaptureFixture,
) -> None:
    """Function calls per get are deterministic where timings are not: a guard against work
    added to every call (the floor makes the same request with urllib3 and json alone). The
    loggers are as users have them, not at the DEBUG this suite's leak guard sets."""
    from bench import profile

    with (
        caplog.at_level(logging.WARNING, logger="cdsessions"),
        caplog.at_level(logging.WARNING, logger="urllib3"),
        server.serve(server.build_routes([("seed", 10)])) as base_url,
    ):
        mine = profile.profile("cdsessions", "get", base_url, calls=20)
        floor = profile.profile("floor", "get", base_url, calls=20)
    assert floor.own == {}
    assert mine.own["client.py:get"] == 1
    assert sum(mine.own.values()) == pytest.approx(mine.by_place["cdsessions"])
    assert mine.per_call <= 1.25 * floor.per_call, (mine.per_call, floor.per_call)


def test_following_logs_keeps_memory_flat_in_a_quick_run(tmp_path: Path) -> None:
    from bench import logs

    out = tmp_path / "logs.json"
    assert logs.main(["--quick", "--out", str(out)]) == 0  # 0: the peak did not grow
    small, large = json.loads(out.read_text())["follow_logs"]
    assert (small["lines"], large["lines"]) == (1_000, 10_000)


def test_the_download_bench_brings_every_byte_home(tmp_path: Path) -> None:
    from bench import downloads

    out = tmp_path / "downloads.json"
    downloads.main(["--quick", "--out", str(out)])  # the gate is for the full size, not this
    results = json.loads(out.read_text())
    for kind in ("urllib3", "cdsessions"):
        assert results[kind]["bytes"] == results["size"] == 64 * 1024 * 1024
        assert results[kind]["rss_growth"] < 50e6
