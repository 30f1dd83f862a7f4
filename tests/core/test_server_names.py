"""Server names and base URLs (``cdsessions/_core/servers.py``): the documented named servers,
what counts as loopback, which URLs are refused before any I/O, and how accepted ones are
normalised (scheme and host lowercased, read the same by urllib3 and the stdlib)."""

from __future__ import annotations

import ipaddress
from typing import Any
from urllib.parse import urlsplit

import pytest
import urllib3.util
from hypothesis import example, given, settings
from hypothesis import strategies as st
from returns.result import Failure, Result, Success

from cdsessions import AsyncSessionsClient, CreateSessionBody, InvalidRequest, SessionsClient
from cdsessions._core.servers import SERVERS, is_loopback, refuse_plain_http, resolve_server
from cdsessions.errors import ApiError
from cdsessions.fake import DEFAULT_MACHINE_ID
from cdsessions.transports._inline import InlineTransport
from tests.support.checks import failure_of, run
from tests.support.transports import Recording

KEY = "fake-key-boundary"


BODY = CreateSessionBody(machine_id=DEFAULT_MACHINE_ID)


UNUSABLE = [
    "http://[::1",  # bad IPv6 literal
    "http://[::1]x/api",
    "http://[zz::1]/api",
    "http://localhost:99999/api",  # port out of range
    "http://localhost:0/api",
    "http://localhost:-1/api",
    "http://localhost:port/api",
    "http://exa mple.com/api",  # spaces
    " https://api.example.com/api",
    "https://api.example.com/a b",
    "https://api.example.com/api\n",
    "https://user:pw@api.example.com/api",  # userinfo
    "https://user@api.example.com/api",
    "http:///api",  # empty host
    "http://:3011/api",
    "https://",
    "ftp://api.example.com/api",  # unknown scheme
    "ws://localhost/api",
    "localhost:3011",
    "//api.example.com/api",
    "https://api.example.com/api?x=1",
    "https://api.example.com/api#x",
    "https://bäcker.example/api",
    "https://api.example.com/%zz",
    "http://127.0.0.1\\@evil.example/api",
    "",
    "prod",
]


# Not loopback, however they begin: plain http to them would send the key off the machine.
LOOKALIKES = [
    "HTTP://10.1.2.3/api",
    "Http://192.0.2.7:3011/api",  # TEST-NET-1: refused before any I/O
    "http://127.evil.example/api",
    "http://127.0.0.1.evil.example/api",
    "http://localhost.evil.example/api",
    "http://localhostevil.example/api",
    "http://app.localhost/api",  # decided: not loopback (see cdsessions._core.servers)
    "http://localhost./api",
    "http://127.1/api",  # inet_aton would read it as 127.0.0.1; only exact literals count
    "http://0.0.0.0/api",
    "http://[::2]/api",
    "http://[fd00::1]/api",
    "http://[::ffff:10.0.0.1]/api",
]


LOOPBACK = [
    "http://127.0.0.1:9/api",
    "http://127.255.3.4/api",
    "HTTP://127.0.0.1/api",
    "http://localhost:3011/api",
    "http://LocalHost/api",
    "http://[::1]:3011/api",
    "http://[0:0:0:0:0:0:0:1]/api",
    "http://[::ffff:127.0.0.1]/api",
    "HTTPS://API.example.com/api/",  # https: any host
]


def _independent_loopback(host: str) -> bool:
    """What loopback means, written again without cdsessions' code."""
    if host == "localhost":
        return True
    try:
        address = ipaddress.ip_address(host)
    except ValueError:
        return False
    if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped is not None:
        address = address.ipv4_mapped
    return address in ipaddress.ip_network("127.0.0.0/8") or address == ipaddress.ip_address("::1")


_HOSTS = st.one_of(
    st.sampled_from(
        [
            *("localhost", "LOCALHOST", "127.0.0.1", "127.9.8.7", "127.evil.com", "localhost.x"),
            *("[::1]", "[::2]", "[::ffff:127.0.0.1]", "[::1", "::1", "[]", "", "a b", "h\x00"),
            *("api.example.com", "10.0.0.1", "[fd00::1]", "xn--bcher-kva.example", "bäcker.de"),
        ]
    ),
    st.text(alphabet="abcXYZ019.-_[]:%@ ", max_size=12),
)


