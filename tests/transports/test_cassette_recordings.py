"""Recorded cassettes: replayed by pytest-recording and by ``CassetteTransport``, with the same
results; cassettes vcrpy wrote from other HTTP libraries replay too; bad cassettes are clear
errors; no cassette holds a key or a session url.

Recording. ``nox -s cassettes`` runs the ``test_replay`` tests below with
``--record-mode=rewrite``: each scenario then runs through :class:`Urllib3Transport` against the
fake server on 127.0.0.1 (a fresh, deterministic ``FakeService`` per cassette), and
pytest-recording writes ``cassettes/<scenario>.yaml``. With ``CDSESSIONS_RECORD_REAL=1`` (which
only ``nox -s cassettes`` sets, and only when ``COMFY_DEPLOY_API_KEY`` and
``COMFY_DEPLOY_MACHINE_ID`` are given) the same scenarios run against the production server
instead; the default test run never records and never leaves 127.0.0.1.

What is written, and why:

- the ``Authorization`` header is dropped (``filter_headers``);
- every non-null ``url`` / ``tunnel_url`` in a response body becomes :data:`URL_PLACEHOLDER`:
  a session url is an unauthenticated tunnel into a paid GPU, so it must not be committed, while
  keeping null-versus-set keeps ``Session.ready`` replaying faithfully. The fake's urls are
  harmless, but one rule for both recording targets keeps the leak check simple and strict;
- ``Date`` and ``Server`` response headers are dropped and the loopback host:port is pinned to
  ``127.0.0.1:3011`` so that re-recording gives identical files;
- a real machine id is replaced by the fake's machine id, so replays need no configuration.
"""

from __future__ import annotations

import gzip
import json
import os
import re
import subprocess
import sys
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Final
from urllib.parse import urlsplit, urlunsplit

import httpx
import pytest
import vcr
import yaml
from returns.result import Failure, Result, Success

from cdsessions import SessionsClient
from cdsessions._core.decoding import SESSION, decode
from cdsessions._core.logs import collected
from cdsessions._core.servers import LOCAL_PORT
from cdsessions._core.wire import HttpResponse
from cdsessions.errors import ApiError, DecodeFailed, HttpError, TransportFailed
from cdsessions.fake import DEFAULT_MACHINE_ID, FakeService, ManualClock
from cdsessions.fake.server import serve_in_thread
from cdsessions.models import CreateSessionBody, MachineGPU
from cdsessions.transports._cassette import CassetteError, CassetteTransport
from cdsessions.transports._urllib3 import Urllib3Transport
from tests.support.loopback import Received, Reply, serve

ROOT: Final = Path(__file__).resolve().parents[2]
CASSETTES: Final = ROOT / "cassettes"
#: The key the recordings are made with (the fake accepts only it): it must never be written.
RECORDING_KEY: Final = "cdsessions-recording-key-7f3a9c"
URL_PLACEHOLDER: Final = "https://session-url.redacted.invalid"
UNKNOWN_SESSION: Final = "00000000-0000-4000-8000-00000000dead"
UNKNOWN_MACHINE: Final = "00000000-0000-4000-8000-00000000beef"
#: Nothing listens here: replays through vcrpy must never reach a socket.
REPLAY_BASE: Final = "http://127.0.0.1:9/api"
#: CassetteTransport replays on any base URL: another host and another base path on purpose.
ELSEWHERE: Final = "https://replay.invalid/v2"
_PINNED_HOST: Final = f"127.0.0.1:{LOCAL_PORT}"
_URL_FIELDS: Final = frozenset({"url", "tunnel_url"})

Outcome = Result[Any, ApiError]
MakeClient = Callable[[str], SessionsClient]


# -- the scenarios: every operation's success and failure cases -----------------------------


def _created(result: Outcome) -> str | None:
    return result.unwrap().session_id if isinstance(result, Success) else None


def _with_session(
    make: MakeClient, machine_id: str, then: Callable[[SessionsClient, str], list[Outcome]]
) -> list[Outcome]:
    """Create a session, run ``then`` on it, and always cancel it (real sessions cost money)."""
    client = make(RECORDING_KEY)
    created = client.create(CreateSessionBody(machine_id=machine_id, timeout=5))
    session_id = _created(created)
    if session_id is None:
        return [created]
    return [created, *then(client, session_id), client.cancel(session_id)]


