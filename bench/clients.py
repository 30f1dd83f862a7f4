"""The four ways of making the same calls that the benchmark compares.

Each adapter makes the call the way its users would (one long-lived client, a fresh request body
per ``create``) and checks the answer, so a client that silently failed could not look fast.
Every client library is imported inside its adapter: a worker process imports only the one it
measures, and the official SDK's environment has no cdsessions at all.

``raw`` is the physical limit, not a client anyone would use: request bytes computed once, sent
over a plain kept-alive socket, and the answer read whole without parsing anything but the
status line and ``Content-Length``. Nothing on the client side can cost less.
"""

from __future__ import annotations

import asyncio
import socket
import threading
import time
from typing import Any, Final, Protocol
from urllib.parse import urlsplit

from bench import payloads

__all__ = ["CLIENTS", "Adapter", "BenchCallFailed", "make"]

_KEY: Final = "bench-key-not-a-secret"


class BenchCallFailed(RuntimeError):
    """A measured call did not return what the canned server sent."""


class Adapter(Protocol):
    def get(self) -> None: ...
    def create(self) -> None: ...
    def list(self, label: str) -> int: ...
    def gets_in_flight(self, tasks: int, per_task: int) -> float | None:
        """Seconds for ``tasks`` asyncio tasks making ``per_task`` gets each; None: no async."""
        ...

    def close(self) -> None: ...


def _check(condition: bool, what: str) -> None:
    if not condition:
        raise BenchCallFailed(what)


class CdSessions:
    """``cdsessions.SessionsClient``: every call returns a ``Result``; unwrap it."""

    def __init__(self, base_url: str) -> None:
        from returns.result import Success

        from cdsessions import CreateSessionBody, MachineGPU, SessionsClient

        self._success = Success
        self._body = CreateSessionBody
        self._gpu = MachineGPU(payloads.CREATE_GPU)
        self._base_url = base_url
        self._client = SessionsClient(_KEY, server=base_url)
        # Lists go through a client of their own with the size cap raised (the 400,000-session
        # list is close to the default 256 MiB), created with the first list.
        self._lists: Any = None

    def get(self) -> None:
        session = self._value(self._client.get(payloads.SESSION_ID))
        _check(session.session_id == payloads.SESSION_ID, "get")

    def create(self) -> None:
        body = self._body(
            machine_id=payloads.MACHINE_ID, gpu=self._gpu, timeout=payloads.CREATE_TIMEOUT
        )
        created = self._value(self._client.create(body))
        _check(created.session_id == payloads.SESSION_ID, "create")

    def list(self, label: str) -> int:
        if self._lists is None:
            from cdsessions import SessionsClient

            self._lists = SessionsClient(_KEY, server=self._base_url, max_response_bytes=LIST_CAP)
        sessions = self._value(self._lists.list(label))
        _check(bool(sessions) and sessions[-1].session_id is not None, "list")
        return len(sessions)

    def gets_in_flight(self, tasks: int, per_task: int) -> float | None:
        from cdsessions import AsyncSessionsClient

        async def measure() -> float:
            async with AsyncSessionsClient(_KEY, server=self._base_url) as client:

                async def one_task() -> None:
                    for _ in range(per_task):
                        session = self._value(await client.get(payloads.SESSION_ID))
                        _check(session.session_id == payloads.SESSION_ID, "async get")

                await one_task()  # warm: the worker threads and a connection
                started = time.perf_counter()
                await asyncio.gather(*(one_task() for _ in range(tasks)))
                return time.perf_counter() - started

        return asyncio.run(measure())

    def _value(self, result: Any) -> Any:
        """The value of a Success; a Failure stops the benchmark with its message."""
        if not isinstance(result, self._success):
            raise BenchCallFailed(str(result.failure()))
        return result.unwrap()

    def close(self) -> None:
        self._client.close()
        if self._lists is not None:
            self._lists.close()


