"""The pytest plugin (``cdsessions.pytest_plugin``, entry point ``pytest11``): its fixtures work in
a project that only installed cdsessions (``pytester``), are fresh per test, can be
configured by overriding ``cdsessions_fake``, and loading the plugin stays cheap."""

from __future__ import annotations

import asyncio
import subprocess
import sys
import textwrap

import pytest
from returns.result import Success

from cdsessions import AsyncSessionsClient, CreateSessionBody, SessionsClient
from cdsessions.fake import DEFAULT_MACHINE_ID, FakeService

pytest_plugins = ["pytester"]

_USER_TESTS = """
    import asyncio

    from returns.result import Success

    from cdsessions import CreateSessionBody, SessionsClient


    def test_client_talks_to_the_fake(cdsessions_client, cdsessions_fake):
        body = CreateSessionBody(machine_id=cdsessions_fake.DEFAULT_MACHINE_ID)
        created = cdsessions_client.create(body).unwrap()
        assert [s.session_id for s in cdsessions_fake.live_sessions()] == [created.session_id]


    def test_each_test_gets_a_fresh_fake(cdsessions_client, cdsessions_fake):
        assert cdsessions_fake.live_sessions() == ()
        assert cdsessions_client.list().unwrap() == []


    def test_async_client_talks_to_the_same_fake(cdsessions_async_client, cdsessions_fake):
        async def scenario():
            body = CreateSessionBody(machine_id=cdsessions_fake.DEFAULT_MACHINE_ID)
            async with cdsessions_async_client.session(body) as started:
                assert isinstance(started, Success)
                assert len(cdsessions_fake.live_sessions()) == 1
            return len(cdsessions_fake.live_sessions())

        assert asyncio.run(scenario()) == 0


    def test_fake_over_http(cdsessions_fake_url, cdsessions_fake):
        assert cdsessions_fake_url.startswith("http://127.0.0.1:")
        with SessionsClient("k", server=cdsessions_fake_url) as client:
            body = CreateSessionBody(machine_id=cdsessions_fake.DEFAULT_MACHINE_ID)
            created = client.create(body).unwrap()
        assert cdsessions_fake.live_sessions()[0].session_id == created.session_id
"""


def test_fixtures_work_in_a_project_that_only_installed_cdsessions(
    pytester: pytest.Pytester,
) -> None:
    pytester.makepyfile(test_user=textwrap.dedent(_USER_TESTS))
    result = pytester.runpytest("-p", "no:cacheprovider")
    result.assert_outcomes(passed=4)


def test_overriding_the_fake_configures_every_client_fixture(pytester: pytest.Pytester) -> None:
    pytester.makeconftest(
        """
        import pytest

        from cdsessions.fake import FakeService

        OTHER = "fa4e0000-0000-4000-8000-000000000002"


        @pytest.fixture
        def cdsessions_fake():
            return FakeService(machines=[OTHER], seed_shapes=True)
        """
    )
    pytester.makepyfile(
        """
        import asyncio

        from cdsessions import CreateSessionBody


        def test_sync(cdsessions_client):
            created = cdsessions_client.create(
                CreateSessionBody(machine_id="fa4e0000-0000-4000-8000-000000000002")
            )
            assert created.unwrap().url is not None  # seed shapes: url from the start


        def test_async(cdsessions_async_client):
            other = "fa4e0000-0000-4000-8000-000000000002"
            found = asyncio.run(cdsessions_async_client.list(machine_id=other))
            assert found.unwrap() == []
            body = CreateSessionBody(machine_id="fa4e0000-0000-4000-8000-000000000001")
            refused = asyncio.run(cdsessions_async_client.create(body))
            assert "Machine not found" in str(refused.failure())
        """
    )
    pytester.runpytest("-p", "no:cacheprovider").assert_outcomes(passed=2)


def test_each_client_fixture_closes_its_client_after_the_test(pytester: pytest.Pytester) -> None:
    """After each test its client is closed (``close``, ``aclose``), not before. Added for a
    bug an outside review slipped past the suite (issue 23): a fixture that never closed its
    client."""
    pytester.makeconftest(
        """
        from cdsessions import AsyncSessionsClient, SessionsClient

        CLOSED = []
        _close, _aclose = SessionsClient.close, AsyncSessionsClient.aclose


        def close(self):
            CLOSED.append(id(self))
            _close(self)


        async def aclose(self):
            CLOSED.append(id(self))
            await _aclose(self)


        SessionsClient.close = close
        AsyncSessionsClient.aclose = aclose
        """
    )
    pytester.makepyfile(
        """
        import asyncio

        from conftest import CLOSED

        USED = {}


        def test_sync(cdsessions_client):
            USED["sync"] = id(cdsessions_client)
            assert id(cdsessions_client) not in CLOSED


        def test_async(cdsessions_async_client):
            USED["async"] = id(cdsessions_async_client)
            assert asyncio.run(cdsessions_async_client.list()).unwrap() == []
            assert id(cdsessions_async_client) not in CLOSED


        def test_after():
            assert USED["sync"] in CLOSED
            assert USED["async"] in CLOSED
        """
    )
    pytester.runpytest("-p", "no:cacheprovider", "-p", "no:randomly").assert_outcomes(passed=3)


