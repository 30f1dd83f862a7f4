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
  minutes, and is not range-checked (a negative one ends the session at once); at most 5 live
  sessions per machine and account (400 with the server's text); ``wait_for_server=true``
  answers with the url already set.
* **Readiness.** ``url`` stays null for the first ``ready_after_polls`` ``get`` calls on the
  session, or until ``ready_after`` has passed on the clock, whichever comes first.
* **Expiry.** A session ends at its ``timeout_end`` (creation + timeout, moved by
  ``increase-timeout``), or 24 hours after its creation (the platform's cap), whichever comes
  first, judged by the injectable ``clock``.
* **Cancel** answers ``{"success": true}``; the session is gone at once (get → 404, a second
  cancel → 404). With ``early_cancel_fails=True`` a session cancelled before it was ready
  answers 400 ``"Modal function id not found"`` and is closed anyway, as live does when the
  Modal call had not been spawned yet.
* **Prices.** ``GET /platform/gpu-pricing`` answers the price table (USD per second per GPU),
  with any key or none (the server's auth skips it): by default :data:`DEFAULT_GPU_PRICES`, the
  live values of 2025-11, byte for byte as the server writes them; pass ``prices`` to change it.
* **increase-timeout** adds minutes to ``timeout_end`` (``timeout`` stays the initial value,
  as live); a session not yet ready is 400 ``"Session has not started yet"``, a cancelled one
  404 ``"Timeout end not found for session"``.
* **Machines.** ``GET /machine/{id}`` (422 for a non-UUID, 404 ``"Machine not found"``) and
  ``GET /machines?search=&limit=&offset=``, with an ``auth_token`` as the server sends one.
* **Methods.** A method a path does not serve (OPTIONS, TRACE and unknown ones included) is
  405 with ``Allow``; HEAD is answered as GET (the HTTP server sends no body).

For tests: :meth:`FakeService.answer_next` and :meth:`FakeService.fail_next` script what the
next matching request gets (a status and body; a timeout, a reset, or "sent, no answer"),
:meth:`FakeService.never_ready` keeps sessions from ever getting their url, and
:meth:`FakeService.end_session` ends one now, as a server-side timeout would, and
:meth:`FakeService.advance_clock` moves a :class:`ManualClock` on (sessions end at their
``timeout_end`` exactly, and an extension moves it: a lease can be tested in test time);
:attr:`FakeService.requests_seen` lists the ``(method, path)`` of every request
handled, and ``intercept`` (a function of each authenticated request, returning a response or
None) can answer a request in place of the fake, e.g. to make one cancel fail.

Not modelled: plans and balances (free-plan 400s, 403), the moment after a cancel when the live
server may still answer 200, and a real ComfyUI behind the url (served over HTTP, the url
reaches a small :class:`~cdsessions.fake.FakeComfyUI`); ``contracts/differences.json``
(``fake``) lists every difference left, with its reason.

Session urls look like the live tunnel urls, ``https://fake-<label>.r5.modal.localhost``, but
under the reserved ``.localhost`` name (RFC 6761): it can only resolve to the local machine, so
code that opens a fake url can never reach a real Modal tunnel or any other host. Like real ones,
they are treated as secrets (never in reprs).
"""

from __future__ import annotations

import hashlib
import re
import threading
import uuid
from collections import OrderedDict, deque
from collections.abc import Callable, Iterable, Mapping
from datetime import UTC, datetime, timedelta
from typing import Any, Final, TypeAlias
from urllib.parse import unquote

import msgspec
from msgspec.structs import replace

from cdsessions._core.wire import HttpRequest, HttpResponse, header
from cdsessions.fake._responses import (
    detail_response,
    invalid_response,
    is_uuid,
    json_response,
    naive_utc,
    not_allowed,
    price_table,
    server_error,
    utc_z,
)
from cdsessions.fake._validation import (
    Unparsable,
    error_item,
    lax_bool,
    lax_int,
    uuid_error,
    validate_create,
    validate_extend,
)
from cdsessions.fake.clock import Clock, ManualClock, system_clock
from cdsessions.fake.comfyui import COMFY_PREFIX, FakeComfyUI
from cdsessions.fake.logs import FakeLogs
from cdsessions.fake.script import Answer, FakeScript, Fault, FaultKind, response_for
from cdsessions.transports._fork import register as register_for_fork

__all__ = [
    "DEFAULT_GPU_PRICES",
    "DEFAULT_MACHINE_ID",
    "FAKE_AUTH_TOKEN_PREFIX",
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
#: The platform stops every session's container this long after it started, whatever its
#: timeout says (api-facts.md): the fake ends it then, though its ``timeout_end`` says later.
SESSION_CAP: Final = timedelta(hours=24)
#: How many cancelled sessions the fake remembers (extend on one is the server's 404
#: "Timeout end not found for session", not "GPU event not found").
CLOSED_MEMORY: Final = 10_000

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
    "CPU": "4.2e-05",  # Python's json writes floats under 1e-4 in exponent form
}
#: ``GET /machines`` answers at most this many when no ``limit`` is given.
MACHINES_PAGE: Final = 100
#: Every machine's ``auth_token`` in the fake starts with this (a test can look for it).
FAKE_AUTH_TOKEN_PREFIX: Final = "fake-machine-token-"  # noqa: S105 - a marker, not a credential
#: How many requests :attr:`FakeService.requests_seen` remembers (the oldest are dropped).
REQUEST_LOG_SIZE: Final = 10_000

#: Sees each authenticated request (and every price-table request, which needs no key) first;
#: a response it returns is the answer.
Intercept: TypeAlias = Callable[[HttpRequest], HttpResponse | None]
_Json: TypeAlias = Any

_NAMESPACE: Final = uuid.UUID("6f1d7c2e-3a58-4c0e-9a39-fa4e5e551011")
_SESSION_ROUTE: Final = re.compile(r"/session/([^/]+)")
_EXTEND_ROUTE: Final = re.compile(r"/session/([^/]+)/increase-timeout")
_MACHINE_ROUTE: Final = re.compile(r"/machine/([^/]+)")
_TOO_MANY: Final = (
    "You have reached the maximum number of concurrent sessions. "
    "Please close some sessions and try again."
)
_NO_TIMEOUT_END: Final = "Timeout end not found for session"
_NOT_STARTED: Final = "Session has not started yet"
#: The latest moment a datetime holds (a timeout of 2**62 minutes ends there, not in a crash).
_FAR: Final = datetime.max.replace(tzinfo=UTC) - timedelta(days=1)


class FakeMachine(msgspec.Struct, frozen=True):
    """A machine sessions can be started on; ``gpu`` is used when create names none (and is the
    ``gpu`` ``GET /machine/{id}`` answers); ``name`` is what ``GET /machines?search=`` matches."""

    id: str
    gpu: str = "A10G"
    name: str = "fake-machine"


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


def _moved(moment: datetime, minutes: int) -> datetime:
    """``moment`` plus ``minutes`` (negative too), held inside what a datetime can hold."""
    try:
        return moment + timedelta(minutes=minutes)
    except OverflowError:
        return _FAR if minutes > 0 else datetime.min.replace(tzinfo=UTC) + timedelta(days=1)


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
    session's url appears (both None: never, as after :meth:`never_ready`); ``seed_shapes``
    answers in the seed document's shapes; ``early_cancel_fails`` see the module docs.
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
        comfyui: bool = False,
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
        #: Cancelled sessions, by id: the account that owned them (oldest forgotten first).
        self._closed: OrderedDict[str, str] = OrderedDict()
        self._created = 0
        self._handled = 0
        self._lock = threading.RLock()
        self._prices_body = price_table(DEFAULT_GPU_PRICES if prices is None else prices)
        self._intercept = intercept
        self._seen: deque[tuple[str, str]] = deque(maxlen=REQUEST_LOG_SIZE)
        #: The scripted answers waiting for their requests (see :meth:`answer_next`).
        self.script = FakeScript()
        self._logs = FakeLogs()  # each session's log lines (cdsessions/fake/logs.py)
        #: With ``comfyui=True``, the fake server serving this service serves each session's
        #: ComfyUI (:class:`~cdsessions.fake.FakeComfyUI`) and sets this to its own address:
        #: session urls are then ``<this>/comfy/fake-<label>.r5.modal.localhost``, a loopback
        #: URL a client can reach, keeping the tunnel's name (and secrecy). None (the default):
        #: the urls are ``https://fake-<label>.r5.modal.localhost``, which nothing serves.
        self.serves_comfyui = comfyui
        self.comfy_base_url: str | None = None
        self._comfyuis: dict[str, FakeComfyUI] = {}
        #: Makes each session's ComfyUI (on first use): replace it to script every session's,
        #: e.g. ``fake.new_comfyui = lambda: FakeComfyUI(polls_before_done=3)``.
        self.new_comfyui: Callable[[], FakeComfyUI] = FakeComfyUI
        register_for_fork(self)

    def _after_fork_in_child(self) -> None:
        # A thread that was answering a request when the process forked does not exist in the
        # child: its hold on the lock would last forever (a pre-fork test server, a
        # multiprocessing worker given the fake). Its half-handled request is simply gone.
        self._lock = threading.RLock()

    # -- scripting (for tests) -------------------------------------------------------------

    def answer_next(
        self,
        match: str,
        status: int,
        body: object = None,
        *,
        headers: Iterable[tuple[str, str]] = (),
        times: int = 1,
    ) -> None:
        """Answer the next ``times`` requests matching ``match`` (an operation, ``"create"``,
        ``"get"``, ``"cancel"``, ``"list"``, ``"extend"``, ``"pricing"``, or ``"METHOD /path"``
        with ``*`` for a path segment) with ``status`` and ``body`` (bytes as they are, anything
        else as JSON; None: ``{"detail": "<reason phrase>"}``) instead of the fake's answer,
        whatever their key; the fake does nothing else with them. A bad argument is a
        ``ValueError``, raised here: a mistake in the test itself."""
        response = response_for(status, body, tuple(headers))
        if isinstance(response, str):
            raise ValueError(response)
        self.script.add(match, Answer(response), times)

    def fail_next(self, match: str, fault: FaultKind, *, times: int = 1) -> None:
        """Fail the next ``times`` requests matching ``match`` on the wire: ``"timeout"`` (no
        answer ever comes), ``"reset"`` (the connection is reset), both without the fake acting
        on the request; or ``"no_answer"``: the fake acts on it (a create starts its session),
        then the connection is reset, so the client cannot know whether it went through."""
        if fault not in ("timeout", "reset", "no_answer"):
            raise ValueError(f"fault must be 'timeout', 'reset' or 'no_answer', not {fault!r}")
        self.script.add(match, Fault(fault), times)

    def never_ready(self) -> None:
        """From now on no session gets its url (those already ready keep it), as if the
        machine never started: a ready wait ends in ``NotReady``."""
        with self._lock:
            self._ready_after_polls = None
            self._ready_after = None

    def _session_url(self, label: str) -> str:
        host = f"fake-{label}.r5.modal.localhost"
        base = self.comfy_base_url
        return f"https://{host}" if base is None else f"{base}{COMFY_PREFIX}/{host}"

    def comfyui(self, session_id: str) -> FakeComfyUI | None:
        """The ComfyUI of a live session (made on first use), to script or look into; None for
        no such live session."""
        with self._lock:
            session = self._sessions.get(session_id)
            if session is None:
                return None
            return self._comfyui_of(session_id)

    def _comfyui_of(self, session_id: str) -> FakeComfyUI:
        found = self._comfyuis.get(session_id)
        if found is None:
            found = self._comfyuis[session_id] = self.new_comfyui()
        return found

    def comfyui_at(self, host: str) -> FakeComfyUI | None:
        """The ComfyUI a request to ``<comfy_base_url>/comfy/<host>`` reaches: that of the live,
        ready session whose url names ``host``; None (a 404) for any other."""
        with self._lock:
            for session in self._sessions.values():
                if session.ready and session.url.endswith(f"{COMFY_PREFIX}/{host}"):
                    return self._comfyui_of(session.session_id)
            return None

    def end_session(self, session_id: str) -> bool:
        """End a session now, as a server-side timeout or a kill would: afterwards get,
        cancel and extend answer 404. False when there was no such live session."""
        with self._lock:
            return self._sessions.pop(session_id, None) is not None

    def advance_clock(self, seconds: float) -> datetime | None:
        """Move the fake's clock on by ``seconds`` when it is a :class:`ManualClock` (sessions
        whose ``timeout_end`` it reaches end then, exactly); the new time, or None for a clock
        the fake cannot move (the real time)."""
        clock = self._clock
        if not isinstance(clock, ManualClock):
            return None
        with self._lock:
            now = clock.advance(seconds)
            self._expire(now)
            return now

    def log(self, session_id: str, level: str, message: str) -> bool:
        """Write a line to a session's log stream, as the server does (``GET /v2/stream-logs``
        serves it). False when the fake never had the session. Lines outlive the session."""
        with self._lock:
            return self._logs.write(session_id, level, message, self._clock())

    def fail_start(
        self, session_id: str, reason: str = "Modal function failed with status: failure"
    ) -> bool:
        """Make a session fail as the server fails one: its ``reason`` is logged at ``error``,
        then it ends (get answers 404, a ready wait ends in ``SessionGone``). False when there
        was no such live session."""
        with self._lock:
            if session_id not in self._sessions:
                return False
            self._logs.write(session_id, "error", reason, self._clock())
            return self.end_session(session_id)

    def log_lines(self, session_id: str) -> tuple[tuple[datetime, str, str], ...]:
        """The lines the fake holds for a session: (timestamp, level, message)."""
        with self._lock:
            return tuple((x.timestamp, x.level, x.message) for x in self._logs.lines(session_id))

    def respond(self, request: HttpRequest) -> HttpResponse | Fault:
        """What the transports and the HTTP server ask: a scripted answer or fault for
        ``request`` when one waits for it, else :meth:`handle`'s answer. For a ``no_answer``
        fault the request is handled first (its effects happen), and the answer is lost."""
        action = self.script.take(request)
        if action is None:
            return self.handle(request)
        if isinstance(action, Fault) and action.kind == "no_answer":
            self.handle(request)
            return action
        with self._lock:  # seen, like any request, though the fake does not act on it
            self._note(request)
        return action.response if isinstance(action, Answer) else action

    def _note(self, request: HttpRequest) -> None:
        self._handled += 1
        self._seen.append((request.method.upper(), unquote(request.path)))

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
            self._note(request)
            now = self._clock()
            self._expire(now)
            if unquote(request.path) == "/platform/gpu-pricing":
                # The server's auth middleware skips this route: any key, or none, gets it.
                account: str | None = ""
            else:
                account, refusal = self._authenticate(request)
                if refusal is not None:
                    return refusal
            assert account is not None  # _authenticate gives one or the other
            if self._intercept is not None:
                answer = self._intercept(request)
                if answer is not None:
                    return answer
            try:
                return self._route(request, account, now)
            except Unparsable:
                return detail_response(400, "There was an error parsing the body")

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
            return None, detail_response(401, "Invalid or missing token")
        account = self._account_of(key)
        if account is None:
            return None, detail_response(401, "Invalid or expired token")
        return account, None

    # -- routing (Starlette matches the decoded path) --------------------------------------

    def _route(self, request: HttpRequest, account: str, now: datetime) -> HttpResponse:
        path = unquote(request.path)
        method = request.method.upper()
        # Starlette serves HEAD on every GET route, as the GET (the HTTP server drops the body).
        method = "GET" if method == "HEAD" else method
        query = dict(request.query)  # the last value of a repeated name wins, as in Starlette
        if path == "/session":
            if method == "POST":
                return self._create(request.body, account, now)
            return not_allowed("POST")
        if path == "/platform/gpu-pricing":
            if method == "GET":
                return HttpResponse(200, (("content-type", "application/json"),), self._prices_body)
            return not_allowed("GET")
        if path == "/v2/stream-logs":
            if method == "GET":
                wanted = query.get("session_id")
                live = wanted in self._sessions
                return self._logs.stream(wanted, query.get("log_level"), account, live=live)
            return not_allowed("GET")
        if path == "/sessions":
            if method == "GET":
                return self._list(query, account, now)
            return not_allowed("GET")
        if path == "/machines":
            if method == "GET":
                return self._machines_list(query)
            return not_allowed("GET")
        machine = _MACHINE_ROUTE.fullmatch(path)
        if machine:
            if method == "GET":
                return self._machine(machine.group(1))
            return not_allowed("GET")
        extend = _EXTEND_ROUTE.fullmatch(path)
        if extend:
            if method == "POST":
                return self._extend(extend.group(1), request.body, account, now)
            return not_allowed("POST")
        single = _SESSION_ROUTE.fullmatch(path)
        if single:
            if method == "GET":
                return self._get(single.group(1), account, now)
            if method == "DELETE":
                return self._cancel(single.group(1), query, account)
            return not_allowed("GET", "DELETE")
        return detail_response(404, "Not Found")

    # -- state -----------------------------------------------------------------------------

    def _expire(self, now: datetime) -> None:
        ended = [
            sid
            for sid, s in self._sessions.items()
            if now >= s.timeout_end or now - s.created_at >= SESSION_CAP
        ]
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
        parsed, errors = validate_create(body)
        if parsed is None:
            return invalid_response(errors)
        machine_id = parsed.machine_id
        if machine_id not in self._machines and not is_uuid(machine_id):
            return server_error()  # the live count query casts machine_id to a UUID
        live_here = [
            s
            for s in self._sessions.values()
            if s.account == account and s.machine_id == machine_id
        ]
        if len(live_here) >= MAX_LIVE_SESSIONS_PER_MACHINE:
            return detail_response(400, _TOO_MANY)
        machine = self._machines.get(machine_id)
        if machine is None:
            return detail_response(404, "Machine not found")
        # Not range-checked by the server: a negative timeout ends the session at once, a huge
        # one is cut by the 24-hour cap (see _expire).
        timeout = parsed.timeout or DEFAULT_TIMEOUT_MINUTES
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
            timeout_end=_moved(now, timeout),
            # The seed contract's Session.url is a required string, so in seed shapes a
            # session is ready (has its url) from the start.
            ready=parsed.wait_for_server or self.seed_shapes,
            url=self._session_url(label),
        )
        self._sessions[session.session_id] = session
        self._logs.opened(session.session_id, account, now)
        url = session.url if session.ready else None
        return json_response(200, {"session_id": session.session_id, "url": url})

    def _get(self, session_id: str, account: str, now: datetime) -> HttpResponse:
        found = self._owned(session_id, account)
        if found is None:
            return detail_response(404, "GPUEvent not found")
        session = self._refresh(found, now, poll=True)
        if self.seed_shapes:
            body = {
                "session_id": session.session_id,
                "gpu_event_id": session.gpu_event_id,
                "url": session.url,
            }
            return json_response(200, body)
        return json_response(200, self._live_shape(session))

    def _list(self, query: dict[str, str], account: str, now: datetime) -> HttpResponse:
        machine_id = query.get("machine_id")
        if machine_id is None and self.seed_shapes:  # the seed declared machine_id required
            item = error_item("missing", ["query", "machine_id"], "Field required", None)
            return invalid_response([item])
        if machine_id and machine_id not in self._machines and not is_uuid(machine_id):
            return server_error()  # Postgres cannot compare it with the UUID column
        mine = [
            self._refresh(s, now, poll=False)
            for s in self._sessions.values()
            if s.account == account and (not machine_id or s.machine_id == machine_id)
        ]
        mine.reverse()  # newest first, as the live ORDER BY start_time DESC gives
        shape = self._seed_event_shape if self.seed_shapes else self._live_shape
        return json_response(200, [shape(session) for session in mine])

    def _cancel(self, session_id: str, query: dict[str, str], account: str) -> HttpResponse:
        if "wait_for_shutdown" in query:
            _, problem = lax_bool(query["wait_for_shutdown"], ["query", "wait_for_shutdown"])
            if problem is not None:
                return invalid_response([problem])
        found = self._owned(session_id, account)
        if found is None:
            closed = f"GPUEvent not found session_id: {session_id}"
            return detail_response(404, closed + ", the event might be already closed")
        del self._sessions[session_id]
        self._closed[session_id] = account
        if len(self._closed) > CLOSED_MEMORY:
            self._closed.popitem(last=False)
        if self._early_cancel_fails and not found.ready:
            return detail_response(400, "Modal function id not found")
        return json_response(200, {"success": True})

    def _extend(
        self, session_id: str, body: bytes | None, account: str, now: datetime
    ) -> HttpResponse:
        minutes, errors = validate_extend(body)
        if minutes is None:
            return invalid_response(errors)
        found = self._owned(session_id, account)
        if found is None:
            if self._closed.get(session_id) == account:  # cancelled: its end time is cleared
                return detail_response(404, _NO_TIMEOUT_END)
            return detail_response(404, "GPU event not found")
        if not self._is_ready(found, now):  # no container yet: nothing to extend
            return detail_response(400, _NOT_STARTED)
        # Not range-checked, and not held to the 24-hour cap, as on the server (the container
        # still stops at the cap: see _expire). The free plan's 30-minute total is not modelled.
        new_end = _moved(found.timeout_end, minutes)
        self._sessions[session_id] = replace(found, timeout_end=new_end)
        self._expire(now)  # a negative extension may end it at once
        return json_response(200, {"message": "Timeout increased successfully"})

    def _machine(self, machine_id: str) -> HttpResponse:
        found = self._machines.get(machine_id)
        if found is not None:
            return json_response(200, self._machine_shape(found))
        if not is_uuid(machine_id):  # the route's parameter is a UUID: FastAPI's 422
            return invalid_response([uuid_error(["path", "machine_id"], machine_id)])
        return detail_response(404, "Machine not found")

    def _machines_list(self, query: dict[str, str]) -> HttpResponse:
        errors: list[dict[str, _Json]] = []
        paging: dict[str, int] = {}
        for name, default in (("limit", MACHINES_PAGE), ("offset", 0)):
            value, problem = (
                (default, None) if name not in query else lax_int(query[name], ["query", name])
            )
            if problem is not None:
                errors.append(problem)
            elif value is not None:
                paging[name] = value
        if errors:
            return invalid_response(errors)
        search = query.get("search", "").casefold()
        found = [m for m in self._machines.values() if search in m.name.casefold()]
        start = max(0, paging["offset"])
        chosen = found[start : start + max(0, paging["limit"])]
        return json_response(200, [self._machine_shape(machine) for machine in chosen])

    def _machine_shape(self, machine: FakeMachine) -> dict[str, _Json]:
        # auth_token is a secret the live answer carries: the fake sends one (derived, never a
        # real credential) so that tests can check the client never keeps or shows it.
        token = hashlib.sha256(f"{self._seed}/auth-token/{machine.id}".encode()).hexdigest()
        return {
            "id": machine.id,
            "name": machine.name,
            "type": "comfy-deploy-serverless",
            "gpu": machine.gpu,
            "status": "ready",
            "machine_builder_version": "4",
            "machine_version_id": self._derive(f"version/{machine.id}", 1),
            "auth_token": f"{FAKE_AUTH_TOKEN_PREFIX}{token[:32]}",
        }

    # -- shapes ----------------------------------------------------------------------------

    def _live_shape(self, session: FakeSession) -> dict[str, _Json]:
        return {
            "id": session.session_id,
            "session_id": session.session_id,
            "gpu_event_id": session.gpu_event_id,
            "url": session.url if session.ready else None,
            "gpu": session.gpu,
            "created_at": utc_z(session.created_at),
            "timeout": session.timeout,
            "timeout_end": naive_utc(session.timeout_end),
            "machine_id": session.machine_id,
            "machine_version_id": session.machine_version_id,
            "status": "running",
            "user_id": session.account,
            "org_id": "None",  # str(None): the live server's value for personal accounts
        }

    def _seed_event_shape(self, session: FakeSession) -> dict[str, _Json]:
        started = utc_z(session.created_at) if session.ready else None
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
            "created_at": utc_z(session.created_at),
            "updated_at": utc_z(session.created_at),
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
