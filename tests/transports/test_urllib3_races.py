"""The urllib3 transport's races, each run in one chosen order through its seams (``_Seams``):
a test parks one thread at a seam (a ``threading.Event``), drives the other side, then lets it
go. Nothing here sleeps and hopes; a bug makes a wait on an event run out and the test fail.

Added after an outside review slipped these bugs past the suite: the deadline thread not woken
by an earlier deadline; a connection handed to a waiter at the instant its wait runs out; state
a forked child inherits (held locks, the resolver's cache); a cache keyed too coarsely. The
resolver's cache (one lookup shared, remembered for a while, bounded) is tested here too.
"""

from __future__ import annotations

import os
import socket
import threading
import time
import uuid
from collections import Counter
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from queue import Empty
from typing import Any, Final, NamedTuple

import msgspec
import pytest
from returns.result import Failure, Result, Success

from cdsessions import ApiError, SessionsClient, Timeout, TransportFailed
from cdsessions._core.wire import HttpRequest, HttpResponse
from cdsessions.transports import _urllib3
from cdsessions.transports._urllib3 import Urllib3Transport, _FairQueue, _Seams, _Watchdog
from tests.support.clocks import wait_until
from tests.support.forking import HOLD_AT_MOST, assert_child_ok, fork_and_wait, in_thread
from tests.support.hostile import Peer, Request, answer, ca_file, hostile, response
from tests.support.operations import OK_BODIES

KEY: Final = "sk-races-0123456789abcdef"
TIMEOUT: Final = Timeout(connect=5, read=5, total=10)
#: A deadline no test reaches: the deadline thread sleeps until it.
FAR: Final = 3600.0
#: How long a test waits for what a bug would stop from happening (it happens at once, or never).
NEVER: Final = 10.0
needs_fork = pytest.mark.skipif(not hasattr(os, "fork"), reason="os.fork() is POSIX only")


class Moments(_Seams):
    """Counts each moment the transport passes, and parks the first thread (of this process)
    that reaches ``park`` until :attr:`go` is set."""

    def __init__(self, park: str | None = None) -> None:
        self.park = park
        self.go = threading.Event()
        self.sleeps: list[float] = []
        self._seen: Counter[str] = Counter()
        self._changed = threading.Condition()
        self._parent = os.getpid()

    def _at(self, moment: str) -> None:
        with self._changed:
            self._seen[moment] += 1
            first = self._seen[moment] == 1
            self._changed.notify_all()
        if moment == self.park and first and os.getpid() == self._parent:
            self.go.wait(HOLD_AT_MOST)

    def reached(self, moment: str, times: int = 1) -> bool:
        with self._changed:
            return self._changed.wait_for(lambda: self._seen[moment] >= times, NEVER)

    def count(self, moment: str) -> int:
        with self._changed:
            return self._seen[moment]

    def waiting(self) -> None:
        self._at("waiting")

    def gave_up(self) -> None:
        self._at("gave_up")

    def handed(self) -> None:
        self._at("handed")

    def watchdog_sleeping(self, seconds: float) -> None:
        with self._changed:
            self.sleeps.append(seconds)
        self._at("sleeping")

    def watchdog_woke(self) -> None:
        self._at("woke")

    def joined_lookup(self) -> None:
        self._at("joined")

    def slept_longer_than(self, seconds: float) -> bool:
        with self._changed:
            return self._changed.wait_for(lambda: any(s > seconds for s in self.sleeps), NEVER)


def ok(operation: str) -> bytes:
    body = OK_BODIES[operation].encode()
    return response(
        "200 OK", "Content-Type: application/json", f"Content-Length: {len(body)}", body=body
    )


@contextmanager
def socket_pair() -> Iterator[socket.socket]:
    ours, theirs = socket.socketpair()
    with ours, theirs:
        ours.settimeout(NEVER)
        yield ours


def failed(
    result: Result[Any, ApiError] | Result[Any, TransportFailed], kind: str, *, sent: bool
) -> TransportFailed:
    assert isinstance(result, Failure), result
    error = result.failure()
    assert isinstance(error, TransportFailed), error
    assert (error.kind, error.sent) == (kind, sent), error
    return error


# -- waking the deadline thread ------------------------------------------------------------------


