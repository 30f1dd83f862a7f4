"""A workflow run recorded as a cassette replays through ``CassetteTransport``
(cdsessions/transports/_cassette.py): the same files, byte for byte, with no server at all, and
the recording holds no API key and no session url."""

from __future__ import annotations

import os
from pathlib import Path

import vcr

from cdsessions import SessionsClient
from cdsessions.fake import ManualClock, serve_comfyui
from cdsessions.testing import expect_success
from cdsessions.transports import CassetteTransport

KEY = "cds_live_abcdefghijklmnop"
# In its own folder: cassettes/*.yaml are the session API scenarios (test_cassette_recordings).
RECORDED = Path(__file__).resolve().parents[2] / "cassettes" / "comfyui" / "run.yaml"
#: Any session url: a cassette is matched by path, whatever the base URL.
ELSEWHERE = "https://ta-01jreplayed.r5.modal.host"
WORKFLOW = {
    "1": {"class_type": "LoadImage", "inputs": {"image": "in.png"}},
    "2": {"class_type": "SaveImage", "inputs": {"images": ["1", 0], "filename_prefix": "o"}},
    "3": {"class_type": "PrimitiveString", "inputs": {"value": "recorded"}},
    "4": {"class_type": "PreviewAny", "inputs": {"source": ["3", 0]}},
}


def _replayed(cassette: Path, tmp_path: Path) -> tuple[list[tuple[str, bytes]], object]:
    image = tmp_path / "in.png"
    image.write_bytes(b"PNG from the recording")
    transport = CassetteTransport.load(cassette, base_path="").unwrap()
    client = SessionsClient(KEY, server="local", transport=transport, clock=ManualClock())
    result = expect_success(
        client.run(ELSEWHERE, WORKFLOW, inputs=[image], outputs_to=tmp_path / "out")
    )
    assert transport.all_played
    return [(p.name, p.read_bytes()) for p in result.paths], result.texts


def test_a_run_recorded_replays(tmp_path: Path) -> None:
    cassette = tmp_path / "run.yaml"
    image = tmp_path / "in.png"
    image.write_bytes(b"PNG from the recording")
    client = SessionsClient(KEY, server="local", clock=ManualClock())
    recorder = vcr.VCR(record_mode="all").use_cassette(str(cassette))
    with serve_comfyui() as (_, url), recorder, client:
        live = expect_success(
            client.run(url, WORKFLOW, inputs=[image], outputs_to=tmp_path / "live")
        )
    text = cassette.read_text(encoding="utf-8")
    assert KEY not in text
    assert "uthorization" not in text
    replay_dir = tmp_path / "replay"
    replay_dir.mkdir()
    files, texts = _replayed(cassette, replay_dir)
    assert files == [(p.name, p.read_bytes()) for p in live.paths]
    assert texts == live.texts


def test_the_committed_cassette_of_a_run_replays(tmp_path: Path) -> None:
    files, texts = _replayed(RECORDED, tmp_path)
    assert files == [("o_00001_.png", b"PNG from the recording")]
    assert texts == (("4", ("recorded",)),)
    assert ".modal." not in RECORDED.read_text(encoding="utf-8")
    assert os.listdir(tmp_path / "out") == ["o_00001_.png"]
