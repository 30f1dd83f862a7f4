"""What the command prints, pinned where a bug needs a rare value (``cdsessions/_cli/_output.py``):
spans of a day or more keep their days, and a server's line break never starts a line.

Added for bugs an outside review slipped past the suite (issue 23): a span over a day shown
without its days, caught before only when a property happened to draw a long enough span.
"""

from __future__ import annotations

from datetime import timedelta

import pytest
from hypothesis import example, given, settings
from hypothesis import strategies as st

from cdsessions._cli._output import fields, span_text
from cdsessions.costs.figures import Unknown


@pytest.mark.parametrize(
    ("span", "text"),
    [
        (timedelta(0), "0s"),
        (timedelta(seconds=59), "59s"),
        (timedelta(seconds=60), "1m00s"),
        (timedelta(seconds=3599), "59m59s"),
        (timedelta(hours=1), "1h00m"),
        (timedelta(seconds=86399), "23h59m"),
        (timedelta(days=1), "1d00h"),
        (timedelta(days=1, seconds=1), "1d00h"),
        (timedelta(days=1, hours=1), "1d01h"),
        (timedelta(days=1, hours=23, minutes=59), "1d23h"),
        (timedelta(days=400), "400d00h"),
        (timedelta(days=400, hours=7, seconds=5), "400d07h"),
    ],
)
def test_a_span_is_shown_in_its_two_largest_units(span: timedelta, text: str) -> None:
    assert span_text(span) == text


def test_an_unknown_span_is_a_question_mark() -> None:
    assert span_text(Unknown("no creation time")) == "?"


@settings(max_examples=200, deadline=None)
@given(span=st.timedeltas(min_value=timedelta(0), max_value=timedelta(days=10**5)))
@example(span=timedelta(days=1))
@example(span=timedelta(days=1, seconds=1))
@example(span=timedelta(days=400))
@example(span=timedelta(seconds=86399, microseconds=999999))
def test_a_span_of_a_day_or_more_starts_with_its_whole_days(span: timedelta) -> None:
    shown = span_text(span)
    if span.days:
        assert shown == f"{span.days}d{span.seconds // 3600:02d}h"
    else:
        assert "d" not in shown


def test_field_values_are_escaped_whole_and_names_are_kept() -> None:
    text = fields([("session", "s\n-1\x1b[2J"), ("gpu", "A10G\u202e")])
    assert text.split("\n") == ["session  s\\x0a-1\\x1b[2J", "gpu      A10G\\u202e"]
