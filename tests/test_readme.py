"""README.md and docs/*.md are executed: every Python block runs as written, and shown output
is real output.

How the blocks are run (the rules a README or docs author follows; each Markdown file is read
on its own, and each block is a test named by its file and line, ``docs/costs.md:line12``):

* **Each block runs on its own**, in a fresh interpreter (a subprocess, working directory a
  fresh temporary folder, no ``COMFY_DEPLOY_*`` variables), exactly as if a reader pasted that
  block alone into a file. A block never sees names from an earlier block: the complaint this
  answers was blocks using a ``client`` defined somewhere else.
* A block that defines top-level ``test_*`` functions is a pytest file: it is saved as one and
  run with pytest (the installed cdsessions plugin and its fixtures included), and every one of
  its tests must pass.
* A ```` ```console ```` or ```` ```text ```` block right after a Python block is that block's
  output (stdout and stderr together), compared line by line; ``…`` in it stands for any text
  within a line (times, ids cut short).
* A block that is a file the reader saves is preceded by ``<!-- writes: tests/test_x.py -->``:
  it is saved at that path in a fresh folder, and the ```` ```console ```` block after it is
  what the reader then types there: its ``pytest`` commands are run (with pytest-recording's
  ``--block-network --allowed-hosts=127.0.0.1,localhost``), its ``pip install`` lines skipped
  (the test environment has the packages). Each must pass every test of the file. A file
  using ``pytest.mark.vcr`` is then replayed once more with ``--record-mode=none
  --block-network`` (no address at all), and every cassette it wrote must hold no
  ``Authorization`` header, bearer token or session url.
* A block preceded by ``<!-- run-after: tests/test_x.py -->`` runs in that folder, after
  those commands (e.g. it reads the cassette they recorded).
* A block that cannot run at all on purpose (it needs a key or production) is preceded by
  ``<!-- fragment: why -->``; it is reported as skipped with that reason.
* Nothing in a block may reach the network: the interpreter refuses any address but loopback.

Blocks are found with Sybil's Markdown parsers (fenced blocks, and ``invisible-code-block``
comments). Two console transcripts of the ``cdsessions`` command are replayed too, against the
fake: ``python -m cdsessions demo`` and the session commands against ``--server local``.
"""

from __future__ import annotations

import ast
import json
import os
import re
import shlex
import subprocess
import sys
import textwrap
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import yaml
from sybil.document import Document
from sybil.parsers.markdown import CodeBlockParser, PythonCodeBlockParser

ROOT = Path(__file__).resolve().parent.parent
README = ROOT / "README.md"
#: Every Markdown file whose blocks run: the README, then the docs/ pages, by name.
DOCUMENTS = (README, *sorted((ROOT / "docs").glob("*.md")))
# The comment on the line just above a block's fence that says how it runs (module docs).
_MARKER = re.compile(
    r"<!--\s*(?P<kind>fragment|writes|run-after):\s*(?P<value>.*?)\s*-->\s*\Z", re.DOTALL
)
_OUTPUT_LANGUAGES = ("console", "text")
_BLOCK_TIMEOUT = 120

# Loaded first in every block's interpreter: only loopback addresses may be looked up or
# connected to, so a README block can never talk to production or any other host.
_NETWORK_GUARD = textwrap.dedent(
    """
    import ipaddress as _ip
    import socket as _socket

    def _loopback(host):
        if isinstance(host, bytes):
            host = host.decode()
        if host is None or host == "localhost":
            return True
        try:
            return _ip.ip_address(str(host).split("%")[0]).is_loopback
        except ValueError:
            return False

    _REFUSED = []

    def _refuse(host):
        # Recorded too: the client turns the error into a Failure value, which a block may
        # print and carry on; the run still fails.
        _REFUSED.append(str(host))
        raise OSError(f"README blocks may only reach loopback addresses, not {host!r}")

    _real_getaddrinfo = _socket.getaddrinfo
    _real_connect = _socket.socket.connect

    def _getaddrinfo(host, *args, **kwargs):
        if not _loopback(host):
            _refuse(host)
        return _real_getaddrinfo(host, *args, **kwargs)

    def _connect(self, address):
        if isinstance(address, tuple) and not _loopback(address[0]):
            _refuse(address[0])
        return _real_connect(self, address)

    _socket.getaddrinfo = _getaddrinfo
    _socket.socket.connect = _connect


    def pytest_sessionfinish(session, exitstatus):
        if _REFUSED:
            print(f"README blocks may only reach loopback addresses, not {_REFUSED}")
            session.exitstatus = 1
    """
)

