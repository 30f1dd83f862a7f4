"""The Server-Sent Events parser, :mod:`cdsessions._core.sse`: the WHATWG spec's own examples
("Server-sent events", section 9.2.4-9.2.6 of the HTML Living Standard, reproduced here), its
parsing rules one by one, and properties: any split of a byte stream into chunks gives the same
events, arbitrary bytes never raise, and the bound holds."""

from __future__ import annotations

import itertools
from typing import Final

from hypothesis import example, given, settings
from hypothesis import strategies as st

from cdsessions._core.sse import TOO_LONG, SseEvent, SseParser

PROPERTIES: Final = settings(max_examples=300, deadline=None)


def parse(data: bytes, *, chunks: list[int] | None = None, limit: int = 1 << 20) -> list[SseEvent]:
    """Every event of ``data``, fed whole or cut at ``chunks`` (cumulative sizes)."""
    parser = SseParser(limit)
    events: list[SseEvent] = []
    cuts = sorted({0, len(data), *(c for c in (chunks or []) if 0 <= c <= len(data))})
    for start, end in itertools.pairwise(cuts):
        got = parser.feed(data[start:end])
        assert got != TOO_LONG
        assert isinstance(got, list)
        events.extend(got)
    parser.finish()
    return events


# -- the spec's examples -------------------------------------------------------------------------


def test_spec_example_stock_ticker_three_data_lines_make_one_event() -> None:
    stream = b"data: YHOO\ndata: +2\ndata: 10\n\n"
    assert parse(stream) == [SseEvent("YHOO\n+2\n10")]


def test_spec_example_comment_then_ids_set_and_reset() -> None:
    stream = (
        b": test stream\n\n"
        b"data: first event\nid: 1\n\n"
        b"data:second event\nid\n\n"
        b"data:  third event\n"
    )
    # The comment block dispatches nothing; "id" alone resets the id; the last block has no
    # blank line after it, so it is never dispatched.
    assert parse(stream) == [
        SseEvent("first event", last_event_id="1"),
        SseEvent("second event", last_event_id=""),
    ]


def test_spec_example_third_event_keeps_the_second_of_two_spaces() -> None:
    assert parse(b"data:  third event\n\n") == [SseEvent(" third event")]


def test_spec_example_empty_data_fields() -> None:
    stream = b"data\n\ndata\ndata\n\ndata:"
    # "data" alone is a field with an empty value: one event "", then one "\n"; the last block
    # never ends.
    assert parse(stream) == [SseEvent(""), SseEvent("\n")]


def test_spec_example_space_after_the_colon_is_optional() -> None:
    stream = b"data:test\n\ndata: test\n\n"
    assert parse(stream) == [SseEvent("test"), SseEvent("test")]


def test_spec_example_event_type_names_the_event() -> None:
    stream = (
        b"event: add\ndata: 73857293\n\nevent: remove\ndata: 2153\n\nevent: add\ndata: 113411\n\n"
    )
    assert [(e.type, e.data) for e in parse(stream)] == [
        ("add", "73857293"),
        ("remove", "2153"),
        ("add", "113411"),
    ]


# -- the rules -----------------------------------------------------------------------------------


def test_crlf_lf_and_cr_all_end_lines() -> None:
    for ending in (b"\r\n", b"\n", b"\r"):
        assert parse(b"data: a" + ending + b"data: b" + ending + ending) == [SseEvent("a\nb")]


def test_a_cr_at_the_end_of_one_chunk_and_lf_at_the_start_of_the_next_are_one_line_end() -> None:
    stream = b"data: a\r\n\r\n"
    for cut in range(len(stream) + 1):
        assert parse(stream, chunks=[cut]) == [SseEvent("a")], cut


def test_one_leading_bom_is_dropped_only_at_the_start() -> None:
    bom = "\ufeff".encode()
    assert parse(bom + b"data: x\n\n") == [SseEvent("x")]
    # A second BOM is part of the first line: a field named "\ufeffdata", ignored.
    assert parse(bom + bom + b"data: x\n\n") == []
    # Split inside the BOM's bytes.
    assert parse(bom + b"data: x\n\n", chunks=[1, 2]) == [SseEvent("x")]


def test_a_field_without_a_colon_has_an_empty_value() -> None:
    assert parse(b"data\n\n") == [SseEvent("")]
    assert parse(b"event\ndata: x\n\n") == [SseEvent("x", type="message")]


def test_unknown_fields_and_comments_are_ignored() -> None:
    assert parse(b": hi\nfoo: bar\ndata: x\n:\n\n") == [SseEvent("x")]


def test_an_id_with_nul_is_ignored_and_the_id_outlives_its_event() -> None:
    stream = b"id: 7\ndata: a\n\nid: 8\x00\ndata: b\n\ndata: c\n\n"
    assert [e.last_event_id for e in parse(stream)] == ["7", "7", "7"]


