"""Refuses to build cdsessions for a Python older than ``requires-python``, with a message that
says so.

pip before 25.1 resolves a source project's dependencies before it checks the project's own
``Requires-Python``, so on Python 3.10 it reported "Could not find a version that satisfies the
requirement returns" instead of naming the Python version. Hatchling loads this hook while it
prepares the metadata, which pip does before resolving anything, whatever pip's version.

It runs on the Python being installed into, so it must work on any Python hatchling supports:
no ``tomllib`` before 3.11 (hatchling brings ``tomli`` there), no newer syntax.
"""

from __future__ import annotations

import os
import platform
import sys
from typing import Any

from hatchling.metadata.plugin.interface import MetadataHookInterface
from packaging.specifiers import SpecifierSet

try:
    import tomllib
except ModuleNotFoundError:  # before 3.11: the Pythons this refuses (hatchling needs tomli there)
    import tomli as tomllib


def requires_python(root: str) -> str:
    with open(os.path.join(root, "pyproject.toml"), "rb") as file:
        return str(tomllib.load(file)["project"]["requires-python"])


class RefuseOlderPython(MetadataHookInterface):
    PLUGIN_NAME = "custom"

    def __init__(self, root: str, config: dict[str, Any]) -> None:
        super().__init__(root, config)
        needed = requires_python(root)
        running = platform.python_version()
        if not SpecifierSet(needed).contains(running, prereleases=True):
            # SystemExit: pip shows this one line, not a build backend traceback.
            raise SystemExit(
                f"cdsessions needs Python {needed.lstrip('>=')} or newer (requires-python "
                f"{needed!r}); this is Python {running} ({sys.executable}). Install it with a "
                "newer Python, e.g. python3.11 -m pip install ."
            )

    def update(self, metadata: dict[str, Any]) -> None:
        """Nothing to change: the check is made when hatchling loads the hook."""
