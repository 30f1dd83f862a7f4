"""The loopback rule and the server constants: one home, one answer wherever they are used.

``is_loopback_host`` decides both where the API key may go over plain http (the client, the
CLI's ``--server``) and what the fake server may bind (``make_server``, ``fake-server --host``).
Every spelling of a host gets the same answer from each of those, and that answer is the one an
independent reading (``socket.inet_pton``, strict) gives.
"""

from __future__ import annotations

import ipaddress
import os
import socket
import subprocess
import sys
from typing import Final
from unittest import mock

import pytest
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st
from returns.result import Failure, Success

from cdsessions import SessionsClient
from cdsessions._core.servers import (
    API_PREFIX,
    LOCAL_PORT,
    SERVERS,
    is_loopback,
    is_loopback_host,
    refuse_plain_http,
    resolve_server,
)
from cdsessions.fake.server import FakeHTTPServer, make_server, serve_in_thread

_MAPPED_PREFIX: Final = b"\0" * 10 + b"\xff\xff"
_IPV6_LOOPBACK: Final = b"\0" * 15 + b"\1"


def _has_ipv6_loopback() -> bool:
    try:
        with socket.socket(socket.AF_INET6) as probe:
            probe.bind(("::1", 0))
    except OSError:
        return False
    return True


HAS_IPV6: Final = _has_ipv6_loopback()


def _independent(host: str) -> bool:
    """The rule read another way: ``localhost`` in any case, or what the C library's strict
    ``inet_pton`` parses as 127.0.0.0/8 or ::1 (IPv4-mapped too); an IPv6 one may be bracketed."""
    families: tuple[socket.AddressFamily, ...] = (socket.AF_INET, socket.AF_INET6)
    if host[:1] == "[" and host[-1:] == "]":
        host, families = host[1:-1], (socket.AF_INET6,)
    elif host.isascii() and host.lower() == "localhost":
        return True
    for family in families:
        try:
            packed = socket.inet_pton(family, host)
        except (OSError, ValueError):  # ValueError: NUL or non-ASCII characters
            continue
        if packed.startswith(_MAPPED_PREFIX):
            packed = packed[len(_MAPPED_PREFIX) :]
        return packed[0] == 127 if len(packed) == 4 else packed == _IPV6_LOOPBACK
    return False


def _in_url(host: str) -> str:
    """``host`` as the host of a URL: an IPv6 literal in brackets, anything else as it is."""
    bracketed = host.startswith("[") and host.endswith("]")
    return f"[{host}]" if ":" in host and not bracketed else host


def _bound_host(server: FakeHTTPServer) -> str:
    return str(server.server_address[0])


# Hosts, each written many ways: the way it is usually written, and the ways a careless rule
# gets wrong (legacy shorthands, mapped forms, case, a trailing dot, IDNA, suffixes, zones).
_ADDRESSES: Final = [
    "127.0.0.1",
    "127.8.9.10",
    "127.255.255.254",
    "::1",
    "localhost",
    "10.0.0.1",
    "192.0.2.1",
    "128.0.0.1",
    "0.0.0.0",  # noqa: S104
    "::",
    "::2",
    "2001:db8::1",
]


def _fullwidth(text: str) -> str:
    """``text`` in fullwidth forms (U+FF01...), which IDNA maps back to ASCII."""
    return "".join(chr(ord(c) + 0xFEE0) if "!" <= c <= "~" else c for c in text)


def _spellings(address: str) -> list[str]:
    forms = [address, address.upper(), f"[{address}]", address + ".", "evil." + address]
    forms += [address + ".evil", address + "%lo", " " + address, _fullwidth(address)]
    forms += ["xn--" + address, address.replace("l", "L", 1)]
    try:
        parsed = ipaddress.ip_address(address)
    except ValueError:
        return forms
    if isinstance(parsed, ipaddress.IPv4Address):
        a, b, c, d = parsed.packed
        forms += [
            f"::ffff:{address}",
            f"[::ffff:{address}]",
            f"::FFFF:{a * 256 + b:x}:{c * 256 + d:x}",
            f"0:0:0:0:0:ffff:{address}",
            f"::{address}",  # IPv4-compatible (deprecated): not the IPv4 address
            f"{a}.{int.from_bytes(parsed.packed[1:], 'big')}",  # 127.1 style
            f"0x{a:x}.{b}.{c}.{d}",
            f"0{a:o}.{b}.{c}.{d}",
            str(int(parsed)),
            f"{a:03}.{b:03}.{c:03}.{d:03}",
        ]
    else:
        forms += [parsed.exploded, f"[{parsed.exploded.upper()}]"]
    return forms


