"""The benchmark runner: ``python -m bench.run [--official-python PATH] [--quick]``.

It serves canned answers on 127.0.0.1, measures each client in its own worker processes
(cdsessions and the floor with this interpreter, the official SDK with ``--official-python``),
interleaving the clients round by round so a noisy neighbour hurts them alike, then prints a table
of medians and ratios and writes it as JSON. ``nox -s bench`` builds both environments and runs it.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import subprocess
import sys
import time
from collections.abc import Iterable, Iterator, Sequence
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Final

from bench import payloads, server

__all__ = ["Settings", "Worker", "main", "measure", "render_table"]

ROOT: Final = Path(__file__).resolve().parent.parent
DEFAULT_OUT: Final = ROOT / "bench" / "results" / "latest.json"
#: What "importing the package" means for each: the client class, as users import it.
IMPORTS: Final = {
    "cdsessions": ("from cdsessions import SessionsClient", ("cdsessions",)),
    "official": ("from comfydeploy import ComfyDeploy", ("comfydeploy",)),
    "floor": ("import json, urllib3", ("json", "urllib3")),
}
LIVE_SIZE: Final = 1000


class BenchError(RuntimeError):
    """A worker failed or answered something unexpected: the run cannot be trusted."""


@dataclass(frozen=True)
class Settings:
    sizes: tuple[int, ...] = (10, 1000, 100_000)
    rounds: int = 7  # repeated, interleaved measurements; every figure is their median
    calls: int = 1000  # sequential calls per per-call round
    thread_calls: int = 1600  # calls per 8-thread round, all threads together
    threads: int = 8
    import_runs: int = 15
    list_processes: int = 3  # fresh processes per list size (peak memory needs a fresh one)
    list_repeats: dict[int, int] = field(default_factory=dict)  # size -> timed repeats

    def repeats_for(self, size: int) -> int:
        if size in self.list_repeats:
            return self.list_repeats[size]
        return 3 if size >= 50_000 else 10 if size >= 1000 else 50


QUICK: Final = Settings(
    sizes=(10, 200),
    rounds=2,
    calls=20,
    thread_calls=16,
    threads=8,
    import_runs=2,
    list_processes=1,
    list_repeats={10: 2, 200: 2},
)


# -- worker processes ----------------------------------------------------------------------


class Worker:
    """One ``bench.worker`` process measuring one client, driven one JSON line at a time."""

    def __init__(self, client: str, python: str, base_url: str) -> None:
        self.client = client
        env = {
            **os.environ,
            "PYTHONPATH": os.pathsep.join([str(ROOT), os.environ.get("PYTHONPATH", "")]),
        }
        # Our own interpreter paths, from the command line: nothing untrusted is executed.
        self._process = subprocess.Popen(  # noqa: S603
            [python, "-m", "bench.worker"],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            text=True,
            cwd=ROOT,
            env=env,
        )
        self.versions: dict[str, str] = self._exchange({"client": client, "base_url": base_url})[
            "versions"
        ]

    def _exchange(self, message: dict[str, Any]) -> dict[str, Any]:
        assert self._process.stdin is not None
        assert self._process.stdout is not None
        self._process.stdin.write(json.dumps(message) + "\n")
        self._process.stdin.flush()
        line = self._process.stdout.readline()
        if not line:
            raise BenchError(f"the {self.client} worker exited (status {self._process.wait()})")
        answer: dict[str, Any] = json.loads(line)
        if "error" in answer:
            raise BenchError(f"{self.client}: {answer['error']}")
        return answer

    def ask(self, op: str, **arguments: Any) -> dict[str, Any]:
        return self._exchange({"op": op, **arguments})

    def close(self) -> None:
        if self._process.stdin is not None:
            self._process.stdin.close()
        try:
            self._process.wait(timeout=30)
        except subprocess.TimeoutExpired:
            self._process.kill()
            self._process.wait()
        if self._process.stdout is not None:
            self._process.stdout.close()


@contextmanager
def workers(pythons: dict[str, str], base_url: str) -> Iterator[dict[str, Worker]]:
    with ExitStack() as stack:
        started: dict[str, Worker] = {}
        for client, python in pythons.items():
            worker = Worker(client, python, base_url)
            stack.callback(worker.close)
            started[client] = worker
        yield started


def _rotations(clients: Sequence[str], rounds: int) -> Iterator[list[str]]:
    """Each round starts with the next client, so none is always first after a pause."""
    for r in range(rounds):
        shift = r % len(clients)
        yield [*clients[shift:], *clients[:shift]]


# -- measurements --------------------------------------------------------------------------


def _clean_env() -> dict[str, str]:
    return {k: v for k, v in os.environ.items() if not k.startswith("PYTHON")}


def _python(python: str, *arguments: str) -> subprocess.CompletedProcess[str]:
    """Run one of the benchmark's own interpreters (paths from the command line), isolated."""
    return subprocess.run(  # noqa: S603
        [python, "-I", *arguments], check=True, capture_output=True, text=True, env=_clean_env()
    )


