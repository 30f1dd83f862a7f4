"""Following a long log stream keeps memory flat: ``python -m bench.logs`` (run by ``nox -s
bench``) serves N log lines as Server-Sent Events from a raw socket on 127.0.0.1 (chunked, made
as they are sent, so the server holds none of them), follows them with
``SessionsClient.follow_logs`` and reports the tracemalloc peak of the following process and the
lines per second, for 10,000 and 100,000 lines (``--quick``: 1,000 and 10,000). The peaks must be
about equal: nothing grows with the number of lines. Results go to bench/results/logs.json
(``--out FILE`` to choose).
"""

from __future__ import annotations

import argparse
import json
import socket
import threading
import time
import tracemalloc
from collections.abc import Sequence
from pathlib import Path
from typing import Any, Final

from returns.result import Success

from cdsessions import SessionsClient, Timeout

SESSION: Final = "3f0c0000-0000-4000-8000-000000000000"
HEAD: Final = (
    b"HTTP/1.1 200 OK\r\nContent-Type: text/event-stream\r\nTransfer-Encoding: chunked\r\n\r\n"
)
#: Lines per chunk written: a realistic batch (the server sends ComfyUI's output in batches).
BATCH: Final = 50


def _event(number: int) -> bytes:
    return (
        b'data: {"message": "ComfyUI output line %d: loading model weights, step 12 of 20", '
        b'"level": "info", "timestamp": "2026-12-07T03:00:00Z"}\n\n' % number
    )


def _serve(listener: socket.socket, lines: int) -> None:
    conn, _ = listener.accept()
    with conn:
        request = b""
        while b"\r\n\r\n" not in request:
            request += conn.recv(65536)
        conn.sendall(HEAD)
        for start in range(0, lines, BATCH):
            data = b"".join(_event(n) for n in range(start, min(lines, start + BATCH)))
            conn.sendall(b"%x\r\n%s\r\n" % (len(data), data))
        marker = b'data: {"type": "stream_complete"}\n\n'
        conn.sendall(b"%x\r\n%s\r\n0\r\n\r\n" % (len(marker), marker))


def follow(lines: int) -> dict[str, Any]:
    """Follow ``lines`` lines; their count, the tracemalloc peak (bytes) and lines per second."""
    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen(1)
    port = listener.getsockname()[1]
    server = threading.Thread(target=_serve, args=(listener, lines), daemon=True)
    server.start()
    client = SessionsClient(
        "bench-key-0123456789",
        server=f"http://127.0.0.1:{port}/api",
        timeout=Timeout(10, 30, None),
    )
    tracemalloc.start()
    began = time.perf_counter()
    seen = 0
    try:
        for result in client.follow_logs(SESSION):
            if not isinstance(result, Success):
                raise SystemExit(f"following failed: {result.failure()}")
            seen += 1
        elapsed = time.perf_counter() - began
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
        client.close()
        listener.close()
    server.join(10)
    return {"lines": seen, "peak_bytes": peak, "lines_per_second": round(seen / elapsed)}


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.logs", description=__doc__)
    parser.add_argument("--quick", action="store_true", help="1,000 and 10,000 lines")
    parser.add_argument("--out", type=Path, default=Path("bench/results/logs.json"))
    args = parser.parse_args(argv)
    sizes = (1_000, 10_000) if args.quick else (10_000, 100_000)
    follow(100)  # warm up: lazy imports and first-use caches are not what is measured
    runs = [follow(size) for size in sizes]
    for run in runs:
        print(
            f"followed {run['lines']:>7,} lines: tracemalloc peak "
            f"{run['peak_bytes'] / 1024:,.0f} KiB, {run['lines_per_second']:,} lines/s"
        )
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps({"follow_logs": runs}, indent=2) + "\n", encoding="utf-8")
    small, large = runs
    # Flat: ten times the lines may not take even twice the memory.
    return 0 if large["peak_bytes"] < 2 * small["peak_bytes"] else 1


if __name__ == "__main__":
    raise SystemExit(main())
