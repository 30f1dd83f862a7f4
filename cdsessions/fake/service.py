"""A fake ComfyDeploy Session API: a deterministic state machine from ``HttpRequest`` to
``HttpResponse``.

It answers the way the live server does (``comfy-deploy/api``, ``src/api/routes/session.py``,
2025-11): the same routes, status codes and ``detail`` texts, FastAPI's 422 bodies, the live
``SessionResponse`` shape (or, with ``seed_shapes=True``, the seed's 3-field ``Session`` and
``GPUEventModel`` list; there sessions have their url from the start, since the seed's
``Session.url`` is a required string). It does no I/O:
:class:`~cdsessions.fake.transport.FakeTransport` calls it in memory and
:mod:`cdsessions.fake.server` serves it over HTTP on 127.0.0.1.

What it models, and the live behaviour each rule copies:

* **Accounts.** Every request needs ``Authorization: Bearer <key>`` (else 401). By default any
  non-empty key is accepted and each distinct key is its own account; pass ``keys`` to accept
  only some keys (others get 401 ``"Invalid or expired token"``). Another account's session is a
  404, exactly like an unknown one.
* **Machines** are fixed when the fake is created (default: one, :data:`DEFAULT_MACHINE_ID`).
  Every account may use every configured machine. Create on another UUID gives 404
  ``"Machine not found"``; a machine id that is not a UUID (and not configured) gives the live
  server's ``text/plain`` 500, since Postgres fails to compare it with a UUID column.
* **Create** answers ``{"session_id", "url": null}`` at once; ``timeout`` null or 0 becomes 15
  minutes; at most 5 live sessions per machine and account (400 with the server's text);
  ``wait_for_server=true`` answers with the url already set.
* **Readiness.** ``url`` stays null for the first ``ready_after_polls`` ``get`` calls on the
  session, or until ``ready_after`` has passed on the clock, whichever comes first.
* **Expiry.** A session ends at its ``timeout_end`` (creation + timeout, moved by
  ``increase-timeout``), judged by the injectable ``clock``.
* **Cancel** answers ``{"success": true}``; the session is gone at once (get → 404, a second
  cancel → 404). With ``early_cancel_fails=True`` a session cancelled before it was ready
  answers 400 ``"Modal function id not found"`` and is closed anyway, as live does when the
  Modal call had not been spawned yet.
* **Prices.** ``GET /platform/gpu-pricing`` answers the price table (USD per second per GPU):
  by default :data:`DEFAULT_GPU_PRICES`, the live values of 2025-11; pass ``prices`` to change it.
* **increase-timeout** adds minutes to ``timeout_end`` (``timeout`` stays the initial value,
  as live); more than 60 minutes left afterwards is the live 400.

For tests: :attr:`FakeService.requests_seen` lists the ``(method, path)`` of every request
handled, and ``intercept`` (a function of each authenticated request, returning a response or
None) can answer a request in place of the fake, e.g. to make one cancel fail.

Not modelled: plans and balances (free-plan 400s, 403), the moment after a cancel when the live
server may still answer 200, and real ComfyUI behind the url.

Session urls look like the live tunnel urls, ``https://fake-<label>.r5.modal.localhost``, but
under the reserved ``.localhost`` name (RFC 6761): it can only resolve to the local machine, so
code that opens a fake url can never reach a real Modal tunnel or any other host. Like real ones,
they are treated as secrets (never in reprs).
"""

from __future__ import annotations

import hashlib
import json
import math
import re
import threading
import uuid
from collections import deque
from collections.abc import Callable, Iterable, Mapping
from datetime import UTC, datetime, timedelta
from typing import Any, Final, TypeAlias
from urllib.parse import unquote

import msgspec
from msgspec.structs import replace

from cdsessions._core.wire import HttpRequest, HttpResponse, header
from cdsessions.models import MachineGPU

__all__ = [
    "DEFAULT_GPU_PRICES",
    "DEFAULT_MACHINE_ID",
    "MAX_LIVE_SESSIONS_PER_MACHINE",
    "Clock",
    "FakeMachine",
    "FakeService",
    "FakeSession",
    "ManualClock",
    "system_clock",
]