@pytest.mark.parametrize("server", UNUSABLE)
def test_unusable_server_urls_are_invalid_requests_from_every_call(server: str) -> None:
    """From issue 10: the boundary never raises."""
    transport = Recording()
    client = SessionsClient(KEY, server=server, transport=transport)  # never raises
    assert "pw" not in repr(client)
    aclient = AsyncSessionsClient(KEY, server=server, transport=InlineTransport(transport))
    results: list[Result[Any, ApiError]] = [
        client.get("s"),
        client.list(),
        client.create(BODY),
        client.cancel("s"),
        client.extend("s", 5),
        client.wait_until_ready("s"),
        run(aclient.get("s")),
        run(aclient.list()),
        run(aclient.create(BODY)),
        run(aclient.cancel("s")),
        run(aclient.extend("s", 5)),
        run(aclient.wait_until_ready("s")),
    ]
    with client.session(BODY) as started:
        results.append(started)
    for result in results:
        error = failure_of(result)
        assert isinstance(error, InvalidRequest)
        assert error.field == "server"
        assert "pw" not in str(error)
    assert transport.sent == []


@pytest.mark.parametrize("server", LOOKALIKES)
def test_plain_http_to_a_host_that_only_looks_local_is_refused_before_io(server: str) -> None:
    """From issue 10: the boundary never raises."""
    transport = Recording()
    client = SessionsClient(KEY, server=server, transport=transport)
    aclient = AsyncSessionsClient(KEY, server=server, transport=InlineTransport(transport))
    for result in (client.get("s"), client.create(BODY), run(aclient.list())):
        error = failure_of(result)
        assert isinstance(error, InvalidRequest)
        assert error.field == "server"
        assert "allow_insecure_http" in str(error)
    assert transport.sent == []


@pytest.mark.parametrize("server", LOOPBACK)
def test_loopback_and_https_servers_are_sent_to_with_scheme_and_host_lowercased(
    server: str,
) -> None:
    """From issue 10: the boundary never raises."""
    transport = Recording()
    client = SessionsClient(KEY, server=server, transport=transport)
    assert isinstance(client.get("s"), Success)
    [(request, _)] = transport.sent
    parts = urlsplit(request.url)
    assert parts.scheme in ("http", "https")
    assert parts.scheme == urlsplit(server).scheme  # urlsplit lowercases it
    assert parts.hostname == urlsplit(server).hostname
    assert request.url.endswith("/session/s")
    assert "//session" not in request.url


def test_resolved_urls_are_normalised_and_checked_by_their_parsed_scheme() -> None:
    """From issue 10: the boundary never raises."""
    assert resolve_server("HTTPS://API.Example.COM:443/Api/") == Success(
        "https://api.example.com:443/Api"
    )
    assert resolve_server("HTTP://[::1]:3011/api") == Success("http://[::1]:3011/api")
    # Checked by the parsed scheme, whatever case the URL was written in.
    for written in ("HTTP://10.1.2.3/api", "Http://10.1.2.3/api", "http://10.1.2.3/api"):
        refused = refuse_plain_http(written, allowed=False)
        assert isinstance(refused, Failure), written
        assert refuse_plain_http(written, allowed=True) == Success(written)
    assert refuse_plain_http("HTTPS://10.1.2.3/api", allowed=False) == Success(
        "HTTPS://10.1.2.3/api"
    )