class Official:
    """The official SDK ``comfydeploy==0.6.3`` (the last release with the Session operations)."""

    def __init__(self, base_url: str) -> None:
        # Installed only in the official SDK's own environment.
        from comfydeploy import ComfyDeploy  # type: ignore[import-not-found, unused-ignore]
        from comfydeploy.models import components  # type: ignore[import-not-found, unused-ignore]

        self._components: Any = components
        self._base_url = base_url
        self._sdk: Any = ComfyDeploy(bearer=_KEY, server_url=base_url)

    def get(self) -> None:
        session = self._sdk.session.get(session_id=payloads.SESSION_ID).session
        _check(session.session_id == payloads.SESSION_ID, "get")

    def create(self) -> None:
        body = self._components.CreateSessionBody(
            machine_id=payloads.MACHINE_ID, gpu=payloads.CREATE_GPU, timeout=payloads.CREATE_TIMEOUT
        )
        created = self._sdk.session.create(request=body).create_session_response
        _check(created.session_id == payloads.SESSION_ID, "create")

    def list(self, label: str) -> int:
        answer = self._sdk.session.list(machine_id=label)
        sessions = answer.response_get_machine_sessions_sessions_get
        _check(bool(sessions) and sessions[-1].id is not None, "list")
        return len(sessions)

    def gets_in_flight(self, tasks: int, per_task: int) -> float | None:
        from comfydeploy import ComfyDeploy  # type: ignore[import-not-found, unused-ignore]

        async def measure() -> float:
            # A fresh SDK per event loop: its httpx.AsyncClient belongs to the loop it ran on.
            sdk: Any = ComfyDeploy(bearer=_KEY, server_url=self._base_url)

            async def one_task() -> None:
                for _ in range(per_task):
                    answer = await sdk.session.get_async(session_id=payloads.SESSION_ID)
                    _check(answer.session.session_id == payloads.SESSION_ID, "async get")

            try:
                await one_task()
                started = time.perf_counter()
                await asyncio.gather(*(one_task() for _ in range(tasks)))
                return time.perf_counter() - started
            finally:
                await sdk.sdk_configuration.async_client.aclose()

        return asyncio.run(measure())

    def close(self) -> None:
        self._sdk.sdk_configuration.client.close()


class Floor:
    """The floor: what a careful hand-written call costs. One shared urllib3 ``PoolManager``
    (keep-alive, no retries, no redirects, a timeout), ``json.loads`` and no models."""

    def __init__(self, base_url: str) -> None:
        import json
        from urllib.parse import quote, urlencode

        import urllib3

        self._loads = json.loads
        self._dumps = json.dumps
        self._urlencode = urlencode
        self._base = base_url
        self._get_url = f"{base_url}/session/{quote(payloads.SESSION_ID, safe='')}"
        self._headers = {
            "Accept": "application/json",
            "User-Agent": "floor/1",
            "Authorization": f"Bearer {_KEY}",
        }
        self._post_headers = {**self._headers, "Content-Type": "application/json"}
        self._pool = urllib3.PoolManager(
            maxsize=10,
            block=True,
            retries=False,
            timeout=urllib3.Timeout(connect=10.0, read=60.0),
        )

    def _call(self, method: str, url: str, body: bytes | None = None) -> Any:
        headers = self._headers if body is None else self._post_headers
        response = self._pool.request(method, url, body=body, headers=headers, redirect=False)
        _check(response.status == 200, f"{method} {url}: {response.status}")
        return self._loads(response.data)

    def get(self) -> None:
        session = self._call("GET", self._get_url)
        _check(session["session_id"] == payloads.SESSION_ID, "get")

    def create(self) -> None:
        body = self._dumps(
            {
                "machine_id": payloads.MACHINE_ID,
                "gpu": payloads.CREATE_GPU,
                "timeout": payloads.CREATE_TIMEOUT,
                "wait_for_server": False,
            }
        ).encode()
        created = self._call("POST", f"{self._base}/session", body)
        _check(created["session_id"] == payloads.SESSION_ID, "create")

    def list(self, label: str) -> int:
        url = f"{self._base}/sessions?{self._urlencode({'machine_id': label})}"
        sessions = self._call("GET", url)
        _check(isinstance(sessions, list) and bool(sessions), "list")
        return len(sessions)

    def gets_in_flight(self, tasks: int, per_task: int) -> float | None:
        return None  # urllib3 has no asyncio interface

    def close(self) -> None:
        self._pool.clear()