#: The one machine a default :class:`FakeService` has (a UUID, as real machine ids are).
DEFAULT_MACHINE_ID: Final = "fa4e0000-0000-4000-8000-000000000001"
MAX_LIVE_SESSIONS_PER_MACHINE: Final = 5
DEFAULT_TIMEOUT_MINUTES: Final = 15
#: increase-timeout refuses to leave more than this many minutes on the clock.
MAX_REMAINING_MINUTES: Final = 60
#: Larger timeouts are refused as the live server's failing Modal call would (500): they also
#: keep every date representable.
MAX_TIMEOUT_MINUTES: Final = 7 * 24 * 60

#: ``GET /platform/gpu-pricing`` of the live server (api-facts.md, 2025-11): USD per second,
#: written as the server writes them.
DEFAULT_GPU_PRICES: Final[Mapping[str, str]] = {
    "T4": "0.00018",
    "L4": "0.00032",
    "A10G": "0.000337",
    "L40S": "0.000596",
    "A100": "0.00114",
    "A100-80GB": "0.001708",
    "H100": "0.002338",
    "H200": "0.001891",
    "B200": "0.002604",
    "CPU": "0.000042",
}
#: How many requests :attr:`FakeService.requests_seen` remembers (the oldest are dropped).
REQUEST_LOG_SIZE: Final = 10_000

Clock: TypeAlias = Callable[[], datetime]
#: Sees each authenticated request first; a response it returns is the answer.
Intercept: TypeAlias = Callable[[HttpRequest], HttpResponse | None]
_Json: TypeAlias = Any

_NAMESPACE: Final = uuid.UUID("6f1d7c2e-3a58-4c0e-9a39-fa4e5e551011")
_GPU_NAMES: Final = tuple(gpu.value for gpu in MachineGPU)
_GPU_EXPECTED: Final = ", ".join(f"'{name}'" for name in _GPU_NAMES[:-1]) + (
    f" or '{_GPU_NAMES[-1]}'"
)
_SESSION_ROUTE: Final = re.compile(r"/session/([^/]+)")
_EXTEND_ROUTE: Final = re.compile(r"/session/([^/]+)/increase-timeout")
_INT_TEXT: Final = re.compile(r"\s*[+-]?\d+\s*")
_TRUE: Final = frozenset({"1", "on", "t", "true", "y", "yes"})
_FALSE: Final = frozenset({"0", "off", "f", "false", "n", "no"})
_TOO_MANY: Final = (
    "You have reached the maximum number of concurrent sessions. "
    "Please close some sessions and try again."
)
_TOO_LONG: Final = (
    "You can't have more than 1 hour of time remaining. \n"
    "If you want to keep the session running, you can turn on 'Auto Expand Session' in the "
    "Menu (Top right hand corner) > Configuration."
)


def system_clock() -> datetime:
    """The real time, timezone-aware UTC."""
    return datetime.now(UTC)


class ManualClock:
    """A clock that moves only when told to: ``clock.advance(minutes=16)``. Thread-safe."""

    def __init__(self, start: datetime = datetime(2025, 11, 2, 12, 0, tzinfo=UTC)) -> None:
        self._now = start if start.tzinfo is not None else start.replace(tzinfo=UTC)
        self._lock = threading.Lock()

    def __call__(self) -> datetime:
        with self._lock:
            return self._now

    def advance(self, seconds: float = 0.0, *, minutes: float = 0.0) -> datetime:
        with self._lock:
            self._now += timedelta(seconds=seconds, minutes=minutes)
            return self._now

    def __repr__(self) -> str:
        return f"ManualClock({self._now.isoformat()})"


class FakeMachine(msgspec.Struct, frozen=True):
    """A machine sessions can be started on; ``gpu`` is used when create names none."""

    id: str
    gpu: str = "A10G"