# Runs a block read from stdin under its file's name (the first argument), so a traceback names
# the file and line.
_RUN_BLOCK = _NETWORK_GUARD + textwrap.dedent(
    """
    import sys
    _source = sys.stdin.read()
    _name = sys.argv[1] if len(sys.argv) > 1 else "README.md"
    exec(compile(_source, _name, "exec"), {"__name__": "__main__"})
    if _REFUSED:
        sys.exit(f"README blocks may only reach loopback addresses, not {_REFUSED}")
    """
)


@dataclass(frozen=True)
class Block:
    doc: str  # the Markdown file, relative to the project: "README.md", "docs/costs.md"
    line: int  # of the opening fence, 1-based
    language: str
    source: str
    fragment: str | None  # why it cannot run alone, when marked so
    output: str | None  # the console/text block right after it, if any
    writes: str | None = None  # the file the reader saves it as, when marked so
    run_after: str | None = None  # runs where the block that writes this file was run

    def padded(self) -> str:
        """The source, shifted so that its line numbers are its Markdown file's."""
        return "\n" * self.line + self.source

    @property
    def where(self) -> str:
        return f"{self.doc}:{self.line}"


def _blocks(path: Path) -> list[Block]:
    document = Document.parse(
        str(path),
        PythonCodeBlockParser(),
        *(CodeBlockParser(language) for language in _OUTPUT_LANGUAGES),
    )
    examples = sorted(document.examples(), key=lambda example: example.start)
    blocks: list[Block] = []
    for index, example in enumerate(examples):
        language = str(example.region.lexemes.get("arguments", "")).strip()
        before = document.text[: example.start].rstrip()
        marked = _MARKER.search(before.rsplit("\n", 1)[-1])  # the line just above the fence
        marks = {marked.group("kind"): marked.group("value")} if marked else {}
        following = examples[index + 1] if index + 1 < len(examples) else None
        output = None
        if (
            following is not None
            and str(following.region.lexemes.get("arguments", "")).strip() in _OUTPUT_LANGUAGES
            and not document.text[example.end : following.start].strip()
        ):
            output = str(following.region.parsed)
        blocks.append(
            Block(
                doc=path.relative_to(ROOT).as_posix(),
                line=example.line,
                language=language,
                source=str(example.region.parsed),
                fragment=marks.get("fragment"),
                output=output,
                writes=marks.get("writes"),
                run_after=marks.get("run-after"),
            )
        )
    return blocks


BLOCKS = [block for path in DOCUMENTS for block in _blocks(path)]
PYTHON_BLOCKS = [block for block in BLOCKS if block.language == "python"]


def _environment(tmp_path: Path) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("COMFY_DEPLOY_")}
    env["PYTHONDONTWRITEBYTECODE"] = "1"
    env["PYTHONUNBUFFERED"] = "1"  # prints and log lines interleave as they happen
    env["PATH"] = f"{Path(sys.executable).parent}{os.pathsep}{env.get('PATH', '')}"
    env["HOME"] = str(tmp_path)  # nothing read from the real home (e.g. a key file)
    return env


def _test_functions(source: str) -> list[str]:
    tree = ast.parse(source)
    return [
        node.name
        for node in tree.body
        if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef) and node.name.startswith("test")
    ]


