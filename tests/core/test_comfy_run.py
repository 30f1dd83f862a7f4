"""The pure parts of a workflow run (cdsessions/_core/comfy_run.py): safe local names, numbered
names, uploaded names put into the workflow, the run's settings."""

from __future__ import annotations

from pathlib import PurePosixPath, PureWindowsPath
from typing import Any

from hypothesis import example, given, settings
from hypothesis import strategies as st
from returns.result import Failure

from cdsessions._core.comfy_run import local_name, numbered, run_plan, with_uploaded_names
from cdsessions.comfy_models import ComfyFile

WORKFLOW = {
    "1": {"class_type": "SaveImage", "inputs": {"images": ["2", 0], "filename_prefix": "o"}}
}


@settings(max_examples=500, deadline=None)
@given(filename=st.text(max_size=300), subfolder=st.text(max_size=40))
@example(filename="", subfolder="")
@example(filename="..", subfolder="..")
@example(filename="-x", subfolder="--")
@example(filename="x" * 300, subfolder="y" * 40)
@example(filename="\U0001f600" * 100, subfolder="")
@example(filename=" ", subfolder="/")
@example(filename="a\x00b", subfolder="..\\..")
def test_a_local_name_names_a_file_directly_in_the_directory(filename: str, subfolder: str) -> None:
    name = local_name(ComfyFile(filename, subfolder))
    assert name
    assert name not in (".", "..")
    assert not name.startswith(".")
    assert not any(c in name for c in '/\\\x00:<>"|?*')
    assert all(ord(c) >= 32 for c in name)
    for pure in (PurePosixPath, PureWindowsPath):
        assert pure("out", name).parent == pure("out")
        assert not pure(name).is_absolute()
    assert len(name.encode()) <= 150


def test_hostile_names_are_flattened() -> None:
    assert local_name(ComfyFile("../../etc/passwd")) == "etc_passwd"
    assert local_name(ComfyFile("/abs/x.png")) == "abs_x.png"
    assert local_name(ComfyFile("x.png", "../..")) == "x.png"
    assert local_name(ComfyFile("a\x00b.png")) == "a_b.png"
    assert local_name(ComfyFile("..")) == "output"
    assert local_name(ComfyFile("C:\\Windows\\x.png")) == "C__Windows_x.png"
    assert local_name(ComfyFile("img.png", "sub/dir")) == "sub_dir_img.png"


def test_device_names_are_prefixed() -> None:
    for device in ("CON", "nul.png", "COM1.tar.gz", "lpt9.txt", "aux"):
        assert local_name(ComfyFile(device)).startswith("_"), device
    assert local_name(ComfyFile("console.png")) == "console.png"


def test_long_names_keep_their_extension() -> None:
    name = local_name(ComfyFile("é" * 400 + ".png"))
    assert name.endswith(".png")
    assert len(name.encode()) <= 150


def test_numbered_names() -> None:
    assert [numbered("o.png", n) for n in range(3)] == ["o.png", "o (1).png", "o (2).png"]
    assert numbered("README", 1) == "README (1)"


def test_uploaded_names_replace_the_names_the_workflow_used() -> None:
    workflow: dict[str, Any] = {
        "1": {"class_type": "LoadImage", "inputs": {"image": "in.png", "n": 3}}
    }
    changed = with_uploaded_names(workflow, {"in.png": "in (1).png"})
    assert changed["1"]["inputs"] == {"image": "in (1).png", "n": 3}
    assert workflow["1"]["inputs"]["image"] == "in.png"  # the caller's workflow is not changed


def test_run_settings_are_checked() -> None:
    assert run_plan(WORKFLOW, 10, 1, 100).unwrap().timeout == 10.0
    for args, field in (
        (({}, 10, 1, 100), "workflow"),
        ((WORKFLOW, 0, 1, 100), "timeout"),
        ((WORKFLOW, float("nan"), 1, 100), "timeout"),
        ((WORKFLOW, 10, True, 100), "poll_every"),
        ((WORKFLOW, 10, 1, 1.5), "max_file_bytes"),
    ):
        got = run_plan(*args)
        assert isinstance(got, Failure), args
        assert got.failure().field == field, args


def test_long_names_without_an_extension_are_cut_without_a_trailing_dot() -> None:
    name = local_name(ComfyFile("a" * 400))
    assert name == "a" * 149  # a byte is kept for a dot even without an extension


def test_uploaded_names_leave_nodes_that_are_not_objects_alone() -> None:
    workflow: dict[str, Any] = {"1": ["not", "a", "node"], "2": {"inputs": {"image": "in.png"}}}
    changed = with_uploaded_names(workflow, {"in.png": "in (1).png"})
    assert changed == {"1": ["not", "a", "node"], "2": {"inputs": {"image": "in (1).png"}}}


def test_a_run_setting_out_of_range_says_what_is_accepted() -> None:
    got = run_plan(WORKFLOW, 10, -1, 100)
    assert isinstance(got, Failure)
    assert (got.failure().field, got.failure().problem) == (
        "poll_every",
        "must be a finite number above 0",
    )