def _create_ok(make: MakeClient, machine_id: str) -> list[Outcome]:
    return _with_session(make, machine_id, lambda client, sid: [])


def _create_unknown_machine(make: MakeClient, machine_id: str) -> list[Outcome]:
    return [make(RECORDING_KEY).create(CreateSessionBody(machine_id=UNKNOWN_MACHINE))]


def _create_unknown_gpu(make: MakeClient, machine_id: str) -> list[Outcome]:
    body = CreateSessionBody(machine_id=machine_id, gpu=MachineGPU("RTX4090"))
    return [make(RECORDING_KEY).create(body)]


def _get_ok(make: MakeClient, machine_id: str) -> list[Outcome]:
    # Twice: the first answer has url null (starting), the second the (redacted) url.
    return _with_session(make, machine_id, lambda client, sid: [client.get(sid), client.get(sid)])


def _get_not_found(make: MakeClient, machine_id: str) -> list[Outcome]:
    return [make(RECORDING_KEY).get(UNKNOWN_SESSION)]


def _list_ok(make: MakeClient, machine_id: str) -> list[Outcome]:
    return _with_session(
        make, machine_id, lambda client, sid: [client.list(machine_id), client.list()]
    )


def _list_empty(make: MakeClient, machine_id: str) -> list[Outcome]:
    return [make(RECORDING_KEY).list(UNKNOWN_MACHINE)]


def _cancel_ok(make: MakeClient, machine_id: str) -> list[Outcome]:
    client = make(RECORDING_KEY)
    created = client.create(CreateSessionBody(machine_id=machine_id, timeout=5))
    session_id = _created(created)
    if session_id is None:
        return [created]
    return [created, client.cancel(session_id, wait_for_shutdown=True), client.cancel(session_id)]


def _cancel_not_found(make: MakeClient, machine_id: str) -> list[Outcome]:
    return [make(RECORDING_KEY).cancel(UNKNOWN_SESSION)]


def _extend_ok(make: MakeClient, machine_id: str) -> list[Outcome]:
    return _with_session(
        make, machine_id, lambda client, sid: [client.extend(sid, 10, check_cap=False)]
    )


def _extend_not_found(make: MakeClient, machine_id: str) -> list[Outcome]:
    return [make(RECORDING_KEY).extend(UNKNOWN_SESSION, 5, check_cap=False)]


def _logs_ok(make: MakeClient, machine_id: str) -> list[Outcome]:
    # A recorded log stream (an SSE body) replays as a stream: a snapshot and a follower.
    return _with_session(
        make,
        machine_id,
        lambda client, sid: [client.logs(sid), collected(client.follow_logs(sid))],
    )


def _logs_not_found(make: MakeClient, machine_id: str) -> list[Outcome]:
    return [make(RECORDING_KEY).logs(UNKNOWN_SESSION)]


def _unauthorized(make: MakeClient, machine_id: str) -> list[Outcome]:
    client = make("not-a-valid-key")
    return [client.get(UNKNOWN_SESSION), client.list()]


@dataclass(frozen=True)
class Scenario:
    run: Callable[[MakeClient, str], list[Outcome]]
    #: What each call must give: "ok", or the HTTP status of the failure.
    expect: tuple[str | int, ...]


SCENARIOS: Final[Mapping[str, Scenario]] = {
    "create_ok": Scenario(_create_ok, ("ok", "ok")),
    "create_unknown_machine": Scenario(_create_unknown_machine, (404,)),
    "create_unknown_gpu": Scenario(_create_unknown_gpu, (422,)),
    "get_ok": Scenario(_get_ok, ("ok", "ok", "ok", "ok")),
    "get_not_found": Scenario(_get_not_found, (404,)),
    "list_ok": Scenario(_list_ok, ("ok", "ok", "ok", "ok")),
    "list_empty": Scenario(_list_empty, ("ok",)),
    "cancel_ok": Scenario(_cancel_ok, ("ok", "ok", 404)),
    "cancel_not_found": Scenario(_cancel_not_found, (404,)),
    "extend_ok": Scenario(_extend_ok, ("ok", "ok", "ok")),
    "extend_not_found": Scenario(_extend_not_found, (404,)),
    "unauthorized": Scenario(_unauthorized, (401, 401)),
    "logs_ok": Scenario(_logs_ok, ("ok", "ok", "ok", "ok")),
    "logs_not_found": Scenario(_logs_not_found, (404,)),
}


