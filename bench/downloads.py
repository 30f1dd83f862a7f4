"""Outputs stream to disk: ``python -m bench.downloads`` (run by ``nox -s bench``) serves one
workflow output of SIZE bytes (1 GiB; ``--quick``: 64 MiB) from a raw socket on 127.0.0.1 (made
as it is sent: the server holds 1 MiB) and brings it home two ways, each in a fresh process:

- ``cdsessions``: ``SessionsClient.run`` on a small ComfyUI (queue, one history poll, then the
  ``/view`` download streamed to a file under ``outputs_to``);
- ``urllib3``: a plain ``PoolManager`` streaming download of the same ``/view`` to a file, in
  1 MiB reads: the floor.

Reported: the throughput of each (MB/s over the whole call), cdsessions' as a fraction of the
floor's (target at least 0.8), and each process's peak memory growth over its baseline (RSS,
``ru_maxrss``; target under 50 MB). Results go to bench/results/downloads.json.
"""

from __future__ import annotations

import argparse
import json
import resource
import socket
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any, Final

CHUNK: Final = b"\0" * (1024 * 1024)
WORKFLOW: Final = {
    "1": {"class_type": "PrimitiveString", "inputs": {"value": "x"}},
    "2": {"class_type": "SaveImage", "inputs": {"images": ["1", 0], "filename_prefix": "big"}},
}


def _json(body: object) -> bytes:
    data = json.dumps(body).encode()
    head = b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: %d\r\n\r\n"
    return head % len(data) + data


def _answer(conn: socket.socket, target: str, size: int) -> None:
    if target.endswith("/prompt"):
        conn.sendall(_json({"prompt_id": "p", "number": 0, "node_errors": {}}))
    elif "/history/" in target:
        files = [{"filename": "big.bin", "subfolder": "", "type": "output"}]
        status = {"status_str": "success", "completed": True}
        conn.sendall(_json({"p": {"outputs": {"2": {"images": files}}, "status": status}}))
    else:  # /view
        head = b"HTTP/1.1 200 OK\r\nContent-Type: application/octet-stream\r\n"
        conn.sendall(head + b"Content-Length: %d\r\n\r\n" % size)
        whole, rest = divmod(size, len(CHUNK))
        for _ in range(whole):
            conn.sendall(CHUNK)
        conn.sendall(CHUNK[:rest])


def _serve(listener: socket.socket, size: int) -> None:
    while True:
        try:
            conn, _ = listener.accept()
        except OSError:
            return
        threading.Thread(target=_connection, args=(conn, size), daemon=True).start()


def _connection(conn: socket.socket, size: int) -> None:
    with conn:
        buffer = b""
        while True:
            while b"\r\n\r\n" not in buffer:
                data = conn.recv(65536)
                if not data:
                    return
                buffer += data
            head, _, buffer = buffer.partition(b"\r\n\r\n")
            lines = head.decode("latin-1").split("\r\n")
            length = next(
                (
                    int(line.split(":", 1)[1])
                    for line in lines
                    if line.lower().startswith("content-length:")
                ),
                0,
            )
            while len(buffer) < length:
                buffer += conn.recv(65536)
            buffer = buffer[length:]
            _answer(conn, lines[0].split(" ")[1], size)


def _rss_bytes() -> int:
    # ru_maxrss is in KiB on Linux, bytes on macOS.
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return peak if sys.platform == "darwin" else peak * 1024


def one(kind: str, url: str, folder: Path) -> dict[str, Any]:
    """One download in this process: seconds, bytes, peak RSS growth over the baseline."""
    if kind == "cdsessions":
        from cdsessions import SessionsClient, Timeout

        client = SessionsClient(
            "bench-key-0123456789", server="local", timeout=Timeout(10, 60, None)
        )
        baseline = _rss_bytes()
        began = time.perf_counter()
        got = client.run(url, WORKFLOW, outputs_to=folder, max_file_bytes=1 << 40, poll_every=0.01)
        elapsed = time.perf_counter() - began
        size = got.unwrap().total_bytes
        client.close()
    else:
        import urllib3

        pool = urllib3.PoolManager()
        baseline = _rss_bytes()
        began = time.perf_counter()
        response = pool.request(
            "GET", url + "/view?filename=big.bin&subfolder=&type=output", preload_content=False
        )
        size = 0
        with open(folder / "big.bin", "wb") as file:
            for piece in response.stream(len(CHUNK)):
                file.write(piece)
                size += len(piece)
        response.release_conn()
        elapsed = time.perf_counter() - began
    return {"kind": kind, "bytes": size, "seconds": elapsed, "rss_growth": _rss_bytes() - baseline}


def measure(kind: str, size: int) -> dict[str, Any]:
    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen(8)
    url = f"http://127.0.0.1:{listener.getsockname()[1]}"
    threading.Thread(target=_serve, args=(listener, size), daemon=True).start()
    try:
        with tempfile.TemporaryDirectory() as folder:
            done = subprocess.run(  # noqa: S603 (this very module, in a fresh process)
                [sys.executable, "-m", "bench.downloads", "--one", kind, url, folder],
                capture_output=True, text=True, check=True,
            )  # fmt: skip
    finally:
        listener.close()
    result: dict[str, Any] = json.loads(done.stdout)
    result["mb_per_second"] = round(result["bytes"] / result["seconds"] / 1e6, 1)
    return result


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.downloads", description=__doc__)
    parser.add_argument("--quick", action="store_true", help="64 MiB instead of 1 GiB")
    parser.add_argument("--out", type=Path, default=Path("bench/results/downloads.json"))
    parser.add_argument("--one", nargs=3, metavar=("KIND", "URL", "DIR"), help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.one:
        kind, url, folder = args.one
        print(json.dumps(one(kind, url, Path(folder))))
        return 0
    size = (64 if args.quick else 1024) * 1024 * 1024
    floor, ours = measure("urllib3", size), measure("cdsessions", size)
    ratio = ours["mb_per_second"] / floor["mb_per_second"]
    for row in (floor, ours):
        print(
            f"{row['kind']:>10}: {row['bytes'] / 2**20:,.0f} MiB in {row['seconds']:.2f} s, "
            f"{row['mb_per_second']:,} MB/s, peak RSS growth {row['rss_growth'] / 1e6:.1f} MB"
        )
    print(f"cdsessions / urllib3 throughput: {ratio:.2f} (target >= 0.8)")
    args.out.parent.mkdir(parents=True, exist_ok=True)
    results = {"size": size, "urllib3": floor, "cdsessions": ours, "ratio": round(ratio, 3)}
    args.out.write_text(json.dumps(results, indent=2) + "\n", encoding="utf-8")
    return 0 if ratio >= 0.8 and ours["rss_growth"] < 50e6 else 1


if __name__ == "__main__":
    raise SystemExit(main())