def _matches(shown: str, actual: str) -> bool:
    """``actual`` as ``shown`` says, line by line; ``…`` in ``shown`` is any text in a line."""
    shown_lines = [line.rstrip() for line in shown.strip("\n").splitlines()]
    actual_lines = [line.rstrip() for line in actual.strip("\n").splitlines()]
    if len(shown_lines) != len(actual_lines):
        return False
    for want, got in zip(shown_lines, actual_lines, strict=True):
        pattern = "[^\n]*?".join(re.escape(part) for part in want.split("…"))
        if not re.fullmatch(pattern, got):
            return False
    return True


def _run(command: list[str], tmp_path: Path, stdin: str | None = None) -> tuple[int, str]:
    done = subprocess.run(
        command,
        input=stdin,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,  # one stream, in the order a terminal shows it
        text=True,
        cwd=tmp_path,
        env=_environment(tmp_path),
        timeout=_BLOCK_TIMEOUT,
        check=False,
    )
    return done.returncode, done.stdout


# -- blocks that are files the reader saves (<!-- writes: PATH -->) --------------------------

_GUARD_PLUGIN = "_readme_network_guard"  # _NETWORK_GUARD saved as a module in a workspace
_PYTEST = [sys.executable, "-m", "pytest", "-p", "no:cacheprovider", "-p", _GUARD_PLUGIN]
_LOOPBACK_ONLY = ("--block-network", "--allowed-hosts=127.0.0.1,localhost")  # pytest-recording
_URL_FIELDS = frozenset({"url", "tunnel_url"})
_URL_PLACEHOLDER = "https://session-url.redacted.invalid"


def _console_pairs(source: str) -> list[tuple[str, str]]:
    """A console block as (command, the output shown under it) pairs."""
    pairs: list[tuple[str, list[str]]] = []
    for line in source.splitlines():
        if line.startswith("$ "):
            pairs.append((line[2:], []))
        elif pairs:
            pairs[-1][1].append(line)
    return [(command, "\n".join(lines)) for command, lines in pairs]


def _json_fields(value: Any) -> Iterator[tuple[str, Any]]:
    if isinstance(value, dict):
        for key, item in value.items():
            yield key, item
            yield from _json_fields(item)
    elif isinstance(value, list):
        for item in value:
            yield from _json_fields(item)


def _secrets_in(cassette: Path) -> list[str]:
    """What a cassette holds that it never may: the key (an Authorization header, a bearer
    token) or a session url (an unauthenticated tunnel into the session)."""
    text = cassette.read_text(encoding="utf-8")
    found: list[str] = []
    if re.search(r"(?i)\bbearer\s", text):
        found.append("a bearer token")
    if re.search(r"\.modal\.(?:host|run|localhost)", text):
        found.append("a session url")
    for index, interaction in enumerate(yaml.safe_load(text)["interactions"]):
        names = {str(name).lower() for name in interaction["request"]["headers"]}
        for name in sorted(names & {"authorization", "proxy-authorization", "cookie"}):
            found.append(f"interactions[{index}]: the {name} header")
        body = interaction["response"]["body"]["string"]
        body = body.decode() if isinstance(body, bytes) else str(body)
        if body.startswith(("{", "[")):
            for key, value in _json_fields(json.loads(body)):
                if key in _URL_FIELDS and value not in (None, _URL_PLACEHOLDER):
                    found.append(f"interactions[{index}]: a session url in {key!r}")
    return found