def _summary(results: list[Outcome]) -> tuple[str | int, ...]:
    def one(result: Outcome) -> str | int:
        if isinstance(result, Success):
            return "ok"
        error = result.failure()
        return error.status if isinstance(error, HttpError) else type(error).__name__

    return tuple(one(result) for result in results)


# -- recording configuration (pytest-recording fixtures) ------------------------------------


def _real_machine() -> str | None:
    return os.environ.get("COMFY_DEPLOY_MACHINE_ID") or None


def _replace_machine(text: str) -> str:
    real = _real_machine()
    return text.replace(real, DEFAULT_MACHINE_ID) if real else text


def _stable_request(request: Any) -> Any:
    """Pin a loopback recording's host:port (the fake's port is random) and hide a real
    machine id; vcrpy applies this both when recording and when matching on replay."""
    parts = urlsplit(request.uri)
    if parts.hostname in ("127.0.0.1", "localhost"):
        parts = parts._replace(netloc=_PINNED_HOST)
    request.uri = _replace_machine(urlunsplit(parts))
    if isinstance(request.body, bytes):
        request.body = _replace_machine(request.body.decode()).encode()
    return request


def _redact_urls(value: Any) -> Any:
    if isinstance(value, dict):
        return {
            key: URL_PLACEHOLDER
            if key in _URL_FIELDS and isinstance(item, str)
            else _redact_urls(item)
            for key, item in value.items()
        }
    if isinstance(value, list):
        return [_redact_urls(item) for item in value]
    return value


def _scrub_response(response: dict[str, Any]) -> dict[str, Any]:
    """What is written for a response (see the module docstring)."""
    body = response["body"]["string"]
    try:
        parsed = json.loads(body)
    except ValueError:
        parsed = None
    if parsed is not None:
        text = _replace_machine(json.dumps(_redact_urls(parsed), separators=(",", ":")))
        body = text.encode()
        response["body"]["string"] = body
    headers = {
        name: values
        for name, values in response["headers"].items()
        if name.lower() not in ("date", "server", "set-cookie")
    }
    for name in headers:
        if name.lower() == "content-length":
            headers[name] = [str(len(body))]
    response["headers"] = headers
    return response


@pytest.fixture
def vcr_config() -> dict[str, Any]:
    return {
        "filter_headers": ["authorization"],
        "match_on": ["method", "path", "query"],  # any host: the fake's port is random
        "before_record_request": _stable_request,
        "before_record_response": _scrub_response,
    }


@pytest.fixture(scope="module")
def vcr_cassette_dir() -> str:
    return str(CASSETTES)


@pytest.fixture
def default_cassette_name(request: pytest.FixtureRequest) -> str:
    return str(request.node.callspec.params["scenario"])


@dataclass(frozen=True)
class Target:
    server: str
    key: str
    machine_id: str
    recording: bool


@pytest.fixture
def target(record_mode: str) -> Iterator[Target]:
    """Where scenario traffic goes: nowhere on replay (vcrpy answers), else the fake server on
    127.0.0.1, or production when ``nox -s cassettes`` was given a key and a machine id."""
    if record_mode == "none":
        yield Target(REPLAY_BASE, RECORDING_KEY, DEFAULT_MACHINE_ID, recording=False)
        return
    if os.environ.get("CDSESSIONS_RECORD_REAL") == "1":  # only `nox -s cassettes` sets this
        key, machine = os.environ["COMFY_DEPLOY_API_KEY"], os.environ["COMFY_DEPLOY_MACHINE_ID"]
        yield Target("production", key, machine, recording=True)
        return
    fake = FakeService(keys={RECORDING_KEY: "user_recorder"}, clock=ManualClock())
    with serve_in_thread(fake) as base_url:
        yield Target(base_url, RECORDING_KEY, DEFAULT_MACHINE_ID, recording=True)


def _client_factory(server: str, transport: Any, real_key: str | None = None) -> MakeClient:
    def make(key: str) -> SessionsClient:
        # Recording against a real server uses the real key in place of the recording key.
        chosen = real_key if real_key is not None and key == RECORDING_KEY else key
        return SessionsClient(chosen, server=server, transport=transport)

    return make


def _cassette(scenario: str) -> CassetteTransport:
    loaded = CassetteTransport.load(CASSETTES / f"{scenario}.yaml")
    assert isinstance(loaded, Success), loaded
    cassette: CassetteTransport = loaded.unwrap()
    return cassette


# -- replaying every cassette both ways ----------------------------------------------------


