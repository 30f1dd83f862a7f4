"""How user code keeps its types with cdsessions under both mypy --strict and pyright.

``nox -s typecheck`` checks this file with both; every ``assert_type`` must hold in each.

The one trap: ``case Success(x)`` binds ``x`` as ``Any`` under mypy (``returns`` cannot type
``Success.__match_args__``), while pyright infers the real type. Naming the class inside the
pattern, ``case Success(CreateSessionResponse() as created)``, narrows for both checkers and
costs nothing at run time. Outside ``match``, the ``Result`` methods (``map``, ``bind``,
``value_or``, ``unwrap``, ``failure``) keep their types under both.

It also runs, against the in-memory fake: ``python examples/typed_usage.py``.
"""

# pyright's strict mode wants every ``match`` exhaustive, and ``Result`` is an open base class
# rather than a closed union of Success and Failure, so no set of cases is ever complete to it.
# pyright: reportMatchNotExhaustive=false

from __future__ import annotations

import asyncio
from typing import assert_type

from returns.result import Failure, Result, Success

from cdsessions import (
    ApiError,
    AsyncSessionsClient,
    CreateSessionBody,
    CreateSessionResponse,
    DeleteSessionResponse,
    HttpError,
    OpenSession,
    Session,
    SessionsClient,
)
from cdsessions.errors import JsonValue
from cdsessions.fake import AsyncFakeTransport, FakeService, FakeTransport


def start(client: SessionsClient, machine_id: str) -> str | None:
    """``match`` with the class named in each pattern: typed under both checkers."""
    match client.create(CreateSessionBody(machine_id=machine_id, timeout=5)):
        case Success(CreateSessionResponse() as created):
            assert_type(created, CreateSessionResponse)
            return created.session_id
        case Failure(HttpError(status=400, detail=detail)):
            assert_type(detail, JsonValue)
            print("refused by the account's limits:", detail)
        case Failure(ApiError() as error):
            assert_type(error, ApiError)
            print(error)
    return None


def describe(client: SessionsClient, session_id: str) -> str:
    """Without ``match``: the ``Result`` methods keep the types too."""
    found = client.get(session_id)
    assert_type(found, Result[Session, ApiError])
    gpu = found.map(lambda session: str(session.gpu))
    assert_type(gpu, Result[str, ApiError])
    return gpu.value_or("gone")


def stop(client: SessionsClient, session_id: str) -> bool:
    # Not ``isinstance(result, Success)``: under mypy that narrows to ``Success[Any]``.
    match client.cancel(session_id):
        case Success(DeleteSessionResponse() as answer):
            assert_type(answer, DeleteSessionResponse)
            return answer.success
        case Failure(ApiError() as error):
            print("cancel failed:", error)
    return False


def in_a_scope(client: SessionsClient, machine_id: str) -> int:
    with client.session(CreateSessionBody(machine_id=machine_id)) as started:
        match started:
            case Success(OpenSession() as session):
                assert_type(session, OpenSession)
                return len(client.list().unwrap())
            case Failure(ApiError() as error):
                print("could not start:", error)
    return 0


async def list_async(client: AsyncSessionsClient) -> list[Session]:
    match await client.list():
        case Success(list() as sessions):
            # A generic class in a pattern is not narrowed by either checker: annotate.
            typed: list[Session] = sessions
            return typed
        case Failure(ApiError() as error):
            print(error)
    return []


def main() -> None:
    fake = FakeService()
    with SessionsClient("any-key", transport=FakeTransport(fake)) as client:
        session_id = start(client, fake.DEFAULT_MACHINE_ID)
        assert session_id is not None
        print(describe(client, session_id), stop(client, session_id))
        print(in_a_scope(client, fake.DEFAULT_MACHINE_ID))
    listed = asyncio.run(list_async(AsyncSessionsClient("k", transport=AsyncFakeTransport(fake))))
    print(len(listed))


if __name__ == "__main__":
    main()
