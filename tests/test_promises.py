"""The promise → test map (docs/promises.md) is whole and true, without running the named tests.

Each promise the README and docs/*.md make carries a marker where it is stated, an HTML comment
``<!-- promise: some-id -->`` (invisible when rendered) at the end of its bullet, table row or
sentence. docs/promises.md holds one table, ``| promise | stated in | tests |``, with a row per
id naming the pytest node ids that prove it (``tests/core/test_retry.py::test_name``, a
parametrized test without its brackets, a method as ``file::Class::test``). Checked here:

* every marker has a row and every row a marker, each id once, and the row's "stated in" link
  names the file the marker is in;
* every row names at least one test, and each named test exists (a ``def``/``async def`` at
  module or class level of that file, found with ``ast``);
* each named test can fail: it is not skipped unconditionally, and it asserts (``assert``,
  ``pytest.raises``/``pytest.fail``, ``expect_*``), itself or through a helper of its own module
  or of ``tests/`` that it calls;
* the lists that are promises by their nature (the README's opening list, the Reliability list,
  the secrets, the exit codes table, the cost bullets, the lifecycle bullets) have a marker on
  every item, so a promise added later without a mapping fails here.

The checks are pure functions over text, so the last tests break a copy on purpose and read
the messages.
"""

from __future__ import annotations

import ast
import posixpath
import re
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path

import pytest

from tests.test_doc_links import _INLINE_CODE, _prose_lines

ROOT = Path(__file__).resolve().parent.parent
PROMISES = "docs/promises.md"
MARKER = re.compile(r"<!--\s*promise:\s*(?P<id>[^\s>]*)\s*-->")
_ID = re.compile(r"[a-z0-9]+(?:-[a-z0-9]+)*\Z")
_HEADING = re.compile(r"^(#{1,6})\s+(.*?)\s*$")
_ITEM = re.compile(r"^(?:[-*]|\d+\.)\s")
_LINK_FILE = re.compile(r"\]\((?P<file>[^)#\s]*)(?:#[^)\s]*)?\)")
_NODE = re.compile(r"`(?P<node>tests/[^`\s]+)`")

#: Where every item is a promise: (file, heading of the section), its bullets or table rows.
CHECKED: tuple[tuple[str, str], ...] = (
    ("README.md", "cdsessions"),
    ("docs/reliability.md", "The promises"),
    ("docs/reliability.md", "Secrets"),
    ("docs/cli.md", "Exit codes"),
    ("docs/costs.md", "In the library"),
    ("docs/lifecycle.md", "Never leave a session running: lifecycle helpers"),
    ("docs/lifecycle.md", "Sessions that end with their owner"),
    ("docs/lifecycle.md", "Who started what: the local ledger"),
    ("docs/logs.md", "Reading a session's log"),
)


@dataclass(frozen=True)
class Marker:
    id: str
    file: str
    line: int


@dataclass(frozen=True)
class Row:
    id: str
    stated_in: tuple[str, ...]  # the files its links name, relative to ROOT
    tests: tuple[str, ...]
    line: int


def documents(root: Path = ROOT) -> dict[str, str]:
    """The README and every docs page, by path relative to ``root``."""
    paths = [root / "README.md", *sorted((root / "docs").glob("*.md"))]
    return {path.relative_to(root).as_posix(): path.read_text(encoding="utf-8") for path in paths}


def markers(docs: Mapping[str, str]) -> list[Marker]:
    """Every promise marker outside code blocks, in file and line order."""
    return [
        Marker(found["id"], name, number)
        for name, text in docs.items()
        for number, line in _prose_lines(text)
        for found in MARKER.finditer(_INLINE_CODE.sub("", line))  # in code it is an example
    ]


def rows(promises: str) -> list[Row]:
    """The rows of the promises page's table (its header row and rule excluded)."""
    found = []
    for number, line in _prose_lines(promises):
        cells = [cell.strip() for cell in line.strip().strip("|").split("|")]
        if not line.startswith("|") or len(cells) != 3 or set(cells[0]) <= set("-: "):
            continue
        if cells[0] == "promise":
            continue
        stated = tuple(  # links are relative to docs/
            posixpath.normpath(f"docs/{link['file']}") if link["file"] else PROMISES
            for link in _LINK_FILE.finditer(cells[1])
        )
        tests = tuple(node["node"] for node in _NODE.finditer(cells[2]))
        found.append(Row(cells[0].strip("`"), stated, tests, number))
    return found


