"""The benchmark runner: ``python -m bench.run [--official-python PATH] [--quick]``.

It serves canned answers on 127.0.0.1, measures each client in its own worker processes
(cdsessions, the floor and the raw-socket limit with this interpreter, the official SDK with
``--official-python``), interleaving the clients round by round so a noisy neighbour hurts them
alike, then prints a table of medians and ratios, and the scaling tables (list sizes, thread
counts), and writes it all as JSON. ``nox -s bench`` builds both environments and runs it;
``--show FILE [--markdown]`` prints a saved run again (``--markdown``: as in docs/performance.md).
"""

from __future__ import annotations

import argparse
import itertools
import json
import math
import os
import platform
import statistics
import subprocess
import sys
import textwrap
import time
from collections.abc import Iterable, Iterator, Sequence
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Final

from bench import payloads, server

__all__ = [
    "Settings",
    "Worker",
    "main",
    "measure",
    "render_markdown",
    "render_scaling",
    "render_table",
    "scaling",
]

ROOT: Final = Path(__file__).resolve().parent.parent
DEFAULT_OUT: Final = ROOT / "bench" / "results" / "latest.json"
#: Where ``--quick`` writes unless told otherwise: ignored by git, so a smoke run never
#: replaces the committed full results.
QUICK_OUT: Final = ROOT / "bench" / "results" / "quick.json"
#: What "importing the package" means for each: the client class, as users import it.
IMPORTS: Final = {
    "cdsessions": ("from cdsessions import SessionsClient", ("cdsessions",)),
    "official": ("from comfydeploy import ComfyDeploy", ("comfydeploy",)),
    "floor": ("import json, urllib3", ("json", "urllib3")),
    "raw": ("import socket", ("socket",)),
}
LIVE_SIZE: Final = 1000
#: The clients cdsessions is compared with, in the order of the ratio columns.
OTHERS: Final = ("official", "floor", "raw")


class BenchError(RuntimeError):
    """A worker failed or answered something unexpected: the run cannot be trusted."""


@dataclass(frozen=True)
class Settings:
    #: List sizes in the main table, and in the scaling table (all are measured once).
    sizes: tuple[int, ...] = (10, 1000, 100_000)
    scale_sizes: tuple[int, ...] = (1000, 10_000, 100_000, 400_000)
    #: The official SDK is not run above this size: see OFFICIAL_CAP_NOTE.
    official_max_size: int = 100_000
    rounds: int = 7  # repeated, interleaved measurements; every figure is their median
    calls: int = 1000  # sequential calls per per-call round
    thread_calls: int = 1600  # calls per 8-thread round, all threads together
    threads: int = 8
    #: The get throughput sweep (the ``threads`` count is the headline rounds above).
    thread_counts: tuple[int, ...] = (1, 2, 4, 8, 32)
    sweep_calls: int = 800
    sweep_rounds: int = 5
    async_tasks: int = 100
    async_calls: int = 1600
    import_runs: int = 15
    list_processes: int = 3  # fresh processes per list size (peak memory needs a fresh one)
    list_repeats: dict[int, int] = field(default_factory=dict)  # size -> timed repeats

    def repeats_for(self, size: int) -> int:
        if size in self.list_repeats:
            return self.list_repeats[size]
        return 2 if size >= 200_000 else 3 if size >= 50_000 else 10 if size >= 1000 else 50

    def list_sizes(self) -> tuple[int, ...]:
        return tuple(sorted({*self.sizes, *self.scale_sizes}))

    def as_json(self) -> dict[str, Any]:
        return {
            "sizes": self.sizes,
            "scale_sizes": self.scale_sizes,
            "official_max_size": self.official_max_size,
            "rounds": self.rounds,
            "calls": self.calls,
            "thread_calls": self.thread_calls,
            "threads": self.threads,
            "thread_counts": self.thread_counts,
            "sweep_calls": self.sweep_calls,
            "sweep_rounds": self.sweep_rounds,
            "async_tasks": self.async_tasks,
            "async_calls": self.async_calls,
            "import_runs": self.import_runs,
            "list_processes": self.list_processes,
        }

    @classmethod
    def from_json(cls, saved: dict[str, Any]) -> Settings:
        known: dict[str, Any] = {
            k: tuple(v) if isinstance(v, list) else v
            for k, v in saved.items()
            if k in cls.__dataclass_fields__
        }
        return cls(**known)