def _importtime_us(stderr: str, names: Iterable[str]) -> int:
    """Sum of the cumulative microseconds of the top-level imports ``names``."""
    wanted = set(names)
    total = 0
    for line in stderr.splitlines():
        if not line.startswith("import time:") or "|" not in line:
            continue
        _, cumulative, name = line.split("|", 2)
        if name.startswith(" ") and not name.startswith("  ") and name.strip() in wanted:
            total += int(cumulative.strip())
    return total


def measure_imports(pythons: dict[str, str], runs: int) -> dict[str, Any]:
    """``-X importtime`` of the package, and the wall time of a whole ``python -c import``,
    in fresh isolated (``-I``) interpreters, interleaved; first runs warm the bytecode caches."""
    raw: dict[str, dict[str, list[float]]] = {
        c: {"importtime_ms": [], "process_ms": [], "bare_process_ms": []} for c in pythons
    }
    for client, python in pythons.items():  # warm-up: compile .pyc files, fill the OS cache
        _python(python, "-c", IMPORTS[client][0])
    for order in _rotations(list(pythons), runs):
        for client in order:
            python = pythons[client]
            statement, names = IMPORTS[client]
            done = _python(python, "-X", "importtime", "-c", statement)
            raw[client]["importtime_ms"].append(_importtime_us(done.stderr, names) / 1000)
            for key, code in (("process_ms", statement), ("bare_process_ms", "pass")):
                started = time.perf_counter()
                _python(python, "-c", code)
                raw[client][key].append((time.perf_counter() - started) * 1000)
    return raw