def test_an_earlier_deadline_wakes_the_deadline_thread_sleeping_until_a_later_one() -> None:
    moments = Moments()
    watchdog = _Watchdog(moments)
    with socket_pair() as far, socket_pair() as near:
        far_token = watchdog.watch(time.monotonic() + FAR, far)
        assert moments.slept_longer_than(FAR - 60)  # asleep until the far deadline
        near_token = watchdog.watch(time.monotonic() - 1, near)  # due already
        # Shut down, so the blocked read returns at once: the thread was woken for it. Left
        # asleep, it would shut it an hour from now (the read times out after NEVER seconds).
        assert near.recv(1) == b""
        assert watchdog.release(near_token) is True
        assert watchdog.release(far_token) is False  # the far one was not cut off with it
    watchdog.close()


def test_releasing_the_last_far_deadline_wakes_the_deadline_thread_to_idle_out() -> None:
    moments = Moments()
    watchdog = _Watchdog(moments)
    with socket_pair() as sock:
        token = watchdog.watch(time.monotonic() + FAR, sock)
        assert moments.slept_longer_than(FAR - 60)
        assert watchdog.release(token) is False
        # Woken now (not in an hour), so the thread can end once it has idled.
        assert moments.reached("woke")
    watchdog.close()


def _no_threads(monkeypatch: pytest.MonkeyPatch) -> None:
    def refuse(self: threading.Thread) -> None:
        raise RuntimeError("can't start new thread")

    monkeypatch.setattr(threading.Thread, "start", refuse)