def _row_hint(marker: Marker) -> str:
    page = Path(marker.file).name if marker.file.startswith("docs/") else "../README.md"
    return f"| `{marker.id}` | [{Path(marker.file).stem}]({page}) | `tests/...::test_...` |"


def map_problems(docs: Mapping[str, str], promises: str) -> list[str]:
    """Markers without a row, rows without a marker, ids used twice or malformed, and a row
    stated in a file other than its marker's."""
    problems = []
    marks, table = markers(docs), rows(promises)
    by_id: dict[str, list[Marker]] = {}
    for mark in marks:
        by_id.setdefault(mark.id, []).append(mark)
        if not _ID.match(mark.id):
            problems.append(
                f"{mark.file}:{mark.line}: promise id {mark.id!r} is not lower-case words "
                "joined by '-': rename it (and its row in docs/promises.md)"
            )
    for promise_id, places in by_id.items():
        if len(places) > 1:
            where = ", ".join(f"{mark.file}:{mark.line}" for mark in places)
            problems.append(
                f"promise {promise_id!r} is marked more than once ({where}): give each "
                "statement its own id and row"
            )
    row_ids: dict[str, list[Row]] = {}
    for row in table:
        row_ids.setdefault(row.id, []).append(row)
    for promise_id, same in row_ids.items():
        if len(same) > 1:
            lines = ", ".join(str(row.line) for row in same)
            problems.append(
                f"{PROMISES}: promise {promise_id!r} has {len(same)} rows (lines {lines}): keep one"
            )
    for mark in marks:
        if mark.id not in row_ids:
            problems.append(
                f"{mark.file}:{mark.line}: promise {mark.id!r} is marked but has no row in "
                f"{PROMISES}: add `{_row_hint(mark)}` naming the tests that prove it"
            )
    for row in table:
        marked = by_id.get(row.id)
        if not marked:
            problems.append(
                f"{PROMISES}:{row.line}: row {row.id!r} has no marker in README.md or "
                f"docs/*.md: add `<!-- promise: {row.id} -->` at the end of the bullet, table "
                "row or sentence that states it (or drop the row)"
            )
        elif row.stated_in and marked[0].file not in row.stated_in:
            problems.append(
                f"{PROMISES}:{row.line}: row {row.id!r} says it is stated in "
                f"{', '.join(row.stated_in)}, but its marker is in {marked[0].file}: "
                "link that file"
            )
        elif not row.stated_in:
            problems.append(
                f"{PROMISES}:{row.line}: row {row.id!r} links no page in its 'stated in' "
                f"column: link {marked[0].file}"
            )
    return problems


def _sections(text: str, heading: str) -> Iterator[tuple[int, str]]:
    """(line number, line) of the text right under ``heading`` (code blocks left out), up to
    the next heading of any level: a subsection is a list of its own."""
    inside = False
    for number, line in _prose_lines(text):
        title = _HEADING.match(line)
        if title and inside:
            return
        if title and title[2] == heading:
            inside = True
        elif inside:
            yield number, line


def items(text: str, heading: str) -> list[tuple[int, str]]:
    """The top-level bullets (with their continuation lines) and table body rows of the
    section, each as (first line number, its whole text)."""
    found: list[tuple[int, str]] = []
    inside = False  # within a bullet, where indented lines continue it
    for number, line in _sections(text, heading):
        if line.startswith("|"):
            inside = False
            cells = line.strip().strip("|").split("|")
            if all(set(cell.strip()) <= set("-: ") for cell in cells):
                found.pop()  # the row above the rule is the header
                continue
            found.append((number, line))
        elif _ITEM.match(line):
            inside = True
            found.append((number, line))
        elif inside and line.startswith(" ") and line.strip():
            found[-1] = (found[-1][0], found[-1][1] + "\n" + line)
        else:
            inside = False
    return found


def structure_problems(
    docs: Mapping[str, str], checked: tuple[tuple[str, str], ...] = CHECKED
) -> list[str]:
    """Every item of the checked lists carries a marker, and each checked section exists."""
    problems = []
    for name, heading in checked:
        found = items(docs.get(name, ""), heading)
        if not found:
            problems.append(
                f"{name}: no bullets or table rows under the heading {heading!r}: update "
                "CHECKED in tests/test_promises.py to where that list now is"
            )
        for number, item in found:
            if not MARKER.search(item):
                first = item.splitlines()[0][:70]
                problems.append(
                    f"{name}:{number}: {first!r}... is in the checked list {heading!r} but has "
                    "no marker: end it with `<!-- promise: NEW-ID -->` and add a row for "
                    f"NEW-ID to {PROMISES} naming the tests that prove it"
                )
    return problems


