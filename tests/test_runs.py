"""``SessionsClient.run`` end to end over real HTTP on 127.0.0.1 (cdsessions/client.py's run,
cdsessions/_runs.py): against the fake ComfyUI, and against hostile ones written byte by byte."""

from __future__ import annotations

import asyncio
import json
import os
import signal
import threading
from collections.abc import Callable
from decimal import Decimal
from pathlib import Path

import pytest
from returns.result import Result

from cdsessions import AsyncSessionsClient, CreateSessionBody, MachineGPU, SessionsClient
from cdsessions._core.wire import HttpRequest, HttpResponse
from cdsessions.comfy_models import RunProgress, RunResult
from cdsessions.costs import Unknown
from cdsessions.errors import (
    DecodeFailed,
    HttpError,
    InvalidRequest,
    RunFailed,
    RunTimedOut,
    TransportFailed,
)
from cdsessions.fake import DEFAULT_MACHINE_ID, FakeService, ManualClock, serve_in_thread
from cdsessions.fake.comfyui import FakeComfyUI, serve_comfyui
from cdsessions.testing import expect_failure, expect_success
from cdsessions.transports import Urllib3Transport
from tests.support.hostile import Request, answer, hostile, response

KEY = "cds_live_abcdefghijklmnop"
IMAGE = b"\x89PNG\r\n\x1a\nfake image bytes"
COPY = {
    "1": {"class_type": "LoadImage", "inputs": {"image": "in.png"}},
    "2": {"class_type": "SaveImage", "inputs": {"images": ["1", 0], "filename_prefix": "out"}},
    "3": {"class_type": "PrimitiveString", "inputs": {"value": "hello"}},
    "4": {"class_type": "PreviewAny", "inputs": {"source": ["3", 0]}},
}


def _client(clock: ManualClock | None = None) -> SessionsClient:
    return SessionsClient(KEY, server="local", clock=clock or ManualClock(), retry=False)


@pytest.fixture
def image(tmp_path: Path) -> Path:
    path = tmp_path / "in.png"
    path.write_bytes(IMAGE)
    return path


def test_a_run_uploads_queues_waits_and_brings_the_outputs_home(
    image: Path, tmp_path: Path
) -> None:
    clock = ManualClock()
    out = tmp_path / "out"
    seen: list[RunProgress] = []
    with serve_comfyui(FakeComfyUI(polls_before_done=3)) as (comfy, url), _client(clock) as client:
        before = clock.monotonic()
        result = expect_success(
            client.run(
                url, COPY, inputs=[image], outputs_to=out, poll_every=2.0, on_progress=seen.append
            )
        )
    stages = [(e.stage, e.polls, e.file, e.index, e.count) for e in seen]
    assert stages == [
        ("uploading", 0, "in.png", 1, 1),
        *(("waiting", polls, None, 0, 0) for polls in range(4)),
        ("downloading", 0, "out_00001_.png", 1, 1),
    ]
    assert [e.seconds for e in seen if e.stage == "waiting"] == [0.0, 2.0, 4.0, 6.0]
    assert isinstance(result, RunResult)
    assert [p.name for p in result.paths] == ["out_00001_.png"]
    assert result.paths[0].read_bytes() == IMAGE
    assert result.outputs[0].size == len(IMAGE)
    assert result.outputs[0].node_id == "2"
    assert result.texts == (("4", ("hello",)),)
    assert result.seconds == pytest.approx(6.0)  # three polls, 2 s apart, on the manual clock
    assert clock.monotonic() - before == pytest.approx(6.0)
    assert comfy.requests[:2] == ["POST /upload/image", "POST /prompt"]
    assert comfy.requests.count("GET /view") == 1
    assert sorted(os.listdir(out)) == ["out_00001_.png"]  # no temporary file left


