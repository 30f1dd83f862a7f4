"""``SessionsClient``: the thin blocking shell that chains build → send → decode.

It adds no logic a pure function could hold: builders make the request,
:func:`~cdsessions._core.builders.authorize` adds the server and headers, the retry plan decides, a
decoder turns the answer into a ``Result``, all as steps of :mod:`cdsessions._core.calls` shared
with :class:`~cdsessions.AsyncSessionsClient`. This shell only sends with its transport and sleeps.
"""

from __future__ import annotations

import builtins  # ``list`` is a method name below; annotations need the type
import os
from collections.abc import Callable, Generator, Iterable, Iterator, Mapping
from types import TracebackType
from typing import TYPE_CHECKING, Any, TypeVar

import msgspec
from returns.result import Failure, Result, Success

from cdsessions._client_base import ClientBase
from cdsessions._core.calls import API_KEY_ENV, Bearer
from cdsessions._core.clocks import Clock
from cdsessions._core.comfy import MAX_VIEW_BYTES
from cdsessions._core.lease import DEFAULT_LEASE_MINUTES
from cdsessions._core.logs import (
    FOLLOW,
    SNAPSHOT,
    FetchLogs,
    LogReading,
    Mode,
    collected,
    is_gone,
)
from cdsessions._core.retry import Outcome, RetryPolicy
from cdsessions._core.steps import Flow, drive
from cdsessions._core.timeouts import DEFAULT_READY_TIMEOUT, Timeout
from cdsessions._core.wire import HttpRequest
from cdsessions.errors import ApiError, TransportFailed
from cdsessions.models import (
    CreateSessionBody,
    CreateSessionResponse,
    DeleteSessionResponse,
    ExtendSessionResponse,
    LogLine,
    Machine,
    Session,
)
from cdsessions.transports._inline import cannot_stream
from cdsessions.transports.base import StreamingTransport, Transport

if TYPE_CHECKING:
    # Imported when a lifecycle method is first called: most programs never call one.
    from decimal import Decimal
    from pathlib import Path

    from cdsessions._core.comfy_run import Download
    from cdsessions._core.lease import OnLeaseEnd
    from cdsessions._core.pricing import GpuPricing
    from cdsessions.comfy import ComfyUI
    from cdsessions.comfy_models import RunProgress, RunResult
    from cdsessions.leases import Lease
    from cdsessions.lifecycle import OnPoll, SessionScope

__all__ = ["API_KEY_ENV", "Bearer", "SessionsClient"]

T = TypeVar("T")


