"""Deterministic per-call costs: ``python -m bench.profile [--calls N]``.

Timings on a shared machine move by a third from run to run; the number of Python function
calls a client makes per operation does not. This counts them with ``cProfile`` for cdsessions
and the floor, side by side against the canned server, grouped by where they run (cdsessions
itself, urllib3, the rest of Python), and prints the cdsessions functions that the floor does
not need. It is a tool for finding per-call work, not part of the benchmark's table.
"""

from __future__ import annotations

import argparse
import cProfile
import pstats
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Final

from bench import server
from bench.clients import make

__all__ = ["Profile", "main", "profile"]

_WARM: Final = 50


@dataclass(frozen=True)
class Profile:
    client: str
    call: str
    per_call: float  # Python function calls (C functions included) per operation
    by_place: dict[str, float]
    own: dict[str, float]  # cdsessions' own functions: calls per operation


def _place(filename: str) -> str:
    if "/cdsessions/" in filename:
        return "cdsessions"
    if "/urllib3/" in filename:
        return "urllib3"
    if "/bench/" in filename:
        return "bench"
    return "C builtins" if filename == "~" else "other Python"


def profile(client: str, call: str, base_url: str, calls: int) -> Profile:
    adapter = make(client, base_url)
    try:
        operation = adapter.get if call == "get" else adapter.create
        for _ in range(_WARM):
            operation()
        profiler = cProfile.Profile()
        profiler.enable()
        for _ in range(calls):
            operation()
        profiler.disable()
    finally:
        adapter.close()
    places: Counter[str] = Counter()
    own: Counter[str] = Counter()
    stats = pstats.Stats(profiler).stats  # type: ignore[attr-defined]
    for (filename, _, name), (_, count, *_rest) in stats.items():
        place = _place(filename)
        places[place] += count
        if place == "cdsessions":
            own[f"{filename.rsplit('/', 1)[-1]}:{name}"] += count
    total = sum(places.values())
    return Profile(
        client,
        call,
        total / calls,
        {place: count / calls for place, count in places.most_common()},
        {name: count / calls for name, count in own.most_common()},
    )


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.profile", description=__doc__)
    parser.add_argument("--calls", type=int, default=200, help="profiled calls per operation")
    options = parser.parse_args(argv)
    with server.serve(server.build_routes([("seed", 10)])) as base_url:
        for call in ("get", "create"):
            for client in ("cdsessions", "floor"):
                found = profile(client, call, base_url, options.calls)
                places = ", ".join(f"{k} {v:.0f}" for k, v in found.by_place.items())
                print(f"{call:6} {client:10} {found.per_call:6.0f} calls/op  ({places})")
                if found.own:
                    own = ", ".join(f"{k} {v:g}" for k, v in found.own.items())
                    print(f"{'':18}cdsessions functions per op: {own}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
