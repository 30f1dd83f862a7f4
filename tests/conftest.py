"""Suite-wide guard: no test may make the library log an API key or a session tunnel URL.

Every test runs with the ``cdsessions`` and ``urllib3`` loggers at DEBUG and a handler that
records each formatted line; a line holding an unredacted ``Bearer`` token or a Modal tunnel
host fails the test that produced it. (``tests/test_secrets.py`` checks reprs, errors and
observer events in depth; this catches a leak from any test, whatever it exercises.)
"""

from __future__ import annotations

import logging
import re
from collections.abc import Iterator

import pytest

_LEAK = re.compile(r"Bearer\s+(?!<redacted>)\S|\.modal\.(?:host|run|localhost)")
_WATCHED = ("cdsessions", "urllib3")


class _LeakWatch(logging.Handler):
    def __init__(self) -> None:
        super().__init__(logging.DEBUG)
        self.leaks: list[str] = []
        self.setFormatter(logging.Formatter("%(name)s %(levelname)s %(message)s"))

    def emit(self, record: logging.LogRecord) -> None:
        line = self.format(record)
        if _LEAK.search(line):
            self.leaks.append(line[:300])


@pytest.fixture(autouse=True)
def _no_secret_in_logs() -> Iterator[None]:
    watch = _LeakWatch()
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
