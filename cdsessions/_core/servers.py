"""Where the API lives: the named servers, and turning a ``server=`` argument into a base URL.

A base URL is parsed, never prefix-matched, and only one that urllib3 and the stdlib read the
same way is accepted: ``http`` or ``https`` (in any case), a host that is a DNS name, an IPv4
address or a bracketed IPv6 address, an optional port 1-65535 and a path; no credentials, query,
fragment, spaces, control or non-ASCII characters. Anything else is an ``InvalidRequest``
(field ``server``) from each call, never an exception.

The API key goes over plain ``http://`` only to a loopback host, and the fake server binds
only one; :func:`is_loopback_host` is the one rule for both. Loopback is an IP literal in
127.0.0.0/8 (also IPv4-mapped, ``::ffff:127.x.y.z``) or ``::1``, in brackets or not, or exactly
the name ``localhost`` (in any case). A name only the resolver can place is not loopback, even
when it would land there: ``127.evil.com``, ``localhost.evil.com``, ``*.localhost`` and
``localhost.`` (the system resolver may ask DNS about them), the legacy shorthands ``127.1`` and
``0x7f.0.0.1`` (only ``inet_aton`` reads those), and anything non-ASCII (IDNA may map it to
``localhost``, or may not). Refusing one of those costs a spelling; accepting a wrong one would
send the API key in the clear.
"""

from __future__ import annotations

import ipaddress
import re
from typing import Final

from returns.result import Failure, Result, Success

from cdsessions.errors import InvalidReason, InvalidRequest

__all__ = [
    "API_PREFIX",
    "LOCAL_PORT",
    "SERVERS",
    "is_loopback",
    "is_loopback_host",
    "refuse_plain_http",
    "resolve_server",
]

#: The path the API lives under, on every named server and on the fake server.
API_PREFIX: Final = "/api"
#: The port of the ``"local"`` server, where ``cdsessions fake-server`` listens by default.
LOCAL_PORT: Final = 3011

SERVERS: Final = {
    "production": f"https://api.comfydeploy.com{API_PREFIX}",
    "staging": f"https://staging.api.comfydeploy.com{API_PREFIX}",
    "local": f"http://localhost:{LOCAL_PORT}{API_PREFIX}",
}

_OPERATION: Final = "configure client"
# scheme://host[:port][/path]. The host is a DNS name or IPv4 address, or an IPv6 address in
# brackets (checked with ipaddress below); percent escapes only in the path, and well formed.
_BASE_URL: Final = re.compile(
    r"(?P<scheme>[A-Za-z][A-Za-z0-9+.-]*)://"
    r"(?P<host>\[[0-9A-Fa-f:.]*\]|[A-Za-z0-9._-]*)"
    r"(?::(?P<port>[0-9]{1,5}))?"
    r"(?P<path>(?:/(?:[A-Za-z0-9\-._~!$&'()*+,;=:/]|%[0-9A-Fa-f]{2})*)?)",
    re.ASCII,
)
_TROUBLE: Final = (
    ("@", "a base URL may not carry credentials (user:password@)"),
    ("?", "a base URL may not carry a query"),
    ("#", "a base URL may not carry a fragment"),
)


def _refused(problem: str, why: InvalidReason | None = None) -> Failure[InvalidRequest]:
    return Failure(InvalidRequest(_OPERATION, "server", problem, why))


def _shown(server: str) -> str:
    """``server`` quoted in a message only when it cannot be a URL (which may hold a secret)."""
    plain = len(server) <= 40 and server.isprintable() and not any(c in server for c in ":/@")
    return repr(server) if plain else "the server"


def _host(text: str) -> str | None:
    """The host as the connection will use it (lowercase, brackets removed), or None."""
    host = text.lower()
    if host.startswith("["):
        try:
            ipaddress.IPv6Address(host[1:-1])
        except ValueError:
            return None
        return host[1:-1]
    return host or None


def resolve_server(server: object) -> Result[str, InvalidRequest]:
    """A server name from :data:`SERVERS` or an ``http(s)://`` base URL, as the base URL to
    send to: scheme and host in lowercase, without a trailing ``/``."""
    if not isinstance(server, str):
        return _refused(f"must be a string, not {type(server).__name__}")
    if server in SERVERS:
        return Success(SERVERS[server])
    names = ", ".join(SERVERS)
    not_url = f"{_shown(server)} is neither a server name ({names}) nor an http(s):// URL"
    if "://" not in server:
        return _refused(not_url)
    for char, problem in _TROUBLE:
        if char in server:
            return _refused(problem)
    if not server.isascii() or not server.isprintable() or " " in server:
        return _refused("a base URL may not hold spaces, control or non-ASCII characters")
    parts = _BASE_URL.fullmatch(server)
    if parts is None:
        return _refused("is not a usable URL (scheme://host[:port][/path])")
    scheme = parts["scheme"].lower()
    if scheme not in ("http", "https"):
        return _refused(not_url)
    host = _host(parts["host"])
    if host is None:
        return _refused("a base URL needs a host (a name, an IPv4 or a bracketed IPv6 address)")
    port = parts["port"]
    if port is not None and not 1 <= int(port) <= 65535:
        return _refused("the port must be between 1 and 65535")
    shown_host = f"[{host}]" if ":" in host else host
    netloc = shown_host if port is None else f"{shown_host}:{int(port)}"
    return Success(f"{scheme}://{netloc}{parts['path'].rstrip('/')}")


def is_loopback_host(host: str) -> bool:
    """The loopback rule (see the module doc): True for exactly ``localhost`` in any case and
    IP literals in 127.0.0.0/8 (IPv4-mapped included) or ``::1``; an IPv6 literal may be in
    brackets, as in a URL. False for every other string, whatever a resolver would make of it."""
    # Non-ASCII: an IDNA spelling. A zone id (``%eth0``) picks an interface, not an address.
    if not host.isascii() or "%" in host:
        return False
    name = host.lower()
    if name.startswith("[") and name.endswith("]") and ":" in name:
        name = name[1:-1]  # only an IPv6 literal may be bracketed
    if name == "localhost":
        return True
    try:
        address = ipaddress.ip_address(name)
    except ValueError:
        return False
    if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped is not None:
        return address.ipv4_mapped.is_loopback
    return address.is_loopback


def is_loopback(base_url: str) -> bool:
    """Whether a base URL from :func:`resolve_server` names a loopback host."""
    parts = _BASE_URL.fullmatch(base_url)
    host = None if parts is None else _host(parts["host"])
    return host is not None and is_loopback_host(host)


def refuse_plain_http(base_url: str, *, allowed: bool) -> Result[str, InvalidRequest]:
    """``base_url`` (from :func:`resolve_server`), unless it would send the API key over plain
    http to a host that is not loopback and ``allowed`` (``allow_insecure_http``) is False."""
    parts = _BASE_URL.fullmatch(base_url)
    plain = parts is None or parts["scheme"].lower() != "https"  # unparsed: assume the worst
    if plain and not allowed and not is_loopback(base_url):
        return _refused(
            "refusing to send the API key over plain http:// to a non-loopback host "
            "(pass allow_insecure_http=True to override)",
            "insecure_http",
        )
    return Success(base_url)
