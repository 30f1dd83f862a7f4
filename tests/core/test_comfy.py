"""The ComfyUI builders and decoders (cdsessions/_core/comfy.py): pure, so checked without I/O.

Shapes are ComfyUI v0.3.x's (server.py ``post_prompt`` / ``get_history`` / ``get_queue`` /
``upload_image``; execution.py ``validate_prompt``)."""

from __future__ import annotations

import email.parser
import email.policy
import json
from typing import Any

import msgspec
from hypothesis import given, settings
from hypothesis import strategies as st
from returns.result import Failure, Success

from cdsessions._core.comfy import (
    build_history,
    build_interrupt,
    build_prompt,
    build_upload,
    build_view,
    comfy_url,
    decode_history,
    decode_prompt,
    decode_queue,
    decode_system_stats,
    decode_upload,
)
from cdsessions._core.wire import SECRET_URL_SHOWN, HttpResponse
from cdsessions.comfy_models import ComfyFile, NodeError, PromptQueued, PromptRejected
from cdsessions.errors import ApiError, DecodeFailed, HttpError, InvalidRequest

TUNNEL = "https://abc123secret.modal.run"
WORKFLOW = {
    "1": {"class_type": "LoadImage", "inputs": {"image": "in.png"}},
    "2": {"class_type": "SaveImage", "inputs": {"images": ["1", 0], "filename_prefix": "out"}},
}


def _json(status: int, body: Any) -> HttpResponse:
    return HttpResponse(status, (("Content-Type", "application/json"),), json.dumps(body).encode())


# -- builders ---------------------------------------------------------------------------


def test_prompt_posts_the_workflow_and_a_client_id() -> None:
    request = build_prompt(WORKFLOW).unwrap()
    assert (request.method, request.path, request.secret_url) == ("POST", "/prompt", True)
    sent = json.loads(request.body or b"")
    assert sent["prompt"] == WORKFLOW
    assert isinstance(sent["client_id"], str)
    assert sent["client_id"]


def test_prompt_refuses_what_is_not_an_api_format_workflow() -> None:
    ui_format: dict[str, list[object]] = {
        "nodes": [],
        "links": [],
    }  # what "Save" (not "Save (API)") writes
    bad: object
    for bad in ({}, [], "x", ui_format, {"1": {"inputs": {}}}, {"1": {"class_type": set()}}):
        got = build_prompt(bad)
        assert isinstance(got, Failure), bad
        assert got.failure().field == "workflow"


def test_prompt_refuses_values_json_cannot_hold_without_raising() -> None:
    got = build_prompt({"1": {"class_type": "X", "inputs": {"a": object()}}})
    assert isinstance(got, Failure)
    assert got.failure().field == "workflow"


def test_history_id_cannot_change_the_route() -> None:
    assert build_history("../queue?x").unwrap().path == "/history/..%2Fqueue%3Fx"
    assert isinstance(build_history(""), Failure)
    assert isinstance(build_history("a\nb"), Failure)


def test_view_sends_the_three_names_as_a_query() -> None:
    request = build_view(ComfyFile("a b.png", "sub", "output")).unwrap()
    assert request.target == "/view?filename=a+b.png&subfolder=sub&type=output"


def test_view_refuses_control_characters_and_unknown_types() -> None:
    assert isinstance(build_view(ComfyFile("a\x00.png")), Failure)
    assert isinstance(build_view(ComfyFile("a.png", type="models")), Failure)  # type: ignore[arg-type]


def test_upload_is_multipart_with_comfyuis_field_names() -> None:
    request = build_upload("in.png", b"\x89PNG data", "batch").unwrap()
    content_type = dict(request.headers)["Content-Type"]
    raw = f"Content-Type: {content_type}\r\n\r\n".encode() + (request.body or b"")
    message = email.parser.BytesParser(policy=email.policy.HTTP).parsebytes(raw)
    fields = {
        part.get_param("name", header="content-disposition"): part for part in message.iter_parts()
    }
    assert fields["image"].get_filename() == "in.png"
    assert fields["image"].get_payload(decode=True) == b"\x89PNG data"
    assert fields["subfolder"].get_payload(decode=True) == b"batch"
    assert fields["type"].get_payload(decode=True) == b"input"


def test_upload_name_must_be_a_bare_file_name() -> None:
    for name in ("../x.png", "a/b.png", "a\\b.png", "..", "", 'a"\r\nX: y'):
        got = build_upload(name, b"x")
        assert isinstance(got, Failure), name
        assert got.failure().field == "name"


def test_interrupt_is_a_post() -> None:
    assert (build_interrupt().method, build_interrupt().path) == ("POST", "/interrupt")


# -- the URL is a secret ----------------------------------------------------------------