class SessionsClient(ClientBase[Transport, Clock]):
    """A client for the ComfyDeploy Session API. Every method returns a ``returns`` ``Result``.

    ``bearer`` is the API key or a zero-argument callable returning it; None reads
    ``COMFY_DEPLOY_API_KEY`` when a request is made. ``server`` is ``"production"``,
    ``"staging"``, ``"local"`` or a base URL. ``transport`` defaults to a
    :class:`~cdsessions.transports.Urllib3Transport` created on first use and closed by
    :meth:`close`; a transport you pass in is yours, and is never closed here.

    Configuration problems (no key, an unusable server, timeout or retry policy) come back from
    each call as an :class:`~cdsessions.errors.InvalidRequest`, never as an exception.

    ``timeout`` is a :class:`~cdsessions.Timeout` or seconds for connect and read alike; its
    ``total`` (120 s by default) bounds the whole call, retries and waits included. ``retry`` is a
    :class:`~cdsessions.RetryPolicy` (the default retries get, list and cancel; create and
    extend only when the request never reached the server or got a 429), or False for none.
    Both can be overridden per call. ``observers`` are functions called with an
    :class:`~cdsessions._core.observe.AttemptStarted` before and an
    :class:`~cdsessions._core.observe.AttemptFinished` after every attempt.

    ``clock`` (an object with ``monotonic()``, ``time()`` and ``sleep(seconds)``; the real time
    by default) is what every deadline, backoff and ready-wait is measured and waited on: a
    test passes the fake's :class:`~cdsessions.fake.ManualClock`, whose ``sleep`` moves it
    instead of waiting, so retries and waits take no real time.
    """

    # -- operations ------------------------------------------------------------------------

    def get(
        self,
        session_id: str,
        *,
        timeout: Timeout | float | None = None,
        retry: RetryPolicy | bool | None = None,
    ) -> Result[Session, ApiError]:
        """One session. A 404 means unknown, ended, or another account's."""
        return self._run(self._core.get(session_id, timeout, retry))

    def cancel(
        self,
        session_id: str,
        wait_for_shutdown: bool = False,
        *,
        timeout: Timeout | float | None = None,
        retry: RetryPolicy | bool | None = None,
    ) -> Result[DeleteSessionResponse, ApiError]:
        """Stop a session (and its billing). ``wait_for_shutdown`` waits for the machine to stop."""
        return self._run(self._core.cancel(session_id, wait_for_shutdown, timeout, retry))

    def list(
        self,
        machine_id: str | None = None,
        *,
        timeout: Timeout | float | None = None,
        retry: RetryPolicy | bool | None = None,
    ) -> Result[builtins.list[Session], ApiError]:
        """Live sessions of the account, or of one machine. Always a list of :class:`Session`,
        whether the server answers in the live shape or the seed's ``GPUEventModel`` shape."""
        return self._run(self._core.list(machine_id, timeout, retry))

    def create(
        self,
        body: CreateSessionBody,
        *,
        timeout: Timeout | float | None = None,
        retry: RetryPolicy | bool | None = None,
        max_cost: Decimal | int | str | float | None = None,
    ) -> Result[CreateSessionResponse, ApiError]:
        """Start a paid session. With ``wait_for_server=True`` the read timeout is at least
        11 minutes, since the server may take 10 to answer.

        Never repeated once the request may have reached the server (a retry could start a
        second paid session) unless ``retry=RetryPolicy(allow_duplicates=True)``.

        ``max_cost`` (USD: Decimal, int or str, parsed exactly; a float is read through its
        repr, so ``2.5`` means 2.50) is a budget: the worst case, the requested minutes (15
        when unset or 0) x 60 x the GPU's price per second, must not exceed it. Without ``gpu``
        the machine's default GPU is priced (one ``GET /machine/{id}`` first; its failure is
        returned and no create is sent). Over budget, or no way to price it (a machine with no
        default GPU, or a GPU missing from the price table), is an
        :class:`~cdsessions._core.budget.OverBudget` (an ``InvalidRequest``) and no create is sent.
        The price table is fetched first if this client has none yet; if that fails, that
        failure is returned and no create is sent."""
        if max_cost is not None:
            from cdsessions._core.session_steps import budgeted_create

            return self._run(budgeted_create(self._core, body, max_cost, timeout, retry))
        return self._run(self._core.create(body, timeout, retry))

    def extend(
        self,
        session_id: str,
        minutes: int,
        *,
        timeout: Timeout | float | None = None,
        retry: RetryPolicy | bool | None = None,
        check_cap: bool = True,
    ) -> Result[ExtendSessionResponse, ApiError]:
        """Add ``minutes`` to a live session's timeout (live server only). Repeated, like
        create, only when the request surely never reached the server or got a 429.

        The session is read first (one ``get``): an extension that would take it past the
        platform's 24-hour cap, counted from its creation, is an ``InvalidRequest`` (field
        ``minutes``, why ``"session_cap"``) and nothing is sent (the server would accept it, but
        the container stops at 24 hours anyway). ``check_cap=False`` skips that read and sends
        the extension alone."""
        from cdsessions._core.session_steps import capped_extend

        return self._run(
            capped_extend(self._core, session_id, minutes, timeout, retry, check_cap=check_cap)
        )

    def gpu_pricing(
        self,
        refresh: bool = False,
        *,
        timeout: Timeout | float | None = None,
        retry: RetryPolicy | bool | None = None,
    ) -> Result[GpuPricing, ApiError]:
        """The GPU price table, ``GET /platform/gpu-pricing``: USD per second for each GPU, as
        exact decimals. Fetched on first use and kept for the client's lifetime (prices change
        rarely); ``refresh=True`` fetches it again. A read: retried like :meth:`get`.
        ``pricing.price_per_second("A10G")`` is a :class:`~cdsessions.costs.Price`, or a
        :class:`~cdsessions.costs.NoPrice` for a GPU the table does not list."""
        return self._run(self._core.gpu_pricing(refresh, timeout, retry))

    # -- the session's log ------------------------------------------------------------------

    def logs(
        self, session_id: str, *, level: str | None = None, timeout: Timeout | float | None = None
    ) -> Result[builtins.list[LogLine], ApiError]:
        """The session's log as it is now (``GET /v2/stream-logs``): every line the server holds
        (it keeps them about 10 minutes after a session ends), only ``level`` ones if given.
        The server never ends the stream by itself, so the answer is what arrived before the
        first 2 s pause (or ``timeout``'s total). 404 for a session the account never had."""
        return self._run(self._core.logs(session_id, level, timeout))

    def follow_logs(
        self, session_id: str, *, level: str | None = None, timeout: Timeout | float | None = None
    ) -> Generator[Result[LogLine, ApiError], None, None]:
        """The session's log lines as they come, each ``Success(line)``. It ends by itself when
        the stream ends (the server's end marker, or the connection closed between events);
        anything else ends it with one ``Failure``, its last item: a stall longer than
        ``timeout``'s read, its total (the deadline; ``timeout.total=None`` follows for as long
        as the stream goes on), garbage, a line over 256 KiB, 1 GiB in all. A stall (or the
        deadline) is a clean end when the session turns out to be gone (a get answers 404):
        the server keeps an ended session's stream open and never ends it. Never raises; stop
        iterating (or ``close()`` it) to drop the connection."""
        fetch = self._core.log_stream(session_id, level, timeout, FOLLOW)
        if not isinstance(fetch, Success):
            yield Failure(fetch.failure())
            return
        yield from self._read_logs(fetch.unwrap(), FOLLOW, self._closes, session_id)

    def _read_logs(
        self, fetch: FetchLogs, mode: Mode, began: int, session_id: str = ""
    ) -> Iterator[Result[LogLine, ApiError]]:
        """The stream ``fetch`` asks for, through :class:`LogReading` (shared with asyncio)."""
        request = fetch.request
        transport = self._transport_for_use(lambda: self._refused(request, began))
        if isinstance(transport, TransportFailed):
            yield Failure(transport)
            return
        if not isinstance(transport, StreamingTransport):
            yield Failure(cannot_stream(request, transport))
            return
        reading = LogReading(request.operation, mode, fetch.key_forms)
        pieces = transport.stream(request)
        try:
            for piece in pieces:
                yield from reading.take(piece)
                if reading.done:
                    break
            else:
                yield from reading.end()
        finally:
            pieces.close()  # the connection goes as soon as the reading stops
        if reading.stalled is not None:  # a follower's stall: over if the session is gone
            yield from reading.after_check(is_gone(self.get(session_id)))

    def machine(
        self,
        machine_id: str,
        *,
        timeout: Timeout | float | None = None,
        retry: RetryPolicy | bool | None = None,
    ) -> Result[Machine, ApiError]:
        """One machine, ``GET /machine/{id}`` (live server only): its name, status and default
        ``gpu``. The server's ``auth_token`` is never kept (:class:`Machine` has no field for it).
        A non-UUID id is the server's 422, an unknown one a 404. Retried like :meth:`get`."""
        return self._run(self._core.machine(machine_id, timeout, retry))

    def machines(
        self,
        search: str | None = None,
        *,
        timeout: Timeout | float | None = None,
        retry: RetryPolicy | bool | None = None,
    ) -> Result[builtins.list[Machine], ApiError]:
        """The account's machines, ``GET /machines`` (live server only), only those whose name
        contains ``search`` when given (the server decides how it matches)."""
        return self._run(self._core.machines(search, timeout, retry))

    # -- lifecycle (see cdsessions.lifecycle) ----------------------------------------------

    def wait_until_ready(
        self,
        session_id: str,
        *,
        timeout: float = DEFAULT_READY_TIMEOUT,
        on_poll: OnPoll | None = None,
    ) -> Result[Session, ApiError]:
        """Poll :meth:`get` (1 s apart at first, then up to 4 s) until the session's ``url`` is
        set. Fails with :class:`~cdsessions.lifecycle.SessionGone` on a 404 and
        :class:`~cdsessions.lifecycle.NotReady` after ``timeout`` seconds."""
        from cdsessions._core.session_steps import ready_wait

        steps = ready_wait(
            self._core,
            session_id,
            timeout=timeout,
            on_poll=on_poll,
            clock=self._core.clock.monotonic,
        )
        return self._run(steps)

    def session(
        self,
        body: CreateSessionBody,
        *,
        wait: bool = True,
        ready_timeout: float = DEFAULT_READY_TIMEOUT,
        on_poll: OnPoll | None = None,
        max_cost: Decimal | int | str | float | None = None,
        lease: int | None = None,
        on_lease_end: OnLeaseEnd | None = None,
    ) -> SessionScope:
        """A context manager that creates a session, waits until it is ready (unless
        ``wait=False``) and always cancels it on exit, exceptions and Ctrl-C included.
        ``with client.session(body) as started`` gives ``Result[OpenSession, ApiError]``.

        With ``max_cost`` (USD, as for :meth:`create`) the create is checked against the budget
        first (nothing is created when it is over, or cannot be priced), and so is every
        ``scope.extend(minutes)`` inside the block: the session's new worst case, all its
        minutes at its GPU's price, must stay within the budget.

        With ``lease`` (minutes, 1 to 60) the session is created with that timeout and kept
        alive in small extensions by a background thread while this process lives (see
        :meth:`lease`); ``scope.lease`` is its :class:`~cdsessions.leases.LeaseState`, and
        ``on_lease_end(state)`` is called if the lease can no longer be kept."""
        from cdsessions import lifecycle

        return lifecycle.SessionScope(
            self,
            body,
            wait=wait,
            ready_timeout=ready_timeout,
            on_poll=on_poll,
            max_cost=max_cost,
            lease=lease,
            on_lease_end=on_lease_end,
        )

    def comfy(self, session: object) -> ComfyUI:
        """The ComfyUI of ``session`` (a :class:`Session` or create response with its ``url``,
        or the URL itself): queue workflows, read history, move files. The URL is a secret and
        the API key is never sent to it."""
        from cdsessions.comfy import ComfyUI

        return ComfyUI(self, session)

    def run(
        self,
        session: object,
        workflow: Mapping[str, Any],
        *,
        outputs_to: str | os.PathLike[str],
        inputs: Iterable[str | os.PathLike[str]] | Mapping[str, str | os.PathLike[str]] = (),
        timeout: float = 600.0,
        poll_every: float = 1.0,
        max_file_bytes: int = MAX_VIEW_BYTES,
        on_progress: Callable[[RunProgress], None] | None = None,
    ) -> Result[RunResult, ApiError]:
        """Run an API-format ``workflow`` on ``session``'s ComfyUI and bring its outputs home:
        upload ``inputs``, queue, poll the history (every ``poll_every`` s, on the client's
        clock) until done or ``timeout`` s have passed, then stream every output file to a new
        file in ``outputs_to`` (at most ``max_file_bytes`` each; names made safe, nothing
        overwritten). Node errors are a :class:`RunFailed`; a late run is interrupted and is a
        :class:`RunTimedOut`; Ctrl-C interrupts ComfyUI before it goes on. Bad input (unreadable
        inputs, a bad workflow) is refused before anything is sent. The session is not
        cancelled here: a session scope does that. ``on_progress(RunProgress)`` is told of
        each upload, history poll and download (it must not raise)."""
        from cdsessions import _runs
        from cdsessions._core.comfy_run import Download

        prepared = _runs.prepare_run(
            self._core,
            session,
            workflow,
            outputs_to,
            inputs,
            timeout,
            poll_every,
            max_file_bytes,
            on_progress,
        )
        if not isinstance(prepared, Success):
            return Failure(prepared.failure())
        flow, directory = prepared.unwrap()
        began = self._closes

        def act(action: Any) -> object:
            if isinstance(action, Download):
                return self._download(action, directory, began)
            return self._act(action, began)

        return drive(flow, act, self._core.clock.sleep)

    def _download(self, action: Download, directory: Path, began: int) -> object:
        from cdsessions import _runs

        request = action.request
        transport = self._transport_for_use(lambda: self._refused(request, began))
        if isinstance(transport, TransportFailed):
            return Failure(transport)
        if isinstance(transport, StreamingTransport):
            pieces = transport.stream(request)
            try:
                return _runs.write_download(pieces, directory, action)
            finally:
                pieces.close()
        answer = transport.send(request)  # a transport that cannot stream: whole, under the cap
        if not isinstance(answer, Success):
            return answer
        response = answer.unwrap()
        head = msgspec.structs.replace(response, body=b"")
        return _runs.write_download((Success(head), Success(response.body)), directory, action)

    def lease(
        self,
        session_id: str,
        minutes: int = DEFAULT_LEASE_MINUTES,
        *,
        max_cost: Decimal | int | str | float | None = None,
        on_end: OnLeaseEnd | None = None,
    ) -> Lease:
        """Hold a lease on a session that already exists: ``with client.lease(session_id)
        as leased`` gives ``Result[LeaseState, ApiError]`` and cancels the session when the
        block ends. Meanwhile a background thread extends it whenever half of ``minutes`` is left,
        back up to ``minutes``: never past 24 hours from its creation, nor (with ``max_cost``,
        USD) past the budget, each extension checked before it is sent. A failing extension is
        retried within the time left; if the lease cannot be kept, ``on_end(state)`` is told
        and the session cancelled. If this process dies, the session ends by itself within
        ``minutes``."""
        from cdsessions._core.lease import LeaseRecord
        from cdsessions.leases import Lease

        return Lease(self, LeaseRecord(minutes), on_end, session_id=session_id, max_cost=max_cost)

    # -- the shell -------------------------------------------------------------------------

    def _run(
        self, steps: Flow[HttpRequest | FetchLogs, T], sleep: Callable[[float], None] | None = None
    ) -> T:
        """Drive steps (a call's, :mod:`cdsessions._core.calls`, or a flow of them,
        :mod:`cdsessions._core.session_steps`): send with the transport, wait with ``sleep``
        (the client's clock's ``sleep`` unless given). Everything else was decided in the
        steps. The lifecycle scopes and the reaper run their flows through here."""
        began = self._closes  # a close() from another thread fails this call's later requests
        wait = sleep or self._core.clock.sleep

        def act(request: Any) -> object:  # HttpRequest | FetchLogs (mypy joins them to Struct)
            return self._act(request, began)

        return drive(steps, act, wait)

    def _act(self, request: HttpRequest | FetchLogs, began: int) -> object:
        """Perform one step's action: send a request, or read a snapshot of a log stream."""
        if isinstance(request, FetchLogs):
            return collected(self._read_logs(request, SNAPSHOT, began))
        return self._send(request, began)

    def _send(self, request: HttpRequest, began: int) -> Outcome:
        transport = self._transport_for_use(lambda: self._refused(request, began))
        if isinstance(transport, TransportFailed):
            return Failure(transport)
        return transport.send(request)

    def _transport_for_use(
        self, refused: Callable[[], TransportFailed | None] = lambda: None
    ) -> Transport | TransportFailed:
        """The transport, created on first use, or ``refused()`` when that gives a failure (the
        client was closed since the call began: checked again once the lock is held, so a
        close() in another thread never lets a transport be created afterwards)."""
        refusal = refused()
        transport = self._transport  # read once: close() in another thread may clear it
        if refusal is not None:
            return refusal
        if transport is not None:
            return transport
        with self._lock:
            refusal = refused()
            if refusal is not None:
                return refusal
            if self._transport is None:
                from cdsessions.transports._urllib3 import Urllib3Transport

                self._transport = Urllib3Transport(max_connections=self._core.max_connections)
            return self._transport

    # -- lifetime --------------------------------------------------------------------------

    def close(self) -> None:
        """Close the transport this client created (never one that was passed in). Calls still
        under way in other threads end with ``TransportFailed(kind="connect", sent=False)`` for
        every request they had not yet sent (a cancel is still sent); the client can be used
        again by new calls."""
        with self._lock:
            self._closes += 1  # calls under way send nothing more (but a cancel)
            if self._owns_transport and self._transport is not None:
                self._transport.close()
                self._transport = None

    def __enter__(self) -> SessionsClient:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()
