"""Failure values read well, and models keep secrets out of their reprs."""

from __future__ import annotations

from typing import Final, get_args

import msgspec
import pytest
from hypothesis import example, given, settings
from hypothesis import strategies as st
from returns.result import Failure

from cdsessions import (
    ApiError,
    CreateSessionResponse,
    DecodeFailed,
    GPUEventModel,
    GPUProviderType,
    HttpError,
    InvalidRequest,
    MachineGPU,
    Session,
    TransportFailed,
    ValidationFailed,
    ValidationItem,
)
from cdsessions._core.timeouts import Timeout, timeout_from
from cdsessions.comfy_models import NodeError
from cdsessions.errors import DEPTH_LIMIT, RunFailed, TransportFailureKind, render
from tests.support import samples
from tests.support.checks import assert_renders_bounded

ERRORS: list[ApiError] = [
    InvalidRequest("get session ..", "session_id", "'..' is not an id"),
    HttpError("get session 3f0c6f1e", 404, "GPUEvent not found"),
    HttpError("list sessions", 401, "Invalid or missing token"),
    HttpError("get session x", 500, None),
    HttpError("get session x", 500, "line one\nline two\r\n" + "x" * 5000),
    ValidationFailed(
        "create session on machine m",
        422,
        [],
        (ValidationItem(("body", "gpu"), "Input should be 'CPU', 'T4'", "enum"),),
    ),
    DecodeFailed("get session x", 200, "$.url", "Expected `str | null`, got `int`"),
    TransportFailed("cancel session x", "timeout", "the server did not answer in time", True),
    # A workflow with a thousand broken nodes: only the first are named.
    RunFailed(
        "run workflow", "rejected", tuple(NodeError(str(n), "K", ("bad",)) for n in range(1000))
    ),
]


@pytest.mark.parametrize("error", ERRORS, ids=lambda e: type(e).__name__)
def test_every_error_reads_as_one_bounded_line_naming_the_operation(error: ApiError) -> None:
    text = str(error)
    assert "\n" not in text
    assert "\r" not in text
    assert len(text) < 500
    assert text.startswith(error.operation + ": ")


def test_messages_say_what_happened() -> None:
    assert str(ERRORS[1]) == "get session 3f0c6f1e: GPUEvent not found (404)"
    assert "check the API key" in str(ERRORS[2])
    assert str(ERRORS[5]).endswith("body.gpu: Input should be 'CPU', 'T4' (422)")
    assert str(ERRORS[6]) == (
        "get session x: unexpected response (200) at $.url: Expected `str | null`, got `int`"
    )
    assert str(ERRORS[7]) == "cancel session x: timed out: the server did not answer in time"
    assert "nothing was sent" in str(ERRORS[0])


def test_errors_are_frozen_values() -> None:
    assert HttpError("op", 404, "x") == HttpError("op", 404, "x")
    assert isinstance(ERRORS[5], HttpError)  # a 422 is an HTTP error too
    error = HttpError("op", 404, "x")
    with pytest.raises(AttributeError):
        error.status = 500  # type: ignore[misc]


def test_session_urls_never_show_in_reprs() -> None:
    session = msgspec.json.decode(samples.LIVE_SESSION_READY, type=Session)
    created = CreateSessionResponse(session_id="s", url=samples.TUNNEL_URL)
    event = msgspec.json.decode(samples.SEED_EVENT, type=GPUEventModel)
    for value in (session, created, event, event.to_session()):
        assert samples.TUNNEL_URL not in repr(value)
        assert "<redacted url>" in repr(value)
    # The value itself is still there for the user who asked for it.
    assert session.url == samples.TUNNEL_URL


def test_unknown_enum_values_round_trip_and_do_not_grow_the_enum() -> None:
    before = len(MachineGPU.__members__)
    for name in ("RTX-9090", "RTX-9090", "Z1"):
        gpu = MachineGPU(name)
        assert gpu.value == name
        assert msgspec.json.encode(gpu) == f'"{name}"'.encode()
    assert len(MachineGPU.__members__) == before
    assert GPUProviderType("runpod") is GPUProviderType.RUNPOD
    assert not GPUProviderType("lambda").is_known
    with pytest.raises(ValueError, match="is not a valid"):
        MachineGPU(7)  # type: ignore[arg-type]