def test_an_input_comfyui_renamed_is_used_by_its_new_name(image: Path, tmp_path: Path) -> None:
    comfy = FakeComfyUI()
    comfy.inputs["in.png"] = b"an older upload"
    with serve_comfyui(comfy) as (_, url), _client() as client:
        result = expect_success(client.run(url, COPY, inputs=[image], outputs_to=tmp_path / "o"))
    assert "in (1).png" in comfy.inputs
    assert result.paths[0].read_bytes() == IMAGE  # the run used the file just uploaded


def test_existing_files_are_never_overwritten(image: Path, tmp_path: Path) -> None:
    out = tmp_path / "out"
    out.mkdir()
    (out / "out_00001_.png").write_bytes(b"mine")
    with serve_comfyui() as (_, url), _client() as client:
        result = expect_success(client.run(url, COPY, inputs=[image], outputs_to=out))
    assert (out / "out_00001_.png").read_bytes() == b"mine"
    assert result.paths == (out / "out_00001_ (1).png",)


def test_node_errors_are_a_failure_naming_the_nodes(tmp_path: Path) -> None:
    broken = {"2": {"class_type": "SaveImage", "inputs": {"filename_prefix": "out"}}}
    with serve_comfyui() as (comfy, url), _client() as client:
        error = expect_failure(client.run(url, broken, outputs_to=tmp_path / "o"), RunFailed)
    assert [(n.node_id, n.class_type) for n in error.nodes] == [("2", "SaveImage")]
    assert "Required input is missing: images" in str(error)
    assert comfy.requests == ["POST /prompt"]


def test_an_unknown_node_type_is_a_failure_saying_which(tmp_path: Path) -> None:
    workflow = {"1": {"class_type": "NoSuchNode", "inputs": {}}}
    with serve_comfyui() as (_, url), _client() as client:
        error = expect_failure(client.run(url, workflow, outputs_to=tmp_path / "o"), RunFailed)
    assert "NoSuchNode does not exist" in str(error)


def test_a_run_that_fails_while_running_names_the_node(image: Path, tmp_path: Path) -> None:
    comfy = FakeComfyUI()
    comfy.fail_next_run("2", "CUDA out of memory")
    with serve_comfyui(comfy) as (_, url), _client() as client:
        error = expect_failure(
            client.run(url, COPY, inputs=[image], outputs_to=tmp_path / "o"), RunFailed
        )
    assert error.prompt_id is not None
    assert [(n.node_id, n.messages) for n in error.nodes] == [("2", ("CUDA out of memory",))]
    assert os.listdir(tmp_path / "o") == []


def test_a_late_run_is_interrupted(image: Path, tmp_path: Path) -> None:
    comfy = FakeComfyUI()
    comfy.stall()
    clock = ManualClock()
    with serve_comfyui(comfy) as (_, url), _client(clock) as client:
        got = client.run(
            url, COPY, inputs=[image], outputs_to=tmp_path / "o", timeout=30, poll_every=5
        )
    error = expect_failure(got, RunTimedOut)
    assert error.interrupted
    assert error.waited == pytest.approx(30.0)
    assert comfy.interrupts == 1
    assert comfy.requests[-1] == "POST /interrupt"
    assert comfy.requests.count("GET /history/" + error.prompt_id) == 7  # at 0, 5, ... 30 s


def test_bad_input_sends_nothing(tmp_path: Path) -> None:
    with serve_comfyui() as (comfy, url), _client() as client:
        missing = client.run(url, COPY, inputs=[tmp_path / "nope.png"], outputs_to=tmp_path / "o")
        ui_format = client.run(url, {"nodes": []}, outputs_to=tmp_path / "o")
        (tmp_path / "file").write_text("x")
        under_a_file = client.run(url, COPY, outputs_to=tmp_path / "file" / "x")
        a_file = client.run(url, COPY, outputs_to=tmp_path / "file")
    assert expect_failure(missing, InvalidRequest).field == "inputs"
    assert expect_failure(ui_format, InvalidRequest).field == "workflow"
    assert expect_failure(a_file, InvalidRequest).field == "outputs_to"
    assert expect_failure(under_a_file, InvalidRequest).field == "outputs_to"
    assert comfy.requests == []


