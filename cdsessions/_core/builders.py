"""Pure request builders: operation inputs in, an :class:`HttpRequest` (or why not) out.

No I/O happens here, and nothing here knows the server or the API key; the client adds those
with :func:`authorize`. Every id is validated once and percent-encoded, so the server receives
exactly ``/session/<encoded id>`` whatever the id contains.
"""

from __future__ import annotations

import unicodedata
from typing import Final
from urllib.parse import quote

import msgspec
from returns.result import Failure, Result, Success

from cdsessions._core.wire import HttpRequest
from cdsessions.errors import InvalidRequest
from cdsessions.models import CreateSessionBody, MachineGPU

__all__ = [
    "MAX_ID_LENGTH",
    "authorize",
    "build_cancel",
    "build_create",
    "build_extend",
    "build_get",
    "build_gpu_pricing",
    "build_list",
    "build_machine",
    "build_machines",
    "check_id",
    "describe_id",
]

#: Real ids are 36-character UUIDs; anything far longer is a mistake, not an id.
MAX_ID_LENGTH: Final = 256
_JSON: Final = (("Content-Type", "application/json"),)
_encode_json = msgspec.json.Encoder().encode


def describe_id(value: str) -> str:
    """A short, printable form of an id for messages (ids are not secret, but can be long)."""
    shown = value if len(value) <= 40 else value[:36] + "…"
    return repr(shown) if not shown.isprintable() or not shown.strip() else shown


def _id_problem(value: object) -> str | None:
    if not isinstance(value, str):
        return f"must be a string, not {type(value).__name__}"
    if value == "":
        return "must not be empty"
    if value in (".", ".."):
        return f"{value!r} is not an id (it would change the URL path)"
    if not value.strip():
        return "must not be blank"
    if len(value) > MAX_ID_LENGTH:
        return f"is {len(value)} characters long; at most {MAX_ID_LENGTH} are accepted"
    if value.isprintable():  # the usual case, in one C call: no control or surrogate in it
        return None
    for char in value:
        category = unicodedata.category(char)
        if category == "Cc":
            return f"contains the control character {char!r}"
        if category == "Cs":
            return "contains a lone surrogate (not valid Unicode)"
    return None


def check_id(value: object, field: str, operation: str) -> Result[str, InvalidRequest]:
    """``Success(value)`` if ``value`` can be sent as an id, else why not."""
    problem = _id_problem(value)
    if problem is not None:
        return Failure(InvalidRequest(operation, field, problem))
    assert isinstance(value, str)  # _id_problem checked it; this narrows the type for mypy
    return Success(value)


def _session_path(session_id: str, suffix: str = "") -> str:
    # safe="" encodes "/", "?", "#" and "%" too: the id can never change the route.
    return f"/session/{quote(session_id, safe='')}{suffix}"


def _op(verb: str, session_id: object) -> str:
    name = describe_id(session_id) if isinstance(session_id, str) else "<invalid id>"
    return f"{verb} session {name}"


def build_get(session_id: str) -> Result[HttpRequest, InvalidRequest]:
    operation = _op("get", session_id)
    problem = _id_problem(session_id)
    if problem is not None:
        return Failure(InvalidRequest(operation, "session_id", problem))
    return Success(HttpRequest("GET", _session_path(session_id), operation=operation))


def build_cancel(
    session_id: str, wait_for_shutdown: bool = False
) -> Result[HttpRequest, InvalidRequest]:
    operation = _op("cancel", session_id)
    if not isinstance(wait_for_shutdown, bool):
        return Failure(InvalidRequest(operation, "wait_for_shutdown", "must be True or False"))
    # Sent only when set: the server's default is false, and the seed contract has no query.
    query = (("wait_for_shutdown", "true"),) if wait_for_shutdown else ()
    return check_id(session_id, "session_id", operation).map(
        lambda sid: HttpRequest("DELETE", _session_path(sid), query, operation=operation)
    )


def build_list(machine_id: str | None = None) -> Result[HttpRequest, InvalidRequest]:
    """All live sessions of the account, or of one machine when ``machine_id`` is given."""
    if machine_id is None:
        return Success(HttpRequest("GET", "/sessions", operation="list sessions"))
    operation = (
        f"list sessions of machine {describe_id(machine_id)}"
        if isinstance(machine_id, str)
        else "list sessions"
    )
    return check_id(machine_id, "machine_id", operation).map(
        lambda mid: HttpRequest("GET", "/sessions", (("machine_id", mid),), operation=operation)
    )


