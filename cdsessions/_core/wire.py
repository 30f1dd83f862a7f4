"""Plain values that describe one HTTP exchange: what builders make and transports consume.

They hold no connection and do no I/O. ``HttpRequest`` may carry the ``Authorization`` header,
so its ``repr`` shows it redacted, and :meth:`HttpRequest.redacted` gives a copy safe to log,
record or hand to observers.
"""

from __future__ import annotations

from urllib.parse import urlencode

import msgspec

__all__ = ["REDACTED", "SECRET_HEADERS", "Headers", "HttpRequest", "HttpResponse", "header"]

#: Header names whose values are never shown (compared lowercase). A redirect's Location can
#: name a session's tunnel (an unauthenticated URL), so a response's repr hides it too.
SECRET_HEADERS = frozenset(
    {
        "authorization",
        "cookie",
        "set-cookie",
        "proxy-authorization",
        "location",
        "content-location",
    }
)
REDACTED = "<redacted>"

Headers = tuple[tuple[str, str], ...]


def header(headers: Headers, name: str) -> str | None:
    """The first value of header ``name`` (case-insensitive), or None."""
    wanted = name.lower()
    for key, value in headers:
        if key.lower() == wanted:
            return value
    return None


def _redact(headers: Headers) -> Headers:
    return tuple((k, REDACTED if k.lower() in SECRET_HEADERS else v) for k, v in headers)


class HttpRequest(msgspec.Struct, frozen=True):
    """One request, fully described.

    ``path`` is already percent-encoded and relative to the server's base URL (``/session/x``);
    ``query`` holds unencoded pairs. ``base_url`` is filled in by the client (builders leave it
    empty), so the same built request can go to any server or transport.

    :meth:`redacted` and :func:`~cdsessions._core.builders.authorize` copy it field by field (every
    call goes through both): a new field must be passed on there too.
    """

    method: str
    path: str
    query: tuple[tuple[str, str], ...] = ()
    headers: Headers = ()
    body: bytes | None = None
    base_url: str = ""
    #: What the request does, for messages and logs: ``"get session 3f0c…"``. Never secret.
    #: Part of equality (and hash) like every field: requests are compared only in tests.
    operation: str = ""

    @property
    def target(self) -> str:
        """Path plus query string, as it appears on the request line (after the base path)."""
        return f"{self.path}?{urlencode(self.query)}" if self.query else self.path

    @property
    def url(self) -> str:
        return self.base_url + self.target

    def redacted(self) -> HttpRequest:
        """The same request with secret header values replaced: safe to log or record."""
        return HttpRequest(
            self.method,
            self.path,
            self.query,
            _redact(self.headers),
            self.body,
            self.base_url,
            self.operation,
        )

    def __repr__(self) -> str:
        body = "None" if self.body is None else f"<{len(self.body)} bytes>"
        return (
            f"HttpRequest(method={self.method!r}, url={self.url!r}, "
            f"headers={_redact(self.headers)!r}, body={body})"
        )


class HttpResponse(msgspec.Struct, frozen=True):
    """One response: status, headers as received, and the whole body."""

    status: int
    headers: Headers = ()
    body: bytes = b""
    # Bytes are kept as received; decoding them is the decoder's job.
    #: The status line's reason phrase, for messages. Part of equality like every field.
    reason: str = ""

    def header(self, name: str) -> str | None:
        return header(self.headers, name)

    def __repr__(self) -> str:
        return (
            f"HttpResponse(status={self.status}, headers={_redact(self.headers)!r}, "
            f"body=<{len(self.body)} bytes>)"
        )
