"""ComfyUI's HTTP API on a session's URL, sans I/O: builders, decoders, and the call steps.

A session's URL is a public tunnel to a stock ComfyUI server with no auth of its own, so it is a
secret: requests carry it as ``base_url`` with ``secret_url`` set (their repr and redacted copy
show ``session-url.invalid`` instead), no failure quotes it, and the API key is never sent there
(ComfyUI does not need it, and the tunnel is another host). Shapes follow ComfyUI v0.3.x
(``server.py`` routes, ``execution.validate_prompt`` for ``node_errors``).
"""

from __future__ import annotations

import unicodedata
import uuid
from collections.abc import Mapping
from typing import Any, Final

import msgspec
from returns.result import Failure, Result, Success

from cdsessions._core.calls import MAX_OBJECT_BYTES, CallSteps, ClientCore
from cdsessions._core.decoding import decode, error_from
from cdsessions._core.retry import OperationKind, RetryPolicy
from cdsessions._core.servers import refuse_plain_http, resolve_server
from cdsessions._core.wire import HttpRequest, HttpResponse
from cdsessions.comfy_models import (
    ComfyFile,
    ComfyHistory,
    ComfyQueue,
    ComfySystemStats,
    NodeError,
    PromptAnswer,
    PromptQueued,
    PromptRejected,
)
from cdsessions.errors import ApiError, DecodeFailed, InvalidRequest

__all__ = [
    "MAX_NAME_LENGTH",
    "MAX_VIEW_BYTES",
    "build_history",
    "build_interrupt",
    "build_prompt",
    "build_queue",
    "build_system_stats",
    "build_upload",
    "build_view",
    "check_name",
    "comfy_call",
    "comfy_url",
    "decode_history",
    "decode_prompt",
    "decode_queue",
    "decode_system_stats",
    "decode_upload",
]

#: The longest file name or subfolder sent or accepted (most file systems stop at 255 bytes).
MAX_NAME_LENGTH: Final = 255
#: The default cap on one downloaded file held in memory by ``view``.
MAX_VIEW_BYTES: Final = 256 * 1024 * 1024
_JSON: Final = (("Content-Type", "application/json"),)
_ACCEPT: Final = (("Accept", "application/json"),)
_encode = msgspec.json.Encoder().encode
_ANY: Final[msgspec.json.Decoder[Any]] = msgspec.json.Decoder(Any)
_FILE: Final = msgspec.json.Decoder(ComfyFile)
_TYPES: Final = ("input", "output", "temp")


def _comfy_request(method: str, path: str, operation: str, **fields: Any) -> HttpRequest:
    return HttpRequest(method, path, operation=operation, secret_url=True, **fields)


def comfy_url(url: object, operation: str) -> Result[str, InvalidRequest]:
    """The session's URL as a base URL, or why it cannot be one. Never quoted in the failure:
    it is a secret. Plain http only to loopback (the fake serves its ComfyUI there)."""
    resolved = resolve_server(url).bind(lambda base: refuse_plain_http(base, allowed=False))
    if isinstance(url, str) and "://" not in url:  # a server name is not a session's URL
        resolved = Failure(InvalidRequest(operation, "url", ""))
    if not isinstance(resolved, Success):
        why = "is not a usable https:// session URL (plain http only to loopback)"
        return Failure(InvalidRequest(operation, "url", why))
    return resolved


def _name_problem(value: object, *, empty_ok: bool) -> str | None:
    if not isinstance(value, str):
        return f"must be a string, not {type(value).__name__}"
    if value == "":
        return None if empty_ok else "must not be empty"
    if len(value) > MAX_NAME_LENGTH:
        return f"is {len(value)} characters long; at most {MAX_NAME_LENGTH} are accepted"
    if any(unicodedata.category(char) in ("Cc", "Cs") for char in value):
        return "contains a control character or a lone surrogate"
    return None


def check_name(
    value: object, field: str, operation: str, *, empty_ok: bool = False
) -> Result[str, InvalidRequest]:
    """``Success(value)`` if it can name a file on the server, else why not."""
    problem = _name_problem(value, empty_ok=empty_ok)
    if problem is not None:
        return Failure(InvalidRequest(operation, field, problem))
    assert isinstance(value, str)
    return Success(value)