def test_known_gpu_list_matches_the_live_server() -> None:
    assert [g.value for g in MachineGPU] == [
        "CPU",
        "T4",
        "L4",
        "A10G",
        "L40S",
        "A100",
        "A100-80GB",
        "H100",
        "H200",
        "B200",
    ]


def _deep(depth: int) -> object:
    value: object = "x"
    for _ in range(depth):
        value = [value]
    return value


_JSON_VALUES = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats() | st.text(),
    lambda inner: st.lists(inner, max_size=5) | st.dictionaries(st.text(), inner, max_size=5),
    max_leaves=30,
)


@pytest.mark.parametrize("depth", [1_000, 100_000])
def test_errors_holding_a_deep_detail_render_without_recursion_error(depth: int) -> None:
    """From issue 10: the boundary never raises."""
    deep = _deep(depth)
    errors: list[ApiError] = [
        HttpError("get session x", 500, deep),  # type: ignore[arg-type]
        ValidationFailed("create", 422, deep, (ValidationItem(("body",), "m", "t"),)),  # type: ignore[arg-type]
    ]
    for error in errors:
        assert_renders_bounded(error)
        assert "[…]" in repr(error)


def test_a_huge_detail_renders_bounded_and_says_it_was_cut() -> None:
    """From issue 10: the boundary never raises."""
    huge: list[ApiError] = [
        HttpError("op", 500, "y" * 10_000_000),
        HttpError("op", 500, {"a": "b" * 1_000_000, "n": 10**4000}),
        HttpError("op", 500, [[i] * 100 for i in range(100_000)]),
        ValidationFailed("op", 422, None, (ValidationItem(("body", 10**4000), "m" * 10**6, "t"),)),
        ValidationFailed("op", 422, None, (ValidationItem(("body", "gpu"), "bad", "t"),) * 10**5),
        DecodeFailed("op", 200, "$" + ".x" * 10**6, "p" * 10**6),
        TransportFailed("op", "broken", "q" * 10**6, sent=True),
        InvalidRequest("o" * 10**6, "f" * 10**6, "p" * 10**6),
    ]
    for error in huge:
        assert_renders_bounded(error)
        assert str(error).endswith("…") or "…" in str(error)


def test_server_text_cannot_drive_a_terminal_through_str_or_repr() -> None:
    """From issue 10: the boundary never raises."""
    sneaky = "\x1b]0;pwned\x07\x1b[2J\u202eevil\r\nline"
    for error in (
        HttpError("op", 500, sneaky),
        HttpError("op", 500, [sneaky, {"k": sneaky}]),
        ValidationFailed("op", 422, None, (ValidationItem((sneaky,), sneaky, "t"),)),
    ):
        for text in (str(error), repr(error)):
            assert not any(char in text for char in "\x1b\x07\u202e\n\r")
        assert "\\x1b" in str(error)  # shown, escaped, not dropped


def test_detail_text_reads_as_before() -> None:
    """From issue 10: the boundary never raises."""
    assert str(HttpError("get", 404, "GPUEvent not found")) == "get: GPUEvent not found (404)"
    listed = HttpError("get", 400, [{"loc": ["body", 1], "ok": True, "n": None}])
    assert str(listed) == 'get: [{"loc": ["body", 1], "ok": true, "n": null}] (400)'
    assert repr(HttpError("get", 404, "x")) == "HttpError(operation='get', status=404, detail='x')"