def test_a_deadline_thread_that_could_not_start_is_started_by_the_next_watch(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    watchdog = _Watchdog()
    with socket_pair() as first, socket_pair() as second:
        with monkeypatch.context() as no_threads:
            _no_threads(no_threads)
            watchdog.watch(time.monotonic() - 1, first)  # no thread to enforce it, for now
        watchdog.watch(time.monotonic() - 1, second)  # threads again: one starts
        assert second.recv(1) == b""
        assert first.recv(1) == b""  # the earlier one is enforced too
    watchdog.close()


# -- a connection handed over as its waiter gives up ----------------------------------------------


class Connection:
    def __init__(self) -> None:
        self.closed = False

    def close(self) -> None:
        self.closed = True


def _get_in_thread(queue: _FairQueue, outcome: list[object]) -> threading.Thread:
    def get() -> None:
        try:
            outcome.append(queue.get(timeout=0.0))  # gives up at once: nothing is idle
        except (Empty, AttributeError) as refused:
            outcome.append(refused)

    return in_thread(get)


def test_a_connection_handed_to_a_waiter_as_it_gives_up_is_kept_for_the_next_caller() -> None:
    moments = Moments(park="gave_up")
    queue = _FairQueue(1)
    queue.seams = moments
    outcome: list[object] = []
    waiter = _get_in_thread(queue, outcome)
    assert moments.reached("gave_up")  # its time ran out; it is still queued
    connection = Connection()
    queue.put(connection)  # handed to that waiter, the only one queued
    assert moments.count("handed") == 1
    moments.go.set()
    waiter.join(NEVER)
    [refused] = outcome
    assert isinstance(refused, Empty)  # a clean "no connection in time", not a late connection
    assert queue.waiting() == 0
    assert queue.get(block=False) is connection  # neither lost nor closed
    assert not connection.closed


def test_a_connection_handed_to_a_waiter_as_it_gives_up_is_closed_if_the_pool_closed() -> None:
    moments = Moments(park="gave_up")
    queue = _FairQueue(1)
    queue.seams = moments
    outcome: list[object] = []
    waiter = _get_in_thread(queue, outcome)
    assert moments.reached("gave_up")
    connection = Connection()
    queue.put(connection)
    assert queue.close() == []  # handed over, so not idle: the waiter holds it
    moments.go.set()
    waiter.join(NEVER)
    [refused] = outcome
    assert isinstance(refused, AttributeError)  # what urllib3 turns into ClosedPoolError
    assert connection.closed  # nobody else will: a socket would be left open


def test_a_waiter_whose_time_runs_out_leaves_the_queue() -> None:
    queue = _FairQueue(1)
    outcome: list[object] = []
    _get_in_thread(queue, outcome).join(NEVER)
    [refused] = outcome
    assert isinstance(refused, Empty)
    assert queue.waiting() == 0  # gone: a connection put back now must not be handed to it
    connection = Connection()
    queue.put(connection)
    assert queue.get(block=False) is connection


def _held_until(release: threading.Event) -> Callable[[Request], bytes]:
    def held(request: Request) -> bytes:
        if request.target.endswith("/holder"):
            release.wait(HOLD_AT_MOST)
        return ok("get")

    return held


def test_a_call_whose_wait_ran_out_as_the_connection_came_back_times_out_and_it_is_reused() -> None:
    release = threading.Event()
    moments = Moments(park="gave_up")
    with hostile(answer(_held_until(release), keep_alive=True)) as server:
        transport = Urllib3Transport(max_connections=1, _seams=moments)
        client = SessionsClient(KEY, server=server.base_url, transport=transport, retry=False)
        holder = in_thread(lambda: client.get("holder", timeout=TIMEOUT))
        assert wait_until(lambda: len(server.requests) == 1)  # the only connection is busy
        late: list[Result[HttpResponse, TransportFailed]] = []
        # Straight to the transport: its deadline starts here, so the wait always begins.
        quick = Timeout(connect=5, read=5, total=0.05)
        request = HttpRequest("GET", "/session/waiter", base_url=server.base_url, timeout=quick)
        waiter = in_thread(lambda: late.append(transport.send(request)))
        assert moments.reached("gave_up")
        release.set()
        holder.join(NEVER)  # it gave the connection back: to the waiter, still queued
        assert moments.count("handed") == 1
        moments.go.set()
        waiter.join(NEVER)
        error = failed(late[0], "timeout", sent=False)
        assert "no pooled connection became free in time" in error.problem
        # The connection was passed on, not lost: the next call gets it at once.
        assert isinstance(client.get("after", timeout=TIMEOUT), Success)
        assert transport.queued == 0
        transport.close()
        targets = [target.rpartition("/")[2] for target in server.targets()]
        assert (targets, server.connections) == (["holder", "after"], 1)


def test_a_call_with_no_deadline_waits_for_a_connection_and_is_handed_it() -> None:
    release = threading.Event()
    moments = Moments()
    with hostile(answer(_held_until(release), keep_alive=True)) as server:
        transport = Urllib3Transport(max_connections=1, _seams=moments)
        client = SessionsClient(KEY, server=server.base_url, transport=transport, retry=False)
        holder = in_thread(lambda: client.get("holder", timeout=TIMEOUT))
        assert wait_until(lambda: len(server.requests) == 1)
        got: list[Result[Any, ApiError]] = []
        unbounded = Timeout(connect=5, read=5, total=None)
        waiter = in_thread(lambda: got.append(client.get("waiter", timeout=unbounded)))
        assert moments.reached("waiting")
        release.set()
        holder.join(NEVER)
        waiter.join(NEVER)
        assert isinstance(got[0], Success), got
        assert moments.count("handed") == 1
        transport.close()
        assert server.connections == 1


# -- os.fork() while another thread holds a lock --------------------------------------------------


def gets(client: SessionsClient) -> int:
    """The child's part: one call that works. 0, or 3."""
    return 0 if isinstance(client.get("child", timeout=TIMEOUT), Success) else 3


@needs_fork
def test_a_child_forked_while_another_thread_hands_a_connection_over_can_use_the_pool() -> None:
    # The thread handing the connection over holds the pool's lock at the fork: the child must
    # not inherit it held, or its first call waits forever.
    release = threading.Event()
    moments = Moments(park="handed")
    with hostile(answer(_held_until(release), keep_alive=True)) as server:
        transport = Urllib3Transport(max_connections=1, _seams=moments)
        client = SessionsClient(KEY, server=server.base_url, transport=transport, retry=False)
        holder = in_thread(lambda: client.get("holder", timeout=TIMEOUT))
        assert wait_until(lambda: len(server.requests) == 1)
        waiter = in_thread(lambda: client.get("waiter", timeout=TIMEOUT))
        assert moments.reached("waiting")
        release.set()
        assert moments.reached("handed")  # the holder is parked, the pool's lock in its hands
        code = fork_and_wait(lambda: gets(client))
        moments.go.set()
        holder.join(NEVER)
        waiter.join(NEVER)
        assert_child_ok(code)
        assert isinstance(client.get("parent", timeout=TIMEOUT), Success)  # and the parent goes on
        transport.close()


@needs_fork
def test_a_child_forked_while_the_deadline_thread_holds_its_lock_keeps_its_deadlines() -> None:
    moments = Moments(park="woke")
    with hostile(answer(ok("get"), keep_alive=True)) as server:
        transport = Urllib3Transport(_seams=moments)
        client = SessionsClient(KEY, server=server.base_url, transport=transport, retry=False)
        with socket_pair() as far, socket_pair() as near:
            watchdog = transport._watchdog
            watchdog.watch(time.monotonic() + FAR, far)
            assert moments.slept_longer_than(FAR - 60)
            watchdog.watch(time.monotonic() - 1, near)
            assert moments.reached("woke")  # parked awake, with the watchdog's lock held
            code = fork_and_wait(lambda: gets(client))
            moments.go.set()
            assert near.recv(1) == b""
        assert_child_ok(code)
        transport.close()


class Lookup(NamedTuple):
    host: str
    port: int
    thread: str  # the thread that made it


@pytest.fixture
def lookups(monkeypatch: pytest.MonkeyPatch) -> list[Lookup]:
    """Every name lookup the transport makes from now on, each answered with loopback."""
    made: list[Lookup] = []

    def lookup(host: str, port: int) -> list[tuple[str, int]]:
        made.append(Lookup(host, port, threading.current_thread().name))
        return [("127.0.0.1", port)]

    monkeypatch.setattr(_urllib3, "_addresses", lookup)
    return made


def hosts(lookups: list[Lookup]) -> list[str]:
    return [made.host for made in lookups]


@needs_fork
def test_a_child_forked_after_a_name_was_resolved_resolves_it_again(
    lookups: list[Lookup],
) -> None:
    # The parent's remembered addresses are its own; the child starts with an empty cache.
    name = f"{uuid.uuid4().hex}.hostile.test"
    with hostile(answer(ok("get")), tls=True) as server:
        transport = Urllib3Transport(ca_certs=ca_file())
        base_url = f"https://{name}:{server.port}/api"
        client = SessionsClient(KEY, server=base_url, transport=transport, retry=False)
        assert isinstance(client.get("parent", timeout=TIMEOUT), Success)
        assert hosts(lookups) == [name]

        def in_child() -> int:
            if gets(client) != 0:
                return 3
            return 0 if hosts(lookups) == [name, name] else 4  # looked up again, here

        assert_child_ok(fork_and_wait(in_child))
        assert isinstance(client.get("parent", timeout=TIMEOUT), Success)
        assert hosts(lookups) == [name]  # the parent's cache is intact
        transport.close()


# -- one lookup per name at a time ---------------------------------------------------------------


def test_callers_resolving_one_name_at_once_share_its_one_lookup(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    name = f"{uuid.uuid4().hex}.hostile.test"
    lookups: list[str] = []
    entered, release = threading.Event(), threading.Event()

    def lookup(host: str, port: int) -> list[tuple[str, int]]:
        lookups.append(host)
        entered.set()
        release.wait(HOLD_AT_MOST)
        return [("127.0.0.1", port)]

    moments = Moments()
    monkeypatch.setattr(_urllib3, "_addresses", lookup)
    monkeypatch.setattr(_urllib3._resolver, "seams", moments)
    answers: list[list[tuple[str, int]]] = []

    def resolve() -> None:
        answers.append(_urllib3._resolver.resolve(name, 443, NEVER))

    first = in_thread(resolve)
    assert entered.wait(NEVER)  # its lookup is under way, in a resolver thread
    second = in_thread(resolve)
    assert moments.reached("joined")  # waiting for that lookup, not starting another
    release.set()
    first.join(NEVER)
    second.join(NEVER)
    assert answers == [[("127.0.0.1", 443)], [("127.0.0.1", 443)]]
    assert lookups == [name]


def test_a_lookup_that_could_not_start_a_thread_is_done_by_the_caller_and_not_left_pending(
    monkeypatch: pytest.MonkeyPatch, lookups: list[Lookup]
) -> None:
    name = f"{uuid.uuid4().hex}.hostile.test"
    with monkeypatch.context() as no_threads:
        _no_threads(no_threads)
        assert _urllib3._resolver.resolve(name, 443, NEVER) == [("127.0.0.1", 443)]
    # Nothing left pending that no thread will ever finish: the next caller looks it up.
    assert _urllib3._resolver.resolve(name, 443, NEVER) == [("127.0.0.1", 443)]
    assert [made.thread for made in lookups] == [
        threading.current_thread().name,
        "cdsessions-resolve",
    ]


def test_a_remembered_name_is_looked_up_again_once_its_time_is_up(
    monkeypatch: pytest.MonkeyPatch, lookups: list[Lookup]
) -> None:
    name = f"{uuid.uuid4().hex}.hostile.test"
    monkeypatch.setattr(_urllib3, "_RESOLVED_FOR", 0.0)  # remembered for no time at all
    for _ in range(2):
        assert _urllib3._resolver.resolve(name, 443, NEVER) == [("127.0.0.1", 443)]
    assert hosts(lookups) == [name, name]


def test_the_remembered_names_are_bounded(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(_urllib3, "_addresses", lambda host, port: [("127.0.0.1", port)])
    for n in range(300):  # a client talks to a few hosts; a crawler's worth must not pile up
        _urllib3._resolver.resolve(f"{n}.{uuid.uuid4().hex}.hostile.test", 443, NEVER)
    assert len(_urllib3._resolver._known) <= 256


# -- caches keyed by everything that tells their entries apart ------------------------------------


def _get(transport: Urllib3Transport, base_url: str) -> Result[HttpResponse, TransportFailed]:
    request = HttpRequest("GET", "/session/x", base_url=base_url)
    return transport.send(msgspec.structs.replace(request, timeout=TIMEOUT, operation="get"))


def test_one_transport_keeps_a_pool_per_scheme_host_port_and_path() -> None:
    transport = Urllib3Transport(ca_certs=ca_file())
    keep = answer(ok("get"), keep_alive=True)
    with hostile(keep) as first, hostile(keep) as second, hostile(keep, tls=True) as secure:
        other_path = first.base_url.replace("/api", "/other")
        plain_to_tls = secure.base_url.replace("https://", "http://")
        assert isinstance(_get(transport, first.base_url), Success)
        assert isinstance(_get(transport, second.base_url), Success)  # another port
        assert isinstance(_get(transport, other_path), Success)  # another path prefix
        failed(_get(transport, plain_to_tls), "broken", sent=True)  # http to a TLS port
        assert isinstance(_get(transport, secure.base_url), Success)  # same port, https
        assert first.targets() == ["/api/session/x", "/other/session/x"]
        assert second.targets() == ["/api/session/x"]
        assert secure.targets() == ["/api/session/x"]
    transport.close()


def test_a_resolved_name_is_remembered_per_port(lookups: list[Lookup]) -> None:
    name = f"{uuid.uuid4().hex}.hostile.test"
    transport = Urllib3Transport()
    # A new connection for every request: each one resolves (or remembers) the name.
    with hostile(answer(ok("get"))) as first, hostile(answer(ok("get"))) as second:
        for server in (first, second, first, second):
            assert isinstance(_get(transport, f"http://{name}:{server.port}/api"), Success)
        assert (len(first.requests), len(second.requests)) == (2, 2)
        assert [(made.host, made.port) for made in lookups] == [
            (name, first.port),
            (name, second.port),
        ]  # once per port
    transport.close()


def test_each_call_waits_for_bytes_no_longer_than_its_own_read_timeout() -> None:
    # urllib3 Timeout values are made once per (connect, read) pair and shared: the one made for
    # a patient call must never serve an impatient one with the same connect timeout (a value no
    # other test uses, so this test's pair is made here).
    connect = 4.75

    def script(peer: Peer) -> None:
        while (request := peer.read_request()) is not None:
            if request.target.endswith("/stall"):
                peer.stall(NEVER)  # then closes: an answer cut short, not a read timeout
                return
            peer.write(ok("get"))

    transport = Urllib3Transport()
    with hostile(script) as server:
        request = HttpRequest("GET", "/session/x", base_url=server.base_url, operation="get")
        patient = Timeout(connect=connect, read=FAR, total=None)
        answered = transport.send(msgspec.structs.replace(request, timeout=patient))
        assert isinstance(answered, Success), answered
        impatient = Timeout(connect=connect, read=0.2, total=None)
        stalled = msgspec.structs.replace(request, path="/session/stall", timeout=impatient)
        failed(transport.send(stalled), "timeout", sent=True)
    transport.close()