def build_prompt(
    workflow: object, client_id: str | None = None
) -> Result[HttpRequest, InvalidRequest]:
    """``POST /prompt`` with an API-format workflow: node id → ``{"class_type", "inputs"}``."""
    operation = "queue workflow"
    if not isinstance(workflow, Mapping) or not workflow:
        return Failure(
            InvalidRequest(
                operation, "workflow", "must be a non-empty mapping of node id to node (API format)"
            )
        )
    for node_id, node in workflow.items():
        if not isinstance(node_id, str) or not isinstance(node, Mapping):
            why = "every node must be a string id mapped to an object (API format, not the UI's)"
            return Failure(InvalidRequest(operation, "workflow", why))
        if not isinstance(node.get("class_type"), str):
            return Failure(
                InvalidRequest(operation, "workflow", f"node {node_id[:40]!r} has no class_type")
            )
    try:
        body = _encode({"prompt": workflow, "client_id": client_id or uuid.uuid4().hex})
    except (TypeError, ValueError, OverflowError) as error:  # something JSON cannot hold
        return Failure(
            InvalidRequest(operation, "workflow", f"is not JSON: {type(error).__name__}")
        )
    return Success(_comfy_request("POST", "/prompt", operation, headers=_JSON, body=body))


def build_history(prompt_id: str) -> Result[HttpRequest, InvalidRequest]:
    """``GET /history/{prompt_id}``."""
    from urllib.parse import quote

    operation = "read history"
    checked = check_name(prompt_id, "prompt_id", operation)
    return checked.map(
        lambda pid: _comfy_request("GET", f"/history/{quote(pid, safe='')}", operation)
    )


def build_queue() -> HttpRequest:
    """``GET /queue``."""
    return _comfy_request("GET", "/queue", "read queue")


def build_system_stats() -> HttpRequest:
    """``GET /system_stats``."""
    return _comfy_request("GET", "/system_stats", "read system stats")


def build_interrupt() -> HttpRequest:
    """``POST /interrupt``: stop what ComfyUI runs now."""
    return _comfy_request("POST", "/interrupt", "interrupt", headers=_JSON, body=b"{}")


def build_view(file: ComfyFile) -> Result[HttpRequest, InvalidRequest]:
    """``GET /view?filename=&subfolder=&type=``: one file's bytes."""
    operation = "download file"
    problem = _name_problem(file.filename, empty_ok=False) or _name_problem(
        file.subfolder, empty_ok=True
    )
    if problem is None and file.type not in _TYPES:
        problem = f"type must be one of {', '.join(_TYPES)}"
    if problem is not None:
        return Failure(InvalidRequest(operation, "file", problem))
    query = (("filename", file.filename), ("subfolder", file.subfolder), ("type", file.type))
    return Success(_comfy_request("GET", "/view", operation, query=query))


def _quoted(text: str) -> str:
    # A multipart header value: quotes and line breaks cannot appear (check_name refused controls).
    return text.replace("\\", "\\\\").replace('"', '\\"')


def build_upload(
    name: str, data: bytes, subfolder: str = ""
) -> Result[HttpRequest, InvalidRequest]:
    """``POST /upload/image`` (multipart: ``image``, ``overwrite``, ``subfolder``, ``type``)."""
    operation = "upload file"
    checked = check_name(name, "name", operation)
    if isinstance(checked, Success) and ("/" in name or "\\" in name or name in (".", "..")):
        checked = Failure(InvalidRequest(operation, "name", "must be a bare file name, not a path"))
    if not isinstance(checked, Success):
        return Failure(checked.failure())
    sub = check_name(subfolder, "subfolder", operation, empty_ok=True)
    if not isinstance(sub, Success):
        return Failure(sub.failure())
    if not isinstance(data, bytes | bytearray | memoryview):
        return Failure(
            InvalidRequest(operation, "data", f"must be bytes, not {type(data).__name__}")
        )
    boundary = uuid.uuid4().hex
    parts = [
        (
            b'Content-Disposition: form-data; name="image"; filename="%s"\r\n'
            b"Content-Type: application/octet-stream\r\n\r\n" % _quoted(name).encode(),
            bytes(data),
        ),
        (b'Content-Disposition: form-data; name="overwrite"\r\n\r\n', b"false"),
        (b'Content-Disposition: form-data; name="type"\r\n\r\n', b"input"),
        (b'Content-Disposition: form-data; name="subfolder"\r\n\r\n', subfolder.encode()),
    ]
    mark = b"--" + boundary.encode()
    body = (
        b"".join(mark + b"\r\n" + head + value + b"\r\n" for head, value in parts)
        + mark
        + b"--\r\n"
    )
    headers = (("Content-Type", f"multipart/form-data; boundary={boundary}"),)
    return Success(_comfy_request("POST", "/upload/image", operation, headers=headers, body=body))


# -- decoding ---------------------------------------------------------------------------


def _decode_any(response: HttpResponse, operation: str) -> Result[Any, ApiError]:
    return decode(response, _ANY, operation)