@settings(max_examples=300, deadline=None)
@given(detail=_JSON_VALUES, depth=st.sampled_from([0, 7, 8, 9, 1000, 10_000]))
@example(detail="", depth=0)
@example(detail="x" * 100_000, depth=0)
@example(detail="\U0001f600\x1b[2J\n" * 1000, depth=9)
@example(detail={"": None}, depth=10_000)
@example(detail=None, depth=8)
def test_str_and_repr_of_errors_never_raise_for_any_detail(detail: object, depth: int) -> None:
    """From issue 10: the boundary never raises."""
    for _ in range(depth):
        detail = [detail]
    item = ValidationItem(("body", 0), str(detail)[:50] if depth < 50 else "m", "t")
    for error in (
        HttpError("op", 500, detail),  # type: ignore[arg-type]
        ValidationFailed("op", 422, detail, (item,)),  # type: ignore[arg-type]
    ):
        assert_renders_bounded(error)


SEED_TUNNEL: Final = "https://ta-01jlabel.r5.modal.host"


#: A seed list element with every field the Session takes, end_time set, and both start_time
#: and created_at (created_at wins).
SEED_ITEM: Final = (
    b'{"id":"e1","user_id":"user_2abc","org_id":"org_9","machine_id":"m1",'
    b'"start_time":"2025-11-02T09:00:00Z","end_time":"2025-11-02T09:30:00Z","gpu":"A10G",'
    b'"gpu_provider":"modal","created_at":"2025-11-02T10:00:00+01:00","session_timeout":30,'
    b'"session_id":"s1","tunnel_url":"' + SEED_TUNNEL.encode() + b'"}'
)


def test_reprs_mask_the_url_and_show_none_as_none() -> None:
    """Found by a mutant of ``nox -s mutation`` the rest of the suite let through."""
    starting = Session(session_id="s", gpu_event_id="e")
    ready = Session(session_id="s", gpu_event_id="e", url=SEED_TUNNEL)
    assert repr(starting) == (
        "Session(session_id='s', gpu=None, status=None, url=None, timeout_end=None)"
    )
    assert repr(ready) == (
        "Session(session_id='s', gpu=None, status=None, url='<redacted url>', timeout_end=None)"
    )
    event = msgspec.json.decode(SEED_ITEM, type=GPUEventModel)
    assert SEED_TUNNEL not in repr(event)
    assert "tunnel_url='<redacted url>'" in repr(event)


def test_an_unknown_gpu_is_a_member_named_by_its_value() -> None:
    """Found by a mutant of ``nox -s mutation`` the rest of the suite let through."""
    gpu = MachineGPU("X9")
    assert (gpu.name, gpu.value, gpu.is_known) == ("X9", "X9", False)
    assert repr(gpu) == "<MachineGPU.X9: 'X9'>"
    assert MachineGPU("H100") is MachineGPU.H100


def test_unusable_numbers_are_named_and_huge_ones_are_not_printed_whole() -> None:
    """Found by a mutant of ``nox -s mutation`` the rest of the suite let through."""

    def problem(value: object) -> str:
        result = timeout_from(value, Timeout())
        assert isinstance(result, Failure), result
        text: str = result.failure()
        return text

    assert problem(-(10**30)) == "must be a finite number of seconds > 0, not a huge number"
    assert problem(-(10**17)) == "must be a finite number of seconds > 0, not -100000000000000000"
    assert problem(-(10**18)) == "must be a finite number of seconds > 0, not a huge number"
    assert problem(-1e30) == "must be a finite number of seconds > 0, not -1e+30"


KEY: Final = "sk-promises-core-0123456789"


def test_messages_name_the_failure_kind_and_status_hint() -> None:
    """Bugs: a kind's label swapped; the 404 hint lost; ``not_found`` true for other codes.

    Found by applying a deliberate bug the older tests let through."""
    labels = {
        "connect": "could not connect",
        "timeout": "timed out",
        "broken": "connection broken",
        "too_large": "response too large",
        "unmatched": "no recorded response",
        "no_cassette": "no cassette",
    }
    for kind, label in labels.items():
        error = TransportFailed("get session s", kind, "why", sent=True)  # type: ignore[arg-type]
        assert str(error) == f"get session s: {label}: why"
    assert set(labels) == set(get_args(TransportFailureKind))  # every kind has its label
    assert str(HttpError("get session s", 404, None)) == "get session s: not found (404)"
    assert str(HttpError("get session s", 429, None)) == "get session s: rate limited (429)"
    assert HttpError("get session s", 404, "gone").not_found
    assert not HttpError("get session s", 410, "gone").not_found


