"""Hostile answers that echo the request's ``Authorization`` header back, in every place and form
a gateway or a debugging proxy has been seen to (for :func:`tests.support.hostile.answer`).

:data:`KEY` holds ``/``, ``+`` and ``=`` so that its JSON-escaped and percent-encoded forms
differ from it; :func:`leaked_forms` names the forms of it found in a text.
"""

from __future__ import annotations

import gzip
import json
from collections.abc import Callable, Mapping
from typing import Final
from urllib.parse import quote, quote_plus

from tests.support.hostile import Request, response

__all__ = ["ECHOES", "KEY", "echo", "leaked_forms"]

KEY: Final = "sk/live+0f1e2d3c4b5a6978=="

Echo = Callable[[str], bytes]


def _json(status: str, body: bytes, *headers: str) -> bytes:
    head = ("Content-Type: application/json", *headers, f"Content-Length: {len(body)}")
    return response(status, *head, body=body)


def _detail(auth: str) -> bytes:
    return json.dumps({"detail": f"invalid credentials: {auth}"}).encode()


def _chunked(body: bytes, cut: int) -> bytes:
    parts = (body[:cut], body[cut:])
    return b"".join(b"%x\r\n%s\r\n" % (len(part), part) for part in parts) + b"0\r\n\r\n"


def _token(auth: str) -> str:
    return auth.removeprefix("Bearer ")


ECHOES: Final[Mapping[str, Echo]] = {
    "detail": lambda auth: _json("401 Unauthorized", _detail(auth)),
    # Some JSON encoders write "/" as "\/".
    "json-escaped": lambda auth: _json("401 Unauthorized", _detail(auth).replace(b"/", b"\\/")),
    # A gateway echoing the request as a URL or a form.
    "percent-encoded": lambda auth: _json(
        "401 Unauthorized",
        json.dumps({"detail": f"/login?t={quote(_token(auth), safe='')}"}).encode(),
    ),
    "plus-encoded": lambda auth: _json(
        "401 Unauthorized", json.dumps({"detail": f"t={quote_plus(_token(auth))}"}).encode()
    ),
    # The key split across two chunks of a chunked body, in the middle of the key.
    "chunk-split": lambda auth: response(
        "401 Unauthorized",
        "Content-Type: application/json",
        "Transfer-Encoding: chunked",
        body=_chunked(_detail(auth), len(b'{"detail": "invalid credentials: Bearer sk/li')),
    ),
    "header": lambda auth: _json("503 Busy", b'{"detail": "busy"}', f"WWW-Authenticate: {auth}"),
    "reason-phrase": lambda auth: _json(f"401 {auth}", b'{"detail": "no"}'),
    "gzip-body": lambda auth: response(
        "401 Unauthorized",
        "Content-Type: application/json",
        "Content-Encoding: gzip",
        f"Content-Length: {len(gzip.compress(_detail(auth)))}",
        body=gzip.compress(_detail(auth)),
    ),
}


def echo(name: str) -> Callable[[Request], bytes]:
    """The answer ``name`` of :data:`ECHOES` to a request, built from its Authorization header."""
    return lambda request: ECHOES[name](request.header("Authorization") or "")


def leaked_forms(text: str | bytes, key: str = KEY) -> list[str]:
    """The forms of ``key`` found in ``text``: as sent, JSON-escaped, percent-encoded."""
    forms = {
        "raw": key,
        "json-escaped": key.replace("/", "\\/"),
        "percent-encoded": quote(key, safe=""),
        "plus-encoded": quote_plus(key),
    }
    found = text.decode("latin-1") if isinstance(text, bytes) else text
    return [name for name, form in forms.items() if form in found]
