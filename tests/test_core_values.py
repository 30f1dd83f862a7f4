"""Whole values from the pure core, stated exactly: what a seed list element becomes, how secret
urls are masked in reprs, how unusable numbers are named, and how CassetteTransport describes a
miss. (Written against survivors of ``nox -s mutation``: each assertion here failed for at least
one mutant that the rest of the fast suite let through.)"""

from __future__ import annotations

import gzip
import zlib
from datetime import UTC, datetime
from pathlib import Path
from typing import Final

import msgspec
import yaml
from returns.result import Failure, Success

from cdsessions import RetryPolicy
from cdsessions._core.builders import build_get, describe_id
from cdsessions._core.decoding import SESSION, decode, decode_session_list, error_from
from cdsessions._core.retry import backoff_delay
from cdsessions._core.servers import resolve_server
from cdsessions._core.timeouts import MAX_SECONDS, Timeout, ready_timeout_from, timeout_from
from cdsessions._core.wire import HttpRequest, HttpResponse
from cdsessions.errors import DecodeFailed, HttpError, TransportFailed, ValidationFailed
from cdsessions.models import GPUEventModel, MachineGPU, Session
from cdsessions.transports._cassette import CassetteError, CassetteTransport

TUNNEL: Final = "https://ta-01jlabel.r5.modal.host"
#: A seed list element with every field the Session takes, end_time set, and both start_time
#: and created_at (created_at wins).
SEED_ITEM: Final = (
    b'{"id":"e1","user_id":"user_2abc","org_id":"org_9","machine_id":"m1",'
    b'"start_time":"2025-11-02T09:00:00Z","end_time":"2025-11-02T09:30:00Z","gpu":"A10G",'
    b'"gpu_provider":"modal","created_at":"2025-11-02T10:00:00+01:00","session_timeout":30,'
    b'"session_id":"s1","tunnel_url":"' + TUNNEL.encode() + b'"}'
)


def test_a_seed_list_element_becomes_exactly_this_session() -> None:
    response = HttpResponse(200, (("content-type", "application/json"),), b"[" + SEED_ITEM + b"]")
    (session,) = decode_session_list(response, "list sessions").unwrap()
    assert session == Session(
        session_id="s1",
        gpu_event_id="e1",
        url=TUNNEL,
        gpu="A10G",
        created_at=datetime(2025, 11, 2, 9, 0, tzinfo=UTC),
        timeout=30,
        machine_id="m1",
        user_id="user_2abc",
        org_id="org_9",
    )
    # The same element through the full seed model gives the same Session.
    assert msgspec.json.decode(SEED_ITEM, type=GPUEventModel).to_session() == session


def test_a_seed_element_without_session_id_or_gpu_uses_its_event_id() -> None:
    item = b'{"id":"e2","user_id":"u","org_id":null,"machine_id":null,"start_time":null,'
    item += b'"end_time":null,"gpu":null,"gpu_provider":"runpod"}'
    response = HttpResponse(200, (("content-type", "application/json"),), b"[" + item + b"]")
    (session,) = decode_session_list(response, "list").unwrap()
    assert session == Session(session_id="e2", gpu_event_id="e2", user_id="u")


def test_reprs_mask_the_url_and_show_none_as_none() -> None:
    starting = Session(session_id="s", gpu_event_id="e")
    ready = Session(session_id="s", gpu_event_id="e", url=TUNNEL)
    assert repr(starting) == (
        "Session(session_id='s', gpu=None, status=None, url=None, timeout_end=None)"
    )
    assert repr(ready) == (
        "Session(session_id='s', gpu=None, status=None, url='<redacted url>', timeout_end=None)"
    )
    event = msgspec.json.decode(SEED_ITEM, type=GPUEventModel)
    assert TUNNEL not in repr(event)
    assert "tunnel_url='<redacted url>'" in repr(event)


def test_an_unknown_gpu_is_a_member_named_by_its_value() -> None:
    gpu = MachineGPU("X9")
    assert (gpu.name, gpu.value, gpu.is_known) == ("X9", "X9", False)
    assert repr(gpu) == "<MachineGPU.X9: 'X9'>"
    assert MachineGPU("H100") is MachineGPU.H100


def test_unusable_numbers_are_named_and_huge_ones_are_not_printed_whole() -> None:
    def problem(value: object) -> str:
        result = timeout_from(value, Timeout())
        assert isinstance(result, Failure), result
        text: str = result.failure()
        return text

    assert problem(-(10**30)) == "must be a finite number of seconds > 0, not a huge number"
    assert problem(-(10**17)) == "must be a finite number of seconds > 0, not -100000000000000000"
    assert problem(-(10**18)) == "must be a finite number of seconds > 0, not a huge number"
    assert problem(-1e30) == "must be a finite number of seconds > 0, not -1e+30"