def _bad(response: HttpResponse, operation: str, where: str, problem: str) -> Failure[ApiError]:
    return Failure(DecodeFailed(operation, response.status, where, problem))


def _node_errors(raw: object) -> tuple[NodeError, ...] | None:
    """``node_errors`` as ComfyUI sends it: node id → ``{"errors": [...], "class_type"}``; an
    empty list in some releases when no node is at fault."""
    if raw == [] or raw is None:
        return ()
    if not isinstance(raw, dict):
        return None
    found = []
    for node_id, entry in raw.items():
        if not isinstance(entry, dict):
            return None
        errors = entry.get("errors", [])
        if not isinstance(errors, list):
            return None
        messages = tuple(_message(error) for error in errors)
        class_type = entry.get("class_type")
        found.append(
            NodeError(str(node_id), class_type if isinstance(class_type, str) else "", messages)
        )
    return tuple(found)


def _message(error: object) -> str:
    if not isinstance(error, dict):
        return str(error)[:300] if isinstance(error, str) else "(no message)"
    message, details = error.get("message"), error.get("details")
    text = message if isinstance(message, str) else "(no message)"
    return f"{text}: {details}" if isinstance(details, str) and details else text


def decode_prompt(response: HttpResponse, operation: str) -> Result[PromptAnswer, ApiError]:
    """200 → :class:`PromptQueued` (``prompt_id``, ``number``); 400 with ComfyUI's ``error`` →
    :class:`PromptRejected` naming the nodes; anything else → the usual failure."""
    if response.status == 400:
        parsed = _try_json(response.body)
        if isinstance(parsed, dict) and "error" in parsed:
            errors = _node_errors(parsed.get("node_errors"))
            if errors is not None:
                error = parsed["error"]
                summary = _message(error) if isinstance(error, dict) else str(error)[:300]
                return Success(PromptRejected(summary, errors))
        return Failure(error_from(response, operation))
    got = _decode_any(response, operation)
    if not isinstance(got, Success):
        return Failure(got.failure())
    body = got.unwrap()
    if not isinstance(body, dict):
        return _bad(response, operation, "$", "expected an object")
    prompt_id, number = body.get("prompt_id"), body.get("number")
    if not isinstance(prompt_id, str) or not prompt_id:
        return _bad(response, operation, "$.prompt_id", "expected a non-empty string")
    if not isinstance(number, int | float) or isinstance(number, bool):
        return _bad(response, operation, "$.number", "expected a number")
    errors = _node_errors(body.get("node_errors"))
    if errors:  # a 200 that still names nodes: ComfyUI queued the parts it could; say so
        return Success(PromptRejected("some outputs failed validation", errors))
    return Success(PromptQueued(prompt_id, int(number)))


def _try_json(body: bytes) -> object:
    try:
        return _ANY.decode(body)
    except (ValueError, RecursionError):
        return None


def _files(node_output: object) -> tuple[tuple[ComfyFile, ...], tuple[str, ...]] | None:
    """The files (any list of ``{filename, subfolder, type}``: images, gifs, audio...) and the
    ``text`` strings of one node's output."""
    if not isinstance(node_output, dict):
        return None
    files: list[ComfyFile] = []
    texts: list[str] = []
    for key, items in node_output.items():
        if not isinstance(items, list):
            continue  # a flag such as "animated": [true] is a list; scalars are not outputs
        for item in items:
            if key == "text" and isinstance(item, str):
                texts.append(item)
            elif isinstance(item, dict) and "filename" in item:
                try:
                    files.append(msgspec.convert(item, ComfyFile))
                except msgspec.ValidationError:
                    return None
    return tuple(files), tuple(texts)


def decode_history(prompt_id: str) -> Any:
    """A decoder for ``GET /history/{prompt_id}``: ``{}`` while not done, else the entry."""

    def decode_it(response: HttpResponse, operation: str) -> Result[ComfyHistory, ApiError]:
        got = _decode_any(response, operation)
        if not isinstance(got, Success):
            return Failure(got.failure())
        body = got.unwrap()
        if not isinstance(body, dict):
            return _bad(response, operation, "$", "expected an object")
        entry = body.get(prompt_id)
        if entry is None:
            return Success(ComfyHistory(prompt_id, found=False))
        if not isinstance(entry, dict):
            return _bad(response, operation, "$.<prompt_id>", "expected an object")
        status = entry.get("status") or {}
        outputs = entry.get("outputs") or {}
        if not isinstance(status, dict) or not isinstance(outputs, dict):
            return _bad(response, operation, "$.<prompt_id>", "status and outputs must be objects")
        found_files, found_texts = [], []
        for node_id, node_output in outputs.items():
            parsed = _files(node_output)
            if parsed is None:
                return _bad(
                    response,
                    operation,
                    f"$.<prompt_id>.outputs.{str(node_id)[:40]}",
                    "not a node output",
                )
            if parsed[0]:
                found_files.append((str(node_id), parsed[0]))
            if parsed[1]:
                found_texts.append((str(node_id), parsed[1]))
        status_str = status.get("status_str")
        messages = status.get("messages")
        return Success(
            ComfyHistory(
                prompt_id,
                found=True,
                completed=status.get("completed") is True,
                status=status_str if isinstance(status_str, str) else None,
                outputs=tuple(found_files),
                texts=tuple(found_texts),
                failed_nodes=_failed_nodes(messages),
            )
        )

    return decode_it


