"""The project's own task lists name files that exist: a test moved or renamed without updating
``noxfile.py`` or ``[tool.mutmut]`` would otherwise drop out of ``nox -s seeds``,
``nox -s urllib3_range`` or ``nox -s mutation`` without a word."""

from __future__ import annotations

import ast
import fnmatch
import json
import re
import runpy
import sys
import tomllib
import types
from pathlib import Path
from typing import Any

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


def test_every_test_module_with_properties_is_in_the_seeds_session() -> None:
    """A new Hypothesis property is swept over seeds by ``nox -s seeds`` only if its module is
    listed in ``PROPERTY_MODULES``."""
    listed = set(_noxfile_tuple("PROPERTY_MODULES"))
    with_properties = {
        path.relative_to(ROOT).as_posix()
        for path in (ROOT / "tests").rglob("test_*.py")
        if re.search(r"^\s*@given\(", path.read_text(), re.MULTILINE)
    }
    assert sorted(with_properties - listed) == []


@pytest.mark.parametrize("key", ["only_mutate", "pytest_add_cli_args_test_selection"])
def test_every_path_mutation_testing_names_exists(key: str) -> None:
    paths = _mutmut()[key]
    assert paths
    missing = [path for path in paths if not any(ROOT.glob(path))]
    assert missing == []


def test_mutation_testing_ignores_only_test_files_that_exist() -> None:
    ignored = [arg.removeprefix("--ignore=") for arg in _mutmut()["pytest_add_cli_args"]]
    missing = [path for path in ignored if "/" in path and not (ROOT / path).exists()]
    assert missing == []


