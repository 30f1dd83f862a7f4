"""The ComfyUI routes the client uses, against the shapes ComfyUI itself sends.

Modelled on ComfyUI v0.3.x: ``server.py`` (``post_prompt`` answers ``{"prompt_id", "number",
"node_errors"}`` or a 400 ``{"error": {type, message, details, extra_info}, "node_errors"}``;
``get_history`` answers ``{prompt_id: {"prompt", "outputs", "status", "meta"}}`` or ``{}``;
``get_queue`` answers ``{"queue_running", "queue_pending"}`` of ``[number, prompt_id, prompt,
extra_data, outputs_to_execute]``), ``execution.py`` (``validate_prompt``: node id →
``{"errors", "dependent_outputs", "class_type"}``) and ``nodes.py`` (``SaveImage`` returns
``{"ui": {"images": [{"filename", "subfolder", "type"}]}}``). Whatever such a server sends, the
client decodes it to the same values.
"""

from __future__ import annotations

import json
import uuid
from typing import Any

from hypothesis import example, given, settings
from hypothesis import strategies as st

from cdsessions._core.comfy import decode_history, decode_prompt, decode_queue
from cdsessions._core.wire import HttpResponse
from cdsessions.comfy_models import ComfyFile, PromptQueued, PromptRejected

_ids = st.integers(min_value=1, max_value=999).map(str)
_names = st.text(
    st.characters(codec="utf-8", exclude_categories=("Cc", "Cs")), min_size=1, max_size=30
)
_files = st.builds(
    ComfyFile,
    filename=_names,
    subfolder=st.one_of(st.just(""), _names),
    type=st.sampled_from(("output", "temp", "input")),
)
_error = st.fixed_dictionaries(
    {
        "type": st.sampled_from(
            ("required_input_missing", "invalid_input_type", "value_not_in_list")
        ),
        "message": _names,
        "details": st.text(max_size=20),
        "extra_info": st.just({}),
    }
)


def _json(status: int, body: Any) -> HttpResponse:
    return HttpResponse(status, (("Content-Type", "application/json"),), json.dumps(body).encode())


def _file_json(file: ComfyFile) -> dict[str, str]:
    return {"filename": file.filename, "subfolder": file.subfolder, "type": file.type}


@settings(max_examples=100, deadline=None)
@given(number=st.integers(min_value=0, max_value=2**31), prompt_id=st.uuids().map(str))
@example(number=0, prompt_id="00000000-0000-0000-0000-000000000000")
@example(number=2**31, prompt_id="ffffffff-ffff-ffff-ffff-ffffffffffff")
def test_an_accepted_prompt_decodes(number: int, prompt_id: str) -> None:
    body = {"prompt_id": prompt_id, "number": number, "node_errors": {}}
    assert decode_prompt(_json(200, body), "q").unwrap() == PromptQueued(prompt_id, number)


@settings(max_examples=100, deadline=None)
@given(
    nodes=st.dictionaries(
        _ids, st.tuples(_names, st.lists(_error, min_size=1, max_size=3)), min_size=1, max_size=4
    )
)
def test_a_rejected_prompt_names_every_node(
    nodes: dict[str, tuple[str, list[dict[str, Any]]]],
) -> None:
    body = {
        "error": {
            "type": "prompt_outputs_failed_validation",
            "message": "Prompt outputs failed validation",
            "details": "",
            "extra_info": {},
        },
        "node_errors": {
            node_id: {"errors": errors, "dependent_outputs": [node_id], "class_type": class_type}
            for node_id, (class_type, errors) in nodes.items()
        },
    }
    got = decode_prompt(_json(400, body), "q").unwrap()
    assert isinstance(got, PromptRejected)
    assert {(e.node_id, e.class_type, len(e.messages)) for e in got.node_errors} == {
        (node_id, class_type, len(errors)) for node_id, (class_type, errors) in nodes.items()
    }


@settings(max_examples=100, deadline=None)
@given(
    outputs=st.dictionaries(_ids, st.lists(_files, min_size=1, max_size=3), max_size=4),
    key=st.sampled_from(("images", "gifs", "audio")),
    ok=st.booleans(),
)
def test_a_history_entry_lists_every_output_file(
    outputs: dict[str, list[ComfyFile]], key: str, ok: bool
) -> None:
    prompt_id = str(uuid.uuid4())
    entry = {
        "prompt": [0, prompt_id, {}, {"client_id": "c"}, list(outputs)],
        "outputs": {
            node: {key: [_file_json(f) for f in files], "animated": [False]}
            for node, files in outputs.items()
        },
        "status": {"status_str": "success" if ok else "error", "completed": ok, "messages": []},
        "meta": {node: {"node_id": node, "display_node": node} for node in outputs},
    }
    got = decode_history(prompt_id)(_json(200, {prompt_id: entry}), "h").unwrap()
    assert got.found
    assert got.completed is ok
    assert got.status == ("success" if ok else "error")
    assert got.files == tuple(f for files in outputs.values() for f in files)


@settings(max_examples=100, deadline=None)
@given(
    running=st.lists(st.uuids().map(str), max_size=1),
    pending=st.lists(st.uuids().map(str), max_size=5),
)
def test_the_queue_lists_prompt_ids_in_order(running: list[str], pending: list[str]) -> None:
    def item(i: int, pid: str) -> list[Any]:
        return [i, pid, {"1": {"class_type": "X", "inputs": {}}}, {"client_id": "c"}, ["1"]]

    body = {
        "queue_running": [item(0, p) for p in running],
        "queue_pending": [item(i + 1, p) for i, p in enumerate(pending)],
    }
    got = decode_queue(_json(200, body), "q").unwrap()
    assert (list(got.running), list(got.pending)) == (running, pending)