@pytest.mark.vcr
@pytest.mark.parametrize("scenario", sorted(SCENARIOS))
def test_replay(scenario: str, target: Target) -> None:
    """Recorded through urllib3: pytest-recording (vcrpy) and CassetteTransport replay it
    with the same decoded results."""
    spec = SCENARIOS[scenario]
    transport = Urllib3Transport()
    real_key = target.key if target.server == "production" else None
    through_vcrpy = spec.run(_client_factory(target.server, transport, real_key), target.machine_id)
    transport.close()
    if target.recording:  # the cassette is written when this test ends
        if target.server != "production":
            assert _summary(through_vcrpy) == spec.expect
        return
    assert _summary(through_vcrpy) == spec.expect
    cassette = _cassette(scenario)
    through_cassette = spec.run(_client_factory(ELSEWHERE, cassette), target.machine_id)
    assert through_cassette == through_vcrpy
    assert cassette.all_played, cassette.unplayed


def test_every_scenario_has_a_cassette_and_nothing_else_is_there() -> None:
    assert sorted(p.stem for p in CASSETTES.glob("*.yaml")) == sorted(SCENARIOS)


def _interactions() -> Iterator[tuple[Path, dict[str, Any]]]:
    for path in sorted(CASSETTES.glob("*.yaml")):
        document = yaml.safe_load(path.read_text(encoding="utf-8"))
        for interaction in document["interactions"]:
            yield path, interaction


def test_every_operation_is_recorded_succeeding_and_failing() -> None:
    routes = {
        ("POST", r"/api/session"): "create",
        ("GET", r"/api/session/[^/]+"): "get",
        ("GET", r"/api/sessions"): "list",
        ("DELETE", r"/api/session/[^/]+"): "cancel",
        ("POST", r"/api/session/[^/]+/increase-timeout"): "extend",
        ("GET", r"/api/v2/stream-logs"): "logs",
    }
    seen: set[tuple[str, bool]] = set()
    for _, interaction in _interactions():
        request, status = interaction["request"], interaction["response"]["status"]["code"]
        path = urlsplit(request["uri"]).path
        for (method, pattern), name in routes.items():
            if request["method"] == method and re.fullmatch(pattern, path):
                seen.add((name, status < 300))
    assert seen == {(name, ok) for name in routes.values() for ok in (True, False)}


def test_no_cassette_holds_a_key_or_a_session_url() -> None:
    secrets = [RECORDING_KEY, "Bearer "]
    if os.environ.get("COMFY_DEPLOY_API_KEY"):
        secrets.append(os.environ["COMFY_DEPLOY_API_KEY"])
    for path in sorted(CASSETTES.glob("*.yaml")):
        text = path.read_text(encoding="utf-8")
        for secret in secrets:
            assert secret not in text, f"{path.name} holds a secret"
        assert not re.search(r"\.modal\.(host|run|localhost)", text), path.name
    for path, interaction in _interactions():
        names = {name.lower() for name in interaction["request"]["headers"]}
        assert not names & {"authorization", "proxy-authorization", "cookie"}, path.name
        body = interaction["response"]["body"]["string"]
        if body.startswith(("{", "[")):
            for key, value in _fields(json.loads(body)):
                if key in _URL_FIELDS:
                    assert value in (None, URL_PLACEHOLDER), f"{path.name}: {key} not redacted"


def _fields(value: Any) -> Iterator[tuple[str, Any]]:
    if isinstance(value, dict):
        for key, item in value.items():
            yield key, item
            yield from _fields(item)
    elif isinstance(value, list):
        for item in value:
            yield from _fields(item)


def test_the_scrubber_redacts_urls_and_keeps_null() -> None:
    response = {
        "status": {"code": 200, "message": "OK"},
        "headers": {"Content-Length": ["999"], "Date": ["today"]},
        "body": {
            "string": b'[{"url":"https://x.r5.modal.host","tunnel_url":null,"n":{"url":"u"}}]'
        },
    }
    scrubbed = _scrub_response(response)
    body = scrubbed["body"]["string"]
    assert json.loads(body) == [
        {"url": URL_PLACEHOLDER, "tunnel_url": None, "n": {"url": URL_PLACEHOLDER}}
    ]
    assert scrubbed["headers"] == {"Content-Length": [str(len(body))]}


# -- cassettes vcrpy wrote from other clients ----------------------------------------------

