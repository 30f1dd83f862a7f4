"""Suite-wide guard: no test may make the library log an API key or a session tunnel URL.

Every test runs with the ``cdsessions`` and ``urllib3`` loggers at DEBUG and a handler that
records each formatted line; a line holding a leak fails the test that produced it. A leak is an
``Authorization``/``Bearer <token>`` pair that is not redacted, any of the key values the test's
module uses (its module-level ``*KEY*`` strings), or a Modal tunnel host. The bare word
``Bearer`` elsewhere is not a leak: ``GET /api/session/Bearer HTTP/1.1`` is a session id.
(``tests/test_secrets.py`` checks reprs, errors and observer events in depth; this catches a
leak from any test, whatever it exercises.)
"""

from __future__ import annotations

import importlib
import logging
import os
import re
import time
from collections.abc import Iterable, Iterator
from typing import Final

import pytest
from hypothesis import settings

# CI (CI=true) runs without any saved example database: a counterexample saved by an earlier run
# in the same clone must not decide the verdict. This replaces Hypothesis's built-in "ci" profile,
# which would also derandomize: seeds still vary from run to run, so CI keeps exploring.
# HYPOTHESIS_PROFILE names a profile explicitly ("default" keeps the local database).
settings.register_profile(
    "ci", parent=settings.get_profile("default"), database=None, print_blob=True
)
settings.load_profile(
    os.environ.get("HYPOTHESIS_PROFILE") or ("ci" if os.environ.get("CI") else "default")
)

# The header in any shape a log line may show it: ``Authorization: Bearer x``,
# ``('Authorization', 'Bearer x')``, ``"authorization": "Bearer x"``, ``authorization=Bearer x``.
_LEAK = re.compile(
    r"(?i)\bauthorization\b\W{0,6}bearer\s+(?!<redacted>)[^\s'\"]"
    r"|\.modal\.(?:host|run|localhost)"
)
_WATCHED = ("cdsessions", "urllib3")
#: Shorter module constants (``KEY = "k"``) would match ordinary text; they are not looked for.
_SHORTEST_KEY = 6


def is_leak(line: str, keys: Iterable[str] = ()) -> bool:
    """Whether a log line shows a secret: the header's shape, a tunnel host or a key value."""
    return _LEAK.search(line) is not None or any(key in line for key in keys)


def module_keys(module: object) -> frozenset[str]:
    """The API keys a test module uses: its module-level strings (or tuples of strings) whose
    name holds ``KEY``, long enough not to match ordinary words."""
    found: set[str] = set()
    for name, value in vars(module).items():
        if "KEY" not in name:
            continue
        values = value if isinstance(value, tuple) else (value,)
        found.update(v for v in values if isinstance(v, str) and len(v) >= _SHORTEST_KEY)
    return frozenset(found)


class _LeakWatch(logging.Handler):
    def __init__(self, keys: frozenset[str]) -> None:
        super().__init__(logging.DEBUG)
        self.keys = keys
        self.leaks: list[str] = []
        self.setFormatter(logging.Formatter("%(name)s %(levelname)s %(message)s"))

    def emit(self, record: logging.LogRecord) -> None:
        line = self.format(record)
        if is_leak(line, self.keys):
            self.leaks.append(line[:300])


@pytest.fixture(autouse=True)
def _no_secret_in_logs(request: pytest.FixtureRequest) -> Iterator[None]:
    # Only Python test functions have a module (README blocks run through Sybil do not).
    module = getattr(request.node, "module", None)
    watch = _LeakWatch(module_keys(module) if module is not None else frozenset())
    loggers = [logging.getLogger(name) for name in _WATCHED]
    levels = [logger.level for logger in loggers]
    for logger in loggers:
        logger.addHandler(watch)
        logger.setLevel(logging.DEBUG)
    try:
        yield
    finally:
        for logger, level in zip(loggers, levels, strict=True):
            logger.removeHandler(watch)
            logger.setLevel(level)
    assert not watch.leaks, f"secret in log lines: {watch.leaks}"


#: UTC+14, as far from UTC as any real zone (Pacific/Kiritimati), as a POSIX TZ rule.
FAR_FROM_UTC: Final = "<+14>-14"


@pytest.fixture
def far_from_utc(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """Local time is UTC+14 for the test (POSIX only: ``time.tzset``)."""
    if not hasattr(time, "tzset"):  # pragma: no cover - Windows
        pytest.skip("time.tzset is POSIX only")
    monkeypatch.setenv("TZ", FAR_FROM_UTC)
    time.tzset()
    try:
        assert time.localtime(0).tm_hour == 14  # the zone really is in force
        yield
    finally:
        monkeypatch.undo()
        time.tzset()


@pytest.fixture(autouse=True, scope="session")
def _ledger_in_a_temporary_state_directory(
    tmp_path_factory: pytest.TempPathFactory,
) -> Iterator[None]:
    """The command line records its creates in a ledger under ``XDG_STATE_HOME``: every
    ``cdsessions`` the suite starts (they inherit this environment) writes there, in a
    temporary folder, never into the ledger of whoever runs the tests."""
    saved = {name: os.environ.get(name) for name in ("XDG_STATE_HOME", "CDSESSIONS_LEDGER")}
    os.environ["XDG_STATE_HOME"] = str(tmp_path_factory.mktemp("state"))
    os.environ.pop("CDSESSIONS_LEDGER", None)
    yield
    for name, value in saved.items():
        if value is None:
            os.environ.pop(name, None)
        else:
            os.environ[name] = value


def pytest_make_parametrize_id(config: pytest.Config, val: object, argname: str) -> str | None:
    """Ids that select their test back on a command line (``nox -s mutation`` runs tests by
    id): pytest writes a character outside printable ASCII as an escape that then selects
    nothing, so such characters show as ``?`` (pytest numbers any ids made equal)."""
    if isinstance(val, bytes):
        val = val.decode("latin-1")
    if isinstance(val, str):
        return re.sub(r"[^!-~ ]", "?", val) or "empty"
    return None


@pytest.hookimpl(tryfirst=True)
def pytest_runtest_teardown(item: pytest.Item) -> None:
    """While ``nox -s mutation`` maps tests to the functions they reach: what this test's
    subprocesses reached counts as reached by this test (MUTATION_SUBPROCESS in noxfile.py
    writes it down). Before mutmut's own teardown hook, which files it under the test."""
    hits = os.environ.get("CDSESSIONS_MUTATION_HITS")
    if not hits or os.environ.get("MUTANT_UNDER_TEST") != "stats" or not os.path.exists(hits):
        return
    record = importlib.import_module("mutmut.stats").record_trampoline_hit  # only under mutmut
    with open(hits, "r+", encoding="utf-8") as file:
        reached = file.read().split()
        file.truncate(0)
    for name in reached:
        record(name)