def _failed_nodes(messages: object) -> tuple[NodeError, ...]:
    """The nodes an ``execution_error`` message names (``[event, {node_id, node_type,
    exception_message}]`` in the history's status messages)."""
    if not isinstance(messages, list):
        return ()
    found = []
    for message in messages:
        if not (isinstance(message, list) and len(message) == 2 and isinstance(message[1], dict)):
            continue
        event, data = message
        if event != "execution_error":
            continue
        node_id, node_type, text = (
            data.get(k) for k in ("node_id", "node_type", "exception_message")
        )
        found.append(
            NodeError(
                str(node_id) if isinstance(node_id, str | int) else "?",
                node_type if isinstance(node_type, str) else "",
                (text[:300],) if isinstance(text, str) else (),
            )
        )
    return tuple(found)


def _ids(items: object) -> tuple[str, ...] | None:
    # Each queue item is [number, prompt_id, prompt, extra_data, outputs_to_execute].
    if not isinstance(items, list):
        return None
    ids = []
    for item in items:
        if not isinstance(item, list) or len(item) < 2 or not isinstance(item[1], str):
            return None
        ids.append(item[1])
    return tuple(ids)


def decode_queue(response: HttpResponse, operation: str) -> Result[ComfyQueue, ApiError]:
    got = _decode_any(response, operation)
    if not isinstance(got, Success):
        return Failure(got.failure())
    body = got.unwrap()
    if not isinstance(body, dict):
        return _bad(response, operation, "$", "expected an object")
    running, pending = _ids(body.get("queue_running", [])), _ids(body.get("queue_pending", []))
    if running is None or pending is None:
        return _bad(
            response, operation, "$.queue_running", "expected lists of [number, prompt_id, ...]"
        )
    return Success(ComfyQueue(running, pending))


def decode_system_stats(
    response: HttpResponse, operation: str
) -> Result[ComfySystemStats, ApiError]:
    got = _decode_any(response, operation)
    if not isinstance(got, Success):
        return Failure(got.failure())
    body = got.unwrap()
    if not isinstance(body, dict) or not isinstance(body.get("system", {}), dict):
        return _bad(response, operation, "$.system", "expected an object")
    system = body.get("system", {})
    devices = body.get("devices", [])
    names = (
        tuple(d["name"] for d in devices if isinstance(d, dict) and isinstance(d.get("name"), str))
        if isinstance(devices, list)
        else ()
    )
    version, python = system.get("comfyui_version"), system.get("python_version")
    return Success(
        ComfySystemStats(
            comfyui_version=version if isinstance(version, str) else None,
            python_version=python if isinstance(python, str) else None,
            devices=names,
            raw=body,
        )
    )


def decode_upload(response: HttpResponse, operation: str) -> Result[ComfyFile, ApiError]:
    """``{"name", "subfolder", "type"}``: where the server put the file (it may rename it)."""
    got = _decode_any(response, operation)
    if not isinstance(got, Success):
        return Failure(got.failure())
    body = got.unwrap()
    if not isinstance(body, dict) or not isinstance(body.get("name"), str):
        return _bad(response, operation, "$.name", "expected a string")
    kind = body.get("type", "input")
    if kind not in _TYPES:
        return _bad(response, operation, "$.type", f"expected one of {', '.join(_TYPES)}")
    subfolder = body.get("subfolder") or ""
    if not isinstance(subfolder, str):
        return _bad(response, operation, "$.subfolder", "expected a string")
    return Success(ComfyFile(body["name"], subfolder, kind))


def decode_bytes(response: HttpResponse, operation: str) -> Result[bytes, ApiError]:
    """A 2xx body as it is (``/view``), else the usual failure."""
    if not 200 <= response.status < 300:
        return Failure(error_from(response, operation))
    return Success(response.body)


