"""``cdsessions run`` as a user runs it: a subprocess against the fake server (served in this
process, so its ComfyUI can be scripted and looked into), SIGINT included."""

from __future__ import annotations

import json
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from cdsessions.fake import DEFAULT_MACHINE_ID, FakeComfyUI, FakeService, serve_in_thread
from tests.support.cli import cli_env, default_sigint, run_cli, start_fake_server

KEY = "cds_live_abcdefghijklmnop"
WORKFLOW = {
    "1": {"class_type": "LoadImage", "inputs": {"image": "in.png"}},
    "2": {"class_type": "SaveImage", "inputs": {"images": ["1", 0], "filename_prefix": "o"}},
}


@pytest.fixture
def served() -> Iterator[tuple[FakeService, str]]:
    fake = FakeService(comfyui=True)
    with serve_in_thread(fake) as url:
        yield fake, url


@pytest.fixture
def files(tmp_path: Path) -> tuple[Path, Path, Path]:
    workflow = tmp_path / "wf.json"
    workflow.write_text(json.dumps(WORKFLOW))
    image = tmp_path / "in.png"
    image.write_bytes(b"PNG bytes")
    return workflow, image, tmp_path / "out"


def _args(url: str, workflow: Path, image: Path, out: Path, *extra: str) -> list[str]:
    return [
        "run", str(workflow), "--input", str(image), "--out", str(out),
        "--machine-id", DEFAULT_MACHINE_ID, "--server", url, *extra,
    ]  # fmt: skip


def test_a_run_prints_what_it_made_and_cancels(
    served: tuple[FakeService, str], files: tuple[Path, Path, Path]
) -> None:
    fake, url = served
    workflow, image, out = files
    done = run_cli(*_args(url, workflow, image, out, "--gpu", "A10G"), key=KEY)
    assert done.returncode == 0, done.stderr
    (line,) = done.stdout.splitlines()
    assert line == f"{out / 'o_00001_.png'}  9 bytes  node 2"
    assert (out / "o_00001_.png").read_bytes() == b"PNG bytes"
    assert "cancelled" in done.stderr
    assert "USD on A10G" in done.stderr  # what it cost
    assert fake.live_sessions() == ()
    assert "modal.localhost" not in done.stdout + done.stderr  # the url is a secret


def test_a_failed_price_fetch_says_the_cost_is_unknown_and_the_run_still_succeeds(
    served: tuple[FakeService, str], files: tuple[Path, Path, Path]
) -> None:
    fake, url = served
    workflow, image, out = files
    fake.answer_next("pricing", 503, {"detail": "down"}, times=50)  # every retry fails too
    done = run_cli(*_args(url, workflow, image, out, "--gpu", "A10G"), key=KEY)
    assert done.returncode == 0, done.stderr
    assert (out / "o_00001_.png").read_bytes() == b"PNG bytes"
    assert "; cost unknown (no price for A10G: the price table could not be fetched (http))" in (
        done.stderr
    )
    assert "USD on" not in done.stderr
    assert fake.live_sessions() == ()


def test_node_errors_exit_11_and_cancel(
    served: tuple[FakeService, str], files: tuple[Path, Path, Path]
) -> None:
    fake, url = served
    workflow, image, out = files
    workflow.write_text(json.dumps({"2": {"class_type": "SaveImage", "inputs": {}}}))
    done = run_cli(*_args(url, workflow, image, out), key=KEY)
    assert done.returncode == 11, done.stderr
    assert "node 2 (SaveImage)" in done.stderr
    assert fake.live_sessions() == ()


def test_a_late_run_exits_12_after_interrupting(
    served: tuple[FakeService, str], files: tuple[Path, Path, Path]
) -> None:
    fake, url = served
    comfy = FakeComfyUI()
    comfy.stall()
    fake.new_comfyui = lambda: comfy
    workflow, image, out = files
    done = run_cli(*_args(url, workflow, image, out, "--run-timeout", "1"), key=KEY)
    assert done.returncode == 12, done.stderr
    assert comfy.interrupts == 1
    assert fake.live_sessions() == ()