def test_at_least_keeps_a_timeout_whose_read_is_already_long_enough() -> None:
    timeout = Timeout(10, 660, total=100)
    assert timeout.at_least(660) is timeout  # equal is enough: nothing to raise
    assert timeout.at_least(600) is timeout
    assert timeout.at_least(661) == Timeout(10, 661, total=671)


def _cassette(uri: str) -> CassetteTransport:
    interaction = {
        "request": {"method": "GET", "uri": uri, "body": None, "headers": {}},
        "response": {
            "status": {"code": 200, "message": "OK"},
            "headers": {},
            "body": {"string": ""},
        },
    }
    text = yaml.safe_dump({"version": 1, "interactions": [interaction]})
    cassette: CassetteTransport = CassetteTransport.from_yaml(text, name="c.yaml").unwrap()
    return cassette


def _miss(cassette: CassetteTransport, request: HttpRequest) -> str:
    result = cassette.send(
        msgspec.structs.replace(request, timeout=Timeout(), max_response_bytes=100, operation="op")
    )
    assert isinstance(result, Failure), result
    problem: str = result.failure().problem
    return problem


def test_a_miss_shows_the_query_and_a_long_recorded_target_shortened() -> None:
    whole = "/api/session/" + "x" * 73 + "?a=1"  # 90 characters: shown whole
    cut = "/api/session/" + "y" * 74 + "?a=1"  # 91: cut to 89 and an ellipsis
    for target, shown in ((whole, whole), (cut, cut[:89] + "…")):
        problem = _miss(
            _cassette(f"http://h{target}"), HttpRequest("GET", "/sessions", (("machine_id", "m"),))
        )
        assert problem == (
            f"GET /sessions?machine_id=m is not in c.yaml; closest recorded: GET {shown}"
        )


def test_timeout_values_and_problems_are_exact() -> None:
    big = MAX_SECONDS * 10
    assert Timeout(big, 1, total=None).clamped() == Timeout(MAX_SECONDS, 1, None)
    assert Timeout(1, big, total=5).clamped() == Timeout(1, MAX_SECONDS, 5)
    assert Timeout(1, 2, total=big).clamped() == Timeout(1, 2, MAX_SECONDS)
    exact = Timeout(MAX_SECONDS, MAX_SECONDS, MAX_SECONDS)
    assert exact.clamped() is exact
    assert Timeout(1, -1).problem() == "read must be a finite number of seconds > 0, not -1"
    assert Timeout(1, 1, 0).problem() == "total must be a finite number of seconds > 0, not 0"
    assert Timeout(True, 1).problem() == "connect must be a number of seconds, not bool"
    assert Timeout(1, 1, None).problem() is None
    assert ready_timeout_from(0) == Success(0.0)
    assert ready_timeout_from(-1) == Failure("must be a finite number of seconds ≥ 0, not -1")
    assert ready_timeout_from(None) == Failure("must be a number of seconds, not NoneType")
    assert timeout_from(0, Timeout()) == Failure("must be a finite number of seconds > 0, not 0")
    assert timeout_from("5", Timeout()) == Failure(
        "must be a Timeout or a number of seconds, not str"
    )
    assert timeout_from(True, Timeout()) == Failure(
        "must be a Timeout or a number of seconds, not bool"
    )


def test_ids_are_described_short_and_visibly() -> None:
    assert describe_id("x" * 40) == "x" * 40
    assert describe_id("y" * 41) == "y" * 36 + "…"
    assert describe_id("  ") == "'  '"
    assert describe_id("a\tb") == "'a\\tb'"
    assert describe_id("abc") == "abc"


def test_id_problems_are_exact() -> None:
    assert build_get("").failure().problem == "must not be empty"
    assert build_get(" \t").failure().problem == "must not be blank"
    assert build_get("a\ud800").failure().problem == "contains a lone surrogate (not valid Unicode)"
    assert build_get(3).failure().problem == "must be a string, not int"  # type: ignore[arg-type]


def _loaded(body: object) -> CassetteTransport | str:
    interaction = {
        "request": {"method": "GET", "uri": "http://h/api/x", "body": None, "headers": {}},
        "response": {"status": {"code": 200}, "headers": {"X": ["a", 2]}, "body": {"string": body}},
    }
    loaded = CassetteTransport.from_yaml(
        yaml.safe_dump({"version": 1, "interactions": [interaction]}), name="b.yaml"
    )
    if isinstance(loaded, Failure):
        return str(loaded.failure())
    cassette: CassetteTransport = loaded.unwrap()
    return cassette


