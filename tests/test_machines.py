"""Machines: ``client.machine(id)`` and ``client.machines(search=...)`` on both clients, the
machine's ``auth_token`` kept out of everything the client hands out or records, and the
budgeted create that prices the machine's default GPU (issue 20 item 3)."""

from __future__ import annotations

import gzip
import json
import logging
import subprocess
import sys
from pathlib import Path
from typing import Any, Final

import pytest
from returns.result import Failure, Success

from cdsessions import CreateSessionBody, Machine, MachineGPU, SessionsClient
from cdsessions._core.observe import AttemptFinished
from cdsessions._core.wire import REDACTED
from cdsessions.errors import HttpError, InvalidRequest, OverBudget, ValidationFailed
from cdsessions.fake import FakeService, ManualClock
from cdsessions.fake.server import serve_in_thread
from cdsessions.fake.service import FAKE_AUTH_TOKEN_PREFIX, FakeMachine
from cdsessions.transports._cassette import CassetteTransport
from tests.support.faces import FORMS, open_face
from tests.support.hostile import Request, answer, hostile, response

KEY: Final = "sk-machines-0123456789abcdef"
MACHINE_ID: Final = "0d1e2f3a-4b5c-4d6e-8f70-8192a3b4c5d6"
TOKEN: Final = "mt/secret+TOKEN=0123456789abcdef"
#: The answer as the live server shapes it, the secret in the middle of it.
MACHINE_BODY: Final = {
    "id": MACHINE_ID,
    "name": "sdxl-workflows",
    "type": "comfy-deploy-serverless",
    "gpu": "L40S",
    "auth_token": TOKEN,
    "status": "ready",
    "machine_builder_version": "4",
    "machine_version_id": "9c1b2a3d-0000-4000-8000-00000000000a",
}


def _json(status: str, body: bytes, *headers: str) -> bytes:
    return response(
        status,
        "Content-Type: application/json",
        *headers,
        f"Content-Length: {len(body)}",
        body=body,
    )


def _machine_answers(request: Request) -> bytes:
    """The machine, the list, and the token in the forms a body can carry it."""
    if request.target.startswith("/api/machines"):
        spaced = json.dumps([MACHINE_BODY, {**MACHINE_BODY, "id": "m2"}], indent=2).encode()
        return _json("200 OK", spaced)
    if request.target.endswith("/gz"):
        packed = gzip.compress(json.dumps(MACHINE_BODY).encode())
        return _json("200 OK", packed, "Content-Encoding: gzip")
    return _json("200 OK", json.dumps(MACHINE_BODY, separators=(",", ":")).encode())


def _everything_shown(value: Any) -> str:
    """repr, str and every attribute of a result (and of what it holds), as text."""
    inner = value.unwrap() if isinstance(value, Success) else value.failure()
    items = inner if isinstance(inner, list) else [inner]
    shown = [repr(value), str(value)]
    for item in items:
        shown += [repr(item), str(item)]
        fields = getattr(item, "__struct_fields__", ())
        shown += [repr(getattr(item, name)) for name in fields]
    return "\n".join(shown)


@pytest.mark.parametrize("form", FORMS)
def test_the_auth_token_is_in_no_attribute_repr_log_line_or_observer_event(
    form: str, caplog: pytest.LogCaptureFixture
) -> None:
    events: list[Any] = []
    caplog.set_level(logging.DEBUG, logger="cdsessions")
    with hostile(answer(_machine_answers, keep_alive=True)) as server:
        face = open_face(form, KEY, server=server.base_url, observers=[events.append])
        try:
            one, listed = face.machine(MACHINE_ID), face.machines(search="sdxl")
            gz = face.machine("gz")  # the same machine, gzip-encoded
        finally:
            face.close()
        assert [r.target for r in server.requests][:2] == [
            f"/api/machine/{MACHINE_ID}",
            "/api/machines?search=sdxl",
        ]
    assert one.unwrap() == Machine(**{k: v for k, v in MACHINE_BODY.items() if k != "auth_token"})
    assert one.unwrap().gpu == "L40S"
    assert [m.id for m in listed.unwrap()] == [MACHINE_ID, "m2"]
    assert gz.unwrap() == one.unwrap()
    assert "auth_token" not in Machine.__struct_fields__
    for result in (one, listed, gz):
        assert TOKEN not in _everything_shown(result)
    finished = [event for event in events if isinstance(event, AttemptFinished)]
    assert len(finished) == 3
    for event in finished:  # observers get the body itself: the token is masked in it
        assert TOKEN.encode() not in event.outcome.unwrap().body
        assert REDACTED.encode() in event.outcome.unwrap().body
        assert TOKEN not in repr(event)
    assert len(caplog.records) >= 3  # one line per attempt at DEBUG
    assert TOKEN not in caplog.text


