"""One measuring process for one client: ``python -m bench.worker``.

It reads a JSON header line ``{"client": ..., "base_url": ...}`` and then one JSON command per
line on stdin, and answers each with one JSON line on stdout, so the runner can interleave the
clients round by round (a noisy neighbour then hurts them all alike). Stdlib plus the client
under test only.

Peak memory is the kernel's peak resident size of a fresh process, not ``tracemalloc``:
pydantic-core (Rust) allocates outside Python's allocator hooks, so tracemalloc would miss much of
the official SDK's memory, and it slows every allocation it does see. On Linux the peak is read
from ``/proc/self/status`` (``VmHWM``) after resetting it through ``/proc/self/clear_refs``, not
from ``getrusage``: ``ru_maxrss`` of a child starts at its parent's size at ``fork``, which would
bury the number under the runner's canned 60 MB bodies. Elsewhere ``ru_maxrss`` is the fallback.
"""

from __future__ import annotations

import gc
import json
import resource
import sys
import threading
import time
from collections.abc import Callable
from typing import Any

from bench.clients import Adapter, make

__all__ = ["main", "run_command"]


def _status_kib(field: str) -> int | None:
    try:
        with open("/proc/self/status", encoding="ascii") as status:
            for line in status:
                if line.startswith(field):
                    return int(line.split()[1])
    except OSError:
        return None
    return None


def _reset_peak() -> bool:
    """Start a new peak-RSS window (Linux ≥ 4.0); False where that is not possible."""
    try:
        with open("/proc/self/clear_refs", "w", encoding="ascii") as clear:
            clear.write("5")
    except OSError:
        return False
    return True


def _rss_now() -> int:
    """Resident memory now, in bytes."""
    kib = _status_kib("VmRSS:")
    return _rss_peak() if kib is None else kib * 1024


def _rss_peak() -> int:
    """The peak resident memory of this process (since the last reset), in bytes."""
    kib = _status_kib("VmHWM:")
    if kib is not None:
        return kib * 1024
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return peak if sys.platform == "darwin" else peak * 1024  # Linux reports KiB


def _per_call(adapter: Adapter, call: str) -> Callable[[], object]:
    return adapter.get if call == "get" else adapter.create


def percall(adapter: Adapter, call: str, n: int) -> dict[str, Any]:
    """``n`` calls one after another on this thread, over one kept-alive connection."""
    fn = _per_call(adapter, call)
    started = time.perf_counter()
    for _ in range(n):
        fn()
    return {"seconds": time.perf_counter() - started, "calls": n}


def threads(adapter: Adapter, call: str, workers: int, per_thread: int) -> dict[str, Any]:
    """``workers`` threads sharing the one client, each making ``per_thread`` calls."""
    fn = _per_call(adapter, call)
    gate = threading.Barrier(workers + 1)
    failures: list[BaseException] = []

    def work() -> None:
        gate.wait()
        try:
            for _ in range(per_thread):
                fn()
        except BaseException as error:  # reported to the runner, which stops the benchmark
            failures.append(error)

    pool = [threading.Thread(target=work) for _ in range(workers)]
    for thread in pool:
        thread.start()
    gate.wait()
    started = time.perf_counter()
    for thread in pool:
        thread.join()
    seconds = time.perf_counter() - started
    if failures:
        raise failures[0]
    return {"seconds": seconds, "calls": workers * per_thread}


def list_memory(adapter: Adapter, label: str) -> dict[str, Any]:
    """The first large list in this process: how far it lifts the resident high-water mark.

    Only meaningful as the first big allocation of a fresh process (the runner makes sure)."""
    gc.collect()
    exact = _reset_peak()
    before = _rss_now()
    started = time.perf_counter()
    count = adapter.list(label)
    seconds = time.perf_counter() - started
    peak = max(0, _rss_peak() - before)
    return {"peak_bytes": peak, "peak_window_reset": exact, "seconds": seconds, "count": count}


def list_time(adapter: Adapter, label: str, repeats: int) -> dict[str, Any]:
    runs = []
    count = 0
    for _ in range(repeats):
        gc.collect()
        started = time.perf_counter()
        count = adapter.list(label)
        runs.append(time.perf_counter() - started)
    return {"seconds": runs, "count": count}


def in_flight(adapter: Adapter, tasks: int, per_task: int) -> dict[str, Any]:
    """``tasks`` asyncio tasks making ``per_task`` gets each, all in flight at once."""
    seconds = adapter.gets_in_flight(tasks, per_task)
    if seconds is None:
        return {"unsupported": True}
    return {"seconds": seconds, "calls": tasks * per_task}


def list_outcome(adapter: Adapter, label: str) -> dict[str, Any]:
    """Whether the client can read the list at all (the live shape breaks the official SDK)."""
    started = time.perf_counter()
    try:
        count = adapter.list(label)
    except Exception as error:  # the outcome being measured is exactly this exception
        first_line = str(error).strip().splitlines()[0] if str(error).strip() else ""
        return {"ok": False, "failure": f"{type(error).__name__}: {first_line}"[:200]}
    return {"ok": True, "count": count, "seconds": time.perf_counter() - started}


def run_command(adapter: Adapter, command: dict[str, Any]) -> dict[str, Any]:
    op = command["op"]
    if op == "percall":
        return percall(adapter, command["call"], command["n"])
    if op == "threads":
        return threads(adapter, command["call"], command["threads"], command["per_thread"])
    if op == "list_memory":
        return list_memory(adapter, command["label"])
    if op == "list_time":
        return list_time(adapter, command["label"], command["repeats"])
    if op == "in_flight":
        return in_flight(adapter, command["tasks"], command["per_task"])
    if op == "list_outcome":
        return list_outcome(adapter, command["label"])
    raise ValueError(f"unknown command {op!r}")


def _versions() -> dict[str, str]:
    """The versions of what this process measures, for the record."""
    from importlib import metadata

    found = {"python": sys.version.split()[0]}
    for name in ("cdsessions", "comfydeploy", "urllib3", "msgspec", "returns", "httpx", "pydantic"):
        try:
            found[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            continue
    return found


def main() -> None:
    header = json.loads(sys.stdin.readline())
    adapter = make(header["client"], header["base_url"])
    print(json.dumps({"ready": True, "versions": _versions()}), flush=True)
    for line in sys.stdin:
        if not line.strip():
            continue
        try:
            answer = run_command(adapter, json.loads(line))
        except Exception as error:  # sent back whole: the runner stops and shows it
            answer = {"error": f"{type(error).__name__}: {error}"[:2000]}
        print(json.dumps(answer), flush=True)
    adapter.close()


if __name__ == "__main__":
    main()