def test_ctrl_c_while_waiting_interrupts_comfyui_first(image: Path, tmp_path: Path) -> None:
    comfy = FakeComfyUI()
    comfy.stall()
    clock = ManualClock()
    polls = 0

    def sleep(seconds: float) -> None:  # the second wait is where Ctrl-C lands
        nonlocal polls
        polls += 1
        if polls == 2:
            os.kill(os.getpid(), signal.SIGINT)
        clock.advance(seconds)

    clock.sleep = sleep  # type: ignore[method-assign]
    assert threading.current_thread() is threading.main_thread()
    with (
        serve_comfyui(comfy) as (_, url),
        _client(clock) as client,
        pytest.raises(KeyboardInterrupt),
    ):
        client.run(url, COPY, inputs=[image], outputs_to=tmp_path / "o", timeout=600)
    assert comfy.interrupts == 1
    assert comfy.requests[-1] == "POST /interrupt"


# -- a hostile ComfyUI, byte by byte --------------------------------------------------------


def _hostile_comfy(
    history: bytes, view: bytes, before_view: Callable[[], object] = lambda: None
) -> object:
    def reply(request: Request) -> bytes:
        path = request.target.split("?")[0]
        if path.endswith("/view"):
            before_view()
        if path.endswith("/prompt"):
            body = json.dumps({"prompt_id": "p", "number": 0, "node_errors": {}}).encode()
        elif "/history/" in path:
            return history
        elif path.endswith("/view"):
            return view
        else:
            body = b""
        return response(
            "200 OK", "Content-Type: application/json", f"Content-Length: {len(body)}", body=body
        )

    return answer(reply, keep_alive=True)


def _history(*names: str) -> bytes:
    files = [{"filename": n, "subfolder": "", "type": "output"} for n in names]
    entry = {
        "p": {
            "outputs": {"9": {"images": files}},
            "status": {"status_str": "success", "completed": True},
        }
    }
    body = json.dumps(entry).encode()
    return response(
        "200 OK", "Content-Type: application/json", f"Content-Length: {len(body)}", body=body
    )


def _file(data: bytes) -> bytes:
    return response("200 OK", "Content-Type: image/png", f"Content-Length: {len(data)}", body=data)


def test_output_names_cannot_escape_the_directory(tmp_path: Path) -> None:
    out = tmp_path / "deep" / "out"
    names = ("../../escape.png", "/etc/passwd", "..", "NUL", "a:b.png")
    with hostile(_hostile_comfy(_history(*names), _file(b"data"))) as server, _client() as client:  # type: ignore[arg-type]
        result = expect_success(client.run(server.base_url, COPY, outputs_to=out))
    assert all(path.parent == out for path in result.paths)
    assert sorted(p.name for p in result.paths) == sorted(
        ["escape.png", "etc_passwd", "output", "_NUL", "a_b.png"]
    )
    assert sorted(os.listdir(tmp_path)) == ["deep"]
    assert sorted(os.listdir(tmp_path / "deep")) == ["out"]


def test_a_file_name_that_cannot_be_requested_fails_before_any_download(tmp_path: Path) -> None:
    script = _hostile_comfy(_history("fine.png", "a\x00b.png"), _file(b"data"))
    with hostile(script) as server, _client() as client:  # type: ignore[arg-type]
        got = client.run(server.base_url, COPY, outputs_to=tmp_path)
    assert "outputs" in expect_failure(got, DecodeFailed).where
    assert os.listdir(tmp_path) == []
    assert not any("/view" in target for target in server.targets())


def test_a_file_over_the_cap_is_refused_and_leaves_nothing(tmp_path: Path) -> None:
    huge = response(
        "200 OK", "Content-Type: image/png", f"Content-Length: {10**10}", body=b"x" * 65536
    )
    with hostile(_hostile_comfy(_history("big.png"), huge)) as server, _client() as client:  # type: ignore[arg-type]
        got = client.run(server.base_url, COPY, outputs_to=tmp_path, max_file_bytes=4096)
    assert expect_failure(got, TransportFailed).kind == "too_large"
    assert os.listdir(tmp_path) == []


