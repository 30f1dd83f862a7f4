"""The project's own task lists name files that exist: a test moved or renamed without updating
``noxfile.py`` or ``[tool.mutmut]`` would otherwise drop out of ``nox -s seeds``,
``nox -s urllib3_range`` or ``nox -s mutation`` without a word."""

from __future__ import annotations

import ast
import tomllib
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent


def _noxfile_tuple(name: str) -> tuple[str, ...]:
    tree = ast.parse((ROOT / "noxfile.py").read_text())
    for node in tree.body:
        if isinstance(node, ast.Assign) and any(
            isinstance(target, ast.Name) and target.id == name for target in node.targets
        ):
            value = ast.literal_eval(node.value)
            assert isinstance(value, tuple)
            return value
    raise AssertionError(f"noxfile.py defines no {name}")


def _mutmut() -> dict[str, list[str]]:
    config = tomllib.loads((ROOT / "pyproject.toml").read_text())
    section: dict[str, list[str]] = config["tool"]["mutmut"]
    return section


@pytest.mark.parametrize("name", ["PROPERTY_MODULES", "URLLIB3_TESTS"])
def test_every_path_a_nox_session_runs_exists(name: str) -> None:
    paths = _noxfile_tuple(name)
    assert paths
    missing = [path for path in paths if not (ROOT / path).exists()]
    assert missing == []


@pytest.mark.parametrize("key", ["only_mutate", "pytest_add_cli_args_test_selection"])
def test_every_path_mutation_testing_names_exists(key: str) -> None:
    paths = _mutmut()[key]
    assert paths
    missing = [path for path in paths if not (ROOT / path).exists()]
    assert missing == []