class FakeSession(msgspec.Struct, frozen=True):
    """One live session as the fake holds it (for tests that look inside the fake)."""

    session_id: str
    gpu_event_id: str
    account: str
    machine_id: str
    machine_version_id: str
    gpu: str
    created_at: datetime
    timeout: int
    timeout_end: datetime
    ready: bool
    url: str
    polls: int = 0

    def __repr__(self) -> str:
        # ``url`` is treated as a secret, as a real session's is: never in a repr.
        names = (name for name in self.__struct_fields__ if name != "url")
        return f"FakeSession({', '.join(f'{name}={getattr(self, name)!r}' for name in names)})"


# -- responses ------------------------------------------------------------------------------


def _json(status: int, body: _Json) -> HttpResponse:
    # FastAPI's JSONResponse: compact separators, UTF-8 as is.
    data = json.dumps(body, ensure_ascii=False, separators=(",", ":")).encode()
    return HttpResponse(status, (("content-type", "application/json"),), data)


def _detail(status: int, detail: str) -> HttpResponse:
    return _json(status, {"detail": detail})


def _server_error() -> HttpResponse:
    # An unhandled exception in the live server: Starlette's plain-text 500.
    return HttpResponse(
        500, (("content-type", "text/plain; charset=utf-8"),), b"Internal Server Error"
    )


def _invalid(errors: list[dict[str, _Json]]) -> HttpResponse:
    return _json(422, {"detail": errors})


def _utc_z(moment: datetime) -> str:
    """pydantic's form of an aware UTC datetime: ``2025-11-02T12:00:00Z``."""
    return moment.astimezone(UTC).replace(tzinfo=None).isoformat() + "Z"


def _naive(moment: datetime) -> str:
    """The live ``timeout_end``: naive ISO text meaning UTC (it comes from ``utcnow()``)."""
    return moment.astimezone(UTC).replace(tzinfo=None).isoformat()


def _price_table(prices: Mapping[str, str | int]) -> bytes:
    """The gpu-pricing body, each price written with exactly the digits given (json.dumps would
    go through float)."""
    for gpu, price in prices.items():
        if not re.fullmatch(r"-?\d+(\.\d+)?([eE][+-]?\d+)?", str(price)):
            raise ValueError(f"the price of {gpu!r} is not a JSON number: {price!r}")
    items = ",".join(f"{json.dumps(gpu)}:{price}" for gpu, price in prices.items())
    return ("{" + items + "}").encode()


def _is_uuid(text: str) -> bool:
    try:
        uuid.UUID(text)
    except ValueError:
        return False
    return True


# -- FastAPI/pydantic validation, for the few fields the API has ----------------------------


def _error(kind: str, loc: list[str | int], msg: str, value: _Json) -> dict[str, _Json]:
    return {"type": kind, "loc": loc, "msg": msg, "input": value}


def _parse_body(body: bytes | None) -> tuple[_Json, list[dict[str, _Json]]]:
    """The JSON body, or FastAPI's 422 items for a missing or malformed one."""
    if not body:
        return None, [_error("missing", ["body"], "Field required", None)]
    try:
        return json.loads(body), []
    except (ValueError, RecursionError) as error:
        position = error.pos if isinstance(error, json.JSONDecodeError) else 0
        reason = error.msg if isinstance(error, json.JSONDecodeError) else "nested too deeply"
        item = _error("json_invalid", ["body", position], "JSON decode error", {})
        item["ctx"] = {"error": reason}
        return None, [item]


def _as_object(value: _Json) -> tuple[dict[str, _Json] | None, list[dict[str, _Json]]]:
    if isinstance(value, dict):
        return value, []
    message = "Input should be a valid dictionary or object to extract fields from"
    return None, [_error("model_attributes_type", ["body"], message, value)]


def _lax_int(value: _Json, loc: list[str | int]) -> tuple[int | None, dict[str, _Json] | None]:
    """pydantic's lax ``int``: bools, whole floats and digit strings are accepted."""
    if isinstance(value, bool | int):
        return int(value), None
    if isinstance(value, float):
        if not math.isfinite(value):
            message = "Input should be a finite number"
            return None, _error("finite_number", loc, message, value)
        if value != int(value):
            message = "Input should be a valid integer, got a number with a fractional part"
            return None, _error("int_from_float", loc, message, value)
        return int(value), None
    if isinstance(value, str):
        if _INT_TEXT.fullmatch(value):
            return int(value), None
        message = "Input should be a valid integer, unable to parse string as an integer"
        return None, _error("int_parsing", loc, message, value)
    return None, _error("int_type", loc, "Input should be a valid integer", value)


