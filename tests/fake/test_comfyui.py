"""The fake ComfyUI (cdsessions/fake/comfyui.py): it refuses workflows the way ComfyUI does,
runs its few nodes deterministically, keeps history, serves files and can be scripted."""

from __future__ import annotations

import json
from typing import Any

from cdsessions._core.comfy import build_upload
from cdsessions.fake import FakeComfyUI


def _post(comfy: FakeComfyUI, workflow: object) -> tuple[int, Any]:
    status, _, body = comfy.handle("POST", "/prompt", json.dumps({"prompt": workflow}).encode())
    return status, json.loads(body)


def _history(comfy: FakeComfyUI, prompt_id: str) -> Any:
    return json.loads(comfy.handle("GET", f"/history/{prompt_id}", b"")[2])


SAVE_TEXT = {
    "1": {"class_type": "PrimitiveString", "inputs": {"value": "hi"}},
    "2": {"class_type": "SaveImage", "inputs": {"images": ["1", 0], "filename_prefix": "t"}},
}


def test_unknown_node_types_are_refused_like_comfyui() -> None:
    status, body = _post(FakeComfyUI(), {"7": {"class_type": "Nope", "inputs": {}}})
    assert status == 400
    assert body["error"]["type"] == "invalid_prompt"
    assert "Nope does not exist" in body["error"]["message"]


def test_missing_inputs_and_bad_links_are_node_errors() -> None:
    workflow = {"2": {"class_type": "SaveImage", "inputs": {"images": ["9", 0]}}}
    status, body = _post(FakeComfyUI(), workflow)
    assert status == 400
    kinds = [e["type"] for e in body["node_errors"]["2"]["errors"]]
    assert kinds == ["bad_linked_input", "required_input_missing"]
    assert body["node_errors"]["2"]["class_type"] == "SaveImage"
    # ComfyUI's error object, with every field a caller may read.
    assert body["error"] == {
        "type": "prompt_outputs_failed_validation",
        "message": "Prompt outputs failed validation",
        "details": "",
        "extra_info": {},
    }


def test_a_workflow_without_outputs_is_refused() -> None:
    status, body = _post(
        FakeComfyUI(), {"1": {"class_type": "PrimitiveString", "inputs": {"value": "x"}}}
    )
    assert (status, body["error"]["type"]) == (400, "prompt_no_outputs")


def test_a_run_finishes_after_the_polls_asked_and_is_served() -> None:
    comfy = FakeComfyUI(polls_before_done=2)
    _, queued = _post(comfy, SAVE_TEXT)
    prompt_id = queued["prompt_id"]
    assert _history(comfy, prompt_id) == {}
    assert _history(comfy, prompt_id) == {}
    entry = _history(comfy, prompt_id)[prompt_id]
    assert entry["status"]["completed"] is True
    (image,) = entry["outputs"]["2"]["images"]
    assert image == {"filename": "t_00001_.png", "subfolder": "", "type": "output"}
    status, _, data = comfy.handle("GET", "/view?filename=t_00001_.png&subfolder=&type=output", b"")
    assert (status, data) == (200, b"hi")
    assert comfy.handle("GET", "/view?filename=../x&type=output", b"")[0] == 404


def test_a_stalled_run_stays_queued_until_interrupted() -> None:
    comfy = FakeComfyUI()
    comfy.stall()
    _, queued = _post(comfy, SAVE_TEXT)
    prompt_id = queued["prompt_id"]
    assert _history(comfy, prompt_id) == {}
    queue = json.loads(comfy.handle("GET", "/queue", b"")[2])
    assert queue["queue_running"][0][1] == prompt_id
    assert comfy.handle("POST", "/interrupt", b"")[0] == 200
    entry = _history(comfy, prompt_id)[prompt_id]
    assert entry["status"]["status_str"] == "error"
    assert comfy.interrupts == 1


def test_uploads_are_renamed_rather_than_overwritten() -> None:
    comfy = FakeComfyUI()
    names = []
    for data in (b"a", b"b"):
        request = build_upload("in.png", data).unwrap()
        content_type = dict(request.headers)["Content-Type"]
        _, _, body = comfy.handle("POST", "/upload/image", request.body or b"", content_type)
        names.append(json.loads(body)["name"])
    assert names == ["in.png", "in (1).png"]
    assert comfy.inputs == {"in.png": b"a", "in (1).png": b"b"}


