"""The three ways of making the same calls that the benchmark compares.

Each adapter makes the call the way its users would (one long-lived client, a fresh request body
per ``create``) and checks the answer, so a client that silently failed could not look fast.
Every client library is imported inside its adapter: a worker process imports only the one it
measures, and the official SDK's environment has no cdsessions at all.
"""

from __future__ import annotations

from typing import Any, Final, Protocol

from bench import payloads

__all__ = ["CLIENTS", "Adapter", "BenchCallFailed", "make"]

_KEY: Final = "bench-key-not-a-secret"


class BenchCallFailed(RuntimeError):
    """A measured call did not return what the canned server sent."""


class Adapter(Protocol):
    def get(self) -> None: ...
    def create(self) -> None: ...
    def list(self, label: str) -> int: ...
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
        self._client = SessionsClient(_KEY, server=base_url)

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
        sessions = self._value(self._client.list(label))
        _check(bool(sessions) and sessions[-1].session_id is not None, "list")
        return len(sessions)

    def _value(self, result: Any) -> Any:
        """The value of a Success; a Failure stops the benchmark with its message."""
        if not isinstance(result, self._success):
            raise BenchCallFailed(str(result.failure()))
        return result.unwrap()

    def close(self) -> None:
        self._client.close()


class Official:
    """The official SDK ``comfydeploy==0.6.3`` (the last release with the Session operations)."""

    def __init__(self, base_url: str) -> None:
        # Installed only in the official SDK's own environment.
        from comfydeploy import ComfyDeploy  # type: ignore[import-not-found, unused-ignore]
        from comfydeploy.models import components  # type: ignore[import-not-found, unused-ignore]

        self._components: Any = components
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

    def close(self) -> None:
        self._pool.clear()


CLIENTS: Final = ("cdsessions", "official", "floor")
_ADAPTERS: Final[dict[str, type[CdSessions] | type[Official] | type[Floor]]] = {
    "cdsessions": CdSessions,
    "official": Official,
    "floor": Floor,
}


def make(name: str, base_url: str) -> Adapter:
    return _ADAPTERS[name](base_url)