def test_fixtures_are_listed_with_their_docs(pytester: pytest.Pytester) -> None:
    result = pytester.runpytest("--fixtures", "-p", "no:cacheprovider")
    # One at a time: pytest lists them in an order of its own.
    for name, doc in [
        ("cdsessions_fake", "*fresh in-memory fake ComfyDeploy*"),
        ("cdsessions_clock", "*the fake's and the client fixtures' clock*"),
        ("cdsessions_client", "*SessionsClient*"),
        ("cdsessions_async_client", "*AsyncSessionsClient*"),
        ("cdsessions_fake_url", "*served over HTTP*"),
    ]:
        result.stdout.fnmatch_lines([f"{name} -- *", doc])


def test_plugin_can_be_disabled_by_its_entry_point_name(pytester: pytest.Pytester) -> None:
    pytester.makepyfile("def test_needs_it(cdsessions_client):\n    pass\n")
    result = pytester.runpytest("-p", "no:cdsessions", "-p", "no:cacheprovider")
    result.assert_outcomes(errors=1)
    result.stdout.fnmatch_lines(["*fixture 'cdsessions_client' not found*"])


def _imported_after(code: str, modules: tuple[str, ...]) -> list[str]:
    probe = f"{code}\nimport sys\nprint(' '.join(m for m in {modules!r} if m in sys.modules))"
    done = subprocess.run(
        [sys.executable, "-c", probe], capture_output=True, text=True, timeout=60, check=True
    )
    return done.stdout.split()


def test_loading_the_plugin_imports_nothing_heavy() -> None:
    heavy = (
        "asyncio",
        "cdsessions.fake.service",
        "cdsessions.fake.server",
        "cdsessions.async_client",
        "cdsessions.transports._urllib3",
    )
    assert _imported_after("import cdsessions.pytest_plugin", heavy) == []


def test_the_library_never_imports_pytest() -> None:
    # pytest made unimportable: every public name still loads, and the plugin is never loaded.
    code = textwrap.dedent(
        """
        import sys
        sys.modules["pytest"] = None
        import cdsessions
        for name in cdsessions.__all__:
            getattr(cdsessions, name)
        """
    )
    assert _imported_after(code, ("cdsessions.pytest_plugin",)) == []


# The fixtures, used by this suite itself (loaded through the installed entry point).


def test_client_fixture_is_bound_to_the_fake_fixture(
    cdsessions_client: SessionsClient, cdsessions_fake: FakeService
) -> None:
    body = CreateSessionBody(machine_id=cdsessions_fake.DEFAULT_MACHINE_ID, timeout=5)
    with cdsessions_client.session(body) as started:
        assert isinstance(started, Success)
        assert len(cdsessions_fake.live_sessions()) == 1
    assert cdsessions_fake.live_sessions() == ()


def test_async_client_fixture_is_bound_to_the_fake_fixture(
    cdsessions_async_client: AsyncSessionsClient, cdsessions_fake: FakeService
) -> None:
    body = CreateSessionBody(machine_id=cdsessions_fake.DEFAULT_MACHINE_ID, timeout=5)
    created = asyncio.run(cdsessions_async_client.create(body)).unwrap()
    assert [s.session_id for s in cdsessions_fake.live_sessions()] == [created.session_id]


def test_the_plugins_fake_fixture_behaves_like_a_default_fake(
    cdsessions_client: SessionsClient, cdsessions_fake: FakeService
) -> None:
    """Found by applying a deliberate bug the older tests let through."""
    # What the README promises of ``cdsessions_fake``: the default fake, whose sessions start
    # without a url and get one on the next poll, on its one default machine.
    assert cdsessions_fake.machine_ids == (DEFAULT_MACHINE_ID,)
    created = cdsessions_client.create(CreateSessionBody(machine_id=DEFAULT_MACHINE_ID)).unwrap()
    assert created.url is None
    assert cdsessions_client.get(created.session_id).unwrap().url is None
    assert cdsessions_client.get(created.session_id).unwrap().url is not None