def _lax_bool(value: _Json, loc: list[str | int]) -> tuple[bool | None, dict[str, _Json] | None]:
    if isinstance(value, bool):
        return value, None
    if isinstance(value, int | float) and value in (0, 1):
        return bool(value), None
    if isinstance(value, str) and value.lower() in _TRUE | _FALSE:
        return value.lower() in _TRUE, None
    if isinstance(value, str | int | float):
        message = "Input should be a valid boolean, unable to interpret input"
        return None, _error("bool_parsing", loc, message, value)
    return None, _error("bool_type", loc, "Input should be a valid boolean", value)


class _CreateBody(msgspec.Struct, frozen=True):
    machine_id: str
    gpu: str | None
    timeout: int | None
    wait_for_server: bool


def _validate_create(body: bytes | None) -> tuple[_CreateBody | None, list[dict[str, _Json]]]:
    parsed, errors = _parse_body(body)
    if errors:
        return None, errors
    obj, errors = _as_object(parsed)
    if obj is None:
        return None, errors
    machine_id = obj.get("machine_id")
    if "machine_id" not in obj:
        errors.append(_error("missing", ["body", "machine_id"], "Field required", obj))
    elif not isinstance(machine_id, str):
        message = "Input should be a valid string"
        errors.append(_error("string_type", ["body", "machine_id"], message, machine_id))
    gpu = obj.get("gpu")
    if gpu is not None and gpu not in _GPU_NAMES:
        item = _error("enum", ["body", "gpu"], f"Input should be {_GPU_EXPECTED}", gpu)
        item["ctx"] = {"expected": _GPU_EXPECTED}
        errors.append(item)
    timeout: int | None = None
    if obj.get("timeout") is not None:
        timeout, problem = _lax_int(obj["timeout"], ["body", "timeout"])
        errors += [problem] if problem else []
    wait, problem = _lax_bool(obj.get("wait_for_server", False), ["body", "wait_for_server"])
    errors += [problem] if problem else []
    if errors:
        return None, errors
    # Checked above; the asserts narrow the types for mypy.
    assert isinstance(machine_id, str)
    assert wait is not None
    return _CreateBody(machine_id, gpu, timeout, wait), []


def _validate_extend(body: bytes | None) -> tuple[int | None, list[dict[str, _Json]]]:
    parsed, errors = _parse_body(body)
    if errors:
        return None, errors
    obj, errors = _as_object(parsed)
    if obj is None:
        return None, errors
    if "minutes" not in obj:
        return None, [_error("missing", ["body", "minutes"], "Field required", obj)]
    minutes, problem = _lax_int(obj["minutes"], ["body", "minutes"])
    return minutes, [problem] if problem else []


# -- the service ----------------------------------------------------------------------------