def test_a_history_that_never_completes_ends_at_the_deadline(tmp_path: Path) -> None:
    running = response("200 OK", "Content-Type: application/json", "Content-Length: 2", body=b"{}")
    with hostile(_hostile_comfy(running, b"")) as server, _client() as client:  # type: ignore[arg-type]
        got = client.run(server.base_url, COPY, outputs_to=tmp_path, timeout=20, poll_every=10)
    error = expect_failure(got, RunTimedOut)
    assert error.interrupted
    assert server.targets()[-1].endswith("/interrupt")


def test_invalid_json_from_the_history_is_a_decode_failure(tmp_path: Path) -> None:
    garbage = response(
        "200 OK", "Content-Type: application/json", "Content-Length: 9", body=b'{"p": {"o'
    )
    with hostile(_hostile_comfy(garbage, b"")) as server, _client() as client:  # type: ignore[arg-type]
        got = client.run(server.base_url, COPY, outputs_to=tmp_path)
    assert isinstance(expect_failure(got, DecodeFailed), DecodeFailed)


def test_the_api_key_never_reaches_comfyui(image: Path, tmp_path: Path) -> None:
    seen: list[Request] = []

    def reply(request: Request) -> bytes:
        seen.append(request)
        return _history()

    with hostile(answer(reply, keep_alive=True)) as server, _client() as client:
        client.run(server.base_url, COPY, inputs=[image], outputs_to=tmp_path)
    assert seen
    for request in seen:
        assert request.header("Authorization") is None
        assert KEY.encode() not in request.body


# -- the asyncio client drives the same steps -----------------------------------------------


def test_the_async_client_runs_and_brings_the_outputs_home(image: Path, tmp_path: Path) -> None:
    async def run(url: str) -> RunResult:
        async with AsyncSessionsClient(KEY, server="local", clock=ManualClock()) as client:
            got = await client.run(url, COPY, inputs=[image], outputs_to=tmp_path / "out")
            return expect_success(got)

    with serve_comfyui(FakeComfyUI(polls_before_done=2)) as (_, url):
        result = asyncio.run(run(url))
    assert [p.read_bytes() for p in result.paths] == [IMAGE]
    assert result.texts == (("4", ("hello",)),)


def test_the_async_client_interrupts_a_late_run(image: Path, tmp_path: Path) -> None:
    comfy = FakeComfyUI()
    comfy.stall()

    async def run(url: str) -> object:
        async with AsyncSessionsClient(KEY, server="local", clock=ManualClock()) as client:
            return await client.run(url, COPY, inputs=[image], outputs_to=tmp_path, timeout=10)

    with serve_comfyui(comfy) as (_, url):
        got = asyncio.run(run(url))
    assert expect_failure(got, RunTimedOut).interrupted  # type: ignore[arg-type]
    assert comfy.interrupts == 1


def test_a_cancelled_async_run_interrupts_comfyui_first(image: Path, tmp_path: Path) -> None:
    comfy = FakeComfyUI()
    comfy.stall()

    async def run(url: str) -> None:
        async with AsyncSessionsClient(KEY, server="local") as client:
            task = asyncio.ensure_future(
                client.run(url, COPY, inputs=[image], outputs_to=tmp_path, poll_every=0.05)
            )
            while not any(r.startswith("GET /history/") for r in comfy.requests):
                await asyncio.sleep(0.01)
            task.cancel()
            with pytest.raises(asyncio.CancelledError):
                await task

    with serve_comfyui(comfy) as (_, url):
        asyncio.run(run(url))
    assert comfy.interrupts == 1
    assert comfy.requests[-1] == "POST /interrupt"


def test_a_failed_download_is_an_http_error_and_leaves_nothing(tmp_path: Path) -> None:
    gone = response("404 Not Found", "Content-Type: text/plain", "Content-Length: 3", body=b"404")
    with hostile(_hostile_comfy(_history("a.png"), gone)) as server, _client() as client:  # type: ignore[arg-type]
        got = client.run(server.base_url, COPY, outputs_to=tmp_path)
    assert expect_failure(got, HttpError).status == 404
    assert os.listdir(tmp_path) == []