def test_retry_is_taken_only_when_all_ascii_digits() -> None:
    parser = SseParser()
    parser.feed(b"retry: 1500\n")
    assert parser.retry == 1500
    parser.feed(b"retry: 15x\nretry: \xd9\xa3\n")  # "15x", an Arabic-Indic digit: ignored
    assert parser.retry == 1500


def test_invalid_utf8_is_replaced_not_refused() -> None:
    assert parse(b"data: \xff\xfe ok\n\n") == [SseEvent("\ufffd\ufffd ok")]


def test_a_multibyte_character_split_across_chunks_is_whole() -> None:
    stream = "data: é€😀\n\n".encode()
    for cut in range(len(stream) + 1):
        assert parse(stream, chunks=[cut]) == [SseEvent("é€😀")]


def test_finish_says_whether_the_stream_ended_mid_event() -> None:
    clean = SseParser()
    clean.feed(b"data: a\n\n")
    assert clean.finish() is True
    cut = SseParser()
    cut.feed(b"data: a\n")  # a field, but no blank line: the event never ended
    assert cut.finish() is False
    partial = SseParser()
    partial.feed(b"data: a")  # not even a whole line
    assert partial.finish() is False


def test_a_line_over_the_bound_ends_the_parse_without_holding_it() -> None:
    parser = SseParser(max_event_chars=1000)
    for _ in range(20):  # a line trickled in pieces: the pieces add up
        got = parser.feed(b"data: " + b"x" * 100)
        if got == TOO_LONG:
            break
    assert got == TOO_LONG
    assert parser.failed
    assert parser.feed(b"\n\ndata: y\n\n") == TOO_LONG  # and stays so
    assert parser.finish() is False


def test_data_lines_adding_up_over_the_bound_end_the_parse() -> None:
    parser = SseParser(max_event_chars=1000)
    assert parser.feed(b"data: " + b"x" * 600 + b"\n" + b"data: " + b"x" * 600 + b"\n") == TOO_LONG


# -- properties ----------------------------------------------------------------------------------

EVENT_TEXT: Final = st.text(st.characters(codec="utf-8", exclude_characters="\r\n"), max_size=30)
LINES: Final = st.lists(
    st.one_of(
        EVENT_TEXT.map(lambda t: f"data: {t}"),
        EVENT_TEXT.map(lambda t: f"data:{t}"),
        EVENT_TEXT.map(lambda t: f": {t}"),
        EVENT_TEXT.map(lambda t: f"id: {t}"),
        EVENT_TEXT.map(lambda t: f"event:{t}"),
        st.just("retry: 10"),
        st.just("data"),
        st.just(""),
    ),
    max_size=30,
)


@st.composite
def streams(draw: st.DrawFn) -> bytes:
    lines = draw(LINES)
    endings = draw(st.lists(st.sampled_from(["\r\n", "\n", "\r"]), min_size=len(lines)))
    bom = draw(st.sampled_from(["", "\ufeff"]))
    return (bom + "".join(line + end for line, end in zip(lines, endings, strict=False))).encode()


@PROPERTIES
@given(streams(), st.lists(st.integers(min_value=0, max_value=2000), max_size=12))
@example(b"data: a\r\n\r\n", [8])
@example("\ufeffdata: é\n\n".encode(), [1, 2, 9])
def test_any_split_into_chunks_gives_the_same_events(data: bytes, cuts: list[int]) -> None:
    assert parse(data, chunks=cuts) == parse(data)


@PROPERTIES
@given(st.binary(max_size=500), st.lists(st.integers(min_value=0, max_value=500), max_size=8))
@example(b"\r" * 50 + b"\xff" * 3, [1, 2])
def test_arbitrary_bytes_never_raise_and_splits_agree(data: bytes, cuts: list[int]) -> None:
    whole, split = SseParser(64), SseParser(64)
    got_whole = whole.feed(data)
    got_split: list[SseEvent] | str = []
    previous = 0
    for cut in [*sorted(c for c in cuts if c <= len(data)), len(data)]:
        more = split.feed(data[previous:cut])
        previous = cut
        if more == TOO_LONG or got_split == TOO_LONG:
            got_split = TOO_LONG
        else:
            assert isinstance(more, list)
            assert isinstance(got_split, list)
            got_split = got_split + more
    assert (got_whole == TOO_LONG) == (got_split == TOO_LONG)
    assert whole.finish() == split.finish()
    if got_whole != TOO_LONG and got_split != TOO_LONG:
        assert got_whole == got_split
    for event in got_whole if isinstance(got_whole, list) else []:
        assert len(event.data) <= 64