_SESSION_JSON: Final = (
    b'{"id":"abc","session_id":"abc","gpu_event_id":"e1","url":null,"gpu":"A10G",'
    b'"created_at":"2025-11-02T10:00:00Z","timeout":15,"timeout_end":"2025-11-02T10:15:00",'
    b'"status":"running","org_id":"None"}'
)


def _server_script(received: Received) -> Reply:
    if received.target == "/api/session/abc":  # gzip on the wire, as CDNs do
        return Reply(
            200,
            gzip.compress(_SESSION_JSON),
            (("Content-Type", "application/json"), ("Content-Encoding", "gzip")),
        )
    if received.target.startswith("/api/sessions"):
        return Reply(200, b"[" + _SESSION_JSON + b"]")
    if received.target == "/api/session/bin":  # not UTF-8: stored as !!binary
        return Reply(200, bytes(range(256)), (("Content-Type", "application/octet-stream"),))
    return Reply(404, b'{"detail":"GPUEvent not found"}')


def _as_http_response(response: httpx.Response) -> HttpResponse:
    return HttpResponse(
        response.status_code, tuple(response.headers.multi_items()), response.content
    )


def test_a_vcrpy_cassette_of_httpx_traffic_replays_through_cassette_transport(
    tmp_path: Path,
) -> None:
    path = tmp_path / "httpx.yaml"
    recorder = vcr.VCR(record_mode="all", filter_headers=["authorization"])
    auth = {"Authorization": "Bearer k"}
    with serve(_server_script) as server, recorder.use_cassette(str(path)):
        http = httpx.Client(base_url=server.base_url, headers=auth)
        seen = {
            "get": http.get("/session/abc"),
            "missing": http.get("/session/nope"),
            "list": http.get("/sessions", params={"machine_id": "m1"}),
            "binary": http.get("/session/bin"),
        }
        http.close()
    text = path.read_text(encoding="utf-8")
    assert "!!binary" in text
    assert "Bearer" not in text
    cassette = CassetteTransport.load(path).unwrap()
    client = SessionsClient("k", server=ELSEWHERE, transport=cassette)
    got = client.get("abc")
    assert got == decode(_as_http_response(seen["get"]), SESSION, "get session abc")
    assert got.unwrap().timeout == 15
    missing = client.get("nope")
    assert isinstance(missing, Failure)
    assert missing.failure() == HttpError("get session nope", 404, "GPUEvent not found")
    listed = client.list("m1").unwrap()
    assert [s.session_id for s in listed] == ["abc"]
    binary = client.get("bin")
    assert isinstance(binary, Failure)
    assert isinstance(binary.failure(), DecodeFailed)  # octet-stream, kept byte for byte:
    assert cassette.interactions[3].response.body == bytes(range(256))
    assert cassette.all_played


def test_the_vcrpy_urllib3_gzip_quirk_is_handled(tmp_path: Path) -> None:
    """vcrpy + urllib3 2.x store a gzip body already decoded under Content-Encoding: gzip."""
    path = tmp_path / "urllib3.yaml"
    with serve(_server_script) as server, vcr.VCR(record_mode="all").use_cassette(str(path)):
        recorded = SessionsClient("k", server=server.base_url).get("abc")
    stored = yaml.safe_load(path.read_text(encoding="utf-8"))["interactions"][0]["response"]
    assert stored["headers"]["Content-Encoding"] == ["gzip"]
    replayed = SessionsClient(
        "k", server=ELSEWHERE, transport=CassetteTransport.load(path).unwrap()
    )
    assert recorded.unwrap().session_id == "abc"
    assert replayed.get("abc") == recorded


@pytest.mark.parametrize("stored_gzipped", [True, False])
def test_gzip_bodies_are_decoded_only_when_they_are_gzip(stored_gzipped: bool) -> None:
    # vcrpy writes bytes as !!binary and text as text: the quirk leaves decoded text under gzip.
    body = gzip.compress(_SESSION_JSON) if stored_gzipped else _SESSION_JSON.decode()
    document = {
        "version": 1,
        "interactions": [
            {
                "request": {
                    "method": "GET",
                    "uri": "https://h/api/session/abc",
                    "body": None,
                    "headers": {},
                },
                "response": {
                    "status": {"code": 200, "message": "OK"},
                    "headers": {"Content-Encoding": ["gzip"], "Content-Type": ["application/json"]},
                    "body": {"string": body},
                },
            }
        ],
    }
    text = yaml.safe_dump(document)
    assert ("!!binary" in text) is stored_gzipped
    cassette = CassetteTransport.from_yaml(text).unwrap()
    client = SessionsClient("k", server=ELSEWHERE, transport=cassette)
    assert client.get("abc").unwrap().gpu_event_id == "e1"