# -- the named tests -------------------------------------------------------------------------


def _functions(tree: ast.Module) -> dict[str, ast.FunctionDef | ast.AsyncFunctionDef]:
    """Module-level and class-level functions, as ``name`` and ``Class::name``."""
    found: dict[str, ast.FunctionDef | ast.AsyncFunctionDef] = {}
    for node in tree.body:
        if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef):
            found[node.name] = node
        elif isinstance(node, ast.ClassDef):
            for inner in node.body:
                if isinstance(inner, ast.FunctionDef | ast.AsyncFunctionDef):
                    found[f"{node.name}::{inner.name}"] = inner
    return found


def _called_name(call: ast.Call) -> str:
    func = call.func
    if isinstance(func, ast.Attribute):
        return func.attr
    return func.id if isinstance(func, ast.Name) else ""


def _unconditional_skip(func: ast.FunctionDef | ast.AsyncFunctionDef) -> bool:
    for decorator in func.decorator_list:
        target = decorator.func if isinstance(decorator, ast.Call) else decorator
        if isinstance(target, ast.Attribute) and target.attr == "skip":
            return True  # pytest.mark.skip (skipif is conditional)
    first = func.body[0] if func.body else None
    if isinstance(first, ast.Expr) and isinstance(first.value, ast.Constant):
        first = func.body[1] if len(func.body) > 1 else None  # after the docstring
    return (
        isinstance(first, ast.Expr)
        and isinstance(first.value, ast.Call)
        and _called_name(first.value) == "skip"
    )


def _checks_directly(node: ast.AST) -> bool:
    for inner in ast.walk(node):
        if isinstance(inner, ast.Assert):
            return True
        if isinstance(inner, ast.Call):
            name = _called_name(inner)
            if name in {"raises", "fail"} or name.startswith(("expect_", "assert_")):
                return True
    return False


class NamedTests:
    """The test modules, parsed once, and the helpers they import from ``tests``."""

    def __init__(self, root: Path) -> None:
        self.root = root
        self._trees: dict[str, ast.Module | None] = {}

    def tree(self, path: str) -> ast.Module | None:
        if path not in self._trees:
            file = self.root / path
            self._trees[path] = (
                ast.parse(file.read_text(encoding="utf-8")) if file.is_file() else None
            )
        return self._trees[path]

    def _imported(self, tree: ast.Module) -> dict[str, tuple[str, str]]:
        """Names a module imports from other ``tests`` modules: name → (path, name there)."""
        found = {}
        for node in tree.body:
            if isinstance(node, ast.ImportFrom) and (node.module or "").startswith("tests."):
                path = (node.module or "").replace(".", "/") + ".py"
                for alias in node.names:
                    found[alias.asname or alias.name] = (path, alias.name)
        return found

    def checks(self, path: str, func: ast.AST, depth: int = 3) -> bool:
        """Whether ``func`` asserts, itself or through a helper of ``tests`` it calls."""
        if _checks_directly(func):
            return True
        tree = self.tree(path)
        if depth == 0 or tree is None:
            return False
        local, imported = _functions(tree), self._imported(tree)
        for inner in ast.walk(func):
            if not isinstance(inner, ast.Call) or not isinstance(inner.func, ast.Name):
                continue
            name = inner.func.id
            if (
                name in local
                and local[name] is not func
                and self.checks(path, local[name], depth - 1)
            ):
                return True
            if name in imported:
                other_path, other_name = imported[name]
                other = self.tree(other_path)
                helper = _functions(other).get(other_name) if other else None
                if helper is not None and self.checks(other_path, helper, depth - 1):
                    return True
        return False

    def problem(self, node: str) -> str | None:
        """Why the node id names no test that can fail, or None."""
        path, _, name = node.partition("::")
        if "[" in name:
            return f"{node}: name a parametrized test without its brackets"
        tree = self.tree(path)
        if tree is None:
            return f"{node}: there is no file {path}"
        func = _functions(tree).get(name)
        if func is None or not func.name.startswith("test"):
            return (
                f"{node}: {path} has no test {name!r} (renamed or removed?): name the test "
                "that now proves the promise"
            )
        if _unconditional_skip(func):
            return f"{node}: is skipped unconditionally, so it cannot fail: name another"
        if not self.checks(path, func):
            return (
                f"{node}: asserts nothing (no assert, pytest.raises, expect_* or helper of "
                "tests/ that does), so it cannot fail: name a test that checks the promise"
            )
        return None


