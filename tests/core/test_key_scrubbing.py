"""The key never comes back out of a server's answer.

A proxy (or a debugging server) that echoes the ``Authorization`` header into an error's
``detail``, into a response header or into a 200 body would put the key into ``str()`` and
``repr()`` of the failure, the log and every observer's event. The call steps mask it
(:func:`cdsessions._core.wire.scrub`) as soon as the answer arrives, before anything reads it.
(The conftest's log guard also fails any test here whose log shows ``KEY``.)
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from typing import Any, Final

import pytest
from returns.result import Failure, Result, Success

from cdsessions import AsyncSessionsClient, RetryPolicy, SessionsClient
from cdsessions._core.observe import AttemptFinished
from cdsessions._core.wire import REDACTED, HttpRequest, HttpResponse, header, key_forms, scrub
from cdsessions.errors import ApiError
from cdsessions.fake import FakeService, FakeTransport
from tests.support import echoes, samples
from tests.support.hostile import answer, hostile
from tests.support.loopback import Received, Reply, serve

KEY: Final = "sk-live-0f1e2d3c4b5a69788796a5b4c3d2e1f0"
SLASHED_KEY: Final = "sk/live/0f1e2d3c4b5a6978"
JSON: Final = ("Content-Type", "application/json")
#: One quick retry, so a 503 is seen twice and a retry is logged at INFO.
ONE_RETRY: Final = RetryPolicy(max_attempts=2, backoff=0.01, jitter=0)


def _echo_detail(received: Received) -> Reply:
    echoed = received.headers.get("Authorization", "")
    return Reply(401, f'{{"detail": "invalid credentials: {echoed}"}}'.encode())


def _echo_header(received: Received) -> Reply:
    echoed = received.headers.get("Authorization", "")
    return Reply(503, b'{"detail": "busy"}', (JSON, ("X-Seen-Authorization", echoed)))


def _echo_in_200(received: Received) -> Reply:
    token = received.headers.get("Authorization", "").removeprefix("Bearer ")
    body = samples.LIVE_SESSION.replace('"gpu": "A10G"', f'"gpu": "A10G", "note": "{token}"')
    return Reply(200, body.replace('"url": null', f'"url": "https://x.example/{token}"').encode())


def _everything_shown(result: Result[Any, ApiError], events: list[object], log: str) -> str:
    shown = [str(result), repr(result), log, *map(repr, events)]
    if isinstance(result, Failure):
        shown += [str(result.failure()), repr(result.failure())]
    else:
        shown.append(repr(result.unwrap()))
    for event in events:
        if isinstance(event, AttemptFinished) and isinstance(event.outcome, Success):
            answer = event.outcome.unwrap()
            shown += [answer.body.decode(), repr(answer.headers), answer.reason]
    return "\n".join(shown)


@pytest.mark.parametrize("script", [_echo_detail, _echo_header, _echo_in_200])
def test_a_server_echoing_the_key_never_gets_it_shown(
    script: Callable[[Received], Reply], caplog: pytest.LogCaptureFixture
) -> None:
    events: list[object] = []
    caplog.set_level(logging.DEBUG, logger="cdsessions")
    with serve(script) as server:
        client = SessionsClient(
            KEY, server=server.base_url, observers=[events.append], retry=ONE_RETRY
        )
        result = client.get(samples.SESSION_ID)
        client.close()
    assert server.received[0].headers["Authorization"] == f"Bearer {KEY}"  # it was sent
    assert events
    everything = _everything_shown(result, events, caplog.text)
    assert KEY not in everything
    assert REDACTED in everything  # masked, not dropped: the echo is still visible as such


def test_the_key_in_a_200_body_is_masked_in_the_decoded_value() -> None:
    with serve(_echo_in_200) as server:
        session = SessionsClient(KEY, server=server.base_url).get(samples.SESSION_ID).unwrap()
    assert session.url == f"https://x.example/{REDACTED}"
    assert KEY not in repr(session)


def test_the_async_client_masks_the_key_too() -> None:
    async def call(base_url: str) -> Result[Any, ApiError]:
        async with AsyncSessionsClient(KEY, server=base_url, retry=False) as client:
            return await client.get(samples.SESSION_ID)

    with serve(_echo_detail) as server:
        result = asyncio.run(call(server.base_url))
    assert isinstance(result, Failure)
    assert KEY not in str(result.failure())
    assert KEY not in repr(result.failure())
    assert REDACTED in str(result.failure())


def test_the_fake_intercepting_with_the_key_in_its_answer_gets_it_masked() -> None:
    def echo(request: HttpRequest) -> HttpResponse:
        sent = header(request.headers, "authorization") or ""
        body = f'{{"detail": "forbidden for {sent}"}}'.encode()
        return HttpResponse(403, (JSON, ("WWW-Authenticate", sent)), body, reason=sent)

    events: list[object] = []
    service = FakeService(intercept=echo)
    client = SessionsClient(KEY, transport=FakeTransport(service), observers=[events.append])
    result = client.list()
    assert isinstance(result, Failure)
    everything = _everything_shown(result, events, "")
    assert KEY not in everything
    assert f"forbidden for Bearer {REDACTED}" in str(result.failure())


def test_a_rotating_key_is_masked_as_the_one_actually_sent() -> None:
    keys = iter([KEY, KEY[::-1]])
    with serve(_echo_detail) as server:
        client = SessionsClient(lambda: next(keys), server=server.base_url, retry=False)
        first, second = client.get("a"), client.get("b")
    assert KEY not in str(first.failure())
    assert KEY[::-1] not in str(second.failure())


# -- scrub, the one place ----------------------------------------------------------------------


def test_scrub_hands_back_the_same_response_when_the_key_is_absent() -> None:
    answer = HttpResponse(200, (JSON,), b'{"session_id": "x"}', reason="OK")
    assert scrub(answer, KEY) is answer  # the usual case: a scan, no copy


def test_scrub_masks_body_headers_and_reason() -> None:
    answer = HttpResponse(
        400, (JSON, ("X-Echo", f"Bearer {KEY}")), f"[{KEY}, {KEY}]".encode(), reason=KEY
    )
    masked = scrub(answer, KEY)
    assert masked.body == f"[{REDACTED}, {REDACTED}]".encode()
    assert masked.headers == (JSON, ("X-Echo", f"Bearer {REDACTED}"))
    assert masked.reason == REDACTED
    assert masked.status == 400


def test_scrub_masks_the_json_escaped_form() -> None:
    escaped = SLASHED_KEY.replace("/", "\\/")  # how some JSON encoders write "/"
    answer = HttpResponse(401, (), f'{{"detail": "{escaped}"}}'.encode())
    assert SLASHED_KEY.encode() not in scrub(answer, SLASHED_KEY).body
    assert escaped.encode() not in scrub(answer, SLASHED_KEY).body


def test_a_key_too_short_to_be_real_is_left_alone() -> None:
    # A one-letter test key masked out of every body would garble them all.
    answer = HttpResponse(200, (), b'{"kind": "k"}')
    assert scrub(answer, "k") is answer


# -- every form and place an echo takes, from raw bytes ----------------------------------------


@pytest.mark.parametrize("name", sorted(echoes.ECHOES))
def test_an_echo_in_any_form_or_place_is_masked_in_every_sink(
    name: str, caplog: pytest.LogCaptureFixture
) -> None:
    """Issue 18: the key raw, JSON-escaped, percent-encoded, split across chunks, in a header,
    in the reason phrase or in a gzip body never reaches a failure, a log line or an event."""
    events: list[object] = []
    caplog.set_level(logging.DEBUG, logger="cdsessions")
    with hostile(answer(echoes.echo(name), keep_alive=True)) as server:
        client = SessionsClient(
            echoes.KEY, server=server.base_url, observers=[events.append], retry=ONE_RETRY
        )
        result = client.get(samples.SESSION_ID)
        client.close()
    assert server.requests[0].header("Authorization") == f"Bearer {echoes.KEY}"
    assert isinstance(result, Failure)
    everything = _everything_shown(result, events, caplog.text)
    assert echoes.leaked_forms(everything) == []
    assert REDACTED in everything


def test_key_forms_are_longest_first_and_none_for_a_short_key() -> None:
    forms = key_forms(echoes.KEY)
    assert echoes.KEY in forms
    assert "sk%2Flive%2B0f1e2d3c4b5a6978%3D%3D" in forms
    assert "sk\\/live+0f1e2d3c4b5a6978==" in forms
    assert [len(form) for form in forms] == sorted(map(len, forms), reverse=True)
    assert key_forms("short") == ()
