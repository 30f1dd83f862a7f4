"""The benchmark harness still works: a tiny run for cdsessions and the floor (no official SDK).

The full benchmark (``nox -s bench``) is slow and needs the official SDK's environment, so it is
not part of the test run; this keeps its code from rotting unnoticed.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import urllib3

from bench import payloads, run, server
from bench.clients import BenchCallFailed, make

pytestmark = pytest.mark.timeout(180)


def test_a_quick_run_measures_both_clients_and_writes_the_table(tmp_path: Path) -> None:
    out = tmp_path / "results.json"
    assert run.main(["--quick", "--out", str(out)]) == 0
    results = json.loads(out.read_text())
    assert results["clients"] == ["cdsessions", "floor"]
    rows = {row["metric"]: row for row in results["rows"]}
    for metric in (
        "import, -X importtime",
        "get, 1 thread",
        "create, 1 thread",
        "get, 8 threads",
        "list of 200 (seed shape), time",
    ):
        row = rows[metric]
        assert row["cdsessions"] > 0, row
        assert row["floor"] > 0, row
        assert row["ratio_vs_floor"] == pytest.approx(row["cdsessions"] / row["floor"])
        assert row["ratio_vs_official"] is None  # no official SDK in this run
    assert "list of 200 (seed shape), peak memory" in rows
    live = results["raw"]["live_list"]
    assert live["cdsessions"]["ok"]
    assert live["cdsessions"]["count"] == run.LIVE_SIZE
    assert "| get, 1 thread" in results["table"]
    assert "cd/floor" in results["table"]
    assert run.table_of(results) == results["table"]  # the raw numbers are all kept


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


@pytest.mark.parametrize("client", ["cdsessions", "floor"])
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


@pytest.mark.parametrize("client", ["cdsessions", "floor"])
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