def test_a_kept_alive_connection_does_not_outlive_its_tests_fake_server(
    pytester: pytest.Pytester,
) -> None:
    """Bug: a connection kept alive from one test still reached that test's fake (the old
    server's thread kept serving it) while the next test ran against its own."""
    pytester.makepyfile(
        """
        import http.client
        from urllib.parse import urlsplit

        import pytest

        KEPT = {}


        def _list(connection):
            connection.request("GET", "/api/sessions", headers={"Authorization": "Bearer k"})
            answer = connection.getresponse()
            return answer.status, answer.read()


        def test_first(cdsessions_fake_url, cdsessions_fake):
            parts = urlsplit(cdsessions_fake_url)
            connection = http.client.HTTPConnection(parts.hostname, parts.port, timeout=10)
            assert _list(connection) == (200, b"[]")
            KEPT["connection"], KEPT["fake"] = connection, cdsessions_fake


        def test_second(cdsessions_fake_url):
            with pytest.raises((http.client.RemoteDisconnected, ConnectionError)):
                _list(KEPT["connection"])
            assert KEPT["fake"].requests_handled == 1
        """
    )
    pytester.runpytest("-p", "no:cacheprovider", "-p", "no:randomly").assert_outcomes(passed=2)


_SCRIPTED_TESTS = """
import asyncio
import time

import pytest

from cdsessions import CreateSessionBody, NotReady, SessionsClient, TransportFailed
from cdsessions.testing import expect_failure, expect_success


@pytest.fixture(autouse=True)
def no_real_sleep(monkeypatch):
    def refuse(seconds):
        raise AssertionError(f"slept {seconds} s of real time")

    real = asyncio.sleep

    async def refuse_async(seconds, result=None):
        assert seconds == 0, f"slept {seconds} s of real time"
        return await real(0)

    monkeypatch.setattr(time, "sleep", refuse)
    monkeypatch.setattr(asyncio, "sleep", refuse_async)


def test_a_retried_500_and_a_never_ready_wait(cdsessions_client, cdsessions_fake, cdsessions_clock):
    body = CreateSessionBody(machine_id=cdsessions_fake.DEFAULT_MACHINE_ID)
    created = expect_success(cdsessions_client.create(body))
    cdsessions_fake.answer_next("get", 500)
    cdsessions_fake.never_ready()
    waited = expect_failure(cdsessions_client.wait_until_ready(created.session_id), NotReady)
    assert waited.waited >= 600
    assert cdsessions_clock.slept >= 599.9
    assert cdsessions_fake.requests_seen.count(("GET", f"/session/{created.session_id}")) > 3


def test_async_the_same(cdsessions_async_client, cdsessions_fake):
    body = CreateSessionBody(machine_id=cdsessions_fake.DEFAULT_MACHINE_ID)
    cdsessions_fake.answer_next("get", 500)
    cdsessions_fake.never_ready()

    async def run():
        created = expect_success(await cdsessions_async_client.create(body))
        return await cdsessions_async_client.wait_until_ready(created.session_id, timeout=60)

    expect_failure(asyncio.run(run()), NotReady)


def test_end_session_and_a_lost_create(cdsessions_client, cdsessions_fake):
    body = CreateSessionBody(machine_id=cdsessions_fake.DEFAULT_MACHINE_ID)
    cdsessions_fake.fail_next("create", "no_answer")
    lost = expect_failure(cdsessions_client.create(body), TransportFailed)
    assert lost.sent and len(cdsessions_fake.live_sessions()) == 1
    assert cdsessions_fake.end_session(cdsessions_fake.live_sessions()[0].session_id)
    assert cdsessions_fake.live_sessions() == ()


def test_a_real_reset_over_http(cdsessions_fake_url, cdsessions_fake):
    cdsessions_fake.fail_next("create", "reset")
    with SessionsClient("k", server=cdsessions_fake_url) as client:
        body = CreateSessionBody(machine_id=cdsessions_fake.DEFAULT_MACHINE_ID)
        reset = expect_failure(client.create(body), TransportFailed)
    assert (reset.kind, reset.sent) == ("broken", True)
    assert cdsessions_fake.live_sessions() == ()
"""


def test_the_fixtures_script_the_fake_and_wait_on_the_test_clock_without_sleeping(
    pytester: pytest.Pytester,
) -> None:
    pytester.makepyfile(test_scripted=_SCRIPTED_TESTS)
    result = pytester.runpytest("-p", "no:cacheprovider")
    result.assert_outcomes(passed=4)