# -- what a run cost (RunResult.cost, from cdsessions/_core/pricing.py run_cost) --------------

PRICED_BODY = CreateSessionBody(machine_id=DEFAULT_MACHINE_ID, gpu=MachineGPU.A10G)
PRICED = {
    "1": {"class_type": "PrimitiveString", "inputs": {"value": "made"}},
    "2": {"class_type": "SaveImage", "inputs": {"images": ["1", 0], "filename_prefix": "x"}},
}
PRICE_FETCH = ("GET", "/platform/gpu-pricing")


def _slowed(fake: FakeService, session_id: str) -> None:
    """Three polls, 2 s apart on the manual clock: the run takes 6 s exactly."""
    comfy = fake.comfyui(session_id)
    assert comfy is not None
    comfy.polls_before_done = 3


def _priced_run(fake: FakeService, out: Path) -> RunResult:
    with serve_in_thread(fake) as url:
        client = SessionsClient(KEY, server=url, clock=ManualClock(), retry=False)
        with client, client.session(PRICED_BODY) as started:
            opened = expect_success(started)
            _slowed(fake, opened.session_id)
            return expect_success(client.run(opened, PRICED, outputs_to=out, poll_every=2.0))


async def _priced_async_run(fake: FakeService, url: str, out: Path) -> RunResult:
    client = AsyncSessionsClient(KEY, server=url, clock=ManualClock(), retry=False)
    async with client, client.session(PRICED_BODY) as started:
        opened = expect_success(started)
        _slowed(fake, opened.session_id)
        ran = await client.run(opened, PRICED, outputs_to=out, poll_every=2.0)
        return expect_success(ran)


def test_a_run_carries_its_exact_cost_at_the_gpus_price(tmp_path: Path) -> None:
    fake = FakeService(comfyui=True, prices={"A10G": "0.5"})
    result = _priced_run(fake, tmp_path)
    assert result.seconds == 6.0
    assert result.cost == Decimal("3.0")  # 6 s x 0.5 USD/s, exactly
    assert fake.requests_seen.count(PRICE_FETCH) == 1  # fetched once for the run


def test_the_async_client_carries_the_same_cost(tmp_path: Path) -> None:
    fake = FakeService(comfyui=True, prices={"A10G": "0.5"})
    with serve_in_thread(fake) as url:
        result = asyncio.run(_priced_async_run(fake, url, tmp_path))
    assert result.seconds == 6.0
    assert result.cost == Decimal("3.0")
    assert fake.requests_seen.count(PRICE_FETCH) == 1


def test_a_gpu_missing_from_the_price_table_makes_the_cost_unknown(tmp_path: Path) -> None:
    result = _priced_run(FakeService(comfyui=True, prices={"H100": "0.002778"}), tmp_path)
    assert isinstance(result.cost, Unknown)
    assert "A10G" in result.cost.reason
    assert "not in the price table" in result.cost.reason
    assert result.paths[0].read_bytes() == b"made"  # the run itself stands


@pytest.mark.parametrize("async_client", [False, True])
def test_a_failed_price_fetch_never_fails_the_run(tmp_path: Path, async_client: bool) -> None:
    fake = FakeService(comfyui=True)
    fake.answer_next("pricing", 503, {"detail": "down"})
    if async_client:
        with serve_in_thread(fake) as url:
            result = asyncio.run(_priced_async_run(fake, url, tmp_path))
    else:
        result = _priced_run(fake, tmp_path)
    assert isinstance(result.cost, Unknown)
    assert "could not be fetched (http)" in result.cost.reason
    assert result.paths[0].read_bytes() == b"made"


def test_an_absurd_price_on_the_wire_makes_the_cost_unknown_not_an_exception(
    tmp_path: Path,
) -> None:
    result = _priced_run(FakeService(comfyui=True, prices={"A10G": "9e999999"}), tmp_path)
    assert isinstance(result.cost, Unknown)
    assert "could not be fetched (decode)" in result.cost.reason


