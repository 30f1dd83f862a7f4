"""Properties of the one home of terminal- and log-safe text, :mod:`cdsessions._core.text`:
escape (nothing a terminal acts on), clip (one bounded line) and mask_urls (no tunnel URL)."""

from __future__ import annotations

import re
import time
from typing import Final

from hypothesis import example, given, settings
from hypothesis import strategies as st

from cdsessions._core.text import ELLIPSIS, clip, escape, escape_char, mask_urls

# Every code point, lone surrogates included (Hypothesis leaves them out unless asked).
ANY_TEXT: Final = st.text(st.characters(exclude_categories=()), max_size=400)
LIMITS: Final = st.integers(min_value=1, max_value=500)
PROPERTIES: Final = settings(max_examples=300, deadline=None)

ESC: Final = "\x1b]0;owned\x07\x1b[2J"  # retitle the window, clear the screen
BIDI: Final = "invoice\u202egpj.exe\u2066x\u2069"  # right-to-left override, isolates
SURROGATE: Final = "a\ud800b\udfffc"  # lone surrogates: not encodable, must not raise
MEGABYTE: Final = "x" * 1_000_000
BLANKS_THEN_TEXT: Final = " " * 1_000_000 + "tail"
HIDDEN: Final = "\x1b" * 1_000_000


@PROPERTIES
@given(ANY_TEXT)
@example(ESC)
@example(BIDI)
@example(SURROGATE)
@example("line\nbreak\r\ttab\x85nel\u2028sep")
@example(MEGABYTE)
def test_escape_leaves_nothing_unprintable_and_keeps_printable_text(text: str) -> None:
    shown = escape(text)
    assert shown.isprintable()
    if text.isprintable():
        assert shown == text
    assert escape(shown) == shown  # escaping twice changes nothing
    # Each character is kept or replaced by its own escape, in order: nothing is lost.
    assert shown == "".join(c if c.isprintable() else escape_char(c) for c in text)


def test_escape_writes_python_style_escapes() -> None:
    assert escape("\x1b[31m") == "\\x1b[31m"
    assert escape("a\u202eb") == "a\\u202eb"
    assert escape("\ud800") == "\\ud800"
    assert escape("\U000e0001") == "\\U000e0001"  # a tag character: astral, format
    assert escape("back\\slash") == "back\\slash"  # for reading, not for parsing back


@PROPERTIES
@given(ANY_TEXT, LIMITS)
@example(ESC, 5)
@example(BIDI, 300)
@example(SURROGATE, 2)
@example(MEGABYTE, 300)
@example(BLANKS_THEN_TEXT, 300)
@example(HIDDEN, 300)
@example("é" * 10, 1)
def test_clip_is_one_bounded_printable_line(text: str, limit: int) -> None:
    shown = clip(text, limit)
    assert len(shown) <= limit
    assert shown.isprintable()  # no line break, tab or control: one line
    assert "  " not in shown
    assert shown == shown.strip()
    flat = " ".join(text.split())
    if flat.isprintable() and len(flat) <= limit and len(text) <= 8 * 300:
        assert shown == flat  # nothing to cut or escape: the text, single-spaced
    else:
        assert shown.endswith(ELLIPSIS) or shown == escape(flat)


@PROPERTIES
@given(ANY_TEXT, LIMITS)
@example("", 1)
@example("x" * 400, 1)
@example("x" * 400, 399)
@example("\U0001f600" * 400, 5)
@example(" " * 400 + "tail", 4)
@example("\x1b" * 10, 3)
@example("ab\ncd" * 80, 500)
def test_a_cut_is_marked_and_keeps_the_start(text: str, limit: int) -> None:
    shown = clip(text, limit)
    if shown.endswith(ELLIPSIS) and not text.endswith(ELLIPSIS):
        assert escape(" ".join(text.split())).startswith(shown[:-1])


def test_blank_lines_before_the_text_do_not_hide_it() -> None:
    """A body padded with a few thousand blanks (a pretty-printed error page) still shows its
    words: clip looks at eight times the limit before giving up."""
    assert clip(" " * 1000 + "tail", 300) == "tail"
    assert clip("\n" * 2000 + "detail", 300) == "detail"
    assert clip("\r\n" * 2000 + "detail", 300) == "…"  # past the window: cut, marked


def test_clip_looks_only_at_the_start_of_a_huge_text() -> None:
    huge = "word " * 2_000_000  # 10 MB
    started = time.perf_counter()
    shown = clip(huge, 300)
    assert time.perf_counter() - started < 0.5
    assert len(shown) == 300
    assert shown.endswith(ELLIPSIS)


_HOSTS: Final = st.from_regex(r"[a-z][a-z0-9-]{0,20}(\.[a-z]{2,6}){1,2}", fullmatch=True)
_PATHS: Final = st.from_regex(r"(/[A-Za-z0-9._~-]{1,10}){0,3}", fullmatch=True)
_WORDS: Final = st.text(st.characters(exclude_categories=["Cs"]), max_size=40).map(
    lambda text: text.replace(":", "")  # no URL of its own, so only the planted one is masked
)


@PROPERTIES
@given(
    st.sampled_from(["https", "http", "wss", "HTTPS"]),
    _HOSTS,
    _PATHS,
    _WORDS,
    _WORDS,
    st.booleans(),
)
@example("https", "tunnel-secret.modal.run", "/x", "moved to ", ".", False)
@example("https", "tunnel-secret.modal.run", "/x", "session/", "", True)
def test_mask_urls_hides_the_host_and_path_of_every_url(
    scheme: str, host: str, path: str, before: str, after: str, encoded: bool
) -> None:
    separator = "%3A%2F%2F" if encoded else "://"
    url = f"{scheme}{separator}{host}{path}"
    text = f"{before} {url} {after}"
    masked = mask_urls(text)
    assert host not in masked.replace(f"{scheme}{separator}<masked>", "")
    assert f"{scheme}{separator}<masked>" in masked
    assert mask_urls(masked) == masked  # masking twice changes nothing


@given(ANY_TEXT)
@settings(max_examples=200, deadline=None)
@example(SURROGATE)
@example("no address here")
@example(MEGABYTE)
def test_mask_urls_never_raises_and_leaves_text_without_urls(text: str) -> None:
    masked = mask_urls(text)
    if not re.search(r"(?i)://|%3a%2f%2f", text):
        assert masked == text


def test_mask_urls_keeps_trailing_punctuation() -> None:
    assert mask_urls("see https://x.y/z.") == "see https://<masked>."
    assert mask_urls("(at https://a.b/c), then") == "(at https://<masked>), then"