@settings(max_examples=1000, deadline=None)
@given(
    scheme=st.sampled_from(["http", "https", "HTTP", "HttpS", "ftp", "", "h ttp"]),
    userinfo=st.sampled_from(["", "u@", "u:p@", "@"]),
    host=_HOSTS,
    port=st.one_of(
        st.just(""),
        st.integers(-5, 70_000).map(lambda p: f":{p}"),
        st.sampled_from([":", ":x", ":٣٠"]),
    ),
    path=st.one_of(
        st.sampled_from(["", "/", "/api", "/api/", "/a%20b", "/%zz", "/a?b", "/a#b", "/a b"]),
        st.text(max_size=8).map(lambda t: "/" + t),
    ),
)
@example(scheme="https", userinfo="u:p@", host="api.example.com", port=":8080", path="/api")
@example(scheme="http", userinfo="", host="localhost", port=":0", path="")
@example(scheme="https", userinfo="@", host="", port=":65536", path="/")
@example(scheme="", userinfo="u:p@", host="host", port=":8080", path="")
def test_every_accepted_url_reads_the_same_to_urllib3_and_the_stdlib(
    scheme: str, userinfo: str, host: str, port: str, path: str
) -> None:
    """From issue 10: the boundary never raises."""
    server = f"{scheme}://{userinfo}{host}{port}{path}"
    resolved = resolve_server(server)  # never raises
    if not isinstance(resolved, Success):
        error = resolved.failure()
        assert (error.field, type(error)) == ("server", InvalidRequest)
        return
    url = resolved.unwrap()
    stdlib = urlsplit(url)
    parsed = urllib3.util.parse_url(url)
    assert stdlib.scheme == parsed.scheme == scheme.lower()
    assert stdlib.hostname is not None
    assert parsed.host is not None
    assert parsed.host.strip("[]").lower() == stdlib.hostname
    assert parsed.port == stdlib.port
    assert (stdlib.username, stdlib.password, stdlib.query, stdlib.fragment) == (None, None, "", "")
    assert (parsed.auth, parsed.query, parsed.fragment) == (None, None, None)
    assert is_loopback(url) == _independent_loopback(stdlib.hostname)
    refused = isinstance(refuse_plain_http(url, allowed=False), Failure)
    assert refused == (stdlib.scheme == "http" and not _independent_loopback(stdlib.hostname))


def test_base_url_edges_are_exact() -> None:
    """Found by a mutant of ``nox -s mutation`` the rest of the suite let through."""
    assert resolve_server("http://127.0.0.1:1/api") == Success("http://127.0.0.1:1/api")
    assert resolve_server("http://127.0.0.1:65535/api/") == Success("http://127.0.0.1:65535/api")
    for port in (0, 65536):
        refused = resolve_server(f"http://127.0.0.1:{port}/api").failure()
        assert refused.problem == "the port must be between 1 and 65535"
    for server in ("http://h/a b", "http://h/\x7f", "http://hé/api"):
        assert resolve_server(server).failure().problem == (
            "a base URL may not hold spaces, control or non-ASCII characters"
        ), server


def test_the_local_server_is_the_documented_url() -> None:
    """Bug: ``server="local"`` without the ``/api`` base path.

    Found by applying a deliberate bug the older tests let through."""
    assert SERVERS["local"] == "http://localhost:3011/api"
    assert resolve_server("local") == Success("http://localhost:3011/api")
    assert resolve_server("production") == Success("https://api.comfydeploy.com/api")


def test_an_unparsable_base_url_counts_as_plain_http() -> None:
    """Bug: a base URL that does not parse is taken as https (the safe side is plain).

    Found by applying a deliberate bug the older tests let through."""
    assert isinstance(refuse_plain_http("not a url", allowed=False), Failure)
    assert refuse_plain_http("not a url", allowed=True) == Success("not a url")


@pytest.mark.parametrize(
    "base_url",
    [
        "http://127.0.0.1:3011/api",
        "http://127.1.2.3/api",
        "http://localhost:3011/api",
        "http://LOCALHOST/api",
        "http://[::1]:3011/api",
    ],
)
def test_loopback_addresses_are_loopback(base_url: str) -> None:
    """Found by an outside review's deliberate bug the suite missed (issue 14)."""
    assert is_loopback(base_url) is True


@pytest.mark.parametrize(
    "base_url",
    [
        "http://127.evil.com/api",  # starts with "127." but is a name
        "http://localhost.evil.com/api",
        "http://evil-localhost/api",
        "http://10.0.0.1/api",
        "http://[::2]/api",
        "http://192.0.2.1/api",  # TEST-NET: refused before any I/O
        "http://0.0.0.0/api",
        "http://128.0.0.1/api",
        "http://[::ffff:10.0.0.1]/api",
        "http:///api",
        "not a url",
    ],
)
def test_other_hosts_are_not_loopback(base_url: str) -> None:
    """Bug: a prefix or suffix test (``startswith("127.")``, ``"localhost" in host``).

    Found by an outside review's deliberate bug the suite missed (issue 14)."""
    assert is_loopback(base_url) is False


# -- what a refusal says --------------------------------------------------------------------------

_NAMES = "production, staging, local"


