"""CI's verdict never depends on a saved Hypothesis database, and its seeds still vary.

tests/conftest.py loads the ``ci`` profile when ``CI`` is set (as the CI runner sets it): no
example database, not derandomized. Locally the database is kept, so a failure found once is
replayed first while it is being fixed.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent

_PROBE = """
import json
import tests.conftest
from hypothesis import settings

print(json.dumps({
    "profile": settings._current_profile,
    "database": settings.default.database is not None,
    "derandomize": settings.default.derandomize,
}))
"""

# Variables Hypothesis itself takes as "running on CI"; cleared so each case sets its own.
_CI_MARKERS = ("CI", "HYPOTHESIS_PROFILE", "TF_BUILD", "GITHUB_ACTIONS", "GITLAB_CI", "BUILDKITE")


def _loaded(**env: str) -> dict[str, object]:
    clean = {k: v for k, v in os.environ.items() if k not in _CI_MARKERS}
    done = subprocess.run(
        [sys.executable, "-c", _PROBE],
        capture_output=True,
        text=True,
        cwd=ROOT,
        env={**clean, **env},
        timeout=60,
        check=True,
    )
    loaded: dict[str, object] = json.loads(done.stdout)
    return loaded


@pytest.mark.parametrize("value", ["true", "1"])
def test_ci_runs_without_a_database_and_with_varying_seeds(value: str) -> None:
    assert _loaded(CI=value) == {"profile": "ci", "database": False, "derandomize": False}


def test_locally_the_database_is_kept() -> None:
    assert _loaded() == {"profile": "default", "database": True, "derandomize": False}


def test_the_profile_can_be_named() -> None:
    assert _loaded(HYPOTHESIS_PROFILE="ci")["database"] is False
    assert _loaded(CI="true", HYPOTHESIS_PROFILE="default")["database"] is True
