"""A small ComfyUI for tests: the routes cdsessions uses, with ComfyUI's shapes (v0.3.x), a few
node types that "run" deterministically, and scripting to fail or stall.

It checks a workflow the way ComfyUI's ``validate_prompt`` does: an unknown ``class_type`` is an
``invalid_prompt`` error naming it, a missing required input or a link to a node that does not
exist is a ``node_errors`` entry of the output node that needs it, and a workflow without an
output node is ``prompt_no_outputs``. The nodes:

- ``LoadImage`` (``image``: the name of an uploaded input) gives the file's bytes;
- ``PrimitiveString`` (``value``) gives the string;
- ``SaveImage`` (``images``: a link, ``filename_prefix``) writes ``<prefix>_00001_.png`` holding
  the bytes it was given (a string is written as UTF-8), listed under ``images``;
- ``PreviewAny`` (``source``: a link) shows its input as text (``{"text": [...]}``).

A run finishes when its history is read ``polls_before_done + 1`` times. :meth:`stall` makes
runs never finish, :meth:`fail_next_run` makes the next one fail in a node; ``interrupts``
counts ``POST /interrupt``. :meth:`handle` answers one request (method, target, body) with
(status, headers, body), so it can sit behind any server; :func:`serve_comfyui` serves it on
127.0.0.1.
"""

from __future__ import annotations

import email.parser
import email.policy
import json
import re
import threading
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any, Final
from urllib.parse import parse_qsl, unquote, urlsplit

__all__ = ["COMFY_PREFIX", "FakeComfyUI", "serve_comfyui"]

#: Where the fake server serves each session's ComfyUI: ``/comfy/<the session's tunnel host>``.
COMFY_PREFIX: Final = "/comfy"

Answer = tuple[int, tuple[tuple[str, str], ...], bytes]
_JSON: Final = (("Content-Type", "application/json"),)
#: Each node type's required inputs, and whether it is an output node.
NODE_TYPES: Final = {
    "LoadImage": (("image",), False),
    "PrimitiveString": (("value",), False),
    "SaveImage": (("images", "filename_prefix"), True),
    "PreviewAny": (("source",), True),
}
_SAFE_NAME: Final = re.compile(r"^[^/\\\x00]+$")


def _json(status: int, body: Any) -> Answer:
    return status, _JSON, json.dumps(body).encode()


def _error(kind: str, message: str, details: str = "") -> dict[str, Any]:
    return {"type": kind, "message": message, "details": details, "extra_info": {}}


@dataclass
class _Run:
    prompt_id: str
    number: int
    workflow: dict[str, Any]
    reads: int = 0
    done: bool = False
    entry: dict[str, Any] = field(default_factory=dict)


