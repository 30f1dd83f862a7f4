"""What pytest-recording writes holds no key: the plugin masks it (``_recording``) out of the
requests and out of responses that echo it, in every form :func:`key_forms` names.

Added for issue 18: ``filter_headers=["authorization"]`` dropped the request's header, yet a
server echoing it had the key written into the cassette's response (masked only on replay).
The recordings here are real: pytest runs in a subprocess, with pytest-recording and
cdsessions' plugin loaded from their entry points, against a hostile server on 127.0.0.1.
"""

from __future__ import annotations

import gzip
import subprocess
import sys
from pathlib import Path
from typing import Any, Final

import pytest
from returns.result import Success

from cdsessions._core.wire import REDACTED, key_forms
from cdsessions.transports._cassette import CassetteTransport
from cdsessions.transports._recording import _MaskingPersister, masked, tokens
from tests.support import echoes
from tests.support.hostile import Request, answer, hostile

_RECORDING_TEST: Final = """
import os

import pytest

from cdsessions import SessionsClient
from cdsessions.errors import HttpError

NAMES = {names!r}


@pytest.fixture
def vcr_config():
    config = {{"match_on": ["method", "path", "query"]}}  # not the port: it changes
    if os.environ["FILTER"] == "1":
        config["filter_headers"] = ["authorization"]
    return config


@pytest.mark.vcr
@pytest.mark.parametrize("name", NAMES)
def test_echo(name):
    client = SessionsClient({key!r}, server=os.environ["SERVER"], retry=False)
    failure = client.get(name).failure()
    client.close()
    assert isinstance(failure, HttpError), failure
"""


def _by_path(request: Request) -> bytes:
    return echoes.echo(request.target.rsplit("/", 1)[-1])(request)