def _make_workspace(writer: Block, folder: Path) -> list[str]:
    """Does in ``folder`` what the README tells the reader to do with ``writer``: save it at its
    path and type the commands shown after it. Returns what went wrong (nothing if all is well).
    """
    assert writer.writes is not None
    where = writer.where
    target = folder / writer.writes
    target.parent.mkdir(parents=True, exist_ok=True)
    target.write_text(writer.source)  # as the reader saves it
    (folder / f"{_GUARD_PLUGIN}.py").write_text(_NETWORK_GUARD)
    tests = _test_functions(writer.source)
    commands = _console_pairs(writer.output or "")
    if not commands and tests:
        commands = [(f"pytest {shlex.quote(writer.writes)}", "")]
    problems: list[str] = []

    def passed(code: int, output: str) -> bool:
        return code == 0 and re.search(rf"\b{len(tests)} passed\b", output) is not None

    for command, shown in commands:
        argv = shlex.split(command, comments=True)
        if argv[:2] == ["pip", "install"]:
            continue  # the test environment has the packages already
        if argv[:1] != ["pytest"]:
            problems.append(f"{where}: `$ {command}`: only pytest and pip install can be run")
            continue
        code, output = _run([*_PYTEST, *_LOOPBACK_ONLY, *argv[1:]], folder)
        if not passed(code, output):
            problems.append(f"{where}: `$ {command}` did not pass all of {tests}:\n{output}")
        elif shown.strip() and not _matches(shown, output):
            problems.append(f"{where}: `$ {command}` printed\n{output}\nnot\n{shown}")
    if "pytest.mark.vcr" in writer.source:
        # Replaying may need no address at all, not even loopback: only the cassettes answer.
        replay = ["--record-mode=none", "--block-network", writer.writes]
        code, output = _run([*_PYTEST, *replay], folder)
        if not passed(code, output):
            problems.append(f"{where}: replaying without any network failed:\n{output}")
        cassettes = sorted(folder.rglob("*.yaml"))
        if not cassettes:
            problems.append(f"{where}: no cassette was written")
        for cassette in cassettes:
            for secret in _secrets_in(cassette):
                problems.append(f"{where}: {cassette.relative_to(folder)} holds {secret}")
    return problems


@pytest.fixture(scope="module")
def workspace(tmp_path_factory: pytest.TempPathFactory) -> Callable[[str, str], Path]:
    """The folder where the block of Markdown file ``doc`` marked ``<!-- writes: PATH -->`` was
    saved and its commands were run; made once, for that block and every block of the same file
    that runs after it."""
    made: dict[tuple[str, str], tuple[Path, list[str]]] = {}

    def folder_for(doc: str, path: str) -> Path:
        if (doc, path) not in made:
            writers = [b for b in PYTHON_BLOCKS if b.doc == doc and b.writes == path]
            assert len(writers) == 1, f"{doc}: {len(writers)} blocks write {path}, not one"
            folder = tmp_path_factory.mktemp("readme-workspace")
            made[doc, path] = (folder, _make_workspace(writers[0], folder))
        folder, problems = made[doc, path]
        assert not problems, "\n".join(problems)
        return folder

    return folder_for


