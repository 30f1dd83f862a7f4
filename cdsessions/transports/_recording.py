"""The key is masked out of every cassette vcrpy records: request headers, URIs and bodies,
response bodies, headers and status messages; so is a machine's ``auth_token`` in a response body
(:func:`~cdsessions._core.wire.mask_secret_fields`).

``filter_headers=["authorization"]`` drops the request's header, but a server or proxy that
echoes it (into a ``detail``, a header, the reason phrase) still has the key written in the
response; the client masks it only in what it hands out (:func:`~cdsessions._core.wire.scrub`),
while vcrpy records the bytes beneath it. :func:`mask_keys_when_recording` closes that gap for a
``vcr.VCR``: it notes the token of every ``Authorization`` (and ``Proxy-Authorization``) header
vcrpy sees before its own filters run, and masks each one, in every form of
:func:`~cdsessions._core.wire.key_forms`, out of the interactions just before they are written.
A gzip or deflate body that holds the key is stored decoded and masked (its ``Content-Encoding``
dropped), as the key is in the file either way. cdsessions' pytest plugin applies it to every
VCR pytest-recording builds; with vcrpy alone, call it on your ``VCR``.

vcrpy is duck-typed here (``get_merged_config``, a persister's ``save_cassette``, a request's
``_to_dict``/``_from_dict``, all stable since vcrpy 2): cdsessions does not depend on it.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any, Final

from returns.result import Success

from cdsessions._core.wire import (
    DEFAULT_MAX_RESPONSE_BYTES,
    key_forms,
    mask_key,
    mask_key_bytes,
    mask_secret_fields,
)
from cdsessions.transports._cap import content_codings, decode_content

__all__ = ["mask_keys_when_recording", "masked", "tokens"]

#: The request headers whose token is a key to mask (compared lowercase).
_KEY_HEADERS: Final = frozenset({"authorization", "proxy-authorization"})


def tokens(headers: Mapping[str, Any]) -> frozenset[str]:
    """The secrets in a request's headers: each ``Authorization`` value without its scheme
    (``Bearer KEY`` gives ``KEY``, so an echo is written ``Bearer <redacted>`` as the client
    shows it), or whole when it has none."""
    found: set[str] = set()
    for name, value in headers.items():
        if str(name).lower() not in _KEY_HEADERS:
            continue
        for item in value if isinstance(value, list | tuple) else [value]:
            scheme, _, token = str(item).strip().partition(" ")
            found.add(token.strip() or scheme)
    return frozenset(found)


def masked(value: Any, forms: tuple[str, ...]) -> Any:
    """``value`` (a recorded request or response as vcrpy's dicts hold it) with every one of
    ``forms`` masked in every text, bytes, key and list item; anything else as it is."""
    if not forms:
        return value
    if isinstance(value, str):
        return mask_key(value, forms)
    if isinstance(value, bytes | bytearray):
        return mask_key_bytes(bytes(value), forms)
    if isinstance(value, Mapping):
        return {masked(key, forms): masked(item, forms) for key, item in value.items()}
    if isinstance(value, list | tuple):
        return type(value)(masked(item, forms) for item in value)
    return value


def _masked_response(response: Any, forms: tuple[str, ...]) -> Any:
    """A recorded response masked; a compressed body holding the key is stored decoded, and a
    ``Content-Length`` follows the body's new length (a replay reads exactly that many bytes)."""
    if not isinstance(response, Mapping):
        return masked(response, forms)
    before = _body(response)
    response = _without_secret_fields(
        masked(_decoded_if_it_holds_a_key(dict(response), forms), forms)
    )
    after = _body(response)
    headers = response.get("headers")
    if after is None or after == before or not isinstance(headers, Mapping):
        return response
    fixed = {
        name: [str(len(after))] if str(name).lower() == "content-length" else values
        for name, values in headers.items()
    }
    return {**response, "headers": fixed}


def _without_secret_fields(response: Any) -> Any:
    """The response with a machine's ``auth_token`` (see
    :data:`~cdsessions._core.wire.SECRET_FIELDS`) masked in its body, whatever key it came with."""
    body = response.get("body") if isinstance(response, Mapping) else None
    stored = body.get("string") if isinstance(body, Mapping) else None
    if isinstance(stored, bytes):
        cleaned: bytes | str = mask_secret_fields(stored)
    elif isinstance(stored, str):
        raw = stored.encode("utf-8", errors="surrogatepass")
        cleaned = mask_secret_fields(raw).decode("utf-8", errors="surrogatepass")
    else:
        return response
    if cleaned == stored:
        return response
    assert isinstance(body, Mapping)
    return {**response, "body": {**body, "string": cleaned}}


def _body(response: Mapping[str, Any]) -> bytes | None:
    body = response.get("body")
    stored = body.get("string") if isinstance(body, Mapping) else None
    if isinstance(stored, str):
        return stored.encode("utf-8", errors="surrogatepass")
    return stored if isinstance(stored, bytes) else None


def _decoded_if_it_holds_a_key(response: dict[str, Any], forms: tuple[str, ...]) -> dict[str, Any]:
    body, headers = response.get("body"), response.get("headers")
    if not isinstance(body, Mapping) or not isinstance(headers, Mapping):
        return response
    stored = body.get("string")
    if not isinstance(stored, bytes):
        return response
    pairs = tuple(
        (str(name), str(item))
        for name, values in headers.items()
        for item in (values if isinstance(values, list) else [values])
    )
    codings = content_codings(pairs)
    if not codings:
        return response
    decoded = decode_content(stored, codings, DEFAULT_MAX_RESPONSE_BYTES)
    if not isinstance(decoded, Success) or decoded.unwrap() == stored:
        return response  # corrupt, too large, or stored already decoded: masked as it is
    plain: bytes = decoded.unwrap()
    if mask_key_bytes(plain, forms) == plain and mask_secret_fields(plain) == plain:
        return response  # no secret inside: kept byte for byte, compressed
    kept = {
        name: values for name, values in headers.items() if str(name).lower() != "content-encoding"
    }
    return {**response, "headers": kept, "body": {**body, "string": plain}}


class _MaskingPersister:
    """A vcrpy persister that masks ``keys`` out of what ``inner`` is asked to save."""

    def __init__(self, inner: Any, keys: set[str]) -> None:
        self._inner = inner
        self._keys = keys

    def load_cassette(self, cassette_path: Any, serializer: Any) -> Any:
        return self._inner.load_cassette(cassette_path, serializer=serializer)

    def save_cassette(self, cassette_path: Any, cassette_dict: Any, serializer: Any) -> None:
        forms = tuple(
            sorted({form for key in self._keys for form in key_forms(key)}, key=len, reverse=True)
        )
        requests = [
            type(request)._from_dict(masked(request._to_dict(), forms))
            for request in cassette_dict["requests"]
        ]
        responses = [_masked_response(response, forms) for response in cassette_dict["responses"]]
        saved = {**cassette_dict, "requests": requests, "responses": responses}
        self._inner.save_cassette(cassette_path, saved, serializer=serializer)


def _noting(keys: set[str], inner: Callable[[Any], Any]) -> Callable[[Any], Any]:
    def before_record_request(request: Any) -> Any:
        # Runs on the request as sent, before filter_headers drops the header.
        keys.update(tokens(getattr(request, "headers", None) or {}))
        return inner(request)

    return before_record_request


def mask_keys_when_recording(vcr: Any) -> None:
    """Make every cassette ``vcr`` (a ``vcr.VCR``) writes from now on free of the keys its
    requests carried (see the module docstring). Idempotent."""
    if getattr(vcr, "_cdsessions_masks_keys", False):
        return
    merge = vcr.get_merged_config

    def merged_config(**kwargs: Any) -> Any:
        config = merge(**kwargs)
        keys: set[str] = set()  # one cassette's keys
        config["before_record_request"] = _noting(keys, config["before_record_request"])
        config["persister"] = _MaskingPersister(config["persister"], keys)
        return config

    vcr.get_merged_config = merged_config
    vcr._cdsessions_masks_keys = True
