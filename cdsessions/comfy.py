"""A session's ComfyUI, from either client: ``client.comfy(session)``.

Every method returns a ``Result`` like the rest of cdsessions, and goes through the client's
transport, clock, retry policy and observers. The session's URL is a secret (a tunnel with no
auth): it never appears in a repr, a failure or a log, and the API key is never sent to it.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from returns.result import Result

from cdsessions._core.comfy import MAX_VIEW_BYTES, ComfySteps
from cdsessions._core.timeouts import Timeout
from cdsessions.comfy_models import (
    ComfyFile,
    ComfyHistory,
    ComfyQueue,
    ComfySystemStats,
    PromptAnswer,
)
from cdsessions.errors import ApiError

if TYPE_CHECKING:
    from cdsessions.async_client import AsyncSessionsClient
    from cdsessions.client import SessionsClient

__all__ = ["AsyncComfyUI", "ComfyUI", "session_url"]


def session_url(session: object) -> object:
    """The URL of ``session`` (a :class:`~cdsessions.Session`, a create response or the URL
    itself); anything else is passed on, to be refused by the call as an ``InvalidRequest``."""
    url = getattr(session, "url", session)
    return url if url is not None else session


class ComfyUI:
    """The ComfyUI of one session, driven by a blocking :class:`~cdsessions.SessionsClient`."""

    def __init__(self, client: SessionsClient, session: object) -> None:
        self._client = client
        self._steps = ComfySteps(client._core, session_url(session))

    def __repr__(self) -> str:
        return "ComfyUI(url=<redacted url>)"

    def prompt(
        self, workflow: object, *, timeout: Timeout | float | None = None
    ) -> Result[PromptAnswer, ApiError]:
        """Queue an API-format workflow: :class:`PromptQueued`, or :class:`PromptRejected`
        naming the nodes ComfyUI refused."""
        return self._client._run(self._steps.prompt(workflow, timeout))

    def history(
        self, prompt_id: str, *, timeout: Timeout | float | None = None
    ) -> Result[ComfyHistory, ApiError]:
        return self._client._run(self._steps.history(prompt_id, timeout))

    def queue(self, *, timeout: Timeout | float | None = None) -> Result[ComfyQueue, ApiError]:
        return self._client._run(self._steps.queue(timeout))

    def system_stats(
        self, *, timeout: Timeout | float | None = None
    ) -> Result[ComfySystemStats, ApiError]:
        return self._client._run(self._steps.system_stats(timeout))

    def interrupt(self, *, timeout: Timeout | float | None = None) -> Result[None, ApiError]:
        return self._client._run(self._steps.interrupt(timeout))

    def view(
        self,
        file: ComfyFile,
        *,
        timeout: Timeout | float | None = None,
        max_bytes: int = MAX_VIEW_BYTES,
    ) -> Result[bytes, ApiError]:
        """One file's bytes (at most ``max_bytes``: a larger one is a ``too_large`` failure)."""
        return self._client._run(self._steps.view(file, timeout, max_bytes))

    def upload(
        self,
        name: str,
        data: bytes,
        *,
        subfolder: str = "",
        timeout: Timeout | float | None = None,
    ) -> Result[ComfyFile, ApiError]:
        """Upload an input file; the answer says where it went (ComfyUI may rename it)."""
        return self._client._run(self._steps.upload(name, data, subfolder, timeout))


class AsyncComfyUI:
    """:class:`ComfyUI` for an :class:`~cdsessions.AsyncSessionsClient`."""

    def __init__(self, client: AsyncSessionsClient, session: object) -> None:
        self._client = client
        self._steps = ComfySteps(client._core, session_url(session))

    def __repr__(self) -> str:
        return "AsyncComfyUI(url=<redacted url>)"

    async def prompt(
        self, workflow: object, *, timeout: Timeout | float | None = None
    ) -> Result[PromptAnswer, ApiError]:
        return await self._client._run(self._steps.prompt(workflow, timeout))

    async def history(
        self, prompt_id: str, *, timeout: Timeout | float | None = None
    ) -> Result[ComfyHistory, ApiError]:
        return await self._client._run(self._steps.history(prompt_id, timeout))

    async def queue(
        self, *, timeout: Timeout | float | None = None
    ) -> Result[ComfyQueue, ApiError]:
        return await self._client._run(self._steps.queue(timeout))

    async def system_stats(
        self, *, timeout: Timeout | float | None = None
    ) -> Result[ComfySystemStats, ApiError]:
        return await self._client._run(self._steps.system_stats(timeout))

    async def interrupt(self, *, timeout: Timeout | float | None = None) -> Result[None, ApiError]:
        return await self._client._run(self._steps.interrupt(timeout))

    async def view(
        self,
        file: ComfyFile,
        *,
        timeout: Timeout | float | None = None,
        max_bytes: int = MAX_VIEW_BYTES,
    ) -> Result[bytes, ApiError]:
        return await self._client._run(self._steps.view(file, timeout, max_bytes))

    async def upload(
        self,
        name: str,
        data: bytes,
        *,
        subfolder: str = "",
        timeout: Timeout | float | None = None,
    ) -> Result[ComfyFile, ApiError]:
        return await self._client._run(self._steps.upload(name, data, subfolder, timeout))