@dataclass
class FakeComfyUI:
    """The fake ComfyUI's state. Thread-safe: a server's threads share it."""

    polls_before_done: int = 0
    #: Output files served by ``/view`` as ``(subfolder, filename) → bytes``; tests may add
    #: hostile names here and list them with :meth:`add_output_file`.
    outputs: dict[tuple[str, str], bytes] = field(default_factory=dict)
    inputs: dict[str, bytes] = field(default_factory=dict)
    interrupts: int = 0
    requests: list[str] = field(default_factory=list)
    _runs: dict[str, _Run] = field(default_factory=dict)
    _stalled: bool = False
    _fail_next: tuple[str, str] | None = None
    _extra_files: list[dict[str, str]] = field(default_factory=list)
    _lock: threading.Lock = field(default_factory=threading.Lock)

    # -- scripting ----------------------------------------------------------------------

    def stall(self) -> None:
        """Runs never finish (until :meth:`unstall`)."""
        self._stalled = True

    def unstall(self) -> None:
        self._stalled = False

    def fail_next_run(self, node_id: str, message: str) -> None:
        """The next run fails in ``node_id`` with ``message`` (an ``execution_error``)."""
        self._fail_next = (node_id, message)

    def add_output_file(self, filename: str, data: bytes, subfolder: str = "") -> None:
        """Every later run lists this file among its outputs too, as images of a node
        ``extra`` (for hostile names)."""
        self.outputs[(subfolder, filename)] = data
        self._extra_files.append({"filename": filename, "subfolder": subfolder, "type": "output"})

    # -- HTTP ---------------------------------------------------------------------------

    def handle(self, method: str, target: str, body: bytes, content_type: str = "") -> Answer:
        parts = urlsplit(target)
        path, query = parts.path, dict(parse_qsl(parts.query))
        with self._lock:
            self.requests.append(f"{method} {path}")
            if method == "POST" and path == "/prompt":
                return self._prompt(body)
            if method == "GET" and path.startswith("/history/"):
                return self._history(unquote(path[len("/history/") :]))
            if method == "GET" and path == "/queue":
                return self._queue()
            if method == "GET" and path == "/view":
                return self._view(query)
            if method == "POST" and path == "/upload/image":
                return self._upload(body, content_type)
            if method == "POST" and path == "/interrupt":
                self.interrupts += 1
                for run in self._runs.values():
                    if not run.done:
                        self._finish(run, interrupted=True)
                return 200, (), b""
            if method == "GET" and path == "/system_stats":
                system = {"os": "posix", "comfyui_version": "0.3.40-fake", "python_version": "3"}
                return _json(200, {"system": system, "devices": [{"name": "fake", "type": "cpu"}]})
        return 404, (("Content-Type", "text/plain"),), b"404: Not Found"

    def _prompt(self, body: bytes) -> Answer:
        try:
            workflow = json.loads(body)["prompt"]
        except (ValueError, KeyError, TypeError):
            return _json(
                400, {"error": _error("no_prompt", "No prompt provided"), "node_errors": {}}
            )
        problem = self._validate(workflow)
        if problem is not None:
            return _json(400, problem)
        prompt_id = str(uuid.uuid4())
        self._runs[prompt_id] = _Run(prompt_id, len(self._runs), workflow)
        return _json(
            200, {"prompt_id": prompt_id, "number": len(self._runs) - 1, "node_errors": {}}
        )

    def _validate(self, workflow: Any) -> dict[str, Any] | None:
        if not isinstance(workflow, dict):
            return {"error": _error("invalid_prompt", "Invalid prompt"), "node_errors": {}}
        for node_id, node in workflow.items():
            kind = node.get("class_type") if isinstance(node, dict) else None
            if kind not in NODE_TYPES:
                message = f"Cannot execute because node {kind} does not exist."
                error = _error("invalid_prompt", message, f"Node ID '#{node_id}'")
                return {"error": error, "node_errors": {}}
        node_errors: dict[str, Any] = {}
        outputs = [n for n, node in workflow.items() if NODE_TYPES[node["class_type"]][1]]
        if not outputs:
            error = _error("prompt_no_outputs", "Prompt has no outputs")
            return {"error": error, "node_errors": []}
        for node_id, node in workflow.items():
            required, _ = NODE_TYPES[node["class_type"]]
            inputs = node.get("inputs") or {}
            errors = []
            for name in required:
                value = inputs.get(name)
                if value is None:
                    errors.append(
                        _error("required_input_missing", "Required input is missing", name)
                    )
                elif isinstance(value, list) and (len(value) != 2 or str(value[0]) not in workflow):
                    errors.append(_error("bad_linked_input", "Bad linked input", name))
            image = inputs.get("image")
            unknown = isinstance(image, str) and image not in self.inputs
            if node["class_type"] == "LoadImage" and unknown:
                details = f"image: '{image}'"
                errors.append(_error("value_not_in_list", "Value not in list", details))
            if errors:
                node_errors[node_id] = {
                    "errors": errors,
                    "dependent_outputs": outputs,
                    "class_type": node["class_type"],
                }
        if node_errors:
            error = _error("prompt_outputs_failed_validation", "Prompt outputs failed validation")
            return {"error": error, "node_errors": node_errors}
        return None

    def _history(self, prompt_id: str) -> Answer:
        run = self._runs.get(prompt_id)
        if run is None:
            return _json(200, {})
        run.reads += 1
        if not run.done and not self._stalled and run.reads > self.polls_before_done:
            self._finish(run)
        return _json(200, {prompt_id: run.entry} if run.done else {})

    def _queue(self) -> Answer:
        waiting = [r for r in self._runs.values() if not r.done]
        items = [[r.number, r.prompt_id, r.workflow, {}, []] for r in waiting]
        return _json(200, {"queue_running": items[:1], "queue_pending": items[1:]})

    def _finish(self, run: _Run, *, interrupted: bool = False) -> None:
        run.done = True
        prompt = [run.number, run.prompt_id, run.workflow, {}, []]
        if interrupted or self._fail_next is not None:
            messages: list[Any] = [["execution_start", {"prompt_id": run.prompt_id}]]
            if interrupted:
                messages.append(["execution_interrupted", {"prompt_id": run.prompt_id}])
            else:
                assert self._fail_next is not None
                node_id, message = self._fail_next
                self._fail_next = None
                kind = run.workflow.get(node_id, {}).get("class_type", "")
                data = {
                    "prompt_id": run.prompt_id,
                    "node_id": node_id,
                    "node_type": kind,
                    "exception_message": message,
                }
                messages.append(["execution_error", data])
            status = {"status_str": "error", "completed": False, "messages": messages}
            run.entry = {"prompt": prompt, "outputs": {}, "status": status, "meta": {}}
            return
        outputs = self._execute(run.workflow)
        if self._extra_files:
            outputs.setdefault("extra", {})["images"] = list(self._extra_files)
        status = {"status_str": "success", "completed": True, "messages": []}
        run.entry = {"prompt": prompt, "outputs": outputs, "status": status, "meta": {}}

    def _execute(self, workflow: dict[str, Any]) -> dict[str, Any]:
        values: dict[str, Any] = {}

        def value_of(node_id: str) -> Any:
            if node_id not in values:
                node = workflow[node_id]
                inputs = {
                    k: (value_of(str(v[0])) if isinstance(v, list) else v)
                    for k, v in (node.get("inputs") or {}).items()
                }
                kind = node["class_type"]
                if kind == "LoadImage":
                    values[node_id] = self.inputs[inputs["image"]]
                elif kind == "PrimitiveString":
                    values[node_id] = str(inputs["value"])
                elif kind == "SaveImage":
                    data = inputs["images"]
                    data = data.encode() if isinstance(data, str) else data
                    prefix = str(inputs["filename_prefix"])
                    count = sum(1 for _, name in self.outputs if name.startswith(prefix + "_")) + 1
                    name = f"{prefix}_{count:05}_.png"
                    self.outputs[("", name)] = data
                    values[node_id] = {
                        "images": [{"filename": name, "subfolder": "", "type": "output"}]
                    }
                else:  # PreviewAny
                    source = inputs["source"]
                    text = (
                        source.decode(errors="replace")
                        if isinstance(source, bytes)
                        else str(source)
                    )
                    values[node_id] = {"text": [text]}
            return values[node_id]

        return {n: value_of(n) for n, node in workflow.items() if NODE_TYPES[node["class_type"]][1]}

    def _view(self, query: dict[str, str]) -> Answer:
        name, subfolder, kind = (
            query.get("filename", ""),
            query.get("subfolder", ""),
            query.get("type", "output"),
        )
        store = {"output": self.outputs, "input": {("", k): v for k, v in self.inputs.items()}}.get(
            kind, {}
        )
        data = store.get((subfolder, name))
        if data is None:
            return 404, (), b""
        return 200, (("Content-Type", "application/octet-stream"),), data

    def _upload(self, body: bytes, content_type: str) -> Answer:
        raw = f"Content-Type: {content_type}\r\n\r\n".encode() + body
        message = email.parser.BytesParser(policy=email.policy.HTTP).parsebytes(raw)
        if not message.is_multipart():
            return 400, (), b""
        fields = {
            p.get_param("name", header="content-disposition"): p for p in message.iter_parts()
        }
        image = fields.get("image")
        name = image.get_filename() if image is not None else None
        if image is None or not name or not _SAFE_NAME.match(name) or name in (".", ".."):
            return 400, (), b""
        data = image.get_payload(decode=True)
        stem, dot, suffix = name.rpartition(".")
        stored, n = name, 0
        while stored in self.inputs:  # ComfyUI renames rather than overwrite: "in (1).png"
            n += 1
            stored = f"{stem} ({n}).{suffix}" if dot else f"{name} ({n})"
        self.inputs[stored] = data if isinstance(data, bytes) else b""
        return _json(200, {"name": stored, "subfolder": "", "type": "input"})


