"""The package's public face (cdsessions/__init__.py): every name it lists can be imported from
it, including those it loads only when first asked for."""

from __future__ import annotations

import importlib

import pytest

import cdsessions


@pytest.mark.parametrize("name", cdsessions.__all__)
def test_every_listed_name_imports_from_the_package_as_its_module_defines_it(name: str) -> None:
    value = getattr(cdsessions, name)
    defined_in = getattr(value, "__module__", None)
    if isinstance(value, type) and defined_in and defined_in.startswith("cdsessions."):
        assert getattr(importlib.import_module(defined_in), name) is value


def test_an_unknown_name_is_an_attribute_error_naming_it() -> None:
    with pytest.raises(AttributeError, match="'cdsessions' has no attribute 'Nonesuch'"):
        cdsessions.Nonesuch  # noqa: B018 (the lookup is the test)