def _body_problem(body: CreateSessionBody) -> tuple[str, str] | None:
    problem = _id_problem(body.machine_id)
    if problem is not None:
        return "machine_id", problem
    if body.gpu is not None and (not isinstance(body.gpu, str) or not body.gpu.strip()):
        return "gpu", "must be a MachineGPU or a non-blank GPU name"
    timeout = body.timeout
    if timeout is not None and (isinstance(timeout, bool) or not isinstance(timeout, int)):
        return "timeout", f"must be a whole number of minutes, not {type(timeout).__name__}"
    if timeout is not None and timeout < 0:
        return "timeout", "must not be negative"
    if not isinstance(body.wait_for_server, bool):
        return "wait_for_server", "must be True or False"
    return None


def build_create(body: CreateSessionBody) -> Result[HttpRequest, InvalidRequest]:
    """``POST /session``. Always sends ``wait_for_server``; ``gpu``/``timeout`` only when set."""
    if not isinstance(body, CreateSessionBody):
        return Failure(InvalidRequest("create session", "body", "must be a CreateSessionBody"))
    operation = f"create session on machine {describe_id(str(body.machine_id))}"
    problem = _body_problem(body)
    if problem is not None:
        return Failure(InvalidRequest(operation, *problem))
    payload: dict[str, object] = {"machine_id": body.machine_id}
    if body.gpu is not None:
        payload["gpu"] = MachineGPU(body.gpu).value
    if body.timeout is not None:
        payload["timeout"] = body.timeout
    payload["wait_for_server"] = body.wait_for_server
    return Success(
        HttpRequest(
            "POST", "/session", headers=_JSON, body=_encode_json(payload), operation=operation
        )
    )


def build_extend(session_id: str, minutes: int) -> Result[HttpRequest, InvalidRequest]:
    """``POST /session/{id}/increase-timeout`` (live server only): add ``minutes`` minutes."""
    operation = _op("extend", session_id)
    if isinstance(minutes, bool) or not isinstance(minutes, int) or minutes < 1:
        return Failure(InvalidRequest(operation, "minutes", "must be a whole number ≥ 1"))
    return check_id(session_id, "session_id", operation).map(
        lambda sid: HttpRequest(
            "POST",
            _session_path(sid, "/increase-timeout"),
            headers=_JSON,
            body=_encode_json({"minutes": minutes}),
            operation=operation,
        )
    )


def build_machine(machine_id: str) -> Result[HttpRequest, InvalidRequest]:
    """``GET /machine/{machine_id}`` (live server only): the machine, its default GPU included."""
    shown = describe_id(machine_id) if isinstance(machine_id, str) else "<invalid id>"
    operation = f"get machine {shown}"
    return check_id(machine_id, "machine_id", operation).map(
        lambda mid: HttpRequest("GET", f"/machine/{quote(mid, safe='')}", operation=operation)
    )


def build_machines(search: str | None = None) -> Result[HttpRequest, InvalidRequest]:
    """``GET /machines`` (live server only), filtered by name when ``search`` is given."""
    operation = "list machines"
    if search is None:
        return Success(HttpRequest("GET", "/machines", operation=operation))
    if not isinstance(search, str):
        return Failure(InvalidRequest(operation, "search", "must be a string"))
    if any(unicodedata.category(char) == "Cs" for char in search):
        # It could not be percent-encoded as UTF-8: refused here rather than raised later.
        return Failure(InvalidRequest(operation, "search", "contains a lone surrogate"))
    return Success(HttpRequest("GET", "/machines", (("search", search),), operation=operation))


def build_gpu_pricing() -> HttpRequest:
    """``GET /platform/gpu-pricing``: GPU name → USD per second. No input, so nothing to refuse;
    the key is sent as on every route."""
    return HttpRequest("GET", "/platform/gpu-pricing", operation="get GPU prices")


def authorize(request: HttpRequest, *, base_url: str, token: str, user_agent: str) -> HttpRequest:
    """The request as it goes out: on ``base_url``, with the standard and auth headers."""
    standard = (
        ("Accept", "application/json"),
        ("User-Agent", user_agent),
        ("Authorization", f"Bearer {token}"),
    )
    # A copy with two fields changed: every other field (a new one too) is passed on.
    return msgspec.structs.replace(request, headers=standard + request.headers, base_url=base_url)