def _handler(comfy: FakeComfyUI) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def _handle(self) -> None:
            length = int(self.headers.get("Content-Length") or 0)
            body = self.rfile.read(length) if length else b""
            status, headers, answer = comfy.handle(
                self.command, self.path, body, self.headers.get("Content-Type", "")
            )
            self.send_response(status)
            for name, value in headers:
                self.send_header(name, value)
            self.send_header("Content-Length", str(len(answer)))
            self.end_headers()
            self.wfile.write(answer)

        do_GET = do_POST = _handle

        def log_message(self, format: str, *args: object) -> None:
            return

    return Handler


@contextmanager
def serve_comfyui(comfy: FakeComfyUI | None = None) -> Iterator[tuple[FakeComfyUI, str]]:
    """Serve ``comfy`` (a new one by default) on a free port of 127.0.0.1; yields it and its URL
    (a session URL: keep it secret like a real one)."""
    comfy = comfy or FakeComfyUI()
    server = ThreadingHTTPServer(("127.0.0.1", 0), _handler(comfy))
    server.daemon_threads = True
    thread = threading.Thread(
        target=server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True
    )
    thread.start()
    try:
        yield comfy, f"http://127.0.0.1:{server.server_address[1]}"
    finally:
        server.shutdown()
        server.server_close()
        thread.join(timeout=5)
