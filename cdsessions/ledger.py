"""The local ledger: which sessions this machine started, who started them, and which creates
lost their answer.

A :class:`Ledger` is an observer (see :mod:`cdsessions._core.observe`): pass it as a client's
``ledger=`` and every create that client sends, through any path (``create``, a budgeted
create, ``client.session(...)``, the command line's ``create`` and ``with``), is recorded in
two steps. Before the request is sent, an *intent* row is written (machine, GPU, label, host,
pid, the process's start time, the command line); when the answer comes, the row is completed
with the session id, or marked refused (an error status), not sent, or *lost* (sent, no answer:
the session may exist). A process killed between the two leaves the intent pending; both lost
and pending intents are *unresolved*, and :func:`ownership` offers the live sessions created on
that machine in their window as candidates, never as certain.

Storage is SQLite (stdlib ``sqlite3``) in WAL mode with a busy timeout, one short connection per
write, so concurrent processes (and threads) share one file safely and a forked child holds no
connection of its parent. The file is ``$CDSESSIONS_LEDGER``, else
``$XDG_STATE_HOME/cdsessions/ledger.sqlite3`` (``~/.local/state`` by default).

The ledger never stands in a create's way: a torn or corrupt file is reported (a
:class:`LedgerProblem`, kept in :attr:`Ledger.problems` and passed to ``on_problem``) and set
aside (renamed ``<name>.corrupt-<UTC time>``, a fresh file takes its place); a file or directory
that cannot be written is reported and the create goes ahead unrecorded.

It never stores the API key or a URL (a session's URL is a public tunnel with no authentication):
the command line is stored with URLs masked, the key's forms masked (the
``COMFY_DEPLOY_API_KEY`` key and any ``secrets`` given) and the value of any ``--…key``,
``--…token``, ``--…secret`` or ``--…password`` option replaced (a ``--…-file`` path is kept).

The pure parts (what a row holds, :func:`owner_gone`, :func:`scrub_command`, :func:`ownership`)
are plain functions; only :class:`Ledger` and :func:`process_start` touch the system.
"""

from __future__ import annotations

import contextlib
import os
import shlex
import socket
import sqlite3
import sys
import threading
import time
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Final, Literal, TypeAlias, get_args

import msgspec
from returns.result import Success

from cdsessions._core import decoding
from cdsessions._core.calls import API_KEY_ENV
from cdsessions._core.observe import AttemptFinished, AttemptStarted, Event
from cdsessions._core.text import clip, escape, mask_urls
from cdsessions._core.wire import REDACTED, HttpRequest, key_forms, mask_key
from cdsessions.models import Session
from cdsessions.transports._fork import register as register_for_fork

__all__ = [
    "LEDGER_ENV",
    "Intent",
    "IntentState",
    "Ledger",
    "LedgerProblem",
    "Owned",
    "Owner",
    "default_ledger_path",
    "judge_owners",
    "owner_gone",
    "ownership",
    "process_start",
    "scrub_command",
    "this_owner",
]

#: The environment variable that names the ledger file (it wins over ``XDG_STATE_HOME``).
LEDGER_ENV: Final = "CDSESSIONS_LEDGER"

#: What became of a recorded create. ``pending``: sent or about to be, no answer yet (or its
#: process died waiting); ``lost``: sent, and the answer never came (a session may exist).
IntentState: TypeAlias = Literal["pending", "created", "refused", "not_sent", "lost"]

# How long a waiting create may take (wait_for_server: up to 10 minutes, read timeout 11), and
# the slack for the server's clock against ours: the window of an intent whose answer never came.
_CREATE_WINDOW: Final = timedelta(minutes=11)
_CLOCK_SLACK: Final = timedelta(seconds=60)
_BUSY_MS: Final = 5000
# SQLite gives up on a lock without waiting its busy timeout in a few cases (a WAL recovery or
# a checkpoint racing another process's open): a busy file is tried again, for this long.
_PATIENCE_S: Final = 10.0
_COLUMNS: Final = (
    "id",
    "requested_at",
    "finished_at",
    "machine_id",
    "gpu",
    "label",
    "host",
    "pid",
    "process_start",
    "command",
    "state",
    "session_id",
)
_SCHEMA: Final = """
CREATE TABLE IF NOT EXISTS intents (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    requested_at REAL NOT NULL,
    finished_at REAL,
    machine_id TEXT,
    gpu TEXT,
    label TEXT,
    host TEXT NOT NULL,
    pid INTEGER NOT NULL,
    process_start TEXT,
    command TEXT NOT NULL,
    state TEXT NOT NULL,
    session_id TEXT
)"""
_SELECT: Final = f"SELECT {', '.join(_COLUMNS)} FROM intents ORDER BY id"  # noqa: S608 (constants)
# Options whose value is a secret (``--api-key X``, ``--token=X``); ``--api-key-file`` is a path.
_SECRET_WORDS: Final = ("key", "token", "secret", "password", "passwd")


