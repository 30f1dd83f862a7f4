"""Packaging hygiene: the license the metadata claims is shipped, and the classifiers say what
the package is (typed, MIT, which Pythons)."""

from __future__ import annotations

import re
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