@pytest.mark.parametrize(
    "block", PYTHON_BLOCKS, ids=[f"{b.doc}:line{b.line}" for b in PYTHON_BLOCKS]
)
def test_python_block_runs_as_pasted(
    block: Block, tmp_path: Path, workspace: Callable[[str, str], Path]
) -> None:
    if block.fragment is not None:
        pytest.skip(f"{block.where} is a fragment: {block.fragment}")
    if block.writes is not None:
        workspace(block.doc, block.writes)
        return
    folder = tmp_path if block.run_after is None else workspace(block.doc, block.run_after)
    tests = _test_functions(block.source)
    if tests:
        (folder / "conftest.py").write_text(_NETWORK_GUARD)
        (folder / "test_readme_block.py").write_text(block.padded())
        command = [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider"]
        code, output = _run([*command, "test_readme_block.py"], folder)
        assert code == 0, f"{block.where}: its tests failed:\n{output}"
        ran = re.search(rf"\b{len(tests)} passed\b", output)
        assert ran, f"{block.where}: not every one of {tests} ran:\n{output}"
        return
    run = [sys.executable, "-c", _RUN_BLOCK, block.doc]
    code, output = _run(run, folder, stdin=block.padded())
    how = f"after the commands for {block.run_after}" if block.run_after else "alone"
    assert code == 0, f"{block.where} failed when run {how}:\n{output}"
    if block.output is not None:
        assert _matches(block.output, output), (
            f"{block.where}: the output shown after it is not what it prints.\n"
            f"shown:\n{block.output}\nprinted:\n{output}"
        )


# -- the rules above hold (each can fail) ---------------------------------------------------


@pytest.mark.parametrize("path", DOCUMENTS, ids=lambda path: path.relative_to(ROOT).as_posix())
def test_every_python_block_is_found(path: Path) -> None:
    fences = re.findall(r"^```python\s*$", path.read_text(encoding="utf-8"), re.MULTILINE)
    found = [b for b in PYTHON_BLOCKS if b.doc == path.relative_to(ROOT).as_posix()]
    assert len(found) >= len(fences)


def test_the_docs_folder_is_read() -> None:
    # A docs/ page whose blocks never run would be a README promise nobody checks.
    docs = {b.doc for b in PYTHON_BLOCKS if b.doc.startswith("docs/")}
    assert {"docs/library.md", "docs/testing.md", "docs/costs.md"} <= docs


def test_blocks_do_not_share_names(tmp_path: Path) -> None:
    # What "runs on its own" means: a name from an earlier block is not defined.
    first = Block("docs/x.md", 1, "python", "shared = 1\n", None, None)
    second = Block("docs/x.md", 2, "python", "print(shared)\n", None, None)
    for block in (first, second):
        run = [sys.executable, "-c", _RUN_BLOCK, block.doc]
        code, output = _run(run, tmp_path, stdin=block.padded())
    assert code != 0
    assert "NameError: name 'shared' is not defined" in output
    assert 'File "docs/x.md", line 3' in output  # the traceback names the file and line


def test_blocks_cannot_reach_beyond_loopback(tmp_path: Path) -> None:
    # TEST-NET-1 (RFC 5737) and a reserved name: refused before any packet or lookup.
    probe = "import socket\nsocket.create_connection(('192.0.2.1', 443), timeout=1)\n"
    code, output = _run([sys.executable, "-c", _RUN_BLOCK, "x.md"], tmp_path, stdin=probe)
    assert code != 0
    assert "may only reach loopback addresses" in output
    probe = "import socket\nsocket.getaddrinfo('example.invalid', 443)\n"
    code, output = _run([sys.executable, "-c", _RUN_BLOCK, "x.md"], tmp_path, stdin=probe)
    assert "may only reach loopback addresses" in output


def test_output_comparison_is_strict_outside_ellipses() -> None:
    assert _matches("ready: 1c92…\nstill running: 0\n", "ready: 1c929088\nstill running: 0\n")
    assert not _matches("ready: 1c92…\nstill running: 0\n", "ready: 1c929088\nstill running: 1")
    assert not _matches("a\n", "a\nb\n")
    assert not _matches("a…\n", "b a\n")


def test_cassette_check_finds_the_key_and_session_urls(tmp_path: Path) -> None:
    def found(headers: dict[str, list[str]], body: str) -> list[str]:
        request = {"headers": headers, "method": "GET", "uri": "http://127.0.0.1:1/api/x"}
        response = {"body": {"string": body}, "headers": {}, "status": {"code": 200}}
        interactions = [{"request": request, "response": response}]
        cassette = tmp_path / "cassette.yaml"
        cassette.write_text(yaml.safe_dump({"interactions": interactions, "version": 1}))
        return _secrets_in(cassette)

    clean = f'[{{"session_id": "s", "url": null}}, {{"url": "{_URL_PLACEHOLDER}"}}]'
    assert found({"User-Agent": ["cdsessions"]}, clean) == []
    assert found({"authorization": ["Bearer k"]}, "{}") == [
        "a bearer token",
        "interactions[0]: the authorization header",
    ]
    assert found({}, '{"session": {"tunnel_url": "https://t.example.invalid"}}') == [
        "interactions[0]: a session url in 'tunnel_url'"
    ]
    assert "a session url" in found({}, '"see https://fake-1.r5.modal.localhost"')


# -- console transcripts of the cdsessions command, against the fake ------------------------

_TIME = re.compile(r"\d{4}-\d\d-\d\d \d\d:\d\d:\d\d UTC")
_PORT = re.compile(r"127\.0\.0\.1:\d+")
_SECONDS = re.compile(r"\b\d+(?:\.\d+)? s\b")
_DURATION = re.compile(r"\b(?:\d+h)?(?:\d+m)?\d+s\b")  # a table's "1s", "29m58s"
_PADDING = re.compile(r"[ \t]+")


def _normalise(text: str) -> str:
    """What may differ between runs: wall-clock times, ports, durations, and so the padding of
    a table's columns."""
    text = _TIME.sub("<time>", text)
    text = _PORT.sub("127.0.0.1:<port>", text)
    text = _DURATION.sub("<duration>", _SECONDS.sub("<n> s", text))
    return "\n".join(_PADDING.sub(" ", line).strip() for line in text.strip().splitlines())


def _transcript(starting_with: str) -> list[tuple[str, str]]:
    """The console block whose first command starts so, as (command, shown output) pairs."""
    for block in BLOCKS:
        if block.language == "console" and block.source.startswith(f"$ {starting_with}"):
            return _console_pairs(block.source)
    raise AssertionError(f"no console block of the docs starts with `$ {starting_with}`")


def test_demo_transcript(tmp_path: Path) -> None:
    ((command, shown),) = _transcript("python -m cdsessions demo")
    argv = shlex.split(command)
    code, output = _run([sys.executable, *argv[1:]], tmp_path)
    assert code == 0, output
    assert _normalise(output).strip() == _normalise(shown).strip()


def test_local_server_transcript(tmp_path: Path, cdsessions_fake_url: str) -> None:
    # `--server local` is http://localhost:3011/api; the fake listens on a free port instead,
    # and its URL is written back as `local` in what the commands print.
    env: dict[str, str] = {}
    differences: list[str] = []
    for command, shown in _transcript("export COMFY_DEPLOY_API_KEY="):
        if command.startswith("export "):
            name, _, value = command.removeprefix("export ").partition("=")
            env[name] = value
            continue
        script = command.replace("--server local", f"--server {cdsessions_fake_url}")
        done = subprocess.run(
            ["bash", "-c", script],
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
            cwd=tmp_path,
            env={**_environment(tmp_path), **env},
            timeout=_BLOCK_TIMEOUT,
            check=False,
        )
        printed = done.stdout.replace(cdsessions_fake_url, "local")
        if _normalise(printed).strip() != _normalise(shown).strip():
            differences.append(f"$ {command}\nshown:\n{shown}\nprinted:\n{printed}")
    assert not differences, "\n".join(differences)


# -- the front page ---------------------------------------------------------------------------

#: The README's sections, in the order a newcomer needs them (issue 21).
FRONT_PAGE = (
    "Set up",
    "The command line, on the fake",
    "Quickstart: the library, typed",
    "Testing your code with the fake",
    "Using the real API",
    "Further reading",
)


def _setup_commands() -> list[str]:
    text = README.read_text(encoding="utf-8")
    section = text.split("\n## Set up\n", 1)[1].split("\n## ", 1)[0]
    return re.findall(r"^```sh\n(.*?)\n```$", section, flags=re.MULTILINE | re.DOTALL)


def test_the_readme_is_a_short_guide_in_order() -> None:
    text = README.read_text(encoding="utf-8")
    headings = re.findall(r"^## (.*)$", text, flags=re.MULTILINE)
    assert headings == list(FRONT_PAGE)
    assert len(text.splitlines()) < 300


def test_the_readme_has_two_setup_commands_in_a_virtual_environment() -> None:
    demo, tests = _setup_commands()  # exactly two, one line each
    for command in (demo, tests):
        assert "\n" not in command
        assert command.startswith("python -m venv .venv && .venv/bin/pip install ")
    assert demo.endswith(" -m cdsessions demo")
    assert tests.endswith(".venv/bin/nox")


def test_ci_runs_the_readmes_test_command_exactly() -> None:
    lines = (ROOT / ".ci" / "run").read_text(encoding="utf-8").strip().splitlines()
    assert lines[-1] == _setup_commands()[1]