# -- pure parts -----------------------------------------------------------------------------------


def default_ledger_path(env: Mapping[str, str], home: str) -> Path:
    """Where the ledger lives: ``$CDSESSIONS_LEDGER``, else ``$XDG_STATE_HOME`` (an absolute
    path, as the XDG rules say; otherwise ``~/.local/state``) ``/cdsessions/ledger.sqlite3``."""
    chosen = env.get(LEDGER_ENV, "")
    if chosen:
        return Path(chosen)
    state = env.get("XDG_STATE_HOME", "")
    base = Path(state) if state and os.path.isabs(state) else Path(home, ".local", "state")
    return base / "cdsessions" / "ledger.sqlite3"


class Owner(msgspec.Struct, frozen=True):
    """The process that asked for a session: its host, pid and start time (None where the
    system does not tell; it tells a pid reused by a later process from the original)."""

    host: str
    pid: int
    started: str | None


def owner_gone(owner: Owner, host: str, alive: bool, started_now: str | None) -> bool | None:
    """Whether ``owner`` no longer runs, judged on ``host`` from what the system says of its pid
    now (``alive``, and that process's start time); None when it cannot be judged here (another
    host). A live pid whose start time differs from the recorded one is another process that
    reused the pid: the owner is gone."""
    if owner.host != host:
        return None
    if not alive:
        return True
    return owner.started is not None and started_now is not None and started_now != owner.started


def _secret_option(word: str) -> bool:
    name = word.lstrip("-").split("=", 1)[0].lower()
    return (
        word.startswith("-")
        and not name.endswith("file")
        and any(secret in name for secret in _SECRET_WORDS)
    )


def scrub_command(argv: Sequence[str], secrets: Iterable[str]) -> str:
    """``argv`` as one shell-quoted line that is safe to store: every form of each secret in
    ``secrets`` masked, the value of a secret-looking option replaced, every URL masked."""
    forms = tuple(form for secret in secrets if secret for form in key_forms(secret))
    words: list[str] = []
    hide_next = False
    for word in argv:
        if hide_next:
            words.append(REDACTED)
            hide_next = False
        elif _secret_option(word) and "=" in word:
            words.append(word.split("=", 1)[0] + "=" + REDACTED)
        else:
            hide_next = _secret_option(word)
            words.append(mask_key(word, forms))
    return mask_urls(shlex.join(words))


class Intent(msgspec.Struct, frozen=True, kw_only=True):
    """One recorded create (a ledger row). Times are UTC."""

    id: int
    requested_at: datetime
    finished_at: datetime | None
    machine_id: str | None
    gpu: str | None
    label: str | None
    owner: Owner
    command: str
    state: IntentState
    session_id: str | None

    @property
    def unresolved(self) -> bool:
        """Sent (or maybe sent) and no session id known: a session may exist unrecorded."""
        return self.session_id is None and self.state in ("pending", "lost")

    def window(self) -> tuple[datetime, datetime]:
        """When a session this create started may have been created, by the server's clock."""
        end = self.finished_at or self.requested_at + _CREATE_WINDOW
        return self.requested_at - _CLOCK_SLACK, end + _CLOCK_SLACK


class Owned(msgspec.Struct, frozen=True):
    """A live session's place in the ledger: the intent that recorded it (``certain``) or an
    unresolved one it may have come from (a candidate); ``gone``: that intent's owner process no
    longer runs (None: unknown, another host)."""

    intent: Intent
    certain: bool
    gone: bool | None


def ownership(
    sessions: Iterable[Session], intents: Iterable[Intent], gone: Mapping[int, bool | None]
) -> dict[str, Owned]:
    """Which of ``sessions`` the ledger knows: by recorded session id (certain), else, for a
    session recorded by no intent, the newest unresolved intent on its machine (and GPU, when
    the intent named one) whose window holds its ``created_at`` (a candidate). ``gone`` maps
    intent ids to :func:`owner_gone`'s verdict."""
    listed = tuple(intents)
    by_id = {i.session_id: i for i in listed if i.session_id is not None}
    open_ = sorted((i for i in listed if i.unresolved), key=lambda i: i.requested_at, reverse=True)
    owned: dict[str, Owned] = {}
    for session in sessions:
        recorded = by_id.get(session.session_id)
        if recorded is not None:
            owned[session.session_id] = Owned(recorded, True, gone.get(recorded.id))
            continue
        created = session.created_at
        if created is None:
            continue
        for intent in open_:
            start, end = intent.window()
            if (
                intent.machine_id == session.machine_id
                and (intent.gpu is None or intent.gpu == session.gpu)
                and start <= created <= end
            ):
                owned[session.session_id] = Owned(intent, False, gone.get(intent.id))
                break
    return owned


