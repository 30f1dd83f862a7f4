"""Either client behind the same blocking calls: a ``Face`` runs the asyncio client's coroutines
on an event loop in its own thread, so one test body drives both forms."""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Coroutine, Iterator
from contextlib import contextmanager
from typing import Any, TypeVar

from returns.result import Result

from cdsessions import AsyncSessionsClient, CreateSessionBody, SessionsClient
from cdsessions.errors import ApiError
from cdsessions.transports._inline import InlineTransport
from cdsessions.transports.base import Transport

T = TypeVar("T")


FORMS = ("blocking", "asyncio")


class LoopThread:
    """An event loop running in its own thread, for blocking code to hand coroutines to."""

    def __init__(self) -> None:
        self.loop = asyncio.new_event_loop()
        self.thread = threading.Thread(target=self.loop.run_forever, name="test-event-loop")
        self.thread.start()

    def run(self, work: Coroutine[Any, Any, T]) -> T:
        return asyncio.run_coroutine_threadsafe(work, self.loop).result()

    def close(self) -> None:
        self.loop.call_soon_threadsafe(self.loop.stop)
        self.thread.join()
        self.loop.close()


class Face:
    """Either client behind blocking calls of the same names and signatures.

    For the async client, each call's coroutine runs on the face's own event loop; what it
    returns (or raises) comes back unchanged. Thread-safe, as the blocking client is.
    """

    def __init__(self, client: SessionsClient | AsyncSessionsClient) -> None:
        self.client = client
        self.loop = LoopThread() if isinstance(client, AsyncSessionsClient) else None
        self.scope: Any = None  # the last session scope, for its ``closed``

    def _call(self, name: str, *args: Any, **kwargs: Any) -> Result[Any, ApiError]:
        answer = getattr(self.client, name)(*args, **kwargs)
        result: Result[Any, ApiError] = answer if self.loop is None else self.loop.run(answer)
        return result

    def get(self, *args: Any, **kwargs: Any) -> Result[Any, ApiError]:
        return self._call("get", *args, **kwargs)

    def cancel(self, *args: Any, **kwargs: Any) -> Result[Any, ApiError]:
        return self._call("cancel", *args, **kwargs)

    def list(self, *args: Any, **kwargs: Any) -> Result[Any, ApiError]:
        return self._call("list", *args, **kwargs)

    def create(self, *args: Any, **kwargs: Any) -> Result[Any, ApiError]:
        return self._call("create", *args, **kwargs)

    def extend(self, *args: Any, **kwargs: Any) -> Result[Any, ApiError]:
        return self._call("extend", *args, **kwargs)

    def machine(self, *args: Any, **kwargs: Any) -> Result[Any, ApiError]:
        return self._call("machine", *args, **kwargs)

    def machines(self, *args: Any, **kwargs: Any) -> Result[Any, ApiError]:
        return self._call("machines", *args, **kwargs)

    def wait_until_ready(self, *args: Any, **kwargs: Any) -> Result[Any, ApiError]:
        return self._call("wait_until_ready", *args, **kwargs)

    @contextmanager
    def session(self, body: CreateSessionBody, **options: Any) -> Iterator[Result[Any, ApiError]]:
        self.scope = self.client.session(body, **options)
        if self.loop is None:
            with self.scope as started:
                yield started
            return
        started = self.loop.run(self.scope.__aenter__())
        # As ``async with`` does: the block's exception goes to __aexit__, and is re-raised
        # unless __aexit__ returns true.
        try:
            yield started
        except BaseException as error:
            exit_ = self.scope.__aexit__(type(error), error, error.__traceback__)
            if not self.loop.run(exit_):
                raise
        else:
            self.loop.run(self.scope.__aexit__(None, None, None))

    def close(self) -> None:
        if self.loop is None:
            assert isinstance(self.client, SessionsClient)
            self.client.close()
            return
        assert isinstance(self.client, AsyncSessionsClient)
        self.loop.run(self.client.aclose())
        self.loop.close()


def open_face(
    form: str, key: str | None, transport: Transport | None = None, **options: Any
) -> Face:
    """A client of ``form``; ``transport`` (in memory, never blocking) is wrapped for asyncio."""
    if form == "blocking":
        return Face(SessionsClient(key, transport=transport, **options))
    inline = None if transport is None else InlineTransport(transport)
    return Face(AsyncSessionsClient(key, transport=inline, **options))