def test_a_nested_detail_is_shown_exactly_depth_limit_levels_deep() -> None:
    """Bug: one level more (or fewer) than documented shown before ``…``.

    Found by applying a deliberate bug the older tests let through."""
    assert DEPTH_LIMIT == 8
    nested: object = "x"
    for _ in range(DEPTH_LIMIT + 3):
        nested = [nested]
    assert render(nested, 1000) == "[" * DEPTH_LIMIT + "…" + "]" * DEPTH_LIMIT


def test_failures_nested_in_a_detail_are_shown_exactly_depth_limit_levels_deep() -> None:
    nested: object = "innermost"
    for _ in range(DEPTH_LIMIT + 3):
        nested = HttpError("op", 500, nested)  # type: ignore[arg-type]
    shown = render(nested, 10_000)
    assert shown.count("HttpError(") == DEPTH_LIMIT
    assert "innermost" not in shown
    assert shown.count("…") == 1


def test_a_value_of_an_unknown_type_in_a_detail_shows_only_its_type() -> None:
    """Bug: a foreign object's own ``repr`` (which could hold anything) shown in an error.

    Found by applying a deliberate bug the older tests let through."""

    class Secretive:
        def __repr__(self) -> str:
            return KEY

    error = HttpError("get session s", 500, [Secretive()])  # type: ignore[list-item]
    for text in (str(error), repr(error), render([Secretive()])):
        assert KEY not in text
        assert "<Secretive>" in text


def test_server_text_becomes_one_line_with_whitespace_runs_collapsed() -> None:
    """Bug: line breaks and runs of spaces in server text kept (or escaped) in messages.

    Found by applying a deliberate bug the older tests let through."""
    error = HttpError("get session s", 500, "upstream\r\n\tfailed   badly\n")
    assert str(error) == "get session s: upstream failed badly (500)"


def test_a_huge_integer_in_a_detail_is_not_written_out() -> None:
    """Bug: an integer past ``sys.get_int_max_str_digits()`` turned into digits (raises).

    Found by applying a deliberate bug the older tests let through."""
    error = HttpError("get session s", 500, [10**5000])
    assert "-bit integer>" in str(error)
    assert "-bit integer>" in repr(error)


def test_a_seed_event_repr_masks_its_tunnel_url() -> None:
    """Bug: ``GPUEventModel.__repr__`` showing ``tunnel_url``.

    Found by applying a deliberate bug the older tests let through."""
    event = GPUEventModel(
        id="e",
        user_id="u",
        org_id=None,
        machine_id=None,
        start_time=None,
        end_time=None,
        gpu=None,
        gpu_provider="modal",  # type: ignore[arg-type]
        tunnel_url="https://tunnel-secret.example.invalid",
    )
    assert "tunnel-secret" not in repr(event)
    assert "<redacted url>" in repr(event)


def test_a_403_names_the_account_as_the_problem() -> None:
    """Bug: the 403 hint dropped (only 401 got one).

    Found by an outside review's deliberate bug the suite missed (issue 14)."""
    text = str(HttpError("create session", 403, "Insufficient balance for requested operation"))
    assert "Insufficient balance for requested operation (403)" in text
    assert "the account may not do this" in text
    assert "the account" not in str(HttpError("create session", 400, "Bad"))


@pytest.mark.parametrize(
    ("status", "expected"),
    [
        (401, "create session: check the API key (COMFY_DEPLOY_API_KEY) (401)"),
        (403, "create session: the account may not do this (403)"),
        (500, "create session: HTTP error (500)"),
    ],
)
def test_an_error_without_detail_states_its_hint_once(status: int, expected: str) -> None:
    """Bug: with no detail the hint stood in for it and was then appended again.

    Found by an outside review's deliberate bug the suite missed (issue 14)."""
    assert str(HttpError("create session", status, None)) == expected