def test_the_pythons_session_runs_every_python_the_classifiers_name(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """``nox -s pythons`` (issue #21): one session per classifier Python, a missing one skipped
    (never an error, never a download), and not part of the default gate. ``noxfile.py`` is run
    with a stand-in ``nox`` that records what each session asks for."""
    asked: dict[str, dict[str, object]] = {}

    def session(function: object = None, **options: object) -> object:
        def record(decorated: Any) -> Any:
            asked[decorated.__name__] = options
            return decorated

        return record(function) if function is not None else record

    stand_in = types.ModuleType("nox")
    stand_in.options = types.SimpleNamespace()  # type: ignore[attr-defined]
    stand_in.session = session  # type: ignore[attr-defined]
    stand_in.parametrize = lambda *args, **kwargs: lambda decorated: decorated  # type: ignore[attr-defined]
    monkeypatch.setitem(sys.modules, "nox", stand_in)
    runpy.run_path(str(ROOT / "noxfile.py"))

    classifiers = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["classifiers"]
    named = [c.rsplit(" :: ", 1)[1] for c in classifiers if re.fullmatch(r".* :: 3\.\d+", c)]
    assert named == ["3.11", "3.12", "3.13"]
    assert asked["pythons"] == {"python": named}
    options = stand_in.options
    assert options.error_on_missing_interpreters is False
    assert options.download_python == "never"
    assert "pythons" not in options.sessions
    assert options.sessions == ["tests", "lint", "typecheck"]


def _noxfile_namespace(monkeypatch: pytest.MonkeyPatch) -> dict[str, Any]:
    stand_in = types.ModuleType("nox")
    stand_in.options = types.SimpleNamespace()  # type: ignore[attr-defined]
    stand_in.session = lambda function=None, **options: (  # type: ignore[attr-defined]
        function if function is not None else (lambda decorated: decorated)
    )
    stand_in.parametrize = lambda *args, **kwargs: lambda decorated: decorated  # type: ignore[attr-defined]
    monkeypatch.setitem(sys.modules, "nox", stand_in)
    return runpy.run_path(str(ROOT / "noxfile.py"))


def test_the_mutation_report_scores_each_package_and_names_unexplained_survivors(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    report = _noxfile_namespace(monkeypatch)["mutation_report"]
    metas = {
        "cdsessions/client.py.meta": {
            "cdsessions.client.x_a__mutmut_1": 1,  # a test failed
            "cdsessions.client.x_a__mutmut_2": 0,  # survived, listed below
            "cdsessions.client.x_a__mutmut_3": 0,  # survived, not listed
            "cdsessions.client.x_a__mutmut_4": None,  # not run (outside the sample)
            "cdsessions.client.x_a__mutmut_5": 33,  # no test reaches it
        },
        "cdsessions/_core/retry.py.meta": {
            "cdsessions._core.retry.x_b__mutmut_1": 36,  # a timeout counts as killed
            "cdsessions._core.retry.x_b__mutmut_2": 37,  # so does the type checker
            "cdsessions._core.retry.x_b__mutmut_3": 3,
        },
        "cdsessions/fake/clock.py.meta": {"cdsessions.fake.clock.x_c__mutmut_1": None},
    }
    for name, codes in metas.items():
        path = tmp_path / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(json.dumps({"exit_code_by_key": codes}))
    equivalent = {"cdsessions.client.x_a__mutmut_2": "the same value either way"}
    lines, unexplained = report(tmp_path, equivalent)
    assert lines == [
        "cdsessions: 1/2 killed (50.0 %); 1 equivalent",
        "cdsessions._core: 3/3 killed (100.0 %); 0 equivalent",
    ]
    assert unexplained == ["cdsessions.client.x_a__mutmut_3"]


def test_every_equivalent_mutant_is_named_and_argued() -> None:
    listed = tomllib.loads((ROOT / "tests" / "equivalent_mutants.toml").read_text())
    malformed = {
        name: reason
        for name, reason in listed.items()
        if not re.fullmatch(r"cdsessions(\.\w+)+\.x\w*__mutmut_\d+", name.replace("ǁ", "_"))
        or not isinstance(reason, str)
        or len(reason.split()) < 4
    }
    assert malformed == {}


def test_the_mutation_sample_is_a_seeded_share_of_every_generated_mutant(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    sample = _noxfile_namespace(monkeypatch)["mutation_sample"]
    names = [f"cdsessions.{module}.x_f__mutmut_{n}" for module in "abcd" for n in range(1, 51)]
    for module in "abcd":
        meta = tmp_path / "cdsessions" / "sub" / f"{module}.py.meta"
        meta.parent.mkdir(parents=True, exist_ok=True)
        codes = {name: None for name in names if name.startswith(f"cdsessions.{module}.")}
        meta.write_text(json.dumps({"exit_code_by_key": codes}))
    chosen = sample(tmp_path, 0.05, 7)
    assert len(chosen) == 10
    assert set(chosen) <= set(names)
    assert chosen == sample(tmp_path, 0.05, 7)  # the same names for the same code and seed
    assert chosen != sample(tmp_path, 0.05, 8)
    assert len({name.split(".")[1] for name in sample(tmp_path, 0.5, 7)}) == 4
    assert sample(tmp_path, 0.0, 7) != []  # at least one


def test_the_mutation_packages_cover_every_module_once_with_tests_that_exist(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    packages = _noxfile_namespace(monkeypatch)["MUTATION_PACKAGES"]
    modules = sorted(p.relative_to(ROOT).as_posix() for p in (ROOT / "cdsessions").rglob("*.py"))
    owners = {
        module: [
            name
            for name, (mutate, skip, _, _) in packages.items()
            if any(fnmatch.fnmatch(module, g) for g in mutate)
            and not any(fnmatch.fnmatch(module, g) for g in skip)
        ]
        for module in modules
    }
    assert {module: names for module, names in owners.items() if len(names) != 1} == {}
    for name, (_, _, tests, warm_up) in packages.items():
        assert [path for path in tests if not (ROOT / path).exists()] == [], name
        module = warm_up.removesuffix(".*__mutmut_1").replace(".", "/") + ".py"
        assert (ROOT / module).is_file(), warm_up
        assert owners[module] == [name]


def test_the_mutation_config_of_a_package_replaces_the_three_settings_and_keeps_the_rest(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    config = _noxfile_namespace(monkeypatch)["mutation_config"]
    text = (ROOT / "pyproject.toml").read_text()
    changed = tomllib.loads(config(text, ["a/*.py"], ["a/b/*"], ["tests/a/", "tests/x.py"]))
    original = tomllib.loads(text)
    section = changed["tool"]["mutmut"]
    assert section["only_mutate"] == ["a/*.py"]
    assert section["do_not_mutate"] == ["a/b/*"]
    assert section["pytest_add_cli_args_test_selection"] == ["tests/a/", "tests/x.py"]
    unchanged = {"only_mutate", "do_not_mutate", "pytest_add_cli_args_test_selection"}
    for key, value in original["tool"]["mutmut"].items():
        if key not in unchanged:
            assert section[key] == value, key
    assert {k: v for k, v in changed.items() if k != "tool"} == {
        k: v for k, v in original.items() if k != "tool"
    }