def test_a_request_on_the_session_url_never_shows_it() -> None:
    request = msgspec.structs.replace(build_interrupt(), base_url=TUNNEL)
    assert request.url == TUNNEL + "/interrupt"  # what the transport uses
    assert "abc123secret" not in repr(request)
    assert request.redacted().base_url == SECRET_URL_SHOWN


def test_unusable_session_urls_are_refused_without_being_quoted() -> None:
    for url in (
        "http://abc123secret.example",
        "ftp://abc123secret",
        "abc123secret",
        "production",
        None,
        3,
    ):
        got = comfy_url(url, "queue workflow")
        assert isinstance(got, Failure), url
        error = got.failure()
        assert isinstance(error, InvalidRequest)
        assert error.field == "url"
        assert "abc123secret" not in str(error) + repr(error)
    assert comfy_url("http://127.0.0.1:8188", "x") == Success("http://127.0.0.1:8188")
    assert comfy_url(TUNNEL + "/", "x") == Success(TUNNEL)


# -- decoders ---------------------------------------------------------------------------


def test_an_accepted_prompt() -> None:
    answer = _json(200, {"prompt_id": "p-1", "number": 3, "node_errors": {}})
    assert decode_prompt(answer, "q") == Success(PromptQueued("p-1", 3))


def test_a_rejected_prompt_names_its_nodes() -> None:
    body = {
        "error": {
            "type": "prompt_outputs_failed_validation",
            "message": "Prompt outputs failed validation",
            "details": "",
            "extra_info": {},
        },
        "node_errors": {
            "2": {
                "errors": [
                    {
                        "type": "required_input_missing",
                        "message": "Required input is missing",
                        "details": "images",
                        "extra_info": {},
                    }
                ],
                "dependent_outputs": ["2"],
                "class_type": "SaveImage",
            }
        },
    }
    got = decode_prompt(_json(400, body), "q").unwrap()
    assert got == PromptRejected(
        "Prompt outputs failed validation",
        (NodeError("2", "SaveImage", ("Required input is missing: images",)),),
    )


def test_a_prompt_rejected_as_a_whole_has_no_nodes() -> None:
    # No "prompt" key at all: older releases answer node_errors as an empty list.
    body = {
        "error": {
            "type": "no_prompt",
            "message": "No prompt provided",
            "details": "",
            "extra_info": {},
        },
        "node_errors": [],
    }
    assert decode_prompt(_json(400, body), "q") == Success(PromptRejected("No prompt provided", ()))


def test_a_400_that_is_not_comfyuis_is_an_http_error() -> None:
    got = decode_prompt(HttpResponse(400, (), b"<html>bad gateway</html>"), "q")
    assert isinstance(got, Failure)
    assert isinstance(got.failure(), HttpError)


def test_history_while_running_is_not_found_yet() -> None:
    got = decode_history("p-1")(_json(200, {}), "h").unwrap()
    assert (got.found, got.completed, got.files) == (False, False, ())


def test_history_of_a_finished_prompt_lists_files_and_texts_per_node() -> None:
    entry = {
        "prompt": [0, "p-1", WORKFLOW, {}, ["2"]],
        "outputs": {
            "2": {"images": [{"filename": "out_00001_.png", "subfolder": "", "type": "output"}]},
            "3": {
                "text": ["hello"],
                "gifs": [{"filename": "a.gif", "subfolder": "s", "type": "temp"}],
            },
        },
        "status": {
            "status_str": "success",
            "completed": True,
            "messages": [["execution_start", {}]],
        },
        "meta": {},
    }
    got = decode_history("p-1")(_json(200, {"p-1": entry}), "h").unwrap()
    assert got.completed
    assert got.status == "success"
    assert got.files == (ComfyFile("out_00001_.png"), ComfyFile("a.gif", "s", "temp"))
    assert got.texts == (("3", ("hello",)),)


def test_history_with_a_file_that_is_not_one_is_a_decode_failure() -> None:
    entry = {"outputs": {"2": {"images": [{"filename": 7}]}}, "status": {}}
    got = decode_history("p")(_json(200, {"p": entry}), "h")
    assert isinstance(got, Failure)
    assert isinstance(got.failure(), DecodeFailed)


def test_queue_lists_running_and_pending_prompt_ids() -> None:
    body = {"queue_running": [[0, "a", {}, {}, []]], "queue_pending": [[1, "b", {}, {}, []]]}
    got = decode_queue(_json(200, body), "q").unwrap()
    assert (got.running, got.pending, got.holds("b"), got.holds("c")) == (
        ("a",),
        ("b",),
        True,
        False,
    )


def test_system_stats_reads_the_version_and_devices() -> None:
    body = {
        "system": {"os": "posix", "comfyui_version": "0.3.40", "python_version": "3.12"},
        "devices": [{"name": "cuda:0 NVIDIA A10G", "type": "cuda"}],
    }
    got = decode_system_stats(_json(200, body), "s").unwrap()
    assert (got.comfyui_version, got.devices) == ("0.3.40", ("cuda:0 NVIDIA A10G",))