# -- the system -----------------------------------------------------------------------------------


def _boot_id() -> str:
    try:
        return Path("/proc/sys/kernel/random/boot_id").read_text().strip()
    except OSError:
        return ""


def process_start(pid: int) -> str | None:
    """When process ``pid`` started, as an opaque token (Linux: the boot id and the
    ``starttime`` field of ``/proc/<pid>/stat``); None where that cannot be read."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except (OSError, ValueError):
        return None
    # The command name (field 2) is in parentheses and may hold spaces or parentheses itself.
    fields = stat[stat.rfind(")") + 2 :].split()
    if len(fields) < 20:
        return None
    return f"{_boot_id()}:{fields[19]}"


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except (PermissionError, OSError, OverflowError):
        return True  # it exists (another user's), or it cannot be told: never "gone" on a guess
    return True


def this_owner() -> Owner:
    """This process, as an :class:`Owner`."""
    pid = os.getpid()
    return Owner(socket.gethostname(), pid, process_start(pid))


def judge_owners(intents: Iterable[Intent]) -> dict[int, bool | None]:
    """:func:`owner_gone` for each intent, from what this host says of its pid now."""
    host = socket.gethostname()
    verdicts: dict[int, bool | None] = {}
    for intent in intents:
        pid = intent.owner.pid
        local = intent.owner.host == host
        alive = _alive(pid) if local else True
        started = process_start(pid) if local and alive else None
        verdicts[intent.id] = owner_gone(intent.owner, host, alive, started)
    return verdicts


class LedgerProblem(msgspec.Struct, frozen=True):
    """The ledger could not be used as asked: ``what`` happened to the file at ``path``;
    ``set_aside_as``: where an unreadable file was moved (a fresh one replaces it)."""

    path: str
    what: str
    set_aside_as: str | None = None

    def __str__(self) -> str:
        # Both paths escaped: a line break in one must not start a warning line of its own.
        moved = f"; set aside as {escape(self.set_aside_as)}" if self.set_aside_as else ""
        return f"ledger {escape(self.path)}: {self.what}{moved}"


class _Unusable(Exception):
    """The file is not a usable ledger (corrupt, torn, or another program's database)."""


def _from_row(row: tuple[object, ...]) -> Intent | None:
    values = dict(zip(_COLUMNS, row, strict=True))

    def moment(value: object) -> datetime | None:
        return datetime.fromtimestamp(value, UTC) if isinstance(value, int | float) else None

    requested = moment(values["requested_at"])
    state = values["state"]
    pid = values["pid"]
    if requested is None or state not in get_args(IntentState) or not isinstance(pid, int):
        return None
    ident = values["id"]
    if not isinstance(ident, int):
        return None
    text = {k: (v if isinstance(v, str) else None) for k, v in values.items()}
    return Intent(
        id=ident,
        requested_at=requested,
        finished_at=moment(values["finished_at"]),
        machine_id=text["machine_id"],
        gpu=text["gpu"],
        label=text["label"],
        owner=Owner(text["host"] or "", pid, text["process_start"]),
        command=text["command"] or "",
        state=state,  # type: ignore[arg-type]  # checked against IntentState above
        session_id=text["session_id"],
    )


def _creates(request: HttpRequest) -> bool:
    return request.method == "POST" and request.path == "/session"


class Ledger:
    """The ledger file at ``path`` (None: :func:`default_ledger_path`), and the observer that
    records creates in it. ``label`` is stored with each create this ledger records;
    ``command`` is the command line stored (default ``sys.argv``), scrubbed (see the module
    docs) with ``secrets`` and the ``COMFY_DEPLOY_API_KEY`` key masked. ``on_problem`` is
    called with each :class:`LedgerProblem` (the command line prints a warning); they are also
    kept in :attr:`problems`. Nothing here raises."""

    def __init__(
        self,
        path: str | os.PathLike[str] | None = None,
        *,
        label: str | None = None,
        command: Sequence[str] | None = None,
        secrets: Iterable[str] = (),
        on_problem: Callable[[LedgerProblem], None] | None = None,
    ) -> None:
        chosen = path if path is not None else default_ledger_path(os.environ, str(Path.home()))
        self.path = Path(chosen)
        self._secrets = (*secrets, os.environ.get(API_KEY_ENV, ""))
        self.label = None if label is None else self._scrub(label)
        self._command = list(sys.argv if command is None else command)
        self._on_problem = on_problem
        self._problems: list[LedgerProblem] = []
        # Intents awaiting their answer, by the call's (redacted) request, kept alive here so its
        # id() is not reused; guarded, as one client may create from several threads.
        self._pending: dict[int, tuple[HttpRequest, int | None]] = {}
        self._lock = threading.Lock()
        register_for_fork(self)

    def __repr__(self) -> str:
        return f"Ledger(path={str(self.path)!r}, label={self.label!r})"

    def _after_fork_in_child(self) -> None:
        self._lock = threading.Lock()
        self._pending = {}  # the parent's creates are the parent's to complete

    def _scrub(self, text: str) -> str:
        forms = tuple(form for secret in self._secrets if secret for form in key_forms(secret))
        return mask_urls(mask_key(text, forms))

    @property
    def problems(self) -> tuple[LedgerProblem, ...]:
        """Every problem met so far (a file set aside, one that could not be written)."""
        return tuple(self._problems)

    def _report(self, problem: LedgerProblem) -> None:
        self._problems.append(problem)
        if self._on_problem is not None:
            with contextlib.suppress(Exception):  # a reporter's bug must not break a create
                self._on_problem(problem)

    # -- the file ---------------------------------------------------------------------------

    def _connect(self) -> sqlite3.Connection:
        self.path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
        fresh = not self.path.exists()
        connection = sqlite3.connect(self.path, timeout=_BUSY_MS / 1000, isolation_level=None)
        try:
            connection.execute(f"PRAGMA busy_timeout = {_BUSY_MS}")
            connection.execute("PRAGMA journal_mode = WAL")
            connection.execute(_SCHEMA)
            if fresh:
                with contextlib.suppress(OSError):
                    os.chmod(self.path, 0o600)  # it holds command lines: the user's alone
            found = [row[1] for row in connection.execute("PRAGMA table_info(intents)")]
            if tuple(found) != _COLUMNS:
                raise _Unusable("it is not a cdsessions ledger (another table layout)")
        except BaseException:
            connection.close()
            raise
        return connection

    @contextlib.contextmanager
    def _open(self) -> Iterator[sqlite3.Connection]:
        connection = self._connect()
        try:
            yield connection
        finally:
            connection.close()

    def _set_aside(self, why: str) -> None:
        stamp = datetime.now(UTC).strftime("%Y%m%dT%H%M%S.%fZ")
        target = self.path.with_name(f"{self.path.name}.corrupt-{stamp}")
        try:
            self.path.rename(target)
        except FileNotFoundError:
            # Another process set it aside first: nothing of ours to move.
            self._report(LedgerProblem(str(self.path), f"{why}; already set aside by another"))
            return
        except OSError as error:
            reason = (error.strerror or type(error).__name__).lower()
            self._report(LedgerProblem(str(self.path), f"{why}; cannot set it aside: {reason}"))
            return
        for suffix in ("-wal", "-shm"):  # a torn file's journal belongs to it, not to the new one
            side = self.path.with_name(self.path.name + suffix)
            with contextlib.suppress(OSError):
                side.rename(target.with_name(target.name + suffix))
        self._report(LedgerProblem(str(self.path), why, str(target)))

    def _run(self, work: Callable[[sqlite3.Connection], object], doing: str) -> object | None:
        """``work`` on a fresh connection; a busy file is tried again for a while; a problem is
        reported (an unreadable file set aside and ``work`` tried once more on a fresh one) and
        gives None."""
        give_up_at = time.monotonic() + _PATIENCE_S
        pause = 0.01
        set_aside = False
        while True:
            try:
                with self._open() as connection:
                    return work(connection)
            except (_Unusable, sqlite3.DatabaseError) as error:
                if isinstance(error, sqlite3.OperationalError) and not _torn(error):
                    if _busy(error) and time.monotonic() + pause < give_up_at:
                        _pause(pause)
                        pause = min(pause * 2, 0.5)
                        continue
                    self._report(LedgerProblem(str(self.path), f"cannot {doing}: {_why(error)}"))
                    return None
                if set_aside:
                    self._report(LedgerProblem(str(self.path), f"cannot {doing}: {_why(error)}"))
                    return None
                self._set_aside(f"unreadable ({_why(error)})")
                set_aside = True
            except (OSError, sqlite3.Error, ValueError) as error:
                self._report(LedgerProblem(str(self.path), f"cannot {doing}: {_why(error)}"))
                return None

    # -- writing ----------------------------------------------------------------------------

    def record_intent(self, machine_id: str | None, gpu: str | None) -> int | None:
        """Write the intent of a create about to be sent; its row id, or None (not recorded)."""
        owner = this_owner()
        row = (
            time.time(),
            machine_id,
            gpu,
            self.label,
            owner.host,
            owner.pid,
            owner.started,
            scrub_command(self._command, self._secrets),
        )

        def insert(connection: sqlite3.Connection) -> int | None:
            cursor = connection.execute(
                "INSERT INTO intents (requested_at, machine_id, gpu, label, host, pid, "
                "process_start, command, state) VALUES (?, ?, ?, ?, ?, ?, ?, ?, 'pending')",
                row,
            )
            return cursor.lastrowid

        done = self._run(insert, "record the create")
        return done if isinstance(done, int) else None

    def settle(self, row: int, state: IntentState, session_id: str | None) -> None:
        """Complete intent ``row``: what became of it, and its session id if one was made."""

        def update(connection: sqlite3.Connection) -> None:
            connection.execute(
                "UPDATE intents SET state = ?, session_id = ?, finished_at = ? WHERE id = ?",
                (state, session_id, time.time(), row),
            )

        self._run(update, "record the create's answer")

    def __call__(self, event: Event) -> None:
        """The observer: an intent before each create is sent, its answer after."""
        request = event.request
        if not _creates(request):
            return
        if isinstance(event, AttemptStarted):
            with self._lock:
                known = self._pending.get(id(request))
            if known is None:  # a retry (never sent before) reuses the call's intent
                machine, gpu = _body_fields(request.body)
                row = self.record_intent(machine, gpu)
                with self._lock:
                    self._pending[id(request)] = (request, row)
            return
        if not isinstance(event, AttemptFinished) or event.retry_in is not None:
            return  # a create is retried only when it surely was not sent: same intent
        with self._lock:
            entry = self._pending.pop(id(request), None)
        if entry is None or entry[1] is None:
            return
        state, session_id = _answer(event)
        self.settle(entry[1], state, session_id)

    # -- reading ----------------------------------------------------------------------------

    def intents(self) -> tuple[Intent, ...]:
        """Every recorded create, oldest first (empty, with a problem reported, if the file
        cannot be read; a missing file is an empty ledger)."""
        if not self.path.exists():
            return ()

        def read(connection: sqlite3.Connection) -> tuple[Intent, ...]:
            rows = connection.execute(_SELECT)
            return tuple(i for i in (_from_row(tuple(r)) for r in rows) if i is not None)

        done = self._run(read, "read it")
        return done if isinstance(done, tuple) else ()


def _body_fields(body: bytes | None) -> tuple[str | None, str | None]:
    try:
        decoded = msgspec.json.decode(body or b"{}")
    except msgspec.DecodeError:
        return None, None
    if not isinstance(decoded, dict):
        return None, None
    machine, gpu = decoded.get("machine_id"), decoded.get("gpu")
    return (
        machine if isinstance(machine, str) else None,
        gpu if isinstance(gpu, str) else None,
    )


def _answer(event: AttemptFinished) -> tuple[IntentState, str | None]:
    outcome = event.outcome
    if not isinstance(outcome, Success):
        return ("lost" if outcome.failure().sent else "not_sent"), None
    created = decoding.decode(outcome.unwrap(), decoding.CREATED, event.operation)
    if isinstance(created, Success):
        return "created", created.unwrap().session_id
    # An error status: the server refused; a 2xx it could not decode may still have made one.
    return ("lost" if 200 <= outcome.unwrap().status < 300 else "refused"), None


def _torn(error: sqlite3.Error) -> bool:
    """An OperationalError that says the file is broken (not busy, locked or read-only)."""
    text = str(error).lower()
    return any(word in text for word in ("malformed", "not a database", "corrupt", "no such col"))


def _busy(error: sqlite3.Error) -> bool:
    """An OperationalError that says another connection holds the file for now."""
    text = str(error).lower()
    return any(word in text for word in ("locked", "busy", "locking protocol"))


def _pause(seconds: float) -> None:
    time.sleep(seconds)


def _why(error: BaseException) -> str:
    if isinstance(error, OSError):
        return (error.strerror or type(error).__name__).lower()
    return clip(escape(str(error)) or type(error).__name__, 120)
