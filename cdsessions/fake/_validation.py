"""FastAPI/pydantic's request validation, for the few fields the API has: the fake answers a
malformed body with the same 422 items the live server sends (``type``, ``loc``, ``msg``,
``input``), and a body FastAPI cannot even parse with its 400.

Numbers follow pydantic-core (2.11), not Python: a digit string longer than 4300 characters is
``int_parsing_size``, never Python's ``int()`` limit (a ``ValueError``), and a whole float
outside the 64-bit range is ``int_parsing_size`` too (issue #18)."""

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
_INT_TEXT: Final = re.compile(r"\s*([+-]?)0*([0-9]+?)(?:\.0+)?\s*")
#: pydantic-core first reads the string as a JSON integer, and refuses one longer than this
#: (minus sign included) as too large, whatever follows it.
_JSON_INT_HEAD: Final = re.compile(r"-?[1-9][0-9]*")
MAX_INT_CHARS: Final = 4300
#: Whole floats strictly inside this range become ints; pydantic-core refuses the rest.
_I64_BOUND: Final = float(2**63)
_TRUE: Final = frozenset({"1", "on", "t", "true", "y", "yes"})
_FALSE: Final = frozenset({"0", "off", "f", "false", "n", "no"})


def error_item(kind: str, loc: list[str | int], msg: str, value: _Json) -> dict[str, _Json]:
    return {"type": kind, "loc": loc, "msg": msg, "input": value}


class Unparsable(Exception):
    """A body FastAPI fails to parse other than as malformed JSON (a number of more than 4300
    digits, bytes that are not UTF-8, nesting too deep for ``json``): it answers those 400
    ``"There was an error parsing the body"``, not 422."""


def parse_body(body: bytes | None) -> tuple[_Json, list[dict[str, _Json]]]:
    """The JSON body, or FastAPI's 422 items for a missing or malformed one. Raises
    :class:`Unparsable` where FastAPI answers 400."""
    if not body:
        return None, [error_item("missing", ["body"], "Field required", None)]
    try:
        return json.loads(body), []
    except json.JSONDecodeError as error:  # FastAPI turns only this one into a 422
        item = error_item("json_invalid", ["body", error.pos], "JSON decode error", {})
        item["ctx"] = {"error": error.msg}
        return None, [item]
    except (ValueError, RecursionError) as error:
        raise Unparsable from error


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
        if not -_I64_BOUND < value < _I64_BOUND:
            return None, _too_large(loc, value)
        return int(value), None
    if isinstance(value, str):
        return _int_from_text(value, loc)
    return None, error_item("int_type", loc, "Input should be a valid integer", value)


def _too_large(loc: list[str | int], value: _Json) -> dict[str, _Json]:
    message = "Unable to parse input string as an integer, exceeded maximum size"
    return error_item("int_parsing_size", loc, message, value)


def _int_from_text(text: str, loc: list[str | int]) -> tuple[int | None, dict[str, _Json] | None]:
    head = _JSON_INT_HEAD.match(text)
    if head is not None and len(head.group()) > MAX_INT_CHARS:
        return None, _too_large(loc, text)
    digits = _INT_TEXT.fullmatch(text)
    # Leading zeros dropped first: Python's int() counts them against its own 4300-digit
    # limit, and a ValueError here would be a traceback instead of an answer.
    if digits is not None and (digits[1] == "-") + len(digits[2]) <= MAX_INT_CHARS:
        return int(digits[1] + digits[2]), None
    message = "Input should be a valid integer, unable to parse string as an integer"
    return None, error_item("int_parsing", loc, message, text)


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


def uuid_error(loc: list[str | int], value: str) -> dict[str, _Json]:
    """pydantic's ``uuid_parsing`` item for a path parameter that is not a UUID. The ``msg``
    names the first problem pydantic-core reports in its own words; the fake's wording is a
    shortened form (contracts/differences.json lists it)."""
    return error_item("uuid_parsing", loc, "Input should be a valid UUID", value)
