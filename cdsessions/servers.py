"""Where the API lives: the named servers and turning a ``server=`` argument into a base URL."""

from __future__ import annotations

from typing import Final
from urllib.parse import urlsplit

from returns.result import Failure, Result, Success

from cdsessions.errors import InvalidRequest

__all__ = ["SERVERS", "is_loopback", "resolve_server"]

SERVERS: Final = {
    "production": "https://api.comfydeploy.com/api",
    "staging": "https://staging.api.comfydeploy.com/api",
    "local": "http://localhost:3011/api",
}


def resolve_server(server: str) -> Result[str, InvalidRequest]:
    """A server name from :data:`SERVERS` or an ``http(s)://`` base URL, without trailing ``/``."""
    if not isinstance(server, str):
        return Failure(InvalidRequest("configure client", "server", "must be a string"))
    if server in SERVERS:
        return Success(SERVERS[server])
    parts = urlsplit(server)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        names = ", ".join(SERVERS)
        return Failure(
            InvalidRequest(
                "configure client",
                "server",
                f"{server!r} is neither a server name ({names}) nor an http(s):// URL",
            )
        )
    if parts.query or parts.fragment or parts.username or parts.password:
        return Failure(
            InvalidRequest(
                "configure client",
                "server",
                "a base URL may not carry a query, fragment or credentials",
            )
        )
    return Success(server.rstrip("/"))


def is_loopback(base_url: str) -> bool:
    host = (urlsplit(base_url).hostname or "").lower()
    return host == "localhost" or host.startswith("127.") or host == "::1"