def decode_empty(response: HttpResponse, operation: str) -> Result[None, ApiError]:
    """A 2xx whatever its body (``/interrupt`` answers an empty 200)."""
    if not 200 <= response.status < 300:
        return Failure(error_from(response, operation))
    return Success(None)


# -- the call steps ---------------------------------------------------------------------


def prepare(
    core: ClientCore,
    url: object,
    built: Result[HttpRequest, InvalidRequest],
    timeout: object = None,
    max_bytes: int | None = None,
) -> Result[tuple[HttpRequest, RetryPolicy], InvalidRequest]:
    """The request as it goes to the session's ``url`` (timeout and cap set), and the retry
    policy: the client's settings, this base URL, and no API key."""
    if not isinstance(built, Success):
        return Failure(built.failure())
    request = built.unwrap()
    base = comfy_url(url, request.operation)
    if not isinstance(base, Success):
        return Failure(base.failure())
    settings = core.settings(request.operation, timeout, None, max_bytes or MAX_OBJECT_BYTES)
    if not isinstance(settings, Success):
        return Failure(settings.failure())
    chosen_timeout, policy, limit = settings.unwrap()
    request = msgspec.structs.replace(
        request,
        base_url=base.unwrap(),
        headers=_ACCEPT + request.headers,
        timeout=chosen_timeout,
        max_response_bytes=max_bytes or limit,
    )
    return Success((request, policy))


def comfy_call(
    core: ClientCore,
    url: object,
    built: Result[HttpRequest, InvalidRequest],
    decoder: Any,
    *,
    kind: OperationKind,
    timeout: object = None,
    max_bytes: int | None = None,
) -> CallSteps[Any]:
    """One ComfyUI call on the session's ``url``: the client's timeout and retry settings and
    observers, but its own base URL and no API key (see the module doc)."""
    prepared = prepare(core, url, built, timeout, max_bytes)
    if not isinstance(prepared, Success):
        return Failure(prepared.failure())
    request, policy = prepared.unwrap()
    sent = yield from core.exchange(
        request, kind, policy, request.timeout, request.max_response_bytes
    )
    if not isinstance(sent, Success):
        return Failure(sent.failure())
    result: Result[Any, ApiError] = decoder(sent.unwrap(), request.operation)
    return result


class ComfySteps:
    """The steps of every ComfyUI call on one session's URL, for both clients to drive."""

    def __init__(self, core: ClientCore, url: object) -> None:
        self.core = core
        self.url = url  # a secret: never in a repr or a message

    def __repr__(self) -> str:
        return "ComfySteps(url=<redacted url>)"

    def _call(
        self,
        built: Result[HttpRequest, InvalidRequest],
        decoder: Any,
        kind: OperationKind,
        timeout: object,
        max_bytes: int | None = None,
    ) -> CallSteps[Any]:
        return comfy_call(
            self.core, self.url, built, decoder, kind=kind, timeout=timeout, max_bytes=max_bytes
        )

    def prompt(self, workflow: object, timeout: object = None) -> CallSteps[PromptAnswer]:
        # "create": a queued workflow is work; a request the server may have seen is not resent.
        return self._call(build_prompt(workflow), decode_prompt, "create", timeout)

    def history(self, prompt_id: str, timeout: object = None) -> CallSteps[ComfyHistory]:
        return self._call(build_history(prompt_id), decode_history(prompt_id), "get", timeout)

    def queue(self, timeout: object = None) -> CallSteps[ComfyQueue]:
        return self._call(Success(build_queue()), decode_queue, "get", timeout)

    def system_stats(self, timeout: object = None) -> CallSteps[ComfySystemStats]:
        return self._call(Success(build_system_stats()), decode_system_stats, "get", timeout)

    def interrupt(self, timeout: object = None) -> CallSteps[None]:
        # "cancel": idempotent, so retried like a cancel (interrupting twice stops nothing more).
        return self._call(Success(build_interrupt()), decode_empty, "cancel", timeout)

    def view(
        self, file: ComfyFile, timeout: object = None, max_bytes: int = MAX_VIEW_BYTES
    ) -> CallSteps[bytes]:
        if not isinstance(file, ComfyFile):
            why = f"must be a ComfyFile, not {type(file).__name__}"
            return Failure(InvalidRequest("download file", "file", why))
        return self._call(build_view(file), decode_bytes, "get", timeout, max_bytes)

    def upload(
        self, name: str, data: bytes, subfolder: str = "", timeout: object = None
    ) -> CallSteps[ComfyFile]:
        return self._call(build_upload(name, data, subfolder), decode_upload, "create", timeout)
