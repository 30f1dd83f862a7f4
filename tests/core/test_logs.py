"""Reading a session's log stream, :mod:`cdsessions._core.logs`, through both clients on the
in-memory fake; and the failure reasons a ready wait now carries (issue 20 items 1, 2)."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from datetime import UTC, datetime
from typing import Final

import pytest
from returns.result import Failure, Success

from cdsessions import (
    AsyncSessionsClient,
    CreateSessionBody,
    DecodeFailed,
    HttpError,
    InvalidRequest,
    LogLine,
    NotReady,
    SessionGone,
    SessionsClient,
    TransportFailed,
)
from cdsessions._core.logs import FOLLOW, SNAPSHOT, LogReading, is_gone, tail_text
from cdsessions._core.wire import HttpResponse
from cdsessions.fake import FakeService, FakeTransport, ManualClock
from cdsessions.fake.transport import AsyncFakeTransport
from cdsessions.testing import expect_failure, expect_success

KEY: Final = "test-key-0123456789"
SSE: Final = (("content-type", "text/event-stream"),)
HEAD: Final = Success(HttpResponse(200, SSE))


def started(fake: FakeService, client: SessionsClient) -> str:
    body = CreateSessionBody(machine_id=fake.DEFAULT_MACHINE_ID)
    return expect_success(client.create(body)).session_id


def line(message: str, level: str = "info") -> bytes:
    return (
        b'data: {"message": "' + message.encode() + b'", "level": "' + level.encode() + b'", '
        b'"timestamp": "2026-12-07T03:00:00Z"}\n\n'
    )


def test_logs_are_the_sessions_lines_as_values_oldest_first() -> None:
    fake = FakeService()
    client = SessionsClient(KEY, transport=FakeTransport(fake))
    session_id = started(fake, client)
    fake.log(session_id, "info", "Warming up ComfyUI...")
    fake.log(session_id, "error", "\x1b]0;owned\x07 boom")
    lines = expect_success(client.logs(session_id))
    assert [(x.level, x.message) for x in lines] == [
        ("info", "Creating session..."),
        ("info", "Warming up ComfyUI..."),
        ("error", "\x1b]0;owned\x07 boom"),  # a value: kept as sent, escaped when shown
    ]
    assert all(x.timestamp.tzinfo is UTC for x in lines)
    errors = expect_success(client.logs(session_id, level="error"))
    assert [x.message for x in errors] == ["\x1b]0;owned\x07 boom"]


def test_is_gone_is_a_404_only() -> None:
    assert is_gone(Failure(HttpError("get", 404, "GPUEvent not found")))
    assert not is_gone(Failure(HttpError("get", 500, "boom")))
    assert not is_gone(Failure(TransportFailed("get", "timeout", "x", sent=True)))
    assert not is_gone(Success(object()))


def test_follow_logs_yields_each_line_then_ends_when_the_stream_ends() -> None:
    fake = FakeService()
    client = SessionsClient(KEY, transport=FakeTransport(fake))
    session_id = started(fake, client)
    fake.end_session(session_id)  # the fake writes the end marker once the session is gone
    got = list(client.follow_logs(session_id))
    assert [expect_success(x).message for x in got] == ["Creating session..."]


def test_logs_of_a_session_the_account_never_had_is_a_404_value() -> None:
    client = SessionsClient(KEY, transport=FakeTransport(FakeService()))
    error = expect_failure(client.logs("3f0c0000-0000-4000-8000-000000000000"), HttpError)
    assert error.status == 404


@pytest.mark.parametrize("bad", ["", "..", "a\x00b", 7])
def test_a_bad_id_or_level_is_refused_and_nothing_is_sent(bad: object) -> None:
    fake = FakeService()
    client = SessionsClient(KEY, transport=FakeTransport(fake))
    expect_failure(client.logs(bad), InvalidRequest)  # type: ignore[arg-type]
    [followed] = list(client.follow_logs(bad))  # type: ignore[arg-type]
    expect_failure(followed, InvalidRequest)
    expect_failure(client.logs("x", level="a\nb"), InvalidRequest)
    assert fake.requests_handled == 0


def test_the_async_client_reads_the_same_lines() -> None:
    fake = FakeService()
    session_id = started(fake, SessionsClient(KEY, transport=FakeTransport(fake)))
    fake.log(session_id, "info", "second")

    async def main() -> tuple[list[LogLine], list[str]]:
        client = AsyncSessionsClient(KEY, transport=AsyncFakeTransport(fake))
        snapshot = expect_success(await client.logs(session_id))
        followed = [expect_success(x).message async for x in client.follow_logs(session_id)]
        return snapshot, followed

    snapshot, followed = asyncio.run(main())
    assert [x.message for x in snapshot] == followed == ["Creating session...", "second"]


# -- LogReading: what each piece of a stream comes to --------------------------------------------


def test_garbage_in_an_event_ends_the_reading_with_a_decode_failure() -> None:
    reading = LogReading("logs", FOLLOW)
    assert reading.take(HEAD) == []
    got = reading.take(Success(line("ok") + b"data: {not json\n\n" + line("never")))
    assert isinstance(got[0], Success)
    assert isinstance(got[1], Failure)
    assert isinstance(got[1].failure(), DecodeFailed)
    assert len(got) == 2
    assert reading.done


def test_a_stream_that_is_not_an_event_stream_is_a_decode_failure() -> None:
    reading = LogReading("logs", SNAPSHOT)
    head = Success(HttpResponse(200, (("content-type", "text/html"),)))
    [failure] = reading.take(head)
    assert isinstance(failure, Failure)
    assert isinstance(failure.failure(), DecodeFailed)


def test_a_refusal_keeps_the_servers_detail() -> None:
    reading = LogReading("logs", SNAPSHOT)
    reading.take(Success(HttpResponse(404, (("content-type", "application/json"),))))
    reading.take(Success(b'{"detail": "Session not found"}'))
    [failure] = reading.end()
    error = failure.failure()
    assert isinstance(error, HttpError)
    assert error.detail == "Session not found"


def test_a_close_in_the_middle_of_an_event_is_broken() -> None:
    reading = LogReading("logs", FOLLOW)
    reading.take(HEAD)
    reading.take(Success(line("whole") + b'data: {"message": "half'))
    [failure] = reading.end()
    error = failure.failure()
    assert isinstance(error, TransportFailed)
    assert error.kind == "broken"


def test_a_pause_ends_a_snapshot_with_its_lines_but_fails_a_follower() -> None:
    pause = Failure(TransportFailed("logs", "timeout", "read timed out", sent=True))
    snapshot = LogReading("logs", SNAPSHOT)
    snapshot.take(HEAD)
    assert snapshot.take(pause) == []
    assert snapshot.done
    follower = LogReading("logs", FOLLOW)
    follower.take(HEAD)
    assert follower.take(pause) == []
    assert follower.done
    assert follower.stalled is not None  # the caller asks whether the session is gone
    [failure] = follower.after_check(gone=False)
    assert failure.failure().code == "transport"
    gone = LogReading("logs", FOLLOW)
    gone.take(HEAD)
    gone.take(pause)
    assert gone.after_check(gone=True) == []


def test_a_timeout_before_the_head_fails_even_a_snapshot() -> None:
    reading = LogReading("logs", SNAPSHOT)
    [failure] = reading.take(Failure(TransportFailed("logs", "timeout", "x", sent=False)))
    assert isinstance(failure, Failure)


def test_the_key_is_masked_out_of_log_messages() -> None:
    reading = LogReading("logs", FOLLOW, key_forms=(KEY,))
    reading.take(HEAD)
    [got] = reading.take(Success(line(f"auth Bearer {KEY} echoed")))
    assert KEY not in expect_success(got).message


def test_the_end_markers_end_the_reading_cleanly() -> None:
    for marker in (b"stream_complete", b"stream_unavailable"):
        reading = LogReading("logs", FOLLOW)
        reading.take(HEAD)
        got = reading.take(
            Success(line("a") + b'data: {"type": "' + marker + b'"}\n\n' + line("b"))
        )
        assert [expect_success(x).message for x in got] == ["a"]
        assert reading.done
        assert reading.end() == []


def test_tail_text_is_bounded_escaped_and_masks_urls() -> None:
    stamp = datetime(2026, 12, 7, tzinfo=UTC)
    lines = [LogLine(stamp, "info", f"line {n}") for n in range(20)]
    lines.append(LogLine(stamp, "error", "see https://abc.modal.run/x\n\x1b[2J" + "y" * 5000))
    tail = tail_text(lines)
    assert len(tail) == 5
    assert tail[0] == "info: line 16"
    assert "abc.modal.run" not in tail[-1]
    assert "\x1b" not in tail[-1]
    assert "\n" not in tail[-1]
    assert len(tail[-1]) <= 200


# -- failure reasons (item 2) -------------------------------------------------------------------


def test_session_gone_carries_the_reason_the_server_logged() -> None:
    fake = FakeService(ready_after_polls=None)
    client = SessionsClient(KEY, transport=FakeTransport(fake), clock=ManualClock())
    session_id = started(fake, client)
    fake.fail_start(session_id, "Modal function failed with status: failure")
    gone = expect_failure(client.wait_until_ready(session_id, timeout=30), SessionGone)
    assert gone.last_log[-1] == "error: Modal function failed with status: failure"
    assert "Modal function failed" in str(gone)


def test_not_ready_carries_the_last_lines() -> None:
    fake = FakeService(ready_after_polls=None)
    clock = ManualClock()
    client = SessionsClient(KEY, transport=FakeTransport(fake), clock=clock)
    session_id = started(fake, client)
    fake.log(session_id, "info", "Warming up ComfyUI...")
    late = expect_failure(client.wait_until_ready(session_id, timeout=30), NotReady)
    assert late.last_log == ("info: Creating session...", "info: Warming up ComfyUI...")


def test_the_happy_path_reads_no_log() -> None:
    fake = FakeService(ready_after_polls=2)
    client = SessionsClient(KEY, transport=FakeTransport(fake), clock=ManualClock())
    session_id = started(fake, client)
    expect_success(client.wait_until_ready(session_id, timeout=30))
    with client.session(CreateSessionBody(machine_id=fake.DEFAULT_MACHINE_ID)) as opened:
        expect_success(opened)
    assert not any(path == "/v2/stream-logs" for _, path in fake.requests_seen)


def test_the_scope_fails_with_the_reason_and_still_cancels() -> None:
    fake = FakeService(ready_after_polls=None)
    clock = ManualClock()
    client = SessionsClient(KEY, transport=FakeTransport(fake), clock=clock)
    fake.log("not-yet", "info", "ignored")  # no such session: nothing is written
    with client.session(
        CreateSessionBody(machine_id=fake.DEFAULT_MACHINE_ID), ready_timeout=10
    ) as opened:
        late = expect_failure(opened, NotReady)
    assert late.last_log == ("info: Creating session...",)
    assert fake.live_sessions() == ()


def test_a_log_that_cannot_be_read_leaves_the_failure_as_it_was() -> None:
    fake = FakeService(ready_after_polls=None)
    client = SessionsClient(KEY, transport=FakeTransport(fake), clock=ManualClock())
    session_id = started(fake, client)
    fake.answer_next("GET /v2/stream-logs", 500)
    late = expect_failure(client.wait_until_ready(session_id, timeout=5), NotReady)
    assert late.last_log == ()


def test_a_key_the_server_echoes_into_a_log_line_is_masked_by_both_clients() -> None:
    fake = FakeService()
    client = SessionsClient(KEY, transport=FakeTransport(fake))
    session_id = started(fake, client)
    fake.log(session_id, "error", f"refused Authorization: Bearer {KEY}")
    [_, echoed] = expect_success(client.logs(session_id))
    assert KEY not in echoed.message
    assert echoed.message == "refused Authorization: Bearer <redacted>"

    async def main() -> list[str]:
        asynchronous = AsyncSessionsClient(KEY, transport=AsyncFakeTransport(fake))
        return [expect_success(x).message async for x in asynchronous.follow_logs(session_id)]

    assert all(KEY not in message for message in asyncio.run(main()))


def test_a_transport_that_cannot_stream_answers_a_log_read_with_a_value() -> None:
    class SendOnly:
        def send(self, request: object) -> object:
            raise AssertionError("nothing may be sent")

        def close(self) -> None:
            pass

    client = SessionsClient(KEY, transport=SendOnly())  # type: ignore[arg-type]
    error = expect_failure(client.logs("3f0c0000-0000-4000-8000-000000000000"), TransportFailed)
    assert error.kind == "broken"
    assert error.sent is False


def test_a_log_lines_repr_masks_urls() -> None:
    line = LogLine(datetime(2026, 12, 7, tzinfo=UTC), "info", "up at https://abc.modal.run/x")
    assert "abc.modal.run" not in repr(line)
    assert line.message == "up at https://abc.modal.run/x"  # the value keeps it


def test_the_async_client_reports_a_404_and_a_cut_stream_as_values() -> None:
    from cdsessions.transports import InlineTransport

    class Cut:
        """Serves a log stream that stops in the middle of an event."""

        def send(self, request: object) -> object:
            raise AssertionError("a log read streams")

        def stream(self, request: object) -> Iterator[object]:
            yield Success(HttpResponse(200, SSE))
            yield Success(line("whole") + b'data: {"message": "ha')

        def close(self) -> None:
            pass

    async def main() -> tuple[object, list[object]]:
        fake = AsyncSessionsClient(KEY, transport=AsyncFakeTransport(FakeService()))
        missing = await fake.logs("3f0c0000-0000-4000-8000-000000000000")
        cut = AsyncSessionsClient(KEY, transport=InlineTransport(Cut()))  # type: ignore[arg-type]
        return missing, [x async for x in cut.follow_logs("s")]

    missing, followed = asyncio.run(main())
    assert expect_failure(missing, HttpError).status == 404  # type: ignore[arg-type]
    assert expect_success(followed[0]).message == "whole"  # type: ignore[arg-type]
    assert expect_failure(followed[-1], TransportFailed).kind == "broken"  # type: ignore[arg-type]


def test_a_refusal_body_is_read_only_up_to_its_cap() -> None:
    # 64 KiB is kept: the closing of this JSON falls past it, so the detail is the raw text.
    reading = LogReading("logs", SNAPSHOT)
    reading.take(Success(HttpResponse(503, (("content-type", "application/json"),))))
    first = b'{"detail": "Session not found", "pad": "'
    assert reading.take(Success(first)) == []
    assert reading.take(Success(b"x" * (64 * 1024 - len(first)) + b'"}')) == []
    [failure] = reading.end()
    error = failure.failure()
    assert isinstance(error, HttpError)
    assert isinstance(error.detail, str)
    assert error.detail.startswith('{"detail": "Session not found", "pad": "xxx')


def test_a_stream_that_ends_before_its_head_is_broken() -> None:
    [failure] = LogReading("logs", FOLLOW).end()
    error = failure.failure()
    assert isinstance(error, TransportFailed)
    assert (error.kind, error.sent) == ("broken", True)


def test_a_reading_that_failed_is_done_and_takes_nothing_more() -> None:
    reading = LogReading("logs", FOLLOW)
    [failure] = reading.take(Success(HttpResponse(200, (("content-type", "text/html"),))))
    assert isinstance(failure, Failure)
    assert reading.done
    assert reading.take(Success(line("after"))) == []
    assert reading.end() == []
