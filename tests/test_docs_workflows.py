"""docs/workflows.md is executed like README.md: each Python block runs alone in a fresh
interpreter that may reach only loopback addresses, and a ```text block after it is its output
(the helpers and rules of tests/test_readme.py)."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest
from sybil.document import Document
from sybil.parsers.markdown import CodeBlockParser, PythonCodeBlockParser

from tests.test_readme import _RUN_BLOCK, _matches, _run

DOC = Path(__file__).resolve().parent.parent / "docs" / "workflows.md"


def _blocks() -> list[tuple[int, str, str | None]]:
    """(line, source, the output shown after it) of each Python block."""
    document = Document.parse(str(DOC), PythonCodeBlockParser(), CodeBlockParser("text"))
    examples = sorted(document.examples(), key=lambda example: example.start)
    found = []
    for index, example in enumerate(examples):
        if str(example.region.lexemes.get("arguments", "")).strip() != "python":
            continue
        following = examples[index + 1] if index + 1 < len(examples) else None
        shown = None
        if following is not None and not document.text[example.end : following.start].strip():
            shown = str(following.region.parsed)
        found.append((example.line, str(example.region.parsed), shown))
    return found


BLOCKS = _blocks()


def test_every_python_block_is_found() -> None:
    assert len(BLOCKS) == DOC.read_text(encoding="utf-8").count("```python") > 0


@pytest.mark.parametrize(("line", "source", "shown"), BLOCKS, ids=[f"line{b[0]}" for b in BLOCKS])
def test_docs_block_runs_as_pasted(
    line: int, source: str, shown: str | None, tmp_path: Path
) -> None:
    code, output = _run([sys.executable, "-c", _RUN_BLOCK], tmp_path, stdin="\n" * line + source)
    assert code == 0, f"docs/workflows.md:{line} failed:\n{output}"
    if shown is not None:
        assert _matches(shown, output), (
            f"docs/workflows.md:{line}:\nshown:\n{shown}\nprinted:\n{output}"
        )
