"""FastAPI/pydantic's request validation, for the few fields the API has: the fake answers a
malformed body with the same 422 items the live server sends (``type``, ``loc``, ``msg``,
``input``)."""

from __future__ import annotations

import json
import math
import re
from typing import Any, Final, TypeAlias

import msgspec

from cdsessions.models import MachineGPU

_Json: TypeAlias = Any

_GPU_NAMES: Final = tuple(gpu.value for gpu in MachineGPU)
_GPU_EXPECTED: Final = ", ".join(f"'{name}'" for name in _GPU_NAMES[:-1]) + (
    f" or '{_GPU_NAMES[-1]}'"
)
_INT_TEXT: Final = re.compile(r"\s*[+-]?\d+\s*")
_TRUE: Final = frozenset({"1", "on", "t", "true", "y", "yes"})
_FALSE: Final = frozenset({"0", "off", "f", "false", "n", "no"})


def error_item(kind: str, loc: list[str | int], msg: str, value: _Json) -> dict[str, _Json]:
    return {"type": kind, "loc": loc, "msg": msg, "input": value}


def parse_body(body: bytes | None) -> tuple[_Json, list[dict[str, _Json]]]:
    """The JSON body, or FastAPI's 422 items for a missing or malformed one."""
    if not body:
        return None, [error_item("missing", ["body"], "Field required", None)]
    try:
        return json.loads(body), []
    except (ValueError, RecursionError) as error:
        position = error.pos if isinstance(error, json.JSONDecodeError) else 0
        reason = error.msg if isinstance(error, json.JSONDecodeError) else "nested too deeply"
        item = error_item("json_invalid", ["body", position], "JSON decode error", {})
        item["ctx"] = {"error": reason}
        return None, [item]


def as_object(value: _Json) -> tuple[dict[str, _Json] | None, list[dict[str, _Json]]]:
    if isinstance(value, dict):
        return value, []
    message = "Input should be a valid dictionary or object to extract fields from"
    return None, [error_item("model_attributes_type", ["body"], message, value)]


def lax_int(value: _Json, loc: list[str | int]) -> tuple[int | None, dict[str, _Json] | None]:
    """pydantic's lax ``int``: bools, whole floats and digit strings are accepted."""
    if isinstance(value, bool | int):
        return int(value), None
    if isinstance(value, float):
        if not math.isfinite(value):
            message = "Input should be a finite number"
            return None, error_item("finite_number", loc, message, value)
        if value != int(value):
            message = "Input should be a valid integer, got a number with a fractional part"
            return None, error_item("int_from_float", loc, message, value)
        return int(value), None
    if isinstance(value, str):
        if _INT_TEXT.fullmatch(value):
            return int(value), None
        message = "Input should be a valid integer, unable to parse string as an integer"
        return None, error_item("int_parsing", loc, message, value)
    return None, error_item("int_type", loc, "Input should be a valid integer", value)


def lax_bool(value: _Json, loc: list[str | int]) -> tuple[bool | None, dict[str, _Json] | None]:
    if isinstance(value, bool):
        return value, None
    if isinstance(value, int | float) and value in (0, 1):
        return bool(value), None
    if isinstance(value, str) and value.lower() in _TRUE | _FALSE:
        return value.lower() in _TRUE, None
    if isinstance(value, str | int | float):
        message = "Input should be a valid boolean, unable to interpret input"
        return None, error_item("bool_parsing", loc, message, value)
    return None, error_item("bool_type", loc, "Input should be a valid boolean", value)


class _CreateBody(msgspec.Struct, frozen=True):
    machine_id: str
    gpu: str | None
    timeout: int | None
    wait_for_server: bool


def validate_create(body: bytes | None) -> tuple[_CreateBody | None, list[dict[str, _Json]]]:
    parsed, errors = parse_body(body)
    if errors:
        return None, errors
    obj, errors = as_object(parsed)
    if obj is None:
        return None, errors
    machine_id = obj.get("machine_id")
    if "machine_id" not in obj:
        errors.append(error_item("missing", ["body", "machine_id"], "Field required", obj))
    elif not isinstance(machine_id, str):
        message = "Input should be a valid string"
        errors.append(error_item("string_type", ["body", "machine_id"], message, machine_id))
    gpu = obj.get("gpu")
    if gpu is not None and gpu not in _GPU_NAMES:
        item = error_item("enum", ["body", "gpu"], f"Input should be {_GPU_EXPECTED}", gpu)
        item["ctx"] = {"expected": _GPU_EXPECTED}
        errors.append(item)
    timeout: int | None = None
    if obj.get("timeout") is not None:
        timeout, problem = lax_int(obj["timeout"], ["body", "timeout"])
        errors += [problem] if problem else []
    wait, problem = lax_bool(obj.get("wait_for_server", False), ["body", "wait_for_server"])
    errors += [problem] if problem else []
    if errors:
        return None, errors
    # Checked above; the asserts narrow the types for mypy.
    assert isinstance(machine_id, str)
    assert wait is not None
    return _CreateBody(machine_id, gpu, timeout, wait), []


def validate_extend(body: bytes | None) -> tuple[int | None, list[dict[str, _Json]]]:
    parsed, errors = parse_body(body)
    if errors:
        return None, errors
    obj, errors = as_object(parsed)
    if obj is None:
        return None, errors
    if "minutes" not in obj:
        return None, [error_item("missing", ["body", "minutes"], "Field required", obj)]
    minutes, problem = lax_int(obj["minutes"], ["body", "minutes"])
    return minutes, [problem] if problem else []