def test_cassette_bodies_in_every_stored_form() -> None:
    for stored, expected in (
        ("text é", "text é".encode()),
        ([b"ab", b"cd"], b"abcd"),  # an iterator body, as vcrpy records it
        (None, b""),
    ):
        cassette = _loaded(stored)
        assert isinstance(cassette, CassetteTransport), cassette
        (interaction,) = cassette.interactions
        assert interaction.response.body == expected
        assert interaction.response.headers == (("X", "a"), ("X", "2"))
    assert _loaded(7) == (
        "cassette b.yaml: interactions[0].response.body: expected text or !!binary, found int"
    )
    assert _loaded([b"a", "b"]) == (
        "cassette b.yaml: interactions[0].response.body: expected text or !!binary, found list"
    )


def test_cassette_defaults_and_exact_failures() -> None:
    recorded = [
        {
            "request": {"method": "POST", "uri": "http://h/api/s", "body": f'{{"n":{i}}}'},
            "response": {"status": {"code": 200}, "body": {"string": str(i)}},
        }
        for i in range(3)
    ]
    text = yaml.safe_dump({"version": 1, "interactions": recorded})
    plain = CassetteTransport.from_yaml(text).unwrap()  # bodies ignored, each plays once
    request = HttpRequest("POST", "/s", body=b'{"n":9}')
    sent = [
        plain.send(
            msgspec.structs.replace(
                request, timeout=Timeout(), max_response_bytes=1, operation="op"
            )
        )
        for _ in "abcd"
    ]
    assert [r.unwrap().body for r in sent[:3]] == [b"0", b"1", b"2"]
    miss = sent[3].failure()
    assert (miss.operation, miss.kind, miss.sent) == ("op", "unmatched", False)
    repeats = CassetteTransport.from_yaml(text, allow_repeats=True).unwrap()
    bodies = [
        repeats.send(
            msgspec.structs.replace(
                request, timeout=Timeout(), max_response_bytes=1, operation="op"
            )
        )
        .unwrap()
        .body
        for _ in range(5)
    ]
    assert bodies == [b"0", b"1", b"2", b"2", b"2"]  # then the last match, again
    big = CassetteTransport.from_yaml(text).unwrap()
    too_large = big.send(
        msgspec.structs.replace(request, timeout=Timeout(), max_response_bytes=0, operation="get x")
    )
    assert too_large.failure() == TransportFailed(
        "get x", "too_large", "body exceeds 0 bytes", True
    )


_GET: Final = "get session s"
_SESSION_BODY: Final = b'{"session_id":"s","gpu_event_id":"e"}'


def test_decoding_failures_are_exact_values() -> None:
    redirect = decode(HttpResponse(300, (("Location", TUNNEL),), b""), SESSION, _GET).failure()
    assert redirect == HttpError(
        _GET,
        300,
        "redirect not followed (the API key goes only to the configured server); "
        "check the server URL",
    )
    html = HttpResponse(200, (("content-type", "text/html; charset=utf-8"),), b"<html>")
    assert decode(html, SESSION, _GET).failure() == DecodeFailed(
        _GET, 200, "$", "expected JSON, got text/html; charset=utf-8"
    )
    invalid = HttpResponse(
        422,
        (),
        b'{"detail":[{"type":"missing","loc":["body","machine_id"],"msg":"Field required",'
        b'"input":{}}]}',
    )
    error = error_from(invalid, "create session")
    assert isinstance(error, ValidationFailed)
    assert error.detail == [
        {"loc": ["body", "machine_id"], "msg": "Field required", "type": "missing"}
    ]


def test_only_the_media_type_decides_json_whatever_its_parameters() -> None:
    for media in ("application/json; charset=utf-8; q=1", "Application/JSON", "a/b+json; x=1"):
        response = HttpResponse(200, (("Content-Type", media),), _SESSION_BODY)
        assert decode(response, SESSION, _GET).unwrap().session_id == "s", media


def test_a_jitter_unit_past_one_is_held_at_one() -> None:
    policy = RetryPolicy(backoff=2, jitter=0.5, max_delay=10)
    assert backoff_delay(policy, 1, 1.5) == backoff_delay(policy, 1, 1.0) == 1.0
    assert backoff_delay(policy, 1, -1.0) == 2.0


