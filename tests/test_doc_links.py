"""Every relative link in README.md and docs/*.md leads somewhere: the file exists, and an anchor
(``#section``) is one that a heading of that file makes, as GitHub renders it. Links inside code
(fenced blocks, inline code) are text, not links, and are not followed."""

from __future__ import annotations

import re
from pathlib import Path
from urllib.parse import unquote

import pytest

ROOT = Path(__file__).resolve().parent.parent
DOCUMENTS = (ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md")))

# A fence line: three or more backticks (no backtick after them, CommonMark) or tildes.
_FENCE = re.compile(r"^(?:`{3,}[^`]*|~{3,}.*)$")
_HEADING = re.compile(r"^(#{1,6})\s+(.*?)\s*#*\s*$")
_INLINE_CODE = re.compile(r"(`+).*?\1")
_LINK = re.compile(r"\[(?P<text>[^\]]*)\]\((?P<target>[^)\s]+)(?:\s+\"[^\"]*\")?\)")


def _prose_lines(text: str) -> list[tuple[int, str]]:
    """(line number, line) for every line outside fenced code blocks."""
    lines, fenced = [], False
    for number, line in enumerate(text.splitlines(), start=1):
        if _FENCE.match(line):
            fenced = not fenced
            continue
        if not fenced:
            lines.append((number, line))
    return lines


def slug(heading: str) -> str:
    """GitHub's anchor for a heading: lower case, punctuation dropped (``-`` and ``_`` kept),
    each space a ``-``."""
    words = re.sub(r"[^\w\- ]", "", heading.strip().lower())
    return words.replace(" ", "-")


def anchors(path: Path) -> set[str]:
    """Every anchor the headings of ``path`` make; a repeated heading gets ``-1``, ``-2``..."""
    seen: dict[str, int] = {}
    made: set[str] = set()
    for _, line in _prose_lines(path.read_text(encoding="utf-8")):
        heading = _HEADING.match(line)
        if heading is None:
            continue
        base = slug(heading[2])
        count = seen.get(base, 0)
        seen[base] = count + 1
        made.add(base if count == 0 else f"{base}-{count}")
    return made


def relative_links(path: Path) -> list[tuple[int, str]]:
    """(line number, target) of every link in ``path`` that is not to another site."""
    found = []
    for number, line in _prose_lines(path.read_text(encoding="utf-8")):
        for link in _LINK.finditer(_INLINE_CODE.sub("", line)):
            target = link["target"]
            if not re.match(r"[a-z][a-z0-9+.-]*:", target):  # https:, mailto: ...
                found.append((number, target))
    return found


def broken(path: Path, root: Path = ROOT) -> list[str]:
    """What is wrong with each relative link of ``path`` (a file of the project at ``root``),
    as ``file:line: target: why``."""
    problems = []
    for number, target in relative_links(path):
        file_part, _, anchor = target.partition("#")
        where = f"{path.relative_to(root).as_posix()}:{number}: {target}"
        linked = (path.parent / unquote(file_part)).resolve() if file_part else path
        if not linked.exists():
            problems.append(f"{where}: no such file")
        elif not linked.is_relative_to(root.resolve()):
            problems.append(f"{where}: outside the project")
        elif anchor and linked.suffix == ".md" and anchor not in anchors(linked):
            problems.append(f"{where}: no heading makes #{anchor}")
    return problems


@pytest.mark.parametrize("path", DOCUMENTS, ids=lambda path: path.relative_to(ROOT).as_posix())
def test_every_relative_link_leads_to_a_file_and_heading(path: Path) -> None:
    assert broken(path) == []


def test_every_docs_page_is_linked_from_the_table_of_contents() -> None:
    index = ROOT / "docs" / "README.md"
    linked = {target.partition("#")[0] for _, target in relative_links(index)}
    pages = {page.name for page in DOCUMENTS if page.parent.name == "docs" and page != index}
    assert pages - linked == set()


def test_a_broken_link_or_anchor_is_found(tmp_path: Path) -> None:
    # The check itself can fail: a missing file, a missing anchor, a link out of the project;
    # a link in code is ignored.
    (tmp_path / "docs").mkdir()
    (tmp_path / "README.md").write_text("# x\n\n## Set up\n", encoding="utf-8")
    (tmp_path / "docs" / "library.md").write_text("# The library\n", encoding="utf-8")
    page = tmp_path / "docs" / "probe.md"
    page.write_text(
        "# Probe: a `heading`, here\n\n## Again\n\n## Again\n\n"
        "[ok](#probe-a-heading-here) [ok](#again-1) [ok](../README.md#set-up)\n"
        "[gone](nowhere.md) [no anchor](#nowhere) [other](library.md#not-a-heading)\n"
        "`[in code](nowhere.md)` [site](https://example.invalid/x) [up](../../x)\n"
        "```\n[in a block](nowhere.md)\n```\n",
        encoding="utf-8",
    )
    (tmp_path.parent / "x").touch()
    assert broken(page, root=tmp_path) == [
        "docs/probe.md:8: nowhere.md: no such file",
        "docs/probe.md:8: #nowhere: no heading makes #nowhere",
        "docs/probe.md:8: library.md#not-a-heading: no heading makes #not-a-heading",
        "docs/probe.md:9: ../../x: outside the project",
    ]


def table_of_contents(path: Path) -> list[str]:
    """The anchors of the link list that opens ``path`` right after its title."""
    lines = path.read_text(encoding="utf-8").splitlines()[1:]
    while lines and not lines[0].strip():
        lines.pop(0)
    opening = []
    for line in lines:
        item = re.fullmatch(r"\s*- \[[^\]]*\]\(#(?P<anchor>[^)]+)\)", line)
        if item is None:
            break
        opening.append(item["anchor"])
    return opening


@pytest.mark.parametrize(
    "path",
    [page for page in DOCUMENTS if page.parent.name == "docs" and page.name != "README.md"],
    ids=lambda path: path.name,
)
def test_every_docs_page_with_sections_opens_with_its_table_of_contents(path: Path) -> None:
    sections = [
        slug(heading[2])
        for _, line in _prose_lines(path.read_text(encoding="utf-8"))
        if (heading := _HEADING.match(line)) and len(heading[1]) == 2
    ]
    if len(sections) < 2:
        return  # a page of one section is its own table of contents
    assert set(sections) <= set(table_of_contents(path))