def named_test_problems(promises: str, root: Path = ROOT) -> list[str]:
    """A row naming no test, and each named test that does not exist or cannot fail."""
    tests, problems = NamedTests(root), []
    for row in rows(promises):
        if not row.tests:
            problems.append(
                f"{PROMISES}:{row.line}: promise {row.id!r} names no test: write one (in the "
                "module mirroring the code it tests) and name it as `tests/...::test_...`"
            )
        problems.extend(
            f"{PROMISES}:{row.line}: {problem}"
            for node in row.tests
            if (problem := tests.problem(node)) is not None
        )
    return problems


# -- the checks, on the project --------------------------------------------------------------


def _promises_page(root: Path = ROOT) -> str:
    return (root / PROMISES).read_text(encoding="utf-8")


def test_every_promise_marker_has_a_row_and_every_row_a_marker() -> None:
    problems = map_problems(documents(), _promises_page())
    assert not problems, "\n".join(problems)


def test_every_row_names_tests_that_exist_and_can_fail() -> None:
    problems = named_test_problems(_promises_page())
    assert not problems, "\n".join(problems)


def test_every_item_of_the_promise_lists_carries_a_marker() -> None:
    problems = structure_problems(documents())
    assert not problems, "\n".join(problems)


def test_the_map_is_not_empty() -> None:
    """A table the parser cannot read would pass every check above with nothing in it."""
    assert len(rows(_promises_page())) >= 50
    assert {mark.file for mark in markers(documents())} >= {name for name, _ in CHECKED}


# -- the checks catch what they are for ------------------------------------------------------

_DOC = """# Reliability

## The promises

- **A call never raises.** Whatever the server sends. <!-- promise: never-raises -->
- **A call never hangs**, name resolution included,
  past its deadline. <!-- promise: never-hangs -->

## Exit codes

| code | meaning |
| --- | --- |
| 0 | success <!-- promise: exit-0 --> |
"""

_ROWS = "tests/test_promises.py::test_every_row_names_tests_that_exist_and_can_fail"
_MAP = "tests/test_promises.py::test_the_map_is_not_empty"
_PAGE = f"""| promise | stated in | tests |
| --- | --- | --- |
| `never-raises` | [reliability](reliability.md#the-promises) | `{_ROWS}` |
| `never-hangs` | [reliability](reliability.md) | `{_MAP}` |
| `exit-0` | [reliability](reliability.md) | `{_MAP}` |
"""
_SMALL = (("docs/reliability.md", "The promises"), ("docs/reliability.md", "Exit codes"))


def test_a_whole_small_map_has_no_problems() -> None:
    docs = {"docs/reliability.md": _DOC}
    assert map_problems(docs, _PAGE) == []
    assert structure_problems(docs, _SMALL) == []
    assert named_test_problems(_PAGE) == []
    assert [row.id for row in rows(_PAGE)] == ["never-raises", "never-hangs", "exit-0"]
    assert [number for number, _ in items(_DOC, "The promises")] == [5, 6]


def test_a_deleted_marker_leaves_its_row_without_one() -> None:
    docs = {"docs/reliability.md": _DOC.replace(" <!-- promise: never-hangs -->", "")}
    assert map_problems(docs, _PAGE) == [
        f"{PROMISES}:4: row 'never-hangs' has no marker in README.md or docs/*.md: add "
        "`<!-- promise: never-hangs -->` at the end of the bullet, table row or sentence that "
        "states it (or drop the row)"
    ]
    assert structure_problems(docs, _SMALL) == [
        "docs/reliability.md:6: '- **A call never hangs**, name resolution included,'... is in "
        "the checked list 'The promises' but has no marker: end it with `<!-- promise: NEW-ID "
        f"-->` and add a row for NEW-ID to {PROMISES} naming the tests that prove it"
    ]


def test_a_marker_without_a_row_says_what_to_add() -> None:
    page = "\n".join(line for line in _PAGE.splitlines() if "exit-0" not in line)
    (problem,) = map_problems({"docs/reliability.md": _DOC}, page)
    assert problem == (
        "docs/reliability.md:13: promise 'exit-0' is marked but has no row in docs/promises.md: "
        "add `| `exit-0` | [reliability](reliability.md) | `tests/...::test_...` |` naming the "
        "tests that prove it"
    )