HOSTS = st.one_of(
    st.sampled_from(_ADDRESSES).flatmap(lambda a: st.sampled_from(_spellings(a))),
    st.text(alphabet="0123456789abcdefxlohstLOCAHST.:[]%", max_size=24),
    st.text(max_size=12),
)


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(host=HOSTS)
@example(host="127.0.0.1")
@example(host="127.1")
@example(host="0x7f.1")
@example(host="0x7f.0.0.1")
@example(host="2130706433")
@example(host="127.000.000.001")
@example(host="::ffff:127.0.0.1")
@example(host="[::ffff:127.0.0.1]")
@example(host="::ffff:7f00:1")
@example(host="::ffff:10.0.0.1")
@example(host="::127.0.0.1")
@example(host="::1")
@example(host="[::1]")
@example(host="0:0:0:0:0:0:0:1")
@example(host="::1%lo")
@example(host="localhost")
@example(host="LOCALHOST")
@example(host="localhost.")
@example(host="localhost.evil.com")
@example(host="evil.localhost")
@example(host="127.0.0.1.evil")
@example(host="127.evil.com")
@example(host=_fullwidth("localhost"))  # IDNA would map it to "localhost"
@example(host=_fullwidth("127.0.0.1"))
@example(host="xn--localhost")
@example(host="[127.0.0.1]")
@example(host="[localhost]")
@example(host="")
@example(host="0.0.0.0")  # noqa: S104
@example(host="::")
def test_every_spelling_of_a_host_gets_one_answer_wherever_the_rule_is_used(host: str) -> None:
    loopback = is_loopback_host(host)
    assert loopback == _independent(host)

    # The client: the API key goes over plain http exactly to the hosts the rule accepts.
    resolved = resolve_server(f"http://{_in_url(host)}:{LOCAL_PORT}{API_PREFIX}")
    if isinstance(resolved, Success):
        url = resolved.unwrap()
        assert is_loopback(url) == loopback
        assert isinstance(refuse_plain_http(url, allowed=False), Success) == loopback

    # The fake server binds exactly those hosts. A host the rule refuses must never reach a
    # socket: binding is made to fail loudly, so even a broken check listens nowhere.
    if not loopback:
        with (
            mock.patch.object(FakeHTTPServer, "server_bind", side_effect=AssertionError),
            pytest.raises(ValueError, match="only binds loopback"),
        ):
            make_server(host=host, port=0)
        return
    if ":" in host and not HAS_IPV6:
        return
    server = make_server(host=host, port=0)
    try:
        assert is_loopback_host(_bound_host(server))
        assert ipaddress.ip_address(_bound_host(server)).is_loopback
        assert is_loopback(server.base_url)
    finally:
        server.server_close()


@pytest.mark.parametrize(
    ("host", "loopback"),
    [
        ("::ffff:127.0.0.1", True),  # the IPv4-mapped form of 127.0.0.1 is 127.0.0.1
        ("[::ffff:127.0.0.1]", True),
        ("::ffff:127.200.0.9", True),
        ("::ffff:10.0.0.1", False),
        ("::1", True),
        ("[::1]", True),
        ("LOCALHOST", True),
        ("localhost.", False),  # absolute: the resolver may ask DNS
        ("127.1", False),  # only inet_aton's legacy shorthand reads it as 127.0.0.1
        ("0x7f.1", False),
        ("127.0.0.1.evil", False),
        (_fullwidth("localhost"), False),
        ("::1%lo", False),
    ],
)
def test_the_edge_cases_are_decided_once(host: str, loopback: bool) -> None:
    assert is_loopback_host(host) is loopback


def test_the_constants_have_one_home_and_the_local_server_is_built_from_them() -> None:
    assert SERVERS["local"] == f"http://localhost:{LOCAL_PORT}{API_PREFIX}"
    assert all(url.endswith(API_PREFIX) for url in SERVERS.values())
    assert (LOCAL_PORT, API_PREFIX) == (3011, "/api")
    with serve_in_thread() as base_url:
        assert base_url.endswith(API_PREFIX)


@pytest.mark.skipif(not HAS_IPV6, reason="this machine has no IPv6 loopback")
@pytest.mark.parametrize("host", ["::1", "[::1]"])
def test_the_fake_server_binds_ipv6_loopback_and_a_client_reaches_it(host: str) -> None:
    """Issue #18: ``::1`` was accepted as loopback, then could not be bound (an IPv4 socket)."""
    with serve_in_thread(host=host) as base_url:
        assert base_url.startswith("http://[::1]:")
        with SessionsClient("sk-ipv6", server=base_url, retry=False) as client:
            assert isinstance(client.list(timeout=5), Success)


def test_an_ipv4_mapped_loopback_host_binds_as_the_ipv4_address() -> None:
    with serve_in_thread(host="::ffff:127.0.0.1") as base_url:
        assert base_url.startswith("http://127.0.0.1:")
        with SessionsClient("sk-mapped", server=base_url, retry=False) as client:
            assert isinstance(client.list(timeout=5), Success)


def _fake_server_command(*args: str) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [sys.executable, "-m", "cdsessions", "fake-server", "--port", "0", "--quiet", *args],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env={**os.environ, "PYTHONUNBUFFERED": "1"},
    )


@pytest.mark.skipif(not HAS_IPV6, reason="this machine has no IPv6 loopback")
def test_the_fake_server_command_binds_ipv6_loopback() -> None:
    command = _fake_server_command("--host", "::1")
    try:
        assert command.stdout is not None
        base_url = command.stdout.readline().strip()
        assert base_url.startswith("http://[::1]:"), command.stderr and command.stderr.read()
        with SessionsClient("sk-cli", server=base_url, retry=False) as client:
            assert isinstance(client.list(timeout=5), Success)
    finally:
        command.terminate()
        command.communicate(timeout=30)


@pytest.mark.parametrize("host", ["127.1", "localhost.", "0.0.0.0", "::ffff:10.0.0.1"])  # noqa: S104
def test_the_fake_server_command_refuses_what_the_rule_refuses_up_front(host: str) -> None:
    command = _fake_server_command("--host", host)
    out, err = command.communicate(timeout=60)
    assert command.returncode == 2  # usage: nothing was bound
    assert out == ""
    assert "loopback" in err


def test_a_refused_host_is_refused_before_any_io() -> None:
    assert isinstance(
        resolve_server("http://127.1/api").bind(lambda u: refuse_plain_http(u, allowed=False)),
        Failure,
    )
