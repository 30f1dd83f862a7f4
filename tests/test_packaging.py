"""Packaging hygiene: the license the metadata claims is shipped, and the classifiers say what
the package is (typed, MIT, which Pythons)."""

from __future__ import annotations

import platform
import re
import shutil
import subprocess
import sys
import tarfile
import tomllib
from importlib import metadata
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
PROJECT = tomllib.loads((ROOT / "pyproject.toml").read_text(encoding="utf-8"))["project"]


def test_license_file_is_the_mit_license_the_metadata_names() -> None:
    text = (ROOT / "LICENSE").read_text(encoding="utf-8")
    assert PROJECT["license"] == "MIT"
    assert text.startswith("MIT License\n")
    assert re.search(r"^Copyright \(c\) \d{4} the cdsessions authors$", text, re.MULTILINE)
    assert "Permission is hereby granted, free of charge" in text


def test_classifiers_say_typed_mit_and_the_supported_pythons() -> None:
    classifiers = set(PROJECT["classifiers"])
    assert {
        "Typing :: Typed",
        "License :: OSI Approved :: MIT License",
        "Operating System :: OS Independent",
        "Programming Language :: Python :: 3 :: Only",
    } <= classifiers
    assert any(c.startswith("Development Status :: ") for c in classifiers)
    assert any(c.startswith("Intended Audience :: ") for c in classifiers)
    assert any(c.startswith("Topic :: ") for c in classifiers)
    minimum = tuple(int(part) for part in PROJECT["requires-python"].removeprefix(">=").split("."))
    versions = [
        tuple(int(part) for part in c.rsplit(" :: ", 1)[1].split("."))
        for c in classifiers
        if re.fullmatch(r"Programming Language :: Python :: 3\.\d+", c)
    ]
    assert versions
    assert min(versions) == minimum  # the oldest listed is the oldest supported


def test_the_package_says_it_is_typed() -> None:
    assert (ROOT / "cdsessions" / "py.typed").is_file()


def test_installed_metadata_has_the_classifiers_and_the_pytest_plugin() -> None:
    # What pip installed (re-install after changing pyproject.toml).
    installed = metadata.metadata("cdsessions")
    assert "Typing :: Typed" in installed.get_all("Classifier", [])
    plugins = metadata.entry_points(group="pytest11")
    assert [e.value for e in plugins if e.name == "cdsessions"] == ["cdsessions.pytest_plugin"]


def test_metadata_names_the_authors_and_one_repository_for_every_url() -> None:
    assert PROJECT["authors"] == [{"name": "cdsessions contributors"}]
    urls = PROJECT["urls"]
    assert set(urls) == {"Homepage", "Source", "Issues"}
    base = urls["Source"]
    assert base.startswith("https://")
    assert urls["Homepage"] == base
    assert urls["Issues"] == f"{base}/issues"
    installed = metadata.metadata("cdsessions")
    assert installed["Author"] == "cdsessions contributors"  # as pip installed it
    assert sorted(installed.get_all("Project-URL", [])) == sorted(
        f"{name}, {url}" for name, url in urls.items()
    )


def _build_sdist(into: Path) -> Path:
    """The sdist as ``python -m build --sdist`` makes it, from the build backend itself (already
    installed here: no build isolation, so nothing is downloaded)."""
    made = subprocess.run(
        [
            sys.executable,
            "-c",
            "import sys, hatchling.build as b; print(b.build_sdist(sys.argv[1]))",
            str(into),
        ],
        cwd=ROOT,
        capture_output=True,
        text=True,
        check=True,
        timeout=120,
    )
    return into / made.stdout.strip().splitlines()[-1]


def _on_disk(folder: str) -> set[str]:
    """The files under ``folder`` a clone has (not caches a test run leaves)."""
    return {
        path.relative_to(ROOT).as_posix()
        for path in (ROOT / folder).rglob("*")
        if path.is_file() and "__pycache__" not in path.parts and ".hypothesis" not in path.parts
    }


def test_the_sdist_carries_the_suite_its_data_and_the_nox_tasks(tmp_path: Path) -> None:
    """Issue #21: the sdist held only the package and contracts/, so its suite could not run."""
    with tarfile.open(_build_sdist(tmp_path)) as sdist:
        names = {name.split("/", 1)[1] for name in sdist.getnames() if "/" in name}
    for folder in ("cdsessions", "tests", "cassettes", "contracts", "examples", "bench", "docs"):
        missing = _on_disk(folder) - names
        assert not missing, f"{folder}/ files missing from the sdist: {sorted(missing)[:5]}"
    assert {"noxfile.py", "pyproject.toml", "hatch_build.py", "README.md", "LICENSE"} <= names
    assert "tests/contracts/test_contracts.py" in names
    assert not [name for name in names if "__pycache__" in name or name.endswith(".pyc")]


def test_a_python_older_than_requires_python_is_told_which_it_needs(tmp_path: Path) -> None:
    """Issue #21: on Python 3.10, pip before 25.1 said it could not find ``returns`` (it
    resolves a source project's dependencies before its ``Requires-Python``). The build hook
    refuses first, naming the Python needed. Run here against a copy of the project that needs
    a Python newer than this one."""
    copy = tmp_path / "project"
    copy.mkdir()
    shutil.copy(ROOT / "hatch_build.py", copy)
    text = (ROOT / "pyproject.toml").read_text(encoding="utf-8")
    needed = f"{sys.version_info.major}.{sys.version_info.minor + 1}"
    (copy / "pyproject.toml").write_text(
        text.replace(
            f'requires-python = "{PROJECT["requires-python"]}"', f'requires-python = ">={needed}"'
        ),
        encoding="utf-8",
    )
    load = "import hatch_build, sys; hatch_build.RefuseOlderPython(sys.argv[1], {})"
    refused = subprocess.run(
        [sys.executable, "-c", load, str(copy)],
        cwd=copy,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert refused.returncode == 1
    assert refused.stderr.startswith(f"cdsessions needs Python {needed} or newer")
    assert f"this is Python {platform.python_version()}" in refused.stderr
    assert "Traceback" not in refused.stderr
    # And this Python, which the real pyproject.toml accepts, passes.
    accepted = subprocess.run(
        [sys.executable, "-c", load, str(ROOT)],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert (accepted.returncode, accepted.stderr) == (0, "")
