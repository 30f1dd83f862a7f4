"""The HTTP fake (``cdsessions/fake/server.py``): it listens on loopback only, refusing any other
host before binding anything."""

from __future__ import annotations

import pytest

from cdsessions._core.servers import is_loopback_host
from cdsessions.fake import FakeService
from cdsessions.fake.server import make_server, serve_in_thread

# Refused before any socket exists. Only TEST-NET addresses (RFC 5737, RFC 3849) are handed to
# the server: even a broken check could not bind them (they are not this machine's), so nothing
# ever listens beyond loopback or looks a name up, whatever the code under test does.
UNBINDABLE = ["192.0.2.1", "198.51.100.7", "2001:db8::1"]


@pytest.mark.parametrize("host", UNBINDABLE)
def test_the_http_fake_never_listens_beyond_loopback(host: str) -> None:
    """Found by applying a deliberate bug the older tests let through."""
    with pytest.raises(ValueError, match="loopback"):
        make_server(FakeService(), host, 0)
    with pytest.raises(ValueError, match="loopback"), serve_in_thread(FakeService(), host):
        pass


@pytest.mark.parametrize(
    "host",
    ["0.0.0.0", "::", "", "192.0.2.1", "example.invalid", "localhost.example.invalid"],  # noqa: S104
)
def test_wildcards_and_other_hosts_are_not_loopback(host: str) -> None:
    """Found by applying a deliberate bug the older tests let through."""
    assert not is_loopback_host(host)


@pytest.mark.parametrize("host", ["127.0.0.1", "127.8.9.10", "::1", "localhost", "LOCALHOST"])
def test_loopback_hosts_are_recognised(host: str) -> None:
    """Found by applying a deliberate bug the older tests let through."""
    assert is_loopback_host(host)