class FakeService:
    """The fake server's whole state, answering one :class:`HttpRequest` at a time.

    ``handle(request)`` is the only entry point; it is thread-safe, and deterministic for a given
    ``seed``, clock and sequence of requests (ids and urls are derived, never random).
    ``request.path`` is the path below the API's base (``/session/…``); ``base_url`` is ignored.

    Parameters: ``machines`` (ids or :class:`FakeMachine`; default one,
    :data:`DEFAULT_MACHINE_ID`); ``keys`` maps each accepted API key to an account name (None:
    any non-empty key, each its own account); ``clock`` returns aware UTC datetimes (default the
    system clock; see :class:`ManualClock`); ``ready_after_polls`` and ``ready_after`` say when a
    session's url appears; ``seed_shapes`` answers in the seed document's shapes;
    ``early_cancel_fails`` see the module docs.
    """

    DEFAULT_MACHINE_ID: Final = DEFAULT_MACHINE_ID

    def __init__(
        self,
        *,
        machines: Iterable[str | FakeMachine] = (DEFAULT_MACHINE_ID,),
        keys: Mapping[str, str] | None = None,
        clock: Clock = system_clock,
        ready_after_polls: int | None = 1,
        ready_after: timedelta | None = None,
        seed_shapes: bool = False,
        early_cancel_fails: bool = False,
        seed: int = 0,
        prices: Mapping[str, str | int] | None = None,
        intercept: Intercept | None = None,
    ) -> None:
        listed = [m if isinstance(m, FakeMachine) else FakeMachine(m) for m in machines]
        self._machines = {machine.id: machine for machine in listed}
        self._keys = dict(keys) if keys is not None else None
        self._clock = clock
        self._ready_after_polls = ready_after_polls
        self._ready_after = ready_after
        self.seed_shapes = seed_shapes
        self._early_cancel_fails = early_cancel_fails
        self._seed = seed
        self._accounts: dict[str, str] = {}
        self._sessions: dict[str, FakeSession] = {}
        self._created = 0
        self._handled = 0
        self._lock = threading.RLock()
        self._prices_body = _price_table(DEFAULT_GPU_PRICES if prices is None else prices)
        self._intercept = intercept
        self._seen: deque[tuple[str, str]] = deque(maxlen=REQUEST_LOG_SIZE)

    # -- looking inside (for tests) --------------------------------------------------------

    @property
    def machine_ids(self) -> tuple[str, ...]:
        return tuple(self._machines)

    @property
    def requests_handled(self) -> int:
        with self._lock:
            return self._handled

    @property
    def requests_seen(self) -> tuple[tuple[str, str], ...]:
        """``(method, path)`` of each request handled, oldest first (paths below the base)."""
        with self._lock:
            return tuple(self._seen)

    def live_sessions(self, api_key: str | None = None) -> tuple[FakeSession, ...]:
        """Sessions that exist now (expired ones removed), oldest first; only those of
        ``api_key``'s account when given."""
        with self._lock:
            self._expire(self._clock())
            sessions = tuple(self._sessions.values())
            if api_key is None:
                return sessions
            account = self._account_of(api_key)
            return tuple(s for s in sessions if s.account == account)

    # -- the one entry point ---------------------------------------------------------------

    def handle(self, request: HttpRequest) -> HttpResponse:
        """The response the live server would give to ``request``."""
        with self._lock:
            self._handled += 1
            self._seen.append((request.method.upper(), unquote(request.path)))
            now = self._clock()
            self._expire(now)
            account, refusal = self._authenticate(request)
            if refusal is not None:
                return refusal
            assert account is not None  # _authenticate gives one or the other
            if self._intercept is not None:
                answer = self._intercept(request)
                if answer is not None:
                    return answer
            return self._route(request, account, now)

    # -- auth ------------------------------------------------------------------------------

    def _account_of(self, key: str) -> str | None:
        if self._keys is not None:
            return self._keys.get(key)
        if key not in self._accounts:
            # Named by order of first use, never from the key itself (the key is a secret).
            self._accounts[key] = f"user_fake{len(self._accounts) + 1}"
        return self._accounts[key]

    def _authenticate(self, request: HttpRequest) -> tuple[str | None, HttpResponse | None]:
        value = header(request.headers, "authorization") or ""
        scheme, _, key = value.partition(" ")
        key = key.strip()
        if scheme.lower() != "bearer" or not key:
            return None, _detail(401, "Invalid or missing token")
        account = self._account_of(key)
        if account is None:
            return None, _detail(401, "Invalid or expired token")
        return account, None

    # -- routing (Starlette matches the decoded path) --------------------------------------

    def _route(self, request: HttpRequest, account: str, now: datetime) -> HttpResponse:
        path = unquote(request.path)
        method = request.method.upper()
        query = dict(request.query)  # the last value of a repeated name wins, as in Starlette
        if path == "/session":
            if method == "POST":
                return self._create(request.body, account, now)
            return _detail(405, "Method Not Allowed")
        if path == "/platform/gpu-pricing":
            if method == "GET":
                return HttpResponse(200, (("content-type", "application/json"),), self._prices_body)
            return _detail(405, "Method Not Allowed")
        if path == "/sessions":
            if method == "GET":
                return self._list(query, account, now)
            return _detail(405, "Method Not Allowed")
        extend = _EXTEND_ROUTE.fullmatch(path)
        if extend:
            if method == "POST":
                return self._extend(extend.group(1), request.body, account, now)
            return _detail(405, "Method Not Allowed")
        single = _SESSION_ROUTE.fullmatch(path)
        if single:
            if method == "GET":
                return self._get(single.group(1), account, now)
            if method == "DELETE":
                return self._cancel(single.group(1), query, account)
            return _detail(405, "Method Not Allowed")
        return _detail(404, "Not Found")

    # -- state -----------------------------------------------------------------------------

    def _expire(self, now: datetime) -> None:
        ended = [sid for sid, s in self._sessions.items() if now >= s.timeout_end]
        for sid in ended:
            del self._sessions[sid]

    def _owned(self, session_id: str, account: str) -> FakeSession | None:
        found = self._sessions.get(session_id)
        return found if found is not None and found.account == account else None

    def _is_ready(self, session: FakeSession, now: datetime) -> bool:
        if session.ready:
            return True
        polls = self._ready_after_polls
        if polls is not None and session.polls >= polls:
            return True
        return self._ready_after is not None and now - session.created_at >= self._ready_after

    def _refresh(self, session: FakeSession, now: datetime, *, poll: bool) -> FakeSession:
        """The session as seen now; a ``get`` by its owner counts as one poll."""
        ready = self._is_ready(session, now)
        updated = replace(session, ready=ready, polls=session.polls + (1 if poll else 0))
        self._sessions[session.session_id] = updated
        return updated

    def _derive(self, kind: str, number: int) -> str:
        return str(uuid.uuid5(_NAMESPACE, f"{self._seed}/{kind}/{number}"))

    # -- operations ------------------------------------------------------------------------

    def _create(self, body: bytes | None, account: str, now: datetime) -> HttpResponse:
        parsed, errors = _validate_create(body)
        if parsed is None:
            return _invalid(errors)
        machine_id = parsed.machine_id
        if machine_id not in self._machines and not _is_uuid(machine_id):
            return _server_error()  # the live count query casts machine_id to a UUID
        live_here = [
            s
            for s in self._sessions.values()
            if s.account == account and s.machine_id == machine_id
        ]
        if len(live_here) >= MAX_LIVE_SESSIONS_PER_MACHINE:
            return _detail(400, _TOO_MANY)
        machine = self._machines.get(machine_id)
        if machine is None:
            return _detail(404, "Machine not found")
        timeout = parsed.timeout or DEFAULT_TIMEOUT_MINUTES
        if not 0 < timeout <= MAX_TIMEOUT_MINUTES:
            return _detail(500, "Session creation failed")
        self._created += 1
        number = self._created
        label = hashlib.sha256(f"{self._seed}/url/{number}".encode()).hexdigest()[:12]
        session = FakeSession(
            session_id=self._derive("session", number),
            gpu_event_id=self._derive("gpu-event", number),
            account=account,
            machine_id=machine_id,
            machine_version_id=self._derive(f"version/{machine_id}", 1),
            gpu=parsed.gpu or machine.gpu,
            created_at=now,
            timeout=timeout,
            timeout_end=now + timedelta(minutes=timeout),
            # The seed contract's Session.url is a required string, so in seed shapes a
            # session is ready (has its url) from the start.
            ready=parsed.wait_for_server or self.seed_shapes,
            url=f"https://fake-{label}.r5.modal.localhost",
        )
        self._sessions[session.session_id] = session
        url = session.url if session.ready else None
        return _json(200, {"session_id": session.session_id, "url": url})

    def _get(self, session_id: str, account: str, now: datetime) -> HttpResponse:
        found = self._owned(session_id, account)
        if found is None:
            return _detail(404, "GPUEvent not found")
        session = self._refresh(found, now, poll=True)
        if self.seed_shapes:
            body = {
                "session_id": session.session_id,
                "gpu_event_id": session.gpu_event_id,
                "url": session.url,
            }
            return _json(200, body)
        return _json(200, self._live_shape(session))

    def _list(self, query: dict[str, str], account: str, now: datetime) -> HttpResponse:
        machine_id = query.get("machine_id")
        if machine_id is None and self.seed_shapes:  # the seed declared machine_id required
            item = _error("missing", ["query", "machine_id"], "Field required", None)
            return _invalid([item])
        if machine_id and machine_id not in self._machines and not _is_uuid(machine_id):
            return _server_error()  # Postgres cannot compare it with the UUID column
        mine = [
            self._refresh(s, now, poll=False)
            for s in self._sessions.values()
            if s.account == account and (not machine_id or s.machine_id == machine_id)
        ]
        mine.reverse()  # newest first, as the live ORDER BY start_time DESC gives
        shape = self._seed_event_shape if self.seed_shapes else self._live_shape
        return _json(200, [shape(session) for session in mine])

    def _cancel(self, session_id: str, query: dict[str, str], account: str) -> HttpResponse:
        if "wait_for_shutdown" in query:
            _, problem = _lax_bool(query["wait_for_shutdown"], ["query", "wait_for_shutdown"])
            if problem is not None:
                return _invalid([problem])
        found = self._owned(session_id, account)
        if found is None:
            closed = f"GPUEvent not found session_id: {session_id}"
            return _detail(404, closed + ", the event might be already closed")
        del self._sessions[session_id]
        if self._early_cancel_fails and not found.ready:
            return _detail(400, "Modal function id not found")
        return _json(200, {"success": True})

    def _extend(
        self, session_id: str, body: bytes | None, account: str, now: datetime
    ) -> HttpResponse:
        minutes, errors = _validate_extend(body)
        if minutes is None:
            return _invalid(errors)
        found = self._owned(session_id, account)
        if found is None:
            return _detail(404, "GPU event not found")
        try:
            new_end = found.timeout_end + timedelta(minutes=minutes)
        except OverflowError:
            return _server_error()
        if (new_end - now).total_seconds() / 60 > MAX_REMAINING_MINUTES:
            return _detail(400, _TOO_LONG)
        self._sessions[session_id] = replace(found, timeout_end=new_end)
        self._expire(now)  # a negative extension may end it at once
        return _json(200, {"message": "Timeout increased successfully"})

    # -- shapes ----------------------------------------------------------------------------

    def _live_shape(self, session: FakeSession) -> dict[str, _Json]:
        return {
            "id": session.session_id,
            "session_id": session.session_id,
            "gpu_event_id": session.gpu_event_id,
            "url": session.url if session.ready else None,
            "gpu": session.gpu,
            "created_at": _utc_z(session.created_at),
            "timeout": session.timeout,
            "timeout_end": _naive(session.timeout_end),
            "machine_id": session.machine_id,
            "machine_version_id": session.machine_version_id,
            "status": "running",
            "user_id": session.account,
            "org_id": "None",  # str(None): the live server's value for personal accounts
        }

    def _seed_event_shape(self, session: FakeSession) -> dict[str, _Json]:
        started = _utc_z(session.created_at) if session.ready else None
        return {
            "id": session.gpu_event_id,
            "user_id": session.account,
            "org_id": None,
            "machine_id": session.machine_id,
            "start_time": started,
            "end_time": None,
            "gpu": session.gpu,
            "ws_gpu": None,
            "gpu_provider": "modal",
            "created_at": _utc_z(session.created_at),
            "updated_at": _utc_z(session.created_at),
            "session_timeout": session.timeout,
            "session_id": session.session_id,
            "modal_function_id": f"fc-fake{session.gpu_event_id[:8]}",
            "tunnel_url": session.url if session.ready else None,
            "cost_item_title": None,
            "cost": None,
        }

    def __repr__(self) -> str:
        with self._lock:
            return (
                f"FakeService(machines={len(self._machines)}, live={len(self._sessions)}, "
                f"seed_shapes={self.seed_shapes})"
            )
