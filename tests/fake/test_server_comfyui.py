"""The fake server serves each session's ComfyUI at its url (cdsessions/fake/server.py,
cdsessions/fake/service.py): a run end to end over real HTTP, session scope included."""

from __future__ import annotations

import asyncio
from pathlib import Path

from cdsessions import AsyncSessionsClient, CreateSessionBody, RunResult, SessionsClient
from cdsessions.errors import HttpError, InvalidRequest
from cdsessions.fake import DEFAULT_MACHINE_ID, FakeService, ManualClock, serve_in_thread
from cdsessions.testing import expect_failure, expect_success

KEY = "cds_live_abcdefghijklmnop"
BODY = CreateSessionBody(machine_id=DEFAULT_MACHINE_ID)
WORKFLOW = {
    "1": {"class_type": "PrimitiveString", "inputs": {"value": "made on the fake"}},
    "2": {"class_type": "SaveImage", "inputs": {"images": ["1", 0], "filename_prefix": "x"}},
}


def test_a_session_url_reaches_its_comfyui_and_stays_secret(tmp_path: Path) -> None:
    fake = FakeService(comfyui=True)
    with serve_in_thread(fake) as url:
        client = SessionsClient(KEY, server=url, clock=ManualClock())
        with client, client.session(BODY) as started:
            opened = expect_success(started)
            assert opened.url is not None
            assert opened.url.startswith("http://127.0.0.1:")  # reachable, and still secret:
            assert opened.url.endswith(".r5.modal.localhost")  # the tunnel's name is kept
            assert "modal.localhost" not in repr(opened)
            result = expect_success(client.run(opened, WORKFLOW, outputs_to=tmp_path))
            assert fake.comfyui(opened.session_id) is not None
        gone = client.get(opened.session_id)  # the scope cancelled it
    assert expect_failure(gone, HttpError).status == 404
    assert result.paths[0].read_bytes() == b"made on the fake"


def test_the_scope_runs_on_its_own_session(tmp_path: Path) -> None:
    with serve_in_thread(FakeService(comfyui=True)) as url:
        client = SessionsClient(KEY, server=url, clock=ManualClock())
        scope = client.session(BODY)
        early = scope.run(WORKFLOW, outputs_to=tmp_path)
        with client, scope as started:
            expect_success(started)
            result = expect_success(scope.run(WORKFLOW, outputs_to=tmp_path))
    assert expect_failure(early, InvalidRequest).field == "session"
    assert [p.name for p in result.paths] == ["x_00001_.png"]


def test_an_ended_sessions_comfyui_is_gone() -> None:
    fake = FakeService(comfyui=True)
    with serve_in_thread(fake) as url:
        client = SessionsClient(KEY, server=url, retry=False)
        with client, client.session(BODY) as started:
            opened = expect_success(started)
            fake.end_session(opened.session_id)
            got = client.comfy(opened).queue()
    assert expect_failure(got, HttpError).status == 404


def test_the_async_scope_runs_on_its_own_session(tmp_path: Path) -> None:
    async def run(url: str) -> tuple[object, RunResult]:
        async with AsyncSessionsClient(KEY, server=url, clock=ManualClock()) as client:
            scope = client.session(BODY)
            early = await scope.run(WORKFLOW, outputs_to=tmp_path)
            async with scope as started:
                expect_success(started)
                return early, expect_success(await scope.run(WORKFLOW, outputs_to=tmp_path))

    fake = FakeService(comfyui=True)
    with serve_in_thread(fake) as url:
        early, result = asyncio.run(run(url))
    assert expect_failure(early, InvalidRequest).field == "session"  # type: ignore[arg-type]
    assert result.paths[0].read_bytes() == b"made on the fake"
    assert fake.live_sessions() == ()


def test_without_comfyui_the_urls_stay_the_tunnel_form() -> None:
    with serve_in_thread(FakeService()) as url:
        client = SessionsClient(KEY, server=url, clock=ManualClock())
        with client, client.session(BODY) as started:
            opened = expect_success(started)
    assert opened.url is not None
    assert opened.url.startswith("https://fake-")
