"""``client.comfy(session)`` over real HTTP on 127.0.0.1 (cdsessions/comfy.py): what goes over
the wire, what comes back, and that the session's URL and the API key stay secret."""

from __future__ import annotations

import asyncio
import json
import logging
from collections.abc import Iterator
from contextlib import contextmanager

import pytest
from returns.result import Failure, Success

from cdsessions import AsyncSessionsClient, SessionsClient
from cdsessions.comfy_models import ComfyFile, PromptQueued, PromptRejected
from cdsessions.errors import DecodeFailed, HttpError, InvalidRequest, TransportFailed
from cdsessions.fake import ManualClock
from cdsessions.testing import expect_failure
from tests.support.loopback import LoopbackServer, Raw, Received, Reply, serve

KEY = "cds_live_abcdefghijklmnop"
SECRET = "s3cr3t-tunnel"  # in the session URL's path: must never be shown
WORKFLOW = {"1": {"class_type": "SaveImage", "inputs": {"images": ["2", 0]}}}


def _reply(body: object, status: int = 200) -> Reply:
    return Reply(status, json.dumps(body).encode())


def _comfy(received: Received) -> Reply | Raw:
    path = received.target.split("?", 1)[0]
    if path.endswith("/prompt"):
        return _reply({"prompt_id": "p-1", "number": 0, "node_errors": {}})
    if path.endswith("/history/p-1"):
        files = {"images": [{"filename": "o.png", "subfolder": "", "type": "output"}]}
        entry = {"outputs": {"1": files}, "status": {"status_str": "success", "completed": True}}
        return _reply({"p-1": entry})
    if path.endswith("/queue"):
        return _reply({"queue_running": [], "queue_pending": []})
    if path.endswith("/view"):
        return Reply(200, b"PNGDATA", (("Content-Type", "image/png"),))
    if path.endswith("/upload/image"):
        return _reply({"name": "in.png", "subfolder": "", "type": "input"})
    if path.endswith("/interrupt"):
        return Reply(200, b"", ())
    if path.endswith("/system_stats"):
        return _reply({"system": {"comfyui_version": "0.3.40"}, "devices": []})
    return Reply(404, b"404: Not Found", (("Content-Type", "text/plain"),))


@contextmanager
def _session_url(script: object = _comfy) -> Iterator[tuple[LoopbackServer, str]]:
    with serve(script) as server:  # type: ignore[arg-type]
        yield server, f"http://127.0.0.1:{server.port}/{SECRET}"


def _client() -> SessionsClient:
    return SessionsClient(KEY, server="local", clock=ManualClock(), retry=False)


def test_every_route_goes_to_the_session_url_without_the_api_key() -> None:
    with _session_url() as (server, url), _client() as client:
        comfy = client.comfy(url)
        assert comfy.prompt(WORKFLOW) == Success(PromptQueued("p-1", 0))
        history = comfy.history("p-1").unwrap()
        assert history.files == (ComfyFile("o.png"),)
        assert comfy.queue().unwrap().running == ()
        assert comfy.view(history.files[0]) == Success(b"PNGDATA")
        assert comfy.upload("in.png", b"data") == Success(ComfyFile("in.png", "", "input"))
        assert comfy.interrupt() == Success(None)
        assert comfy.system_stats().unwrap().comfyui_version == "0.3.40"
    targets = [(r.method, r.target.split("?")[0]) for r in server.received]
    assert targets == [
        ("POST", f"/{SECRET}/prompt"),
        ("GET", f"/{SECRET}/history/p-1"),
        ("GET", f"/{SECRET}/queue"),
        ("GET", f"/{SECRET}/view"),
        ("POST", f"/{SECRET}/upload/image"),
        ("POST", f"/{SECRET}/interrupt"),
        ("GET", f"/{SECRET}/system_stats"),
    ]
    for received in server.received:
        assert "authorization" not in {name.lower() for name in received.headers}
        assert KEY not in json.dumps(received.headers)
        assert KEY.encode() not in received.body


