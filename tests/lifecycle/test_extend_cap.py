"""An extension past the platform's 24-hour cap is refused before sending, by both clients'
``extend`` and by a scope's (one place: ``_core/session_steps.capped_extend``), against the
fake over HTTP, whose container stops at 24 h as the platform's does (issue 20 item 5)."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Final

import pytest
from returns.result import Success

from cdsessions import CreateSessionBody
from cdsessions.errors import HttpError, InvalidRequest
from cdsessions.fake import DEFAULT_MACHINE_ID, FakeService, ManualClock
from cdsessions.fake.server import serve_in_thread
from tests.support.faces import FORMS, open_face

KEY: Final = "sk-cap-0123456789"


@pytest.fixture
def fake() -> FakeService:
    return FakeService(clock=ManualClock(), ready_after_polls=1)


@pytest.fixture
def base_url(fake: FakeService) -> Iterator[str]:
    with serve_in_thread(fake) as url:
        yield url


def _extensions(fake: FakeService) -> int:
    return sum(1 for _, path in fake.requests_seen if path.endswith("/increase-timeout"))


@pytest.mark.parametrize("form", FORMS)
def test_the_client_refuses_an_extension_past_24_hours_and_sends_none(
    form: str, fake: FakeService, base_url: str
) -> None:
    face = open_face(form, KEY, server=base_url)
    try:
        body = CreateSessionBody(machine_id=DEFAULT_MACHINE_ID, timeout=23 * 60)
        sid = face.create(body).unwrap().session_id
        assert isinstance(face.extend(sid, 60), Success)  # exactly 24 h: allowed
        refused = face.extend(sid, 1)
    finally:
        face.close()
    error = refused.failure()
    assert isinstance(error, InvalidRequest)
    assert (error.field, error.why) == ("minutes", "session_cap")
    assert "24-hour cap" in str(error)
    assert "at most 0 more minutes" in str(error)
    assert _extensions(fake) == 1


@pytest.mark.parametrize("form", FORMS)
def test_a_scope_refuses_it_too(form: str, fake: FakeService, base_url: str) -> None:
    face = open_face(form, KEY, server=base_url)
    try:
        body = CreateSessionBody(machine_id=DEFAULT_MACHINE_ID, timeout=20 * 60)
        with face.session(body, ready_timeout=5) as started:
            assert isinstance(started, Success)
            scope = face.scope
            extend = scope.extend(5 * 60)
            refused = extend if face.loop is None else face.loop.run(extend)
            allowed = scope.extend(4 * 60)
            fine = allowed if face.loop is None else face.loop.run(allowed)
    finally:
        face.close()
    assert isinstance(refused.failure(), InvalidRequest)
    assert refused.failure().why == "session_cap"
    assert isinstance(fine, Success)
    assert _extensions(fake) == 1


def test_without_the_check_the_server_takes_it_and_the_session_still_ends_at_24_hours(
    fake: FakeService, base_url: str
) -> None:
    """Why the check exists: the server answers 200, and the container stops anyway."""
    face = open_face("blocking", KEY, server=base_url)
    try:
        sid = face.create(CreateSessionBody(machine_id=DEFAULT_MACHINE_ID, timeout=60)).unwrap()
        face.get(sid.session_id)  # started
        extended = face.extend(sid.session_id, 48 * 60, check_cap=False)
        assert isinstance(extended, Success)
        clock = fake._clock
        assert isinstance(clock, ManualClock)
        clock.advance(minutes=24 * 60)
        gone = face.get(sid.session_id).failure()
    finally:
        face.close()
    assert isinstance(gone, HttpError)
    assert gone.status == 404