def test_max_cost_refuses_before_anything_is_started(
    served: tuple[FakeService, str], files: tuple[Path, Path, Path]
) -> None:
    fake, url = served
    workflow, image, out = files
    done = run_cli(
        *_args(url, workflow, image, out, "--gpu", "H100", "--max-cost", "0.0001"), key=KEY
    )
    assert done.returncode == 2, done.stderr
    assert "--max-cost" in done.stderr
    assert [path for _, path in fake.requests_seen] == ["/platform/gpu-pricing"]
    assert not out.exists() or list(out.iterdir()) == []


def test_a_bad_workflow_or_input_sends_nothing(
    served: tuple[FakeService, str], files: tuple[Path, Path, Path]
) -> None:
    fake, url = served
    workflow, image, out = files
    workflow.write_text('{"nodes": [], "links": []}')  # the UI format
    assert run_cli(*_args(url, workflow, image, out), key=KEY).returncode == 2
    workflow.write_text("{not json")
    assert run_cli(*_args(url, workflow, image, out), key=KEY).returncode == 2
    workflow.write_text(json.dumps(WORKFLOW))
    assert (
        run_cli(*_args(url, workflow, image.with_name("missing.png"), out), key=KEY).returncode == 2
    )
    assert fake.requests_handled == 0


def test_ctrl_c_interrupts_comfyui_cancels_and_exits_130(
    served: tuple[FakeService, str], files: tuple[Path, Path, Path]
) -> None:
    fake, url = served
    comfy = FakeComfyUI()
    comfy.stall()
    fake.new_comfyui = lambda: comfy
    workflow, image, out = files
    running = subprocess.Popen(
        [sys.executable, "-m", "cdsessions", *_args(url, workflow, image, out)],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=cli_env(KEY),
        preexec_fn=default_sigint,
    )
    deadline = time.monotonic() + 20
    while not any(r.startswith("GET /history/") for r in comfy.requests):
        assert time.monotonic() < deadline, "the run never started polling"
        time.sleep(0.05)
    running.send_signal(signal.SIGINT)
    _, stderr = running.communicate(timeout=20)
    assert running.returncode == 130, stderr
    assert comfy.interrupts == 1
    assert fake.live_sessions() == ()
    assert "interrupted" in stderr


def test_a_run_against_the_fake_server_command(files: tuple[Path, Path, Path]) -> None:
    workflow, image, out = files
    process, url = start_fake_server("--quiet", "--comfyui")
    try:
        done = run_cli(*_args(url, workflow, image, out), key=KEY)
    finally:
        process.terminate()
        process.communicate(timeout=10)
    assert done.returncode == 0, done.stderr
    assert (out / "o_00001_.png").read_bytes() == b"PNG bytes"


def test_a_runs_text_output_is_printed_escaped_on_one_line(
    served: tuple[FakeService, str], files: tuple[Path, Path, Path]
) -> None:
    """A node's text (ComfyUI's, so anyone's) with a line break, an escape sequence and a bidi
    override is printed escaped, on the run's one ``text`` line: it cannot forge an output
    line. Added for a bug an outside review slipped past the suite (issue 23)."""
    _, url = served
    workflow, image, out = files
    hostile = "a\nforged\x1b[2J\u202e"
    workflow.write_text(
        json.dumps(
            {
                **WORKFLOW,
                "3": {"class_type": "PrimitiveString", "inputs": {"value": hostile}},
                "4": {"class_type": "PreviewAny", "inputs": {"source": ["3", 0]}},
            }
        )
    )
    done = run_cli(*_args(url, workflow, image, out, "--gpu", "A10G"), key=KEY)
    assert done.returncode == 0, done.stderr
    lines = done.stdout.splitlines()
    assert len(lines) == 2, lines
    assert lines[1] == "text  node 4  a\\x0aforged\\x1b[2J\\u202e"
    assert all(char.isprintable() for char in done.stdout + done.stderr if char != "\n")