def measure_calls(pool: dict[str, Worker], settings: Settings) -> dict[str, dict[str, list[float]]]:
    """Per-call microseconds on one thread, and calls per second with ``threads`` threads."""
    raw: dict[str, dict[str, list[float]]] = {c: {} for c in pool}
    warm = max(1, settings.calls // 5)
    for worker in pool.values():
        for call in ("get", "create"):
            worker.ask("percall", call=call, n=warm)
    for order in _rotations(list(pool), settings.rounds):
        for client in order:
            for call in ("get", "create"):
                done = pool[client].ask("percall", call=call, n=settings.calls)
                raw[client].setdefault(f"{call}_us", []).append(
                    done["seconds"] / done["calls"] * 1e6
                )
    per_thread = max(1, settings.thread_calls // settings.threads)
    for order in _rotations(list(pool), settings.rounds):
        for client in order:
            for call in ("get", "create"):
                done = pool[client].ask(
                    "threads", call=call, threads=settings.threads, per_thread=per_thread
                )
                raw[client].setdefault(f"{call}_threads_per_s", []).append(
                    done["calls"] / done["seconds"]
                )
    return raw


def measure_lists(
    pythons: dict[str, str], base_url: str, settings: Settings
) -> dict[str, dict[str, dict[str, list[float]]]]:
    """Time and peak memory of ``list`` per size; memory from each fresh process's first call."""
    raw: dict[str, dict[str, dict[str, list[float]]]] = {c: {} for c in pythons}
    for size in settings.sizes:
        label = payloads.list_label("seed", size)
        for order in _rotations(list(pythons), settings.list_processes):
            for client in order:
                worker = Worker(client, pythons[client], base_url)
                try:
                    worker.ask("list_outcome", label=payloads.list_label("seed", 10))  # warm
                    memory = worker.ask("list_memory", label=label)
                    timed = worker.ask("list_time", label=label, repeats=settings.repeats_for(size))
                finally:
                    worker.close()
                if memory["count"] != size or timed["count"] != size:
                    raise BenchError(f"{client} decoded {memory['count']} of {size} sessions")
                row = raw[client].setdefault(str(size), {"ms": [], "first_ms": [], "peak_mb": []})
                row["ms"].extend(s * 1000 for s in timed["seconds"])
                row["first_ms"].append(memory["seconds"] * 1000)
                row["peak_mb"].append(memory["peak_bytes"] / 1e6)
    return raw


def measure_live_list(pool: dict[str, Worker]) -> dict[str, dict[str, Any]]:
    """Whether each client reads the list in the shape the live server sends today."""
    return {
        client: worker.ask("list_outcome", label=payloads.list_label("live", LIVE_SIZE))
        for client, worker in pool.items()
    }


# -- the table -----------------------------------------------------------------------------


@dataclass(frozen=True)
class Row:
    metric: str
    unit: str
    values: dict[str, float | None]
    higher_is_better: bool = False
    #: Targets for cdsessions: (versus, bound) — a ratio cdsessions/versus to stay within.
    targets: tuple[tuple[str, float], ...] = ()
    note: str = ""

    def ratio(self, versus: str) -> float | None:
        mine, theirs = self.values.get("cdsessions"), self.values.get(versus)
        if mine is None or theirs is None or theirs == 0:
            return None
        return mine / theirs

    def verdicts(self) -> dict[str, bool | None]:
        out: dict[str, bool | None] = {}
        for versus, bound in self.targets:
            ratio = self.ratio(versus)
            if ratio is None:
                out[versus] = None
            else:
                out[versus] = ratio >= bound if self.higher_is_better else ratio <= bound
        return out

    def as_json(self) -> dict[str, Any]:
        return {
            "metric": self.metric,
            "unit": self.unit,
            "higher_is_better": self.higher_is_better,
            **self.values,
            "ratio_vs_official": self.ratio("official"),
            "ratio_vs_floor": self.ratio("floor"),
            "targets": [
                {"versus": versus, "ratio": bound, "met": self.verdicts()[versus]}
                for versus, bound in self.targets
            ],
            "note": self.note,
        }


def _median(values: Sequence[float] | None) -> float | None:
    return statistics.median(values) if values else None


def build_rows(
    imports: dict[str, Any],
    calls: dict[str, dict[str, list[float]]],
    lists: dict[str, dict[str, dict[str, list[float]]]],
    live: dict[str, dict[str, Any]],
    settings: Settings,
) -> list[Row]:
    clients = list(calls)

    def pick(source: dict[str, Any], *path: str) -> dict[str, float | None]:
        picked: dict[str, float | None] = {}
        for client in clients:
            node: Any = source.get(client, {})
            for key in path:
                node = node.get(key) if isinstance(node, dict) else None
            picked[client] = _median(node)
        return picked

    per_call = (("official", 0.25), ("floor", 1.0))
    throughput = (("official", 4.0), ("floor", 1.0))
    rows = [
        Row(
            "import, -X importtime",
            "ms",
            pick(imports, "importtime_ms"),
            targets=(("official", 0.15),),
        ),
        Row(
            "import, whole process",
            "ms",
            pick(imports, "process_ms"),
            note="python -I -c '<import>'",
        ),
        Row("empty interpreter", "ms", pick(imports, "bare_process_ms"), note="python -I -c pass"),
        Row("get, 1 thread", "µs/call", pick(calls, "get_us"), targets=per_call),
        Row("create, 1 thread", "µs/call", pick(calls, "create_us"), targets=per_call),
        Row(
            f"get, {settings.threads} threads",
            "calls/s",
            pick(calls, "get_threads_per_s"),
            True,
            throughput,
        ),
        Row(
            f"create, {settings.threads} threads",
            "calls/s",
            pick(calls, "create_threads_per_s"),
            True,
            throughput,
        ),
    ]
    biggest = max(settings.sizes)
    for size in settings.sizes:
        big = size == biggest and size >= 50_000
        rows.append(
            Row(
                f"list of {size:,} (seed shape), time",
                "ms",
                pick(lists, str(size), "ms"),
                targets=(("official", 0.35), ("floor", 0.7)) if big else (),
            )
        )
        rows.append(
            Row(
                f"list of {size:,} (seed shape), peak memory",
                "MB",
                pick(lists, str(size), "peak_mb"),
                targets=(("official", 0.35), ("floor", 0.8)) if big else (),
                note="rise of peak RSS over the call, fresh process (pages: below ~1 MB, noise)",
            )
        )
    live_values = {
        c: (outcome["seconds"] * 1000 if outcome.get("ok") else None) for c, outcome in live.items()
    }
    failures = "; ".join(
        f"{c}: {outcome['failure']}" for c, outcome in live.items() if not outcome.get("ok")
    )
    rows.append(
        Row(
            f"list of {LIVE_SIZE:,} (live SessionResponse shape), time",
            "ms",
            live_values,
            note=f"FAILS — {failures}" if failures else "all clients decoded it",
        )
    )
    return rows


def _cell(value: float | None) -> str:
    if value is None:
        return "—"
    if value >= 100:
        return f"{value:,.0f}"
    return f"{value:.3g}" if value < 10 else f"{value:.1f}"


def _ratio_cell(row: Row, versus: str) -> str:
    ratio = row.ratio(versus)
    if ratio is None:
        return "—"
    bound = dict(row.targets).get(versus)
    if bound is None:
        return f"{ratio:.2f}"
    verdict = row.verdicts()[versus]
    sign = "≥" if row.higher_is_better else "≤"
    shown = f"{ratio:.3f}" if abs(ratio - bound) < 0.005 else f"{ratio:.2f}"  # 0.353 vs 0.35
    return f"{shown} {'ok' if verdict else 'MISS'} ({sign}{bound:g})"


def render_table(rows: Sequence[Row], clients: Sequence[str]) -> str:
    header = ["metric", "unit", *clients, "cd/official", "cd/floor"]
    lines = [
        [
            row.metric,
            row.unit,
            *(_cell(row.values.get(c)) for c in clients),
            _ratio_cell(row, "official"),
            _ratio_cell(row, "floor"),
        ]
        for row in rows
    ]
    widths = [max(len(str(x)) for x in column) for column in zip(header, *lines, strict=True)]

    def fmt(cells: Sequence[str]) -> str:
        return "| " + " | ".join(c.ljust(w) for c, w in zip(cells, widths, strict=True)) + " |"

    out = [fmt(header), "|" + "|".join("-" * (w + 2) for w in widths) + "|"]
    out.extend(fmt(line) for line in lines)
    notes = [f"- {row.metric}: {row.note}" for row in rows if row.note]
    return "\n".join(out + (["", *notes] if notes else []))


# -- the whole run -------------------------------------------------------------------------


def measure(pythons: dict[str, str], settings: Settings, *, log: Any = print) -> dict[str, Any]:
    """Run every measurement for the clients in ``pythons`` and return the results document."""
    load_before = os.getloadavg()
    started = datetime.now(UTC)
    shapes = [("seed", size) for size in sorted({10, *settings.sizes})] + [("live", LIVE_SIZE)]
    routes = server.build_routes(shapes)
    with server.serve(routes) as base_url:
        log(f"server on {base_url}; clients {', '.join(pythons)}")
        log("import time …")
        imports = measure_imports(pythons, settings.import_runs)
        with workers(pythons, base_url) as pool:
            versions = {client: worker.versions for client, worker in pool.items()}
            log("per-call and threads …")
            calls = measure_calls(pool, settings)
            # One connection per client for the single-thread rounds, up to one per thread after.
            call_connections = routes.connections
            live = measure_live_list(pool)
        log("lists …")
        lists = measure_lists(pythons, base_url, settings)
    rows = build_rows(imports, calls, lists, live, settings)
    return {
        "meta": {
            "started": started.isoformat(timespec="seconds"),
            "seconds": round((datetime.now(UTC) - started).total_seconds(), 1),
            "platform": platform.platform(),
            "cpus": os.cpu_count(),
            "load_average_before": load_before,
            "load_average_after": os.getloadavg(),
            "versions": versions,
            "settings": {
                "sizes": settings.sizes,
                "rounds": settings.rounds,
                "calls": settings.calls,
                "thread_calls": settings.thread_calls,
                "threads": settings.threads,
                "import_runs": settings.import_runs,
                "list_processes": settings.list_processes,
            },
            "server_connections_during_calls": call_connections,
            "memory_method": "peak RSS (VmHWM after clear_refs) rise over the first list call "
            "of a fresh process",
            "statistic": "median",
        },
        "clients": list(pythons),
        "rows": [row.as_json() for row in rows],
        "table": render_table(rows, list(pythons)),
        "raw": {"imports": imports, "calls": calls, "lists": lists, "live_list": live},
    }


def table_of(results: dict[str, Any]) -> str:
    """The table of a results document, rendered again from its raw measurements."""
    saved = results["meta"]["settings"]
    settings = Settings(sizes=tuple(saved["sizes"]), threads=saved["threads"])
    raw = results["raw"]
    rows = build_rows(raw["imports"], raw["calls"], raw["lists"], raw["live_list"], settings)
    return render_table(rows, results["clients"])


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.run", description=__doc__)
    parser.add_argument("--python", default=sys.executable, help="interpreter with cdsessions")
    parser.add_argument("--official-python", help="interpreter with comfydeploy==0.6.3")
    parser.add_argument("--quick", action="store_true", help="tiny sizes: a smoke run")
    parser.add_argument("--out", type=Path, default=DEFAULT_OUT)
    parser.add_argument("--show", type=Path, help="print the table of a results file and stop")
    options = parser.parse_args(argv)
    if options.show:
        print(table_of(json.loads(options.show.read_text())))
        return 0
    pythons = {"cdsessions": options.python}
    if options.official_python:
        pythons["official"] = options.official_python
    pythons["floor"] = options.python
    settings = QUICK if options.quick else Settings()
    results = measure(pythons, settings, log=lambda text: print(text, file=sys.stderr))
    print(results["table"])
    options.out.parent.mkdir(parents=True, exist_ok=True)
    options.out.write_text(json.dumps(results, indent=2, ensure_ascii=False) + "\n")
    print(f"\nwritten to {options.out}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