def test_the_async_client_drives_the_same_steps() -> None:
    async def run(url: str) -> None:
        async with AsyncSessionsClient(KEY, server="local", retry=False) as client:
            comfy = client.comfy(url)
            assert (await comfy.prompt(WORKFLOW)).unwrap() == PromptQueued("p-1", 0)
            assert (await comfy.history("p-1")).unwrap().files == (ComfyFile("o.png"),)
            assert (await comfy.view(ComfyFile("o.png"))).unwrap() == b"PNGDATA"

    with _session_url() as (server, url):
        asyncio.run(run(url))
    assert len(server.received) == 3


def test_a_session_object_is_used_by_its_url() -> None:
    class Held:  # what Session and CreateSessionResponse look like to comfy()
        def __init__(self, url: str | None) -> None:
            self.url = url

    with _session_url() as (server, url), _client() as client:
        assert client.comfy(Held(url)).queue().unwrap().pending == ()
        not_up = client.comfy(Held(None)).queue()
    assert isinstance(not_up, Failure)
    assert isinstance(not_up.failure(), InvalidRequest)
    assert len(server.received) == 1


def test_a_bad_workflow_sends_nothing() -> None:
    with _session_url() as (server, url), _client() as client:
        got = client.comfy(url).prompt({"nodes": [], "links": []})
    assert expect_failure(got, InvalidRequest).field == "workflow"
    assert server.received == []


def test_rejected_nodes_come_back_as_a_value() -> None:
    body = {
        "error": {
            "type": "prompt_outputs_failed_validation",
            "message": "Prompt outputs failed validation",
        },
        "node_errors": {
            "1": {
                "errors": [{"message": "Required input is missing", "details": "images"}],
                "class_type": "SaveImage",
            }
        },
    }
    with _session_url(lambda r: _reply(body, 400)) as (_server, url), _client() as client:
        got = client.comfy(url).prompt(WORKFLOW).unwrap()
    assert isinstance(got, PromptRejected)
    assert [(e.node_id, e.class_type) for e in got.node_errors] == [("1", "SaveImage")]


def test_invalid_json_is_a_decode_failure() -> None:
    answer = Reply(200, b'{"p-1": {"outputs": ', (("Content-Type", "application/json"),))
    with _session_url(lambda r: answer) as (_server, url), _client() as client:
        got = client.comfy(url).history("p-1")
    assert isinstance(got, Failure)
    assert isinstance(got.failure(), DecodeFailed)


def test_a_file_over_the_cap_is_refused() -> None:
    big = Reply(200, b"x" * 4096, (("Content-Type", "image/png"),))
    with _session_url(lambda r: big) as (_server, url), _client() as client:
        got = client.comfy(url).view(ComfyFile("o.png"), max_bytes=1024)
    assert expect_failure(got, TransportFailed).kind == "too_large"


def test_the_session_url_is_in_no_failure_event_or_log(caplog: pytest.LogCaptureFixture) -> None:
    seen: list[str] = []
    observers = [lambda e: seen.append(repr(e))]
    client = SessionsClient(KEY, server="local", retry=False, observers=observers)
    with _session_url(lambda r: _reply({"detail": "boom"}, 500)) as (_server, url), client:
        caplog.set_level(logging.DEBUG, logger="cdsessions")
        caplog.set_level(logging.DEBUG, logger="urllib3")
        failures = [client.comfy(url).queue(), client.comfy(url).prompt(WORKFLOW)]
        gone = client.comfy("http://127.0.0.1:9/" + SECRET).queue()  # nothing listens
    failures.append(gone)
    assert all(isinstance(f, Failure) for f in failures)
    assert isinstance(failures[0].failure(), HttpError)
    assert seen  # the observer saw every attempt
    # urllib3's own DEBUG lines too: they name what it connects to (masked by the transport).
    ours = [r.getMessage() for r in caplog.records]
    assert any(r.name.startswith("urllib3") for r in caplog.records)
    shown = " ".join([*seen, *ours, *(str(f.failure()) + repr(f.failure()) for f in failures)])
    assert SECRET not in shown
    assert SECRET not in repr(client.comfy(url))
