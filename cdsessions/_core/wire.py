"""Plain values that describe one HTTP exchange: what builders make and transports consume.

They hold no connection and do no I/O. ``HttpRequest`` may carry the ``Authorization`` header,
so its ``repr`` shows it redacted, and :meth:`HttpRequest.redacted` gives a copy safe to log,
record or hand to observers. :func:`scrub` takes the key back out of a response whose server
echoed it.
"""

from __future__ import annotations

import re
from typing import Final
from urllib.parse import quote, quote_plus, urlencode

import msgspec

from cdsessions._core.timeouts import DEFAULT_TIMEOUT, Timeout

__all__ = [
    "DEFAULT_MAX_RESPONSE_BYTES",
    "MIN_SCRUBBED_KEY",
    "REDACTED",
    "SECRET_FIELDS",
    "SECRET_HEADERS",
    "SECRET_URL_SHOWN",
    "Headers",
    "HttpRequest",
    "HttpResponse",
    "header",
    "key_forms",
    "mask_key",
    "mask_key_bytes",
    "mask_secret_fields",
    "scrub",
    "without_secret_fields",
]

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
#: What a secret base URL (a session's tunnel) reads as in a redacted request.
SECRET_URL_SHOWN: Final = "https://session-url.invalid"  # noqa: S105 (a placeholder)
#: The body cap of a request that does not set its own: one session's worth, with room.
DEFAULT_MAX_RESPONSE_BYTES: Final = 1024 * 1024
#: Keys shorter than this are not masked in responses: no real key is, and masking a one-letter
#: test key would garble every body that happens to contain that letter.
MIN_SCRUBBED_KEY: Final = 8

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

    ``timeout`` and ``max_response_bytes`` bound the one attempt that sends it: the call steps set
    them (a builder leaves the defaults), so a transport needs nothing but the request.
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
    #: This attempt's time limits (the retry plan shortens them as the overall deadline nears).
    timeout: Timeout = DEFAULT_TIMEOUT
    #: The largest body the transport may hand back; a larger one is a ``too_large`` failure.
    max_response_bytes: int = DEFAULT_MAX_RESPONSE_BYTES
    #: True when ``base_url`` is itself a secret (a session's ComfyUI tunnel, which has no auth
    #: of its own): the repr and :meth:`redacted` then hide it, keeping only the path.
    secret_url: bool = False

    @property
    def target(self) -> str:
        """Path plus query string, as it appears on the request line (after the base path)."""
        return f"{self.path}?{urlencode(self.query)}" if self.query else self.path

    @property
    def url(self) -> str:
        return self.base_url + self.target

    def redacted(self) -> HttpRequest:
        """The same request with secret header values (and a secret base URL) replaced: safe to
        log or record."""
        base_url = SECRET_URL_SHOWN if self.secret_url else self.base_url
        return msgspec.structs.replace(self, headers=_redact(self.headers), base_url=base_url)

    def __repr__(self) -> str:
        body = "None" if self.body is None else f"<{len(self.body)} bytes>"
        return (
            f"HttpRequest(method={self.method!r}, url={self.redacted().url!r}, "
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


def key_forms(key: str) -> tuple[str, ...]:
    """The forms ``key`` takes when a server or proxy echoes it: as sent, JSON-escaped (``/`` may
    come back as ``\\/``) and percent-encoded (a gateway echoing a URL or a form), longest first
    so that no form is left half-masked by a shorter one. Nothing for a key shorter than
    :data:`MIN_SCRUBBED_KEY`. Deliberate transformations (base64, hex, hashes) are not forms:
    there is no end to them, and base64 of a key depends on where the key sits in the encoded text.
    """
    if len(key) < MIN_SCRUBBED_KEY:
        return ()
    escaped = msgspec.json.encode(key).decode()[1:-1].replace("/", "\\/")
    forms = {key, escaped, quote(key, safe=""), quote(key), quote_plus(key)}
    return tuple(sorted(forms, key=len, reverse=True))


def mask_key(text: str, forms: tuple[str, ...]) -> str:
    """``text`` with each of ``forms`` (see :func:`key_forms`) replaced by :data:`REDACTED`."""
    for secret in forms:
        if secret in text:
            text = text.replace(secret, REDACTED)
    return text


def mask_key_bytes(data: bytes, forms: tuple[str, ...]) -> bytes:
    """:func:`mask_key` for bytes (a body that need not be UTF-8)."""
    for secret in forms:
        if secret.encode() in data:
            data = data.replace(secret.encode(), REDACTED.encode())
    return data


#: JSON fields whose string value is a secret wherever a server sends it: a machine's
#: ``auth_token`` (the key its runners use). No model has a field for them.
SECRET_FIELDS: Final = ("auth_token",)
_NAMES: Final = b"|".join(re.escape(field.encode()) for field in SECRET_FIELDS)
#: ``"name"``, spaces, ``:``, spaces, then a JSON string (escapes included).
_SECRET_FIELD: Final = re.compile(rb'("(?:' + _NAMES + rb')"\s*:\s*)"(?:[^"\\]|\\.)*"')
_SECRET_MARKS: Final = tuple(f'"{field}"'.encode() for field in SECRET_FIELDS)


def mask_secret_fields(data: bytes) -> bytes:
    """``data`` with the string value of every :data:`SECRET_FIELDS` field replaced by
    :data:`REDACTED`, wherever it sits in the JSON (or in text that only looks like JSON); the
    same object when there is none (one scan per field name)."""
    if not any(mark in data for mark in _SECRET_MARKS):
        return data
    return _SECRET_FIELD.sub(rb'\1"' + REDACTED.encode() + b'"', data)


def without_secret_fields(response: HttpResponse) -> HttpResponse:
    """``response`` with :func:`mask_secret_fields` applied to its body."""
    body = mask_secret_fields(response.body)
    return response if body is response.body else msgspec.structs.replace(response, body=body)


def scrub(response: HttpResponse, key: str) -> HttpResponse:
    """``response`` with every occurrence of ``key`` in its body, header values and reason
    replaced by :data:`REDACTED`: a proxy that echoes the ``Authorization`` header must not put
    the key into an error's text, a log line or an observer's event.

    The response itself when the key is not in it (the usual case: one scan of the body, no
    copy), or when the key is too short to be a real one (see :data:`MIN_SCRUBBED_KEY`)."""
    forms = key_forms(key)
    if not forms:
        return response
    body = mask_key_bytes(response.body, forms)
    headers = response.headers
    if any(secret in value for _, value in headers for secret in forms):
        headers = tuple((name, mask_key(value, forms)) for name, value in headers)
    reason = mask_key(response.reason, forms)
    if body is response.body and headers is response.headers and reason is response.reason:
        return response
    return msgspec.structs.replace(response, body=body, headers=headers, reason=reason)