def test_a_body_the_model_cannot_decode_names_no_token_in_its_error() -> None:
    broken = json.dumps({**MACHINE_BODY, "gpu": 7}).encode()
    with hostile(answer(_json("200 OK", broken), keep_alive=True)) as server:
        client = SessionsClient(KEY, server=server.base_url)
        failed = client.machine(MACHINE_ID)
        client.close()
    assert isinstance(failed, Failure)
    assert "$.gpu" in str(failed.failure())
    assert TOKEN not in repr(failed.failure()) + str(failed.failure())


_RECORDING_TEST: Final = """
import os

import pytest

from cdsessions import SessionsClient


@pytest.fixture
def vcr_config():
    return {{"match_on": ["method", "path", "query"], "filter_headers": ["authorization"]}}


@pytest.mark.vcr
def test_machines():
    client = SessionsClient({key!r}, server=os.environ["SERVER"], retry=False)
    machine = client.machine({machine_id!r}).unwrap()
    assert machine.gpu == "L40S"
    assert len(client.machines(search="sdxl").unwrap()) == 2
    assert client.machine("gz").unwrap().id == {machine_id!r}
    client.close()
"""


def _pytest(folder: Path, server: str, *options: str) -> None:
    done = subprocess.run(
        [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", *options],
        cwd=folder,
        env={"SERVER": server, "PATH": "/usr/bin:/bin"},
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert done.returncode == 0, done.stdout + done.stderr


def test_a_recorded_cassette_holds_no_auth_token_and_still_replays(tmp_path: Path) -> None:
    (tmp_path / "test_record.py").write_text(_RECORDING_TEST.format(key=KEY, machine_id=MACHINE_ID))
    with hostile(answer(_machine_answers, keep_alive=True)) as server:
        _pytest(tmp_path, server.base_url, "--record-mode=once")
        assert len(server.requests) == 3
    written = sorted((tmp_path / "cassettes").rglob("*.yaml"))
    assert len(written) == 1
    data = written[0].read_bytes()
    assert TOKEN.encode() not in data
    assert b"auth_token" in data  # masked where it was, not dropped
    assert b"L40S" in data
    loaded = CassetteTransport.load(written[0])
    assert isinstance(loaded, Success)
    for interaction in loaded.unwrap().interactions:
        assert TOKEN.encode() not in interaction.response.body
    # ...and it replays with nothing listening (pytest-recording blocks the network).
    _pytest(tmp_path, "http://127.0.0.1:9/api", "--block-network")


# -- the fake's machine routes, through both clients ----------------------------------------


@pytest.mark.parametrize("form", FORMS)
def test_machines_from_the_fake_over_http(form: str) -> None:
    machines = [FakeMachine(MACHINE_ID, gpu="H100", name="SDXL big"), FakeMachine("m-2")]
    fake = FakeService(machines=machines)
    with serve_in_thread(fake) as base_url:
        face = open_face(form, KEY, server=base_url)
        try:
            got = face.machine(MACHINE_ID).unwrap()
            found = face.machines(search="sdxl").unwrap()
            everything = face.machines().unwrap()
            not_a_uuid = face.machine("not-a-uuid").failure()
            unknown = face.machine("0d1e2f3a-4b5c-4d6e-8f70-000000000000").failure()
        finally:
            face.close()
    assert (got.id, got.gpu, got.name) == (MACHINE_ID, "H100", "SDXL big")
    assert [m.id for m in found] == [MACHINE_ID]
    assert [m.id for m in everything] == [MACHINE_ID, "m-2"]
    assert isinstance(not_a_uuid, ValidationFailed)
    assert isinstance(unknown, HttpError)
    assert (unknown.status, unknown.detail) == (404, "Machine not found")
    assert FAKE_AUTH_TOKEN_PREFIX not in repr(got) + repr(found)


@pytest.mark.parametrize("bad", ["", " ", "..", "a" * 300, 7])
def test_a_bad_machine_id_or_search_is_refused_and_nothing_is_sent(bad: Any) -> None:
    fake = FakeService()
    with serve_in_thread(fake) as base_url:
        client = SessionsClient(KEY, server=base_url)
        refused = client.machine(bad).failure()
        wrong_search = client.machines(
            search=bad if not isinstance(bad, str) else "\ud800"
        ).failure()
        client.close()
    assert isinstance(refused, InvalidRequest)
    assert isinstance(wrong_search, InvalidRequest)
    assert (refused.field, wrong_search.field) == ("machine_id", "search")
    assert fake.requests_seen == ()


# -- the budget prices the machine's default GPU --------------------------------------------


def _budget_fake() -> FakeService:
    return FakeService(machines=[FakeMachine(MACHINE_ID, gpu="H100")], clock=ManualClock())


@pytest.mark.parametrize("form", FORMS)
def test_a_create_without_gpu_is_priced_at_the_machines_default_gpu(form: str) -> None:
    # 10 minutes of H100 at 0.002338 USD/s = 1.4028 USD; of A10G it would be 0.2022.
    fake = _budget_fake()
    body = CreateSessionBody(machine_id=MACHINE_ID, timeout=10)
    with serve_in_thread(fake) as base_url:
        face = open_face(form, KEY, server=base_url)
        try:
            over = face.create(body, max_cost="1.40").failure()
            within = face.create(body, max_cost="1.41")
            named = face.create(
                CreateSessionBody(machine_id=MACHINE_ID, gpu=MachineGPU.A10G, timeout=10),
                max_cost="0.21",
            )
            plain = face.create(body)
        finally:
            face.close()
    assert isinstance(over, OverBudget)
    assert "H100" in str(over)
    assert isinstance(within, Success)
    assert isinstance(named, Success)
    assert isinstance(plain, Success)
    machine_reads = [seen for seen in fake.requests_seen if seen[1].startswith("/machine/")]
    assert len(machine_reads) == 2  # only for the budgeted creates that named no GPU
    creates = [seen for seen in fake.requests_seen if seen == ("POST", "/session")]
    assert len(creates) == 3
    # the create itself still names no GPU: the server picks the machine's default
    assert fake.live_sessions()[0].gpu == "H100"


@pytest.mark.parametrize("form", FORMS)
def test_a_machine_that_cannot_be_read_refuses_the_budgeted_create_and_the_scope(
    form: str,
) -> None:
    fake = _budget_fake()
    fake.answer_next("GET /machine/*", 500, {"detail": "boom"}, times=10)
    body = CreateSessionBody(machine_id=MACHINE_ID, timeout=10)
    with serve_in_thread(fake) as base_url:
        face = open_face(form, KEY, server=base_url, retry=False)
        try:
            refused = face.create(body, max_cost=100).failure()
            with face.session(body, max_cost=100, wait=False) as started:
                scope_refused = started.failure()
        finally:
            face.close()
    for error in (refused, scope_refused):
        assert isinstance(error, HttpError)
        assert error.status == 500
        assert "default GPU could not be read" in str(error)
    assert ("POST", "/session") not in fake.requests_seen
    assert fake.live_sessions() == ()


@pytest.mark.parametrize("form", FORMS)
def test_a_machine_without_a_default_gpu_cannot_be_priced(form: str) -> None:
    fake = _budget_fake()
    no_gpu = {**MACHINE_BODY, "gpu": None}
    fake.answer_next("GET /machine/*", 200, no_gpu)
    with serve_in_thread(fake) as base_url:
        face = open_face(form, KEY, server=base_url)
        try:
            refused = face.create(CreateSessionBody(machine_id=MACHINE_ID), max_cost=100).failure()
        finally:
            face.close()
    assert isinstance(refused, OverBudget)
    assert "no default GPU" in str(refused)
    assert ("POST", "/session") not in fake.requests_seen