def _pytest(folder: Path, server: str, *options: str, filtered: bool) -> None:
    env = {"SERVER": server, "FILTER": "1" if filtered else "0", "PATH": "/usr/bin:/bin"}
    done = subprocess.run(
        [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", *options],
        cwd=folder,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert done.returncode == 0, done.stdout + done.stderr


def _record(tmp_path: Path, *, filtered: bool) -> list[Path]:
    (tmp_path / "test_echoes.py").write_text(
        _RECORDING_TEST.format(names=sorted(echoes.ECHOES), key=echoes.KEY)
    )
    with hostile(answer(_by_path, keep_alive=True)) as server:
        _pytest(tmp_path, server.base_url, "--record-mode=once", filtered=filtered)
        assert {r.header("Authorization") for r in server.requests} == {f"Bearer {echoes.KEY}"}
        assert len(server.requests) == len(echoes.ECHOES)
    written = sorted((tmp_path / "cassettes").rglob("*.yaml"))
    assert len(written) == len(echoes.ECHOES)
    return written


def test_a_recorded_echo_of_the_key_is_masked_in_every_cassette(tmp_path: Path) -> None:
    for path in _record(tmp_path, filtered=True):
        data = path.read_bytes()
        assert echoes.leaked_forms(data) == [], path.name
        assert REDACTED.encode() in data, path.name  # masked, not dropped
        assert b"Authorization" not in data
        assert isinstance(CassetteTransport.load(path), Success)
    # ...and what was written still replays: no network (nothing listens now), same failures.
    _pytest(tmp_path, "http://127.0.0.1:9/api", "--block-network", filtered=True)


def test_without_filter_headers_the_recorded_request_header_is_masked_too(
    tmp_path: Path,
) -> None:
    for path in _record(tmp_path, filtered=False):
        text = path.read_text()
        assert echoes.leaked_forms(text) == [], path.name
        assert f"Bearer {REDACTED}" in text  # the request's own header, its token masked


# -- the pieces ---------------------------------------------------------------------------------


def test_tokens_are_the_credentials_without_their_scheme() -> None:
    headers = {"Authorization": ["Bearer abcdefgh1"], "proxy-authorization": "Basic Zm9vOmJhcg=="}
    assert tokens({**headers, "Accept": ["Bearer no"]}) == {"abcdefgh1", "Zm9vOmJhcg=="}
    assert tokens({"Authorization": "bare-token-1"}) == {"bare-token-1"}


def test_masked_reaches_keys_lists_and_bytes_and_leaves_the_rest() -> None:
    forms = key_forms(echoes.KEY)
    value = {echoes.KEY: [echoes.KEY.encode() + b"\xff", (7, None)], "n": 1.5}
    assert masked(value, forms) == {REDACTED: [REDACTED.encode() + b"\xff", (7, None)], "n": 1.5}


class _Saved:
    def __init__(self) -> None:
        self.saved: dict[str, Any] = {}

    def save_cassette(self, cassette_path: Any, cassette_dict: Any, serializer: Any) -> None:
        self.saved = cassette_dict


def _response(body: bytes, *codings: str) -> dict[str, Any]:
    headers = {"Content-Length": [str(len(body))], "Content-Type": ["application/json"]}
    if codings:
        headers["Content-Encoding"] = [", ".join(codings)]
    return {"status": {"code": 401, "message": "x"}, "headers": headers, "body": {"string": body}}


def _saved(response: dict[str, Any]) -> dict[str, Any]:
    inner = _Saved()
    _MaskingPersister(inner, {echoes.KEY}).save_cassette(
        "p", {"requests": [], "responses": [response]}, None
    )
    saved: dict[str, Any] = inner.saved["responses"][0]
    return saved


def test_a_compressed_body_holding_the_key_is_stored_decoded_and_masked() -> None:
    plain = f'{{"detail": "Bearer {echoes.KEY}"}}'.encode()
    saved = _saved(_response(gzip.compress(gzip.compress(plain)), "gzip", "gzip"))
    body = f'{{"detail": "Bearer {REDACTED}"}}'.encode()
    assert saved["body"]["string"] == body
    assert saved["headers"] == {
        "Content-Length": [str(len(body))],
        "Content-Type": ["application/json"],
    }


def test_a_compressed_body_without_the_key_is_kept_byte_for_byte() -> None:
    stored = gzip.compress(b'{"detail": "nothing secret"}')
    assert _saved(_response(stored, "gzip")) == _response(stored, "gzip")


def test_a_masked_body_gets_its_new_content_length() -> None:
    saved = _saved(_response(f"[{echoes.KEY}]".encode()))
    assert saved["body"]["string"] == f"[{REDACTED}]".encode()
    assert saved["headers"]["Content-Length"] == [str(len(f"[{REDACTED}]"))]


@pytest.mark.parametrize("as_text", [False, True], ids=["bytes", "text"])
def test_a_machines_auth_token_in_a_plain_body_is_masked(as_text: bool) -> None:
    # A body vcrpy holds as text may carry a lone surrogate (an undecodable byte it kept): it
    # stays as it was, and the token is masked all the same.
    plain = '{"auth_token": "runner-secret-1", "note": "\udcff"}'
    body = plain if as_text else plain.encode("utf-8", "surrogatepass")
    saved = _saved(_response(b"") | {"body": {"string": body}})["body"]["string"]
    shown = saved if as_text else saved.decode("utf-8", "surrogatepass")
    assert shown == f'{{"auth_token": "{REDACTED}", "note": "\udcff"}}'


def test_a_machines_auth_token_in_a_compressed_body_is_stored_decoded_and_masked() -> None:
    # No key in it: the token alone is reason enough to decode the body and mask it.
    plain = b'{"machine": {"auth_token": "runner-secret-2"}}'
    saved = _saved(_response(gzip.compress(plain), "gzip"))
    body = f'{{"machine": {{"auth_token": "{REDACTED}"}}}}'.encode()
    assert saved["body"]["string"] == body
    assert b"runner-secret-2" not in saved["body"]["string"]
    assert saved["headers"] == {
        "Content-Length": [str(len(body))],
        "Content-Type": ["application/json"],
    }