def test_a_run_on_a_bare_url_is_not_priced_and_asks_for_no_prices(tmp_path: Path) -> None:
    fake = FakeService(comfyui=True)
    with serve_in_thread(fake) as url:
        client = SessionsClient(KEY, server=url, clock=ManualClock(), retry=False)
        with client, client.session(PRICED_BODY) as started:
            bare = expect_success(started).url
            result = expect_success(client.run(bare, PRICED, outputs_to=tmp_path))
    assert isinstance(result.cost, Unknown)
    assert "no GPU named" in result.cost.reason
    assert PRICE_FETCH not in fake.requests_seen


def test_inputs_that_are_not_a_list_or_that_share_a_name_are_refused_saying_why(
    image: Path, tmp_path: Path
) -> None:
    twin = tmp_path / "twin"
    twin.mkdir()
    (twin / image.name).write_bytes(IMAGE)
    with serve_comfyui() as (comfy, url), _client() as client:
        one_path = client.run(url, COPY, inputs=str(image), outputs_to=tmp_path / "o")
        same_name = client.run(url, COPY, inputs=[image, twin / image.name], outputs_to=tmp_path)
    not_a_list = expect_failure(one_path, InvalidRequest)
    assert not_a_list.field == "inputs"
    assert not_a_list.problem == "must be a list of paths or a mapping of name to path"
    clash = expect_failure(same_name, InvalidRequest)
    assert clash.field == "inputs"
    assert clash.problem == "two inputs have the same name"
    assert comfy.requests == []


def test_an_empty_output_file_is_brought_home_empty(tmp_path: Path) -> None:
    with hostile(_hostile_comfy(_history("empty.png"), _file(b""))) as server, _client() as client:  # type: ignore[arg-type]
        result = expect_success(client.run(server.base_url, COPY, outputs_to=tmp_path))
    assert [(p.name, p.read_bytes()) for p in result.paths] == [("empty.png", b"")]
    assert os.listdir(tmp_path) == ["empty.png"]  # no temporary file left beside it


@pytest.mark.parametrize("data", [b"", b"image bytes"], ids=["empty", "with-bytes"])
def test_an_output_directory_removed_during_the_download_is_a_write_failure(
    tmp_path: Path, data: bytes
) -> None:
    out = tmp_path / "out"
    # Removed as another program might, just before the file is written.
    comfy = _hostile_comfy(_history("out.png"), _file(data), before_view=out.rmdir)
    with hostile(comfy) as server, _client() as client:  # type: ignore[arg-type]
        got = client.run(server.base_url, COPY, outputs_to=out)
    failed = expect_failure(got, TransportFailed)
    assert "could not write the file: FileNotFoundError" in str(failed)
    assert not out.exists()


class _CannotStream:
    """An asyncio transport with ``send`` only (no ``astream``): downloads come whole."""

    def __init__(self) -> None:
        self._inner = Urllib3Transport()

    async def send(self, request: HttpRequest) -> Result[HttpResponse, TransportFailed]:
        return await asyncio.to_thread(self._inner.send, request)

    async def aclose(self) -> None:
        self._inner.close()


def test_the_async_client_brings_the_outputs_home_over_a_transport_that_cannot_stream(
    image: Path, tmp_path: Path
) -> None:
    async def run(url: str) -> RunResult:
        transport = _CannotStream()
        async with AsyncSessionsClient(KEY, transport=transport, clock=ManualClock()) as client:
            got = await client.run(url, COPY, inputs=[image], outputs_to=tmp_path / "out")
        await transport.aclose()
        return expect_success(got)

    with serve_comfyui(FakeComfyUI(polls_before_done=2)) as (_, url):
        result = asyncio.run(run(url))
    assert [p.read_bytes() for p in result.paths] == [IMAGE]
    assert os.listdir(tmp_path / "out") == [result.paths[0].name]  # no temporary file left
