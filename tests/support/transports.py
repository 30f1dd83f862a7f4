"""Transports for tests, in memory: recorders, scripted answers, and the fake behind a faulty
link. Each has the ``Transport`` shape (``send`` and ``close``) and never touches a network."""

from __future__ import annotations

from typing import Any, Final

from returns.result import Failure, Result, Success

from cdsessions import RetryPolicy, SessionsClient, TransportFailed
from cdsessions._core.timeouts import Timeout
from cdsessions._core.wire import HttpRequest, HttpResponse
from cdsessions.fake import FakeService, FakeTransport
from tests.support import samples


class FailingDeletes:
    """A transport in front of the fake whose next ``failures`` DELETEs break in transit."""

    def __init__(self, service: FakeService, failures: int) -> None:
        self.inner = FakeTransport(service)
        self.failures = failures

    def send(self, request: HttpRequest) -> Result[HttpResponse, TransportFailed]:
        operation = request.operation
        if request.method == "DELETE" and self.failures > 0:
            self.failures -= 1
            return Failure(TransportFailed(operation, "broken", "connection reset", sent=True))
        return self.inner.send(request)

    def close(self) -> None:
        return None


JSON = (("content-type", "application/json"),)


class Recording:
    """Answers every request with ``answer`` and records what it was asked to send."""

    def __init__(self, answer: HttpResponse | None = None) -> None:
        self.answer = answer or HttpResponse(200, JSON, samples.LIVE_SESSION_READY.encode())
        self.sent: list[tuple[HttpRequest, Timeout]] = []

    def send(self, request: HttpRequest) -> Result[HttpResponse, TransportFailed]:
        timeout = request.timeout
        self.sent.append((request, timeout))
        return Success(self.answer)

    def close(self) -> None:
        return None


class Rewriting:
    """The fake ComfyDeploy behind a hostile proxy: requests whose method is in ``answers``
    get that answer instead of the fake's (the fake still sees every request)."""

    def __init__(self, service: FakeService, answers: dict[str, HttpResponse]) -> None:
        self.inner = FakeTransport(service)
        self.answers = answers

    def send(self, request: HttpRequest) -> Result[HttpResponse, TransportFailed]:
        real = self.inner.send(request)
        forged = self.answers.get(request.method)
        return Success(forged) if forged is not None else real

    def close(self) -> None:
        return None


class Recorder:
    """A transport that answers from a script and records what each send was given."""

    def __init__(self, *answers: Result[HttpResponse, TransportFailed]) -> None:
        self.answers = list(answers)
        self.sent: list[tuple[HttpRequest, Timeout, int]] = []

    def send(self, request: HttpRequest) -> Result[HttpResponse, TransportFailed]:
        timeout = request.timeout
        max_response_bytes = request.max_response_bytes
        self.sent.append((request, timeout, max_response_bytes))
        return self.answers.pop(0) if len(self.answers) > 1 else self.answers[0]

    def close(self) -> None:
        """Nothing to release."""


def ok(body: bytes) -> Result[HttpResponse, TransportFailed]:
    return Success(HttpResponse(200, JSON, body))


def answered(code: int, body: bytes = b'{"detail": "no"}') -> Result[HttpResponse, TransportFailed]:
    return Success(HttpResponse(code, JSON, body))


KEY: Final = "sk-promises-core-0123456789"


#: No waiting between attempts: the tests count attempts, they do not time them.
QUICK: Final = RetryPolicy(max_attempts=3, backoff=0, jitter=0)


def client_with(transport: Recorder, **options: Any) -> SessionsClient:
    options.setdefault("retry", QUICK)
    return SessionsClient(KEY, transport=transport, **options)
