"""schemathesis, with every check it has, against ``cdsessions fake-server --key`` (a
subprocess on 127.0.0.1) and ``contracts/live.openapi.json`` (the live API description plus the
routes cdsessions uses). The checks whose findings are the live server's own behaviour are
listed, with their findings and reasons, in ``contracts/differences.json`` (``schemathesis``);
every other check must find nothing (issue 20 item 4)."""

from __future__ import annotations

import shutil
import subprocess
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Final

from tests.support.cli import cli_env, start_fake_server
from tests.support.strategies import CONTRACTS_DIR, schemathesis_differences

KEY: Final = "sk-schemathesis-0123456789"
ST: Final = Path(sys.executable).with_name("st")


@contextmanager
def fake_server() -> Iterator[str]:
    """A fresh fake for each run: what a run leaves behind (5 live sessions on the machine)
    changes the next run's answers."""
    process, base_url = start_fake_server("--quiet", "--key", KEY)
    try:
        yield base_url
    finally:
        process.terminate()
        process.communicate(timeout=10)


def _st(base_url: str, *options: str) -> subprocess.CompletedProcess[str]:
    command = [
        str(ST) if ST.exists() else (shutil.which("st") or "st"),
        "run",
        str(CONTRACTS_DIR / "live.openapi.json"),
        "--url",
        base_url,
        "--header",
        f"Authorization: Bearer {KEY}",
        "--seed",
        "20",
        "--no-color",
        *options,
    ]
    return subprocess.run(
        command, capture_output=True, text=True, timeout=300, check=False, env=cli_env(None)
    )


def test_every_check_but_the_listed_ones_finds_nothing() -> None:
    listed = [item["check"] for item in schemathesis_differences()]
    with fake_server() as base_url:
        done = _st(base_url, "--checks", "all", "--exclude-checks", ",".join(listed), "-n", "20")
    assert done.returncode == 0, done.stdout[-6000:] + done.stderr[-2000:]
    assert "Tested: 8" in done.stdout  # every operation of the contract was exercised


def test_each_listed_check_still_finds_what_it_lists() -> None:
    """The list stays honest: each listed check, run with every unlisted one (schemathesis
    reports one failure per case, so the other listed ones would hide it), still finds what
    it lists; else it must come off the list."""
    listed = schemathesis_differences()
    for item in listed:
        assert item["findings"].strip(), item
        assert item["reason"].strip(), item
        others = ",".join(other["check"] for other in listed if other is not item)
        with fake_server() as base_url:
            done = _st(base_url, "--checks", "all", "--exclude-checks", others, "-n", "20")
        assert f"- {item['code']} " in done.stdout, f"{item['check']} finds nothing now: unlist it"