def test_an_unmarked_bullet_or_row_in_a_checked_list_fails() -> None:
    doc = _DOC.replace(
        "<!-- promise: never-hangs -->\n",
        "<!-- promise: never-hangs -->\n- **A new promise** with no test.\n",
    ).replace("| 0 | success", "| 1 | failure |\n| 0 | success")
    problems = structure_problems({"docs/reliability.md": doc}, _SMALL)
    assert [problem.split(":")[1] for problem in problems] == ["8", "14"]
    assert all("has no marker: end it with `<!-- promise: NEW-ID -->`" in p for p in problems)


def test_a_renamed_missing_or_assertion_free_test_fails() -> None:
    renamed = _PAGE.replace("test_the_map_is_not_empty", "test_the_map_is_full")
    assert named_test_problems(renamed) == [
        f"{PROMISES}:{line}: tests/test_promises.py::test_the_map_is_full: "
        "tests/test_promises.py has no test 'test_the_map_is_full' (renamed or removed?): "
        "name the test that now proves the promise"
        for line in (4, 5)
    ]
    empty = _PAGE.replace(
        "`tests/test_promises.py::test_the_map_is_not_empty` |\n| `exit-0`", " |\n| `exit-0`"
    )
    assert named_test_problems(empty) == [
        f"{PROMISES}:4: promise 'never-hangs' names no test: write one (in the module mirroring "
        "the code it tests) and name it as `tests/...::test_...`"
    ]
    bracketed = _PAGE.replace("::test_the_map_is_not_empty`", "::test_the_map_is_not_empty[x]`")
    assert named_test_problems(bracketed) == [
        f"{PROMISES}:{line}: tests/test_promises.py::test_the_map_is_not_empty[x]: name a "
        "parametrized test without its brackets"
        for line in (4, 5)
    ]


def test_a_test_that_cannot_fail_is_refused(tmp_path: Path) -> None:
    module = tmp_path / "tests" / "test_x.py"
    module.parent.mkdir()
    module.write_text(
        "import pytest\n"
        "def _check(x):\n    assert x\n"
        "def test_prints():\n    print('fine')\n"
        "@pytest.mark.skip(reason='later')\ndef test_skipped():\n    assert False\n"
        "def test_skips_itself():\n    '''Doc.'''\n    pytest.skip('later')\n    assert False\n"
        "def test_through_a_helper():\n    _check(1)\n"
        "class TestGroup:\n    def test_raises(self):\n"
        "        with pytest.raises(ValueError):\n            int('x')\n"
    )
    page = "| promise | stated in | tests |\n| --- | --- | --- |\n" + "".join(
        f"| `p{index}` | [x](x.md) | `tests/test_x.py::{name}` |\n"
        for index, name in enumerate(
            [
                "test_prints",
                "test_skipped",
                "test_skips_itself",
                "test_through_a_helper",
                "TestGroup::test_raises",
                "TestGroup::test_missing",
                "_check",
            ]
        )
    )
    problems = named_test_problems(page, tmp_path)
    assert [problem.split(": ", 2)[1] for problem in problems] == [
        "tests/test_x.py::test_prints",
        "tests/test_x.py::test_skipped",
        "tests/test_x.py::test_skips_itself",
        "tests/test_x.py::TestGroup::test_missing",
        "tests/test_x.py::_check",
    ]
    assert "asserts nothing" in problems[0]
    assert "skipped unconditionally" in problems[1]
    assert "skipped unconditionally" in problems[2]


@pytest.mark.parametrize(
    ("mark", "expected"),
    [
        ("<!-- promise: Never_Raises -->", "is not lower-case words joined by '-'"),
        ("<!-- promise: never-raises -->", "is marked more than once"),
    ],
)
def test_a_malformed_or_repeated_id_is_refused(mark: str, expected: str) -> None:
    doc = _DOC + f"\nAlso: {mark}\n"
    problems = map_problems({"docs/reliability.md": doc}, _PAGE)
    assert any(expected in problem for problem in problems), problems


def test_a_row_stated_in_the_wrong_page_is_refused() -> None:
    docs = {"docs/costs.md": _DOC}
    problems = map_problems(docs, _PAGE)
    assert problems[0] == (
        f"{PROMISES}:3: row 'never-raises' says it is stated in docs/reliability.md, but its "
        "marker is in docs/costs.md: link that file"
    )


def test_a_marker_inside_code_is_not_a_marker() -> None:
    doc = "# T\n\n```text\n<!-- promise: in-block -->\n```\nSay `<!-- promise: in-code -->`.\n"
    doc += "<!-- promise: outside -->\n"
    assert [(mark.id, mark.line) for mark in markers({"docs/t.md": doc})] == [("outside", 7)]
