"""Secret base URLs (a session's ComfyUI tunnel) are masked in urllib3's own log lines: the
transport remembers each one it sends to, and a filter on urllib3's loggers rewrites a record's
message and arguments before any handler sees them."""

from __future__ import annotations

import logging
import uuid

import pytest
from returns.result import Success

from cdsessions._core.timeouts import Timeout
from cdsessions._core.wire import HttpRequest
from cdsessions.transports._secret_urls import MASK
from cdsessions.transports._urllib3 import Urllib3Transport
from tests.support.loopback import Reply, serve


def test_a_secret_urls_path_is_masked_in_urllib3s_request_lines(
    caplog: pytest.LogCaptureFixture,
) -> None:
    secret = f"tunnel-{uuid.uuid4().hex}"
    with serve(lambda _: Reply(200, b"{}")) as server:
        request = HttpRequest(
            "GET",
            "/queue",
            base_url=f"http://127.0.0.1:{server.port}/{secret}",
            secret_url=True,
            timeout=Timeout(5, 5, 10),
            max_response_bytes=1024,
        )
        with caplog.at_level(logging.DEBUG, logger="urllib3"):
            sent = Urllib3Transport().send(request)
    assert isinstance(sent, Success), sent
    # urllib3 logs its request line with %-arguments: the path is in a record's args.
    lines = [r.getMessage() for r in caplog.records if r.name == "urllib3.connectionpool"]
    requested = [line for line in lines if '"GET ' in line]
    assert requested, lines
    assert all(f"/{MASK}/queue" in line for line in requested), requested
    assert secret not in caplog.text