def test_upload_answer_says_where_the_file_went() -> None:
    got = decode_upload(_json(200, {"name": "in (1).png", "subfolder": "", "type": "input"}), "u")
    assert got == Success(ComfyFile("in (1).png", "", "input"))
    assert isinstance(decode_upload(_json(200, {"name": "x", "type": "models"}), "u"), Failure)


# -- any bytes: a value, never an exception ---------------------------------------------

_DECODERS = (decode_prompt, decode_history("p"), decode_queue, decode_system_stats, decode_upload)
_json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=8),
    lambda inner: (
        st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=6), inner, max_size=4)
    ),
    max_leaves=20,
)


@settings(max_examples=300, deadline=None)
@given(
    status=st.sampled_from((200, 400, 404, 500)),
    body=st.one_of(st.binary(max_size=64), _json_values.map(lambda v: json.dumps(v).encode())),
)
def test_any_answer_decodes_to_a_result(status: int, body: bytes) -> None:
    for decoder in _DECODERS:
        got = decoder(HttpResponse(status, (), body), "op")
        assert isinstance(got, Success | Failure)
        if isinstance(got, Failure):
            assert isinstance(got.failure(), ApiError)


# -- what a user reads when a name or an answer is refused ------------------------------


def test_a_lone_surrogate_in_a_file_name_is_refused_with_the_reason() -> None:
    for name in ("a\ud800.png", "a\x07.png"):
        got = build_view(ComfyFile(name))
        assert isinstance(got, Failure), repr(name)
        error = got.failure()
        assert (error.operation, error.field) == ("download file", "file")
        assert error.problem == "contains a control character or a lone surrogate"


def test_a_node_without_class_type_is_named_by_its_first_40_characters() -> None:
    node_id = "n" * 39 + "XYZ"
    got = build_prompt({node_id: {"inputs": {}}})
    assert isinstance(got, Failure)
    assert got.failure().problem == f"node {'n' * 39 + 'X'!r} has no class_type"


def test_a_refused_history_id_names_the_operation() -> None:
    got = build_history("a\nb")
    assert isinstance(got, Failure)
    assert (got.failure().operation, got.failure().field) == ("read history", "prompt_id")


def test_an_upload_without_a_subfolder_goes_to_the_top_folder() -> None:
    request = build_upload("in.png", b"x").unwrap()
    assert b'name="subfolder"\r\n\r\n\r\n' in (request.body or b"")


def test_an_upload_path_is_refused_saying_a_bare_name_is_wanted() -> None:
    got = build_upload("a/b.png", b"x")
    assert isinstance(got, Failure)
    assert got.failure().problem == "must be a bare file name, not a path"


def test_a_rejected_prompt_shows_node_errors_given_as_plain_strings() -> None:
    body = {
        "error": {"type": "x", "message": "Prompt outputs failed validation"},
        "node_errors": {"2": {"errors": ["bad input", 7], "class_type": "SaveImage"}},
    }
    got = decode_prompt(_json(400, body), "q").unwrap()
    assert isinstance(got, PromptRejected)
    assert got.node_errors == (NodeError("2", "SaveImage", ("bad input", "(no message)")),)


def test_an_accepted_prompt_without_an_id_says_what_was_expected() -> None:
    got = decode_prompt(_json(200, {"number": 1}), "q")
    assert isinstance(got, Failure)
    error = got.failure()
    assert isinstance(error, DecodeFailed)
    assert (error.where, error.problem) == ("$.prompt_id", "expected a non-empty string")


def test_a_queue_that_is_not_an_object_says_what_was_expected() -> None:
    got = decode_queue(_json(200, []), "q")
    assert isinstance(got, Failure)
    error = got.failure()
    assert isinstance(error, DecodeFailed)
    assert (error.where, error.problem) == ("$", "expected an object")


def test_history_of_a_failed_prompt_names_the_failed_node() -> None:
    error = {"node_id": "5", "node_type": "KSampler", "exception_message": "out of memory"}
    entry = {
        "outputs": {},
        "status": {
            "status_str": "error",
            "completed": False,
            "messages": [["execution_start", {}], ["execution_error", error]],
        },
    }
    got = decode_history("p-1")(_json(200, {"p-1": entry}), "h").unwrap()
    assert got.failed_nodes == (NodeError("5", "KSampler", ("out of memory",)),)


def test_system_stats_reads_the_python_version() -> None:
    body = {"system": {"comfyui_version": "0.3.10", "python_version": "3.12.1"}, "devices": []}
    got = decode_system_stats(_json(200, body), "s").unwrap()
    assert got.python_version == "3.12.1"