# -- malformed cassettes -------------------------------------------------------------------

_GOOD_REQUEST: Final = (
    "request: {method: GET, uri: 'http://h/api/session/a', body: null, headers: {}}"
)
_MALFORMED: Final = [
    ("version: 1\ninteractions: [\n", "line 3, column 1", "expected"),
    ("- a\n- b\n", "document", "expected a mapping"),
    ("interactions: []\n", "version", "not a VCR cassette"),
    ("version: 2\ninteractions: []\n", "version", "not supported"),
    ("version: 1\n", "interactions", "expected a list"),
    ("version: 1\ninteractions: [7]\n", "interactions[0]", "expected a mapping"),
    (
        "version: 1\ninteractions:\n- request: {uri: 'http://h/x'}\n  response: {}\n",
        "interactions[0].request.method",
        "expected text",
    ),
    (
        f"version: 1\ninteractions:\n- {_GOOD_REQUEST}\n  response: {{status: {{code: 999}}}}\n",
        "interactions[0].response.status.code",
        "status code",
    ),
    (
        f"version: 1\ninteractions:\n- {_GOOD_REQUEST}\n  response:\n    status: {{code: 200}}\n"
        "    headers: {X: [{a: 1}]}\n    body: {string: ''}\n",
        "interactions[0].response.headers.X",
        "expected text",
    ),
    (
        f"version: 1\ninteractions:\n- {_GOOD_REQUEST}\n  response:\n    status: {{code: 200}}\n"
        "    headers: {Content-Encoding: [gzip]}\n    body: {string: !!binary 'H4sIAAAA'}\n",
        "interactions[0].response.body",
        "corrupt",
    ),
    (
        "version: 1\ninteractions:\n- !!python/object/apply:os.system ['true']\n",
        "line 3, column 3",
        "constructor",
    ),
]


@pytest.mark.parametrize(("text", "where", "problem"), _MALFORMED)
def test_a_malformed_cassette_is_a_clear_error_naming_file_and_place(
    tmp_path: Path, text: str, where: str, problem: str
) -> None:
    path = tmp_path / "bad.yaml"
    path.write_text(text, encoding="utf-8")
    loaded = CassetteTransport.load(path)
    assert isinstance(loaded, Failure)
    error = loaded.failure()
    assert isinstance(error, CassetteError)
    assert (error.path, error.where) == (str(path), where), error
    assert problem in error.problem, error
    assert str(path) in str(error)
    assert where in str(error)


def test_a_missing_or_binary_file_is_a_clear_error(tmp_path: Path) -> None:
    missing = CassetteTransport.load(tmp_path / "nope.yaml")
    assert isinstance(missing, Failure)
    assert missing.failure().where == "file"
    assert "No such file" in missing.failure().problem
    binary = tmp_path / "binary.yaml"
    binary.write_bytes(b"version: 1\n\xff\xfe")
    error = CassetteTransport.load(binary)
    assert isinstance(error, Failure)
    assert "not UTF-8" in str(error.failure())


def test_without_pyyaml_loading_says_what_to_install(tmp_path: Path) -> None:
    path = tmp_path / "c.yaml"
    path.write_text("version: 1\ninteractions: []\n", encoding="utf-8")
    code = (
        "import sys; sys.modules['yaml'] = None\n"  # as if PyYAML were not installed
        "import cdsessions\n"
        f"print(cdsessions.transports.CassetteTransport.load({str(path)!r}).failure())\n"
    )
    done = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=False, timeout=60
    )
    assert done.returncode == 0, done.stderr
    assert "pip install 'cdsessions[cassette]'" in done.stdout
    assert str(path) in done.stdout


def test_an_unmatched_request_is_a_transport_failure_naming_the_closest() -> None:
    cassette = _cassette("get_not_found")
    client = SessionsClient("k", server=ELSEWHERE, transport=cassette)
    result = client.get("some-other-id")
    assert isinstance(result, Failure)
    error = result.failure()
    assert isinstance(error, TransportFailed)
    assert (error.kind, error.sent) == ("unmatched", False)
    assert f"/api/session/{UNKNOWN_SESSION}" in error.problem