def _upload(comfy: FakeComfyUI, name: str, data: bytes) -> tuple[int, Any]:
    request = build_upload(name, data).unwrap()
    content_type = dict(request.headers)["Content-Type"]
    status, _, body = comfy.handle("POST", "/upload/image", request.body or b"", content_type)
    return status, json.loads(body)


def test_each_further_upload_of_a_name_gets_the_next_number() -> None:
    comfy = FakeComfyUI()
    answers = [_upload(comfy, "in.png", data) for data in (b"a", b"b", b"c")]
    assert [status for status, _ in answers] == [200, 200, 200]
    assert [body["name"] for _, body in answers] == ["in.png", "in (1).png", "in (2).png"]
    assert answers[2][1] == {"name": "in (2).png", "subfolder": "", "type": "input"}


def test_an_uploaded_input_is_served_by_view_as_an_input() -> None:
    comfy = FakeComfyUI()
    _upload(comfy, "in.png", b"pixels")
    status, _, data = comfy.handle("GET", "/view?filename=in.png&type=input", b"")
    assert (status, data) == (200, b"pixels")
    assert comfy.handle("GET", "/view?filename=in.png&type=output", b"")[0] == 404


def test_the_queue_has_one_run_running_and_the_rest_pending() -> None:
    comfy = FakeComfyUI()
    comfy.stall()
    ids = [_post(comfy, SAVE_TEXT)[1]["prompt_id"] for _ in range(3)]
    queue = json.loads(comfy.handle("GET", "/queue", b"")[2])
    assert [item[1] for item in queue["queue_running"]] == ids[:1]
    assert [item[1] for item in queue["queue_pending"]] == ids[1:]


def test_only_post_interrupt_interrupts() -> None:
    comfy = FakeComfyUI()
    comfy.stall()
    prompt_id = _post(comfy, SAVE_TEXT)[1]["prompt_id"]
    assert comfy.handle("POST", "/no-such-route", b"")[0] == 404
    assert comfy.handle("GET", "/interrupt", b"")[0] == 404
    assert comfy.interrupts == 0
    assert _history(comfy, prompt_id) == {}  # still queued


def test_an_interrupted_run_records_its_start_and_interruption() -> None:
    comfy = FakeComfyUI()
    comfy.stall()
    prompt_id = _post(comfy, SAVE_TEXT)[1]["prompt_id"]
    comfy.handle("POST", "/interrupt", b"")
    entry = _history(comfy, prompt_id)[prompt_id]
    assert entry["status"]["messages"] == [
        ["execution_start", {"prompt_id": prompt_id}],
        ["execution_interrupted", {"prompt_id": prompt_id}],
    ]
    assert entry["outputs"] == {}


def test_a_failed_run_records_the_node_and_message_of_its_error() -> None:
    comfy = FakeComfyUI()
    comfy.fail_next_run("2", "out of memory")
    prompt_id = _post(comfy, SAVE_TEXT)[1]["prompt_id"]
    entry = _history(comfy, prompt_id)[prompt_id]
    assert set(entry) == {"prompt", "outputs", "status", "meta"}
    assert entry["status"]["status_str"] == "error"
    assert entry["status"]["completed"] is False
    error = {
        "prompt_id": prompt_id,
        "node_id": "2",
        "node_type": "SaveImage",
        "exception_message": "out of memory",
    }
    assert entry["status"]["messages"][-1] == ["execution_error", error]


def test_a_successful_run_has_comfyuis_history_entry_shape() -> None:
    comfy = FakeComfyUI()
    prompt_id = _post(comfy, SAVE_TEXT)[1]["prompt_id"]
    entry = _history(comfy, prompt_id)[prompt_id]
    assert set(entry) == {"prompt", "outputs", "status", "meta"}
    assert entry["status"] == {"status_str": "success", "completed": True, "messages": []}


def test_added_output_files_are_listed_by_every_later_run_under_the_node_extra() -> None:
    comfy = FakeComfyUI()
    comfy.add_output_file("odd name.png", b"x", subfolder="sub")
    prompt_id = _post(comfy, SAVE_TEXT)[1]["prompt_id"]
    outputs = _history(comfy, prompt_id)[prompt_id]["outputs"]
    assert set(outputs) == {"2", "extra"}
    added = {"filename": "odd name.png", "subfolder": "sub", "type": "output"}
    assert outputs["extra"] == {"images": [added]}