@pytest.mark.parametrize(
    ("server", "problem"),
    [
        (3, "must be a string, not int"),
        (None, "must be a string, not NoneType"),
        ("prod", f"'prod' is neither a server name ({_NAMES}) nor an http(s):// URL"),
        ("", f"'' is neither a server name ({_NAMES}) nor an http(s):// URL"),
        # Anything that could be a URL, or is long or unprintable, is never repeated: it may
        # hold a secret.
        ("user:pw", f"the server is neither a server name ({_NAMES}) nor an http(s):// URL"),
        ("host/api", f"the server is neither a server name ({_NAMES}) nor an http(s):// URL"),
        ("me@host", f"the server is neither a server name ({_NAMES}) nor an http(s):// URL"),
        # Issue 23: userinfo or a port without "://" is still never repeated.
        (
            "user:pass@host",
            f"the server is neither a server name ({_NAMES}) nor an http(s):// URL",
        ),
        ("host:8080", f"the server is neither a server name ({_NAMES}) nor an http(s):// URL"),
        ("pass@host", f"the server is neither a server name ({_NAMES}) nor an http(s):// URL"),
        ("x" * 41, f"the server is neither a server name ({_NAMES}) nor an http(s):// URL"),
        ("x" * 40, f"'{'x' * 40}' is neither a server name ({_NAMES}) nor an http(s):// URL"),
        ("a\tb", f"the server is neither a server name ({_NAMES}) nor an http(s):// URL"),
        ("ftp://h/api", f"the server is neither a server name ({_NAMES}) nor an http(s):// URL"),
        ("https://u:p@h/api", "a base URL may not carry credentials (user:password@)"),
        ("https://h/api?k=v", "a base URL may not carry a query"),
        ("https://h/api#top", "a base URL may not carry a fragment"),
        ("https://h /api", "a base URL may not hold spaces, control or non-ASCII characters"),
        ("https://hé/api", "a base URL may not hold spaces, control or non-ASCII characters"),
        ("https://h/\x7f", "a base URL may not hold spaces, control or non-ASCII characters"),
        ("https://[::1/api", "is not a usable URL (scheme://host[:port][/path])"),
        ("https://h/a%zz", "is not a usable URL (scheme://host[:port][/path])"),
        (
            "https:///api",
            "a base URL needs a host (a name, an IPv4 or a bracketed IPv6 address)",
        ),
        (
            "https://[1:2:3]/api",
            "a base URL needs a host (a name, an IPv4 or a bracketed IPv6 address)",
        ),
        ("https://h:0/api", "the port must be between 1 and 65535"),
        ("https://h:65536/api", "the port must be between 1 and 65535"),
    ],
)
def test_an_unusable_server_is_refused_saying_why(server: object, problem: str) -> None:
    """Each refusal names its problem, for the field ``server``, with no reason code (only
    plain http has one) and never the URL itself."""
    assert resolve_server(server) == Failure(
        InvalidRequest("configure client", "server", problem, None)
    )


@pytest.mark.parametrize(
    ("server", "base_url"),
    [
        ("production", "https://api.comfydeploy.com/api"),
        ("local", "http://localhost:3011/api"),
        ("HTTPS://API.Example.COM/api/", "https://api.example.com/api"),
        ("https://h:0443/v2/", "https://h:443/v2"),
        ("https://h:1", "https://h:1"),
        ("https://h:65535/", "https://h:65535"),
        ("http://[::1]:3011/api", "http://[::1]:3011/api"),
        ("http://[::FFFF:127.0.0.1]/api", "http://[::ffff:127.0.0.1]/api"),
        ("https://h/a%2Fb", "https://h/a%2Fb"),
    ],
)
def test_a_usable_server_becomes_the_base_url_sent_to(server: str, base_url: str) -> None:
    assert resolve_server(server) == Success(base_url)


@pytest.mark.parametrize(
    ("base_url", "allowed", "refused"),
    [
        ("http://10.0.0.1/api", False, True),
        ("HTTP://10.0.0.1/api", False, True),
        ("http://10.0.0.1/api", True, False),
        ("https://10.0.0.1/api", False, False),
        ("http://127.0.0.1/api", False, False),
        ("http://[::1]/api", False, False),
        ("not a url", False, True),
    ],
)
def test_plain_http_is_refused_with_its_reason_code(
    base_url: str, allowed: bool, refused: bool
) -> None:
    expected = (
        Failure(
            InvalidRequest(
                "configure client",
                "server",
                "refusing to send the API key over plain http:// to a non-loopback host "
                "(pass allow_insecure_http=True to override)",
                "insecure_http",
            )
        )
        if refused
        else Success(base_url)
    )
    assert refuse_plain_http(base_url, allowed=allowed) == expected