class _Connection:
    """One kept-alive socket and the bytes read past the last answer (none, in practice)."""

    def __init__(self, address: tuple[str, int]) -> None:
        self.sock = socket.create_connection(address)
        self.sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)


class Raw:
    """The physical limit: precomputed request bytes on a plain socket (one per thread, kept
    alive), the response read whole; only the status line and ``Content-Length`` are looked
    at, to know where the answer ends. A list is received into one buffer of that length."""

    def __init__(self, base_url: str) -> None:
        parts = urlsplit(base_url)
        host, port = parts.hostname or "127.0.0.1", parts.port or 80
        self._address = (host, port)
        self._path = parts.path.rstrip("/")
        self._head = f"Host: {host}:{port}\r\nAccept: application/json\r\n"
        self._head += f"User-Agent: raw/1\r\nAuthorization: Bearer {_KEY}\r\n"
        self._get = self._request("GET", f"/session/{payloads.SESSION_ID}")
        create = (
            f'{{"machine_id":"{payloads.MACHINE_ID}","gpu":"{payloads.CREATE_GPU}",'
            f'"timeout":{payloads.CREATE_TIMEOUT},"wait_for_server":false}}'
        ).encode()
        self._create = self._request("POST", "/session", create)
        self._session_id = payloads.SESSION_ID.encode()
        self._local = threading.local()
        self._lock = threading.Lock()
        self._open: list[_Connection] = []

    def _request(self, method: str, target: str, body: bytes = b"") -> bytes:
        head = f"{method} {self._path}{target} HTTP/1.1\r\n{self._head}"
        if body:
            head += f"Content-Type: application/json\r\nContent-Length: {len(body)}\r\n"
        return (head + "\r\n").encode("ascii") + body

    def _connection(self) -> _Connection:
        connection: _Connection | None = getattr(self._local, "connection", None)
        if connection is None:
            connection = self._local.connection = _Connection(self._address)
            with self._lock:
                self._open.append(connection)
        return connection

    def _exchange(self, request: bytes) -> bytes | bytearray:
        sock = self._connection().sock
        sock.sendall(request)
        data = sock.recv(65536)
        end = data.find(b"\r\n\r\n")
        while end < 0:
            more = sock.recv(65536)
            _check(bool(more), "raw: the connection closed mid-answer")
            data += more
            end = data.find(b"\r\n\r\n")
        _check(data.startswith(b"HTTP/1.1 200 "), f"raw: {data[:30]!r}")
        at = data.find(b"\r\nContent-Length:", 0, end)
        length = int(data[at + 17 : data.find(b"\r\n", at + 2)])
        start = end + 4
        if len(data) - start >= length:
            return data[start : start + length]
        body = bytearray(length)
        view = memoryview(body)
        have = len(data) - start
        view[:have] = data[start:]
        while have < length:
            got = sock.recv_into(view[have:])
            _check(got > 0, "raw: the connection closed mid-body")
            have += got
        return body

    def get(self) -> None:
        _check(self._session_id in self._exchange(self._get), "raw get")

    def create(self) -> None:
        _check(self._session_id in self._exchange(self._create), "raw create")

    def list(self, label: str) -> int:
        parsed = payloads.parse_label(label)
        _check(parsed is not None, f"raw: no canned list {label!r}")
        assert parsed is not None
        body = self._exchange(self._request("GET", f"/sessions?machine_id={label}"))
        _check(len(body) > 2 and body[:1] == b"[", "raw list")
        return parsed[1]  # counted by the server's label: counting would be parsing

    def gets_in_flight(self, tasks: int, per_task: int) -> float | None:
        return None

    def close(self) -> None:
        with self._lock:
            for connection in self._open:
                connection.sock.close()
            self._open.clear()


#: The list size cap for cdsessions in the benchmark: above the largest list measured.
LIST_CAP: Final = 1 << 30
CLIENTS: Final = ("cdsessions", "official", "floor", "raw")
_ADAPTERS: Final[dict[str, type[CdSessions] | type[Official] | type[Floor] | type[Raw]]] = {
    "cdsessions": CdSessions,
    "official": Official,
    "floor": Floor,
    "raw": Raw,
}


def make(name: str, base_url: str) -> Adapter:
    return _ADAPTERS[name](base_url)