def test_base_url_edges_are_exact() -> None:
    assert resolve_server("http://127.0.0.1:1/api") == Success("http://127.0.0.1:1/api")
    assert resolve_server("http://127.0.0.1:65535/api/") == Success("http://127.0.0.1:65535/api")
    for port in (0, 65536):
        refused = resolve_server(f"http://127.0.0.1:{port}/api").failure()
        assert refused.problem == "the port must be between 1 and 65535"
    for server in ("http://h/a b", "http://h/\x7f", "http://hé/api"):
        assert resolve_server(server).failure().problem == (
            "a base URL may not hold spaces, control or non-ASCII characters"
        ), server


def _one(response: dict[str, object], uri: str = "http://h/api/x") -> CassetteTransport | str:
    interaction = {"request": {"method": "GET", "uri": uri}, "response": response}
    loaded = CassetteTransport.from_yaml(
        yaml.safe_dump({"version": 1, "interactions": [interaction]}), name="e.yaml"
    )
    if isinstance(loaded, Failure):
        return str(loaded.failure())
    cassette: CassetteTransport = loaded.unwrap()
    return cassette


def test_cassette_status_codes_at_the_edges() -> None:
    for code in (100, 599):
        loaded = _one({"status": {"code": code}, "body": {"string": ""}})
        assert isinstance(loaded, CassetteTransport), loaded
        assert loaded.interactions[0].response.status == code
        assert loaded.interactions[0].response.reason == ""
    for code in (99, 600, True):
        assert _one({"status": {"code": code}}) == (
            "cassette e.yaml: interactions[0].response.status.code: expected an HTTP status "
            f"code, found {code!r}"
        )
    assert _one({"status_code": 0, "content": ""}) == (
        "cassette e.yaml: interactions[0].response.status: expected an HTTP status code, found 0"
    )


def test_cassette_bodies_are_content_decoded_in_every_encoding() -> None:
    data = b'{"session_id":"s"}'
    deflated = zlib.compress(data)
    for encoding, stored in (
        ("x-gzip", gzip.compress(data)),
        ("deflate", deflated),
        (
            "gzip, deflate",
            zlib.compress(gzip.compress(data)),
        ),  # applied in order, undone in reverse
        ("deflate", data),  # already decoded (the vcrpy quirk): kept
    ):
        loaded = _one(
            {
                "status": {"code": 200},
                "headers": {"Content-Encoding": [encoding]},
                "body": {"string": stored},
            }
        )
        assert isinstance(loaded, CassetteTransport), loaded
        assert loaded.interactions[0].response.body == data, encoding


def test_cassette_files_load_with_their_options(tmp_path: Path) -> None:
    recorded = [
        {
            "request": {"method": "POST", "uri": "http://h/proxy/api/s", "body": f'{{"n":{i}}}'},
            "response": {"status": {"code": 200}, "body": {"string": str(i)}},
        }
        for i in range(2)
    ]
    path = tmp_path / "c.yaml"
    path.write_text(yaml.safe_dump({"version": 1, "interactions": recorded}), encoding="utf-8")
    assert CassetteTransport.load(path).failure().where == "interactions[0].request.uri"
    other = HttpRequest("POST", "/s", body=b'{"n":9}')

    def bodies(cassette: CassetteTransport, request: HttpRequest, times: int) -> list[object]:
        return [
            cassette.send(
                msgspec.structs.replace(
                    request, timeout=Timeout(), max_response_bytes=9, operation="op"
                )
            )
            .map(lambda r: r.body)
            .value_or("miss")
            for _ in range(times)
        ]

    plain = CassetteTransport.load(path, base_path="/proxy/api").unwrap()
    assert bodies(plain, other, 3) == [b"0", b"1", "miss"]  # bodies ignored, each plays once
    strict = CassetteTransport.load(path, base_path="/proxy/api", match_body=True).unwrap()
    assert bodies(strict, other, 1) == ["miss"]
    again = CassetteTransport.load(path, base_path="/proxy/api", allow_repeats=True).unwrap()
    assert bodies(again, other, 3) == [b"0", b"1", b"1"]
    missing = CassetteTransport.load(tmp_path / "nope.yaml").failure()
    assert (missing.path, missing.where) == (str(tmp_path / "nope.yaml"), "file")
    binary = tmp_path / "b.yaml"
    binary.write_bytes(b"version: 1\n\xff")
    assert CassetteTransport.load(binary).failure() == CassetteError(
        str(binary), "byte 11", "the file is not UTF-8"
    )
