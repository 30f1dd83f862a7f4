"""Every Python block of README.md and docs/*.md keeps its types: ``mypy --strict`` (with the
``returns`` plugin, as pyproject.toml configures it) and pyright in strict mode accept them all.

Each block, fragments included, is saved as a module of its own (its lines where the Markdown
file has them, so a message names the file and line), and each checker runs once over all of
them. pyright's ``reportMatchNotExhaustive`` is off, as in examples/typed_usage.py: ``Result``
is an open class, so no ``match`` on one is ever exhaustive to it.

The checkers come with the ``typecheck`` extra, so ``nox -s typecheck`` (part of the default
``nox``) runs this module with ``CDSESSIONS_DOC_TYPES=required``; elsewhere, without them, it is
skipped.
"""

from __future__ import annotations

import ast
import json
import os
import re
import shutil
import subprocess
import sys
import textwrap
from collections.abc import Sequence
from importlib.util import find_spec
from pathlib import Path

import pytest

from tests.test_readme import PYTHON_BLOCKS, ROOT, Block

_TIMEOUT = 600
_REQUIRED = os.environ.get("CDSESSIONS_DOC_TYPES") == "required"
_MYPY_CONFIG = textwrap.dedent(
    """
    [mypy]
    strict = True
    python_version = 3.11
    plugins = returns.contrib.mypy.returns_plugin
    """
)
_PYRIGHT_CONFIG = {
    "typeCheckingMode": "strict",
    "pythonVersion": "3.11",
    "reportMatchNotExhaustive": False,
}


def _checker(module: str) -> None:
    if find_spec(module) is None:
        if _REQUIRED:
            pytest.fail(f"{module} is not installed, and CDSESSIONS_DOC_TYPES=required")
        pytest.skip(f"{module} is not installed (it comes with the typecheck extra)")


def module_name(block: Block) -> str:
    """A module name that says where the block is: ``docs_costs_md_line12``."""
    return re.sub(r"\W", "_", f"{block.doc}_line{block.line}").lower()


def _save(blocks: Sequence[Block], folder: Path) -> dict[str, Block]:
    saved = {}
    for block in blocks:
        name = module_name(block)
        (folder / f"{name}.py").write_text(block.padded(), encoding="utf-8")
        saved[name] = block
    return saved


def _where(saved: dict[str, Block], file: str, line: int | str) -> str:
    block = saved[Path(file).stem]
    return f"{block.doc}:{line}"


def mypy_errors(blocks: Sequence[Block], folder: Path) -> list[str]:
    saved = _save(blocks, folder)
    (folder / "mypy.ini").write_text(_MYPY_CONFIG)
    cache = ROOT / ".mypy_cache" / "doc-blocks"  # kept between runs: a warm run takes seconds
    command = [sys.executable, "-m", "mypy", "--config-file", "mypy.ini", "--cache-dir", str(cache)]
    done = subprocess.run(
        [*command, "--no-error-summary", "--show-error-codes", *(f"{n}.py" for n in saved)],
        cwd=folder,
        capture_output=True,
        text=True,
        timeout=_TIMEOUT,
        check=False,
    )
    errors = []
    for line in done.stdout.splitlines():
        found = re.match(
            r"(?P<file>[^:]+\.py):(?P<line>\d+): (?P<kind>error|note): (?P<text>.*)", line
        )
        if found and found["kind"] == "error":
            errors.append(f"{_where(saved, found['file'], found['line'])}: {found['text']}")
        elif not found and line.strip():
            errors.append(line)
    if done.returncode not in (0, 1) or (done.returncode == 1 and not errors):
        errors.append(f"mypy exited {done.returncode}: {done.stderr.strip()}")
    return errors


def pyright_errors(blocks: Sequence[Block], folder: Path) -> list[str]:
    saved = _save(blocks, folder)
    (folder / "pyrightconfig.json").write_text(json.dumps(_PYRIGHT_CONFIG))
    pyright = shutil.which("pyright", path=str(Path(sys.executable).parent)) or "pyright"
    environment = {**os.environ, "PYRIGHT_PYTHON_IGNORE_WARNINGS": "1"}  # no PyPI version check
    done = subprocess.run(
        [pyright, "--outputjson", "--pythonpath", sys.executable, "."],
        cwd=folder,
        capture_output=True,
        text=True,
        timeout=_TIMEOUT,
        env=environment,
        check=False,
    )
    try:
        report = json.loads(done.stdout)
    except ValueError:
        return [f"pyright exited {done.returncode}: {done.stdout[-2000:]}{done.stderr[-2000:]}"]
    errors = []
    for item in report["generalDiagnostics"]:
        if item["severity"] == "error":
            line = item["range"]["start"]["line"] + 1
            rule = item.get("rule", "")
            message = " ".join(item["message"].split())
            errors.append(f"{_where(saved, item['file'], line)}: {message} [{rule}]")
    return errors


def untyped_captures(block: Block) -> list[str]:
    """Where ``block`` binds a ``Success`` or ``Failure`` value by a bare name
    (``case Success(created)``): mypy types that name ``Any`` and stays silent, even under
    ``--strict``, so the checkers alone cannot catch it."""
    found = []
    for node in ast.walk(ast.parse(block.padded())):
        if (
            isinstance(node, ast.MatchClass)
            and isinstance(node.cls, ast.Name)
            and node.cls.id in ("Success", "Failure")
            and node.patterns
            and isinstance(node.patterns[0], ast.MatchAs)
            and node.patterns[0].pattern is None
            and node.patterns[0].name is not None
        ):
            name = node.patterns[0].name
            found.append(f"{block.doc}:{node.lineno}: {node.cls.id}({name}) binds {name} as Any")
    return found


def test_no_doc_block_binds_a_result_value_as_any() -> None:
    assert [where for block in PYTHON_BLOCKS for where in untyped_captures(block)] == []


def test_a_bare_capture_is_found_and_a_named_class_is_not() -> None:
    source = (
        "match r:\n"
        "    case Success(created):\n        pass\n"
        "    case Success(Session() as s):\n        pass\n"
        "    case Failure(_):\n        pass\n"
        "    case Failure(error):\n        pass\n"
    )
    block = Block("docs/x.md", 10, "python", source, None, None)
    assert untyped_captures(block) == [
        "docs/x.md:12: Success(created) binds created as Any",
        "docs/x.md:18: Failure(error) binds error as Any",
    ]


def test_every_doc_block_passes_mypy_strict(tmp_path: Path) -> None:
    _checker("mypy")
    assert mypy_errors(PYTHON_BLOCKS, tmp_path) == []


def test_every_doc_block_passes_pyright_strict(tmp_path: Path) -> None:
    _checker("pyright")
    assert pyright_errors(PYTHON_BLOCKS, tmp_path) == []


def test_the_typecheck_session_requires_this_module() -> None:
    # The default `nox` gate covers the blocks only through the typecheck session: there, a
    # missing checker must fail, not skip.
    tree = ast.parse((ROOT / "noxfile.py").read_text(encoding="utf-8"))
    (typecheck,) = [
        n for n in tree.body if isinstance(n, ast.FunctionDef) and n.name == "typecheck"
    ]
    source = ast.unparse(typecheck)
    assert "tests/test_doc_types.py" in source
    assert "'CDSESSIONS_DOC_TYPES': 'required'" in source