QUICK: Final = Settings(
    sizes=(10, 200),
    scale_sizes=(200, 400, 800),
    official_max_size=400,
    rounds=2,
    calls=20,
    thread_calls=16,
    threads=8,
    thread_counts=(1, 2, 8),
    sweep_calls=16,
    sweep_rounds=1,
    async_tasks=10,
    async_calls=40,
    import_runs=2,
    list_processes=1,
    list_repeats={10: 2, 200: 2, 400: 2, 800: 2},
)
OFFICIAL_CAP_NOTE: Final = (
    "the official SDK is not run above {size:,} sessions: its time and peak memory there are "
    "already ~4x and ~3x cdsessions', and at 400,000 one call needs ~1.6 GB and several "
    "seconds, which would add minutes to the run for no new information"
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


def measure_calls(pool: dict[str, Worker], settings: Settings) -> dict[str, dict[str, Any]]:
    """Per-call microseconds on one thread, calls per second with ``threads`` threads, and
    the get throughput at every count of ``thread_counts``."""
    raw: dict[str, dict[str, Any]] = {c: {} for c in pool}
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
    for count in settings.thread_counts:
        if count == settings.threads:
            continue  # measured above, with more rounds
        per_thread = max(1, settings.sweep_calls // count)
        for order in _rotations(list(pool), settings.sweep_rounds):
            for client in order:
                done = pool[client].ask("threads", call="get", threads=count, per_thread=per_thread)
                sweep = raw[client].setdefault("get_sweep_per_s", {})
                sweep.setdefault(str(count), []).append(done["calls"] / done["seconds"])
    for client in pool:
        sweep = raw[client].setdefault("get_sweep_per_s", {})
        sweep[str(settings.threads)] = raw[client]["get_threads_per_s"]
    return raw


def measure_in_flight(pool: dict[str, Worker], settings: Settings) -> dict[str, list[float]]:
    """Calls per second of ``async_tasks`` asyncio tasks sharing one async client (clients
    without an asyncio interface are left out)."""
    raw: dict[str, list[float]] = {}
    per_task = max(1, settings.async_calls // settings.async_tasks)
    for order in _rotations(list(pool), settings.sweep_rounds):
        for client in order:
            done = pool[client].ask("in_flight", tasks=settings.async_tasks, per_task=per_task)
            if not done.get("unsupported"):
                raw.setdefault(client, []).append(done["calls"] / done["seconds"])
    return raw


def measure_lists(
    pythons: dict[str, str], base_url: str, settings: Settings
) -> dict[str, dict[str, dict[str, list[float]]]]:
    """Time and peak memory of ``list`` per size; memory from each fresh process's first call."""
    raw: dict[str, dict[str, dict[str, list[float]]]] = {c: {} for c in pythons}
    for size in settings.list_sizes():
        label = payloads.list_label("seed", size)
        clients = [c for c in pythons if c != "official" or size <= settings.official_max_size]
        for order in _rotations(clients, settings.list_processes):
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
            **{f"ratio_vs_{versus}": self.ratio(versus) for versus in OTHERS},
            "targets": [
                {"versus": versus, "ratio": bound, "met": self.verdicts()[versus]}
                for versus, bound in self.targets
            ],
            "note": self.note,
        }


def _median(values: Sequence[float] | None) -> float | None:
    return statistics.median(values) if values else None


def _pick(source: dict[str, Any], clients: Sequence[str], *path: str) -> dict[str, float | None]:
    picked: dict[str, float | None] = {}
    for client in clients:
        node: Any = source.get(client, {})
        for key in path:
            node = node.get(key) if isinstance(node, dict) else None
        picked[client] = _median(node)
    return picked


def build_rows(
    imports: dict[str, Any],
    calls: dict[str, dict[str, Any]],
    lists: dict[str, dict[str, dict[str, list[float]]]],
    live: dict[str, dict[str, Any]],
    settings: Settings,
    in_flight: dict[str, list[float]] | None = None,
) -> list[Row]:
    clients = list(calls)

    def pick(source: dict[str, Any], *path: str) -> dict[str, float | None]:
        return _pick(source, clients, *path)

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
    if in_flight is not None:
        rows.append(
            Row(
                f"get, asyncio, {settings.async_tasks} tasks in flight",
                "calls/s",
                {c: _median(in_flight.get(c)) for c in clients},
                True,
                note=f"one async client shared by {settings.async_tasks} tasks, next to the "
                f"{settings.threads}-thread blocking figure above (cdsessions: "
                "AsyncSessionsClient with its default 10 worker threads; official: *_async "
                "over httpx.AsyncClient; floor and raw have no asyncio form)",
            )
        )
    biggest = max(settings.sizes)
    capped = False
    for size in settings.sizes:
        big = size == biggest and size >= 50_000
        capped = capped or size > settings.official_max_size
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


def _grid(header: Sequence[str], lines: Sequence[Sequence[str]]) -> list[str]:
    """A Markdown pipe table, padded so it also reads as plain text."""
    widths = [max(len(str(x)) for x in column) for column in zip(header, *lines, strict=True)]

    def fmt(cells: Sequence[str]) -> str:
        return "| " + " | ".join(c.ljust(w) for c, w in zip(cells, widths, strict=True)) + " |"

    return [fmt(header), "|" + "|".join("-" * (w + 2) for w in widths) + "|", *map(fmt, lines)]


def render_table(rows: Sequence[Row], clients: Sequence[str]) -> str:
    others = [c for c in OTHERS if c in clients]
    header = ["metric", "unit", *clients, *(f"cd/{c}" for c in others)]
    lines = [
        [
            row.metric,
            row.unit,
            *(_cell(row.values.get(c)) for c in clients),
            *(_ratio_cell(row, c) for c in others),
        ]
        for row in rows
    ]
    notes = [f"- {row.metric}: {row.note}" for row in rows if row.note]
    return "\n".join(_grid(header, lines) + (["", *notes] if notes else []))


# -- scaling -------------------------------------------------------------------------------

#: A list "grows linearly" when its cost per added session grows no faster than n^0.1 (x1.46
#: over the 45x between the first and last step of 1,000 → 400,000).
LINEAR_EXPONENT: Final = 0.10


@dataclass(frozen=True)
class Scale:
    """One client's series: a measure at increasing sizes (sessions, or threads)."""

    series: str
    client: str
    points: tuple[tuple[int, float | None], ...]
    #: Per step between sizes: the added cost per added session (lists), or the throughput
    #: relative to one thread (threads).
    steps: tuple[float, ...]
    verdict: str


def _marginal(points: Sequence[tuple[int, float]], scale: float) -> tuple[float, ...]:
    return tuple((v2 - v1) / (n2 - n1) * scale for (n1, v1), (n2, v2) in itertools.pairwise(points))


def _slope(xs: Sequence[float], ys: Sequence[float]) -> float:
    """Least-squares slope of ``ys`` on ``xs``."""
    mx, my = statistics.fmean(xs), statistics.fmean(ys)
    spread = sum((x - mx) ** 2 for x in xs)
    return sum((x - mx) * (y - my) for x, y in zip(xs, ys, strict=True)) / spread


def _list_verdict(sizes: Sequence[int], steps: Sequence[float]) -> str:
    """Whether a list grows linearly, from the cost of each added session step by step
    (``steps[i]`` between ``sizes[i]`` and ``sizes[i + 1]``): fixed costs, which dominate small
    lists, cancel out. The per-item cost is fitted as n^e; the whole cost then grows as
    n^(1+e), and "linear" means ``|e| <= LINEAR_EXPONENT``."""
    if len(steps) < 2:
        return "—"
    if min(steps) <= 0:  # a smaller list measured as dear as a larger one: noise dominates
        return "not measurable (noise)"
    middles = [math.log((a + b) / 2) for a, b in itertools.pairwise(sizes)]
    exponent = _slope(middles, [math.log(step) for step in steps])
    growth = f"per-item cost x{steps[-1] / steps[0]:.2f} from first to last step"
    if abs(exponent) <= LINEAR_EXPONENT:
        return f"linear ({growth})"
    shape = "faster" if exponent > 0 else "slower"
    return f"{shape} than linear, ~n^{1 + exponent:.2f} ({growth})"


def _thread_verdict(
    points: Sequence[tuple[int, float]], cores: int
) -> tuple[tuple[float, ...], str]:
    base = points[0][1]
    if points[0][0] != 1 or base <= 0:
        return (), "—"
    speedups = tuple(value / base for _, value in points)
    if all(s >= 0.8 * n for (n, _), s in zip(points, speedups, strict=True)):
        return speedups, "linear"
    best = max(speedups)
    at_best = points[speedups.index(best)][0]
    last = speedups[-1]
    # Flat: no more than +-25 % from one thread anywhere. Drops: the most threads lose over a
    # fifth of the best throughput.
    shape = "flat" if min(speedups) >= 0.75 and best <= 1.25 else "not linear"
    if last < 0.8 * best:
        shape = "drops"
    return speedups, (
        f"{shape}: best x{best:.2f} ({at_best} thr.), x{last:.2f} at {points[-1][0]} "
        f"({cores} cores, shared with the server)"
    )


def scaling(results: dict[str, Any]) -> list[Scale]:
    """Every client's list time and peak memory over the scale sizes, and get throughput over
    the thread counts, with whether each grows linearly."""
    settings = Settings.from_json(results["meta"]["settings"])
    raw = results["raw"]
    cores = int(results["meta"].get("cpus") or 1)
    out: list[Scale] = []
    for series, key, unit_scale in (
        ("list time", "ms", 1000.0),
        ("list peak memory", "peak_mb", 1e6),
    ):
        for client in results["clients"]:
            points = tuple(
                (size, _median(raw["lists"].get(client, {}).get(str(size), {}).get(key)))
                for size in settings.scale_sizes
            )
            known = [(n, v) for n, v in points if v is not None]
            # ms -> µs per session; MB -> bytes per session
            steps = _marginal(known, unit_scale)
            verdict = _list_verdict([n for n, _ in known], steps)
            out.append(Scale(series, client, points, steps, verdict))
    for client in results["clients"]:
        sweep = raw["calls"].get(client, {}).get("get_sweep_per_s", {})
        points = tuple((n, _median(sweep.get(str(n)))) for n in settings.thread_counts)
        known = [(n, v) for n, v in points if v is not None]
        speedups, verdict = _thread_verdict(known, cores) if known else ((), "—")
        out.append(Scale("get throughput", client, points, speedups, verdict))
    return out


def render_scaling(lines: Sequence[Scale]) -> str:
    """The scaling tables: lists by size, get throughput by thread count."""
    out: list[str] = []
    lists = [line for line in lines if line.series != "get throughput"]
    if lists:
        sizes = [n for n, _ in lists[0].points]
        header = ["list (seed shape)", "client", *(f"{n:,}" for n in sizes)]
        header += ["added cost per session, step by step", "grows"]
        rows = []
        for line in lists:
            unit = "µs" if line.series == "list time" else "B"
            label = "time, ms" if line.series == "list time" else "peak memory, MB"
            fmt = "{:.2f}" if unit == "µs" else "{:,.0f}"
            rows.append(
                [
                    label,
                    line.client,
                    *(_cell(v) for _, v in line.points),
                    " → ".join(fmt.format(step) for step in line.steps) + f" {unit}"
                    if line.steps
                    else "—",
                    line.verdict,
                ]
            )
        out.extend(_grid(header, rows))
    threads = [line for line in lines if line.series == "get throughput"]
    if threads:
        counts = [n for n, _ in threads[0].points]
        header = ["get, calls/s", "client", *(f"{n} thr." for n in counts)]
        header += ["relative to 1 thread", "grows"]
        rows = [
            [
                "throughput",
                line.client,
                *(_cell(v) for _, v in line.points),
                " / ".join(f"x{s:.2f}" for s in line.steps) if line.steps else "—",
                line.verdict,
            ]
            for line in threads
        ]
        out.extend(["", *_grid(header, rows)])
    return "\n".join(out)


def render_markdown(results: dict[str, Any]) -> str:
    """docs/performance.md's table: the run's date, versions, cores and load, the main
    table with ratios, and the scaling tables."""
    meta = results["meta"]
    started = datetime.fromisoformat(meta["started"]).astimezone(UTC)
    versions = meta["versions"]
    mine = versions.get("cdsessions", {})
    theirs = versions.get("official", {})
    load_before, load_after = meta["load_average_before"][0], meta["load_average_after"][0]
    official = (
        f"; official SDK comfydeploy {theirs['comfydeploy']} with httpx {theirs.get('httpx')} "
        f"and pydantic {theirs.get('pydantic')}"
        if "comfydeploy" in theirs
        else "; no official SDK in this run"
    )
    settings = Settings.from_json(meta["settings"])
    heading = (
        f"Run of {started:%Y-%m-%d %H:%M} UTC (`{meta.get('file', 'bench/results/latest.json')}`, "
        f"{meta['seconds']:.0f} s). Python {mine.get('python')}, urllib3 {mine.get('urllib3')}, "
        f"msgspec {mine.get('msgspec')}{official}. The machine had **{meta['cpus']} CPU cores** "
        f"(load average {load_before:.1f} at the start, {load_after:.1f} at the end). Medians of "
        f"{settings.rounds} interleaved rounds ({settings.sweep_rounds} for the thread sweep "
        f"and asyncio, {settings.list_processes} fresh processes per list size). `raw` is the "
        "physical limit: precomputed request bytes on a plain socket, the answer read whole."
    )
    parts = [_wrap(heading), table_of(results), "Scaling:", render_scaling(scaling(results))]
    if any(size > settings.official_max_size for size in settings.list_sizes()):
        note = OFFICIAL_CAP_NOTE.format(size=settings.official_max_size)
        parts.append(_wrap(note[0].upper() + note[1:] + "."))
    return "\n\n".join(parts)


def _wrap(text: str) -> str:
    """Prose at the width of docs/performance.md."""
    return textwrap.fill(text, 100, break_on_hyphens=False, break_long_words=False)


# -- the whole run -------------------------------------------------------------------------


def measure(pythons: dict[str, str], settings: Settings, *, log: Any = print) -> dict[str, Any]:
    """Run every measurement for the clients in ``pythons`` and return the results document."""
    load_before = os.getloadavg()
    started = datetime.now(UTC)
    shapes = [("seed", size) for size in sorted({10, *settings.list_sizes()})]
    routes = server.build_routes([*shapes, ("live", LIVE_SIZE)])
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
            log("asyncio …")
            in_flight = measure_in_flight(pool, settings)
            live = measure_live_list(pool)
        log("lists …")
        lists = measure_lists(pythons, base_url, settings)
    rows = build_rows(imports, calls, lists, live, settings, in_flight)
    results: dict[str, Any] = {
        "meta": {
            "started": started.isoformat(timespec="seconds"),
            "seconds": round((datetime.now(UTC) - started).total_seconds(), 1),
            "platform": platform.platform(),
            "cpus": os.cpu_count(),
            "load_average_before": load_before,
            "load_average_after": os.getloadavg(),
            "versions": versions,
            "settings": settings.as_json(),
            "server_connections_during_calls": call_connections,
            "memory_method": "peak RSS (VmHWM after clear_refs) rise over the first list call "
            "of a fresh process",
            "statistic": "median",
        },
        "clients": list(pythons),
        "rows": [row.as_json() for row in rows],
        "table": render_table(rows, list(pythons)),
        "raw": {
            "imports": imports,
            "calls": calls,
            "in_flight": in_flight,
            "lists": lists,
            "live_list": live,
        },
    }
    results["scaling"] = render_scaling(scaling(results))
    return results


def table_of(results: dict[str, Any]) -> str:
    """The table of a results document, rendered again from its raw measurements."""
    settings = Settings.from_json(results["meta"]["settings"])
    raw = results["raw"]
    rows = build_rows(
        raw["imports"],
        raw["calls"],
        raw["lists"],
        raw["live_list"],
        settings,
        raw.get("in_flight"),
    )
    return render_table(rows, results["clients"])


def show(results: dict[str, Any], *, markdown: bool) -> str:
    if markdown:
        return render_markdown(results)
    return table_of(results) + "\n\n" + render_scaling(scaling(results))


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.run", description=__doc__)
    parser.add_argument("--python", default=sys.executable, help="interpreter with cdsessions")
    parser.add_argument("--official-python", help="interpreter with comfydeploy==0.6.3")
    parser.add_argument("--quick", action="store_true", help="tiny sizes: a smoke run")
    parser.add_argument(
        "--out",
        type=Path,
        help=f"results file (default {DEFAULT_OUT.relative_to(ROOT)}; with --quick "
        f"{QUICK_OUT.relative_to(ROOT)}, which git ignores)",
    )
    parser.add_argument("--show", type=Path, help="print the table of a results file and stop")
    parser.add_argument(
        "--markdown",
        action="store_true",
        help="with --show: the table of docs/performance.md (date, cores, load, ratios, scaling)",
    )
    options = parser.parse_args(argv)
    if options.show:
        results = json.loads(options.show.read_text())
        results["meta"].setdefault("file", str(options.show))
        print(show(results, markdown=options.markdown))
        return 0
    pythons = {"cdsessions": options.python}
    if options.official_python:
        pythons["official"] = options.official_python
    pythons["floor"] = options.python
    pythons["raw"] = options.python
    settings = QUICK if options.quick else Settings()
    out = options.out or (QUICK_OUT if options.quick else DEFAULT_OUT)
    results = measure(pythons, settings, log=lambda text: print(text, file=sys.stderr))
    print(results["table"] + "\n\n" + results["scaling"])
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(results, indent=2, ensure_ascii=False) + "\n")
    print(f"\nwritten to {out}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
