"""Project tasks. ``nox`` alone runs the default gate: tests, lint and typecheck.

Every session builds its own virtual environment from PyPI, so a fresh machine needs only
Python, pip and nox.
"""

from __future__ import annotations

import json
import os
import random
import re
import shutil
import sys
import tomllib
from pathlib import Path

import nox

nox.options.default_venv_backend = "uv|virtualenv"
nox.options.sessions = ["tests", "lint", "typecheck"]
# Only ``pythons`` names interpreters: it runs on those this machine has and skips the others,
# on CI too (where nox would otherwise fail), and never downloads one.
nox.options.error_on_missing_interpreters = False
nox.options.download_python = "never"


def classifier_pythons() -> list[str]:
    """The Python versions pyproject.toml's classifiers name (``3.11``, ...), oldest first: the
    one list of supported Pythons."""
    pyproject = tomllib.loads(Path(__file__).with_name("pyproject.toml").read_text("utf-8"))
    pattern = re.compile(r"Programming Language :: Python :: (3\.\d+)")
    found = (pattern.fullmatch(c) for c in pyproject["project"]["classifiers"])
    versions = [match[1] for match in found if match]
    return sorted(versions, key=lambda version: tuple(int(part) for part in version.split(".")))


#: UTC+14 (Pacific/Kiritimati's offset) as a POSIX rule, which needs no tz database: the gate
#: runs far from UTC so that a naive date-time read as local time cannot pass by accident.
FAR_FROM_UTC = "<+14>-14"

#: The modules made mostly of Hypothesis properties, which ``nox -s seeds`` runs seed by seed.
PROPERTY_MODULES = (
    "tests/contracts/test_contracts.py",
    "tests/transports/test_cassette.py",
    "tests/fake/test_state_machine.py",
    "tests/core/test_builders.py",
    "tests/core/test_decoding.py",
    "tests/core/test_retry.py",
    "tests/core/test_server_names.py",
    "tests/test_errors_and_models.py",
    "tests/lifecycle/test_wait_and_scope.py",
    "tests/transports/test_urllib3_any_bytes.py",
    "tests/test_client.py",
    "tests/costs/test_figures.py",
    "tests/costs/test_reaper.py",
    "tests/costs/test_absurd_prices.py",
    "tests/costs/test_price_table_bytes.py",
    "tests/costs/test_reaper_inputs.py",
    "tests/core/test_money.py",
    "tests/core/test_run_cost.py",
    "tests/core/test_text.py",
    "tests/transports/test_cap.py",
    "tests/test_errors.py",
    "tests/cli/test_failures.py",
    "tests/core/test_servers.py",
    "tests/fake/test_server.py",
    "tests/fake/test_validation.py",
    "tests/cli/test_exits.py",
    "tests/test_ledger.py",
    "tests/core/test_sse.py",
    "tests/contracts/test_logs_contract.py",
    "tests/contracts/test_comfy_contract.py",
    "tests/core/test_comfy.py",
    "tests/core/test_comfy_run.py",
    "tests/cli/test_output.py",
)


@nox.session
def tests(session: nox.Session) -> None:
    """The whole test suite, contract tests included (pass pytest options after ``--``), run
    with ``TZ`` set far from UTC (``FAR_FROM_UTC``; set ``TZ`` yourself to choose another)."""
    session.install("-e", ".[test]")
    session.run("pytest", *session.posargs, env={"TZ": os.environ.get("TZ", FAR_FROM_UTC)})


@nox.session(python=classifier_pythons())
def pythons(session: nox.Session) -> None:
    """The test suite on every Python the classifiers name, each in its own environment
    (``nox -s pythons``, or ``nox -s pythons-3.12`` for one; pytest options after ``--``). A
    Python this machine does not have is skipped, not failed. Not in the default run."""
    session.install("-e", ".[test]")
    session.run("pytest", *session.posargs, env={"TZ": os.environ.get("TZ", FAR_FROM_UTC)})


@nox.session
def seeds(session: nox.Session) -> None:
    """The property tests under many Hypothesis seeds, one pytest run per seed (slow; not in the
    default run): ``nox -s seeds -- COUNT [FIRST] [pytest options]`` runs seeds FIRST..FIRST+COUNT-1
    (default 20 from 0) over ``PROPERTY_MODULES`` (or the test files given), each with the number
    of examples its test states and without the example database, so no seed replays another's
    failure. All seeds run; the failing ones are listed at the end.
    """
    session.install("-e", ".[test]")
    numbers = [int(a) for a in session.posargs[:2] if a.isdigit()]
    rest = session.posargs[len(numbers) :]
    count = numbers[0] if numbers else 20
    first = numbers[1] if len(numbers) > 1 else 0
    targets = [] if any(a.startswith("tests") for a in rest) else list(PROPERTY_MODULES)
    failed = []
    for seed in range(first, first + count):
        command = ["pytest", "-q", "-p", "no:cacheprovider", f"--hypothesis-seed={seed}"]
        try:
            session.run(*command, *targets, *rest, env={"HYPOTHESIS_PROFILE": "ci"})
        except nox.command.CommandFailed:
            failed.append(seed)
    if failed:
        session.error(f"failing seeds: {failed}")
    session.log(f"seeds {first}..{first + count - 1}: all passed")


#: Each package is mutated against its own tests (the folders that mirror it), in a copy of its
#: own under .nox/mutation-runs/: small runs that stay independent, any of them repeatable
#: alone. name: (files mutated, files left alone, tests run, the warm-up: the first mutant of
#: each function of one small module, whose run also generates every mutant and the stats).
MUTATION_PACKAGES: dict[str, tuple[list[str], list[str], list[str], str]] = {
    "cdsessions": (
        ["cdsessions/*.py"],
        ["cdsessions/*/*"],  # the subpackages have rows of their own
        [
            "tests/lifecycle/",
            *(f"tests/test_{name}.py" for name in ("client", "async_client", "both_clients")),
            *(f"tests/test_{name}.py" for name in ("ledger", "runs", "pytest_plugin", "comfy")),
            *(f"tests/test_{name}.py" for name in ("errors", "errors_and_models", "secrets")),
            *(f"tests/test_{name}.py" for name in ("testing", "machines", "close_in_flight")),
            *(f"tests/test_{name}.py" for name in ("concurrency", "leak_guard", "package")),
        ],
        "cdsessions.testing.*__mutmut_1",
    ),
    "cdsessions._core": (
        ["cdsessions/_core/*.py"],
        [],
        ["tests/core/", "tests/contracts/"],
        "cdsessions._core.text.*__mutmut_1",
    ),
    "cdsessions.transports": (
        ["cdsessions/transports/*.py"],
        [],
        ["tests/transports/", "tests/test_client_faults.py", "tests/test_close_in_flight.py"],
        "cdsessions.transports._cap.*__mutmut_1",
    ),
    "cdsessions.fake": (
        ["cdsessions/fake/*.py"],
        [],
        ["tests/fake/"],
        "cdsessions.fake.clock.*__mutmut_1",
    ),
    "cdsessions.costs": (
        ["cdsessions/costs/*.py"],
        [],
        ["tests/costs/"],
        "cdsessions.costs.figures.*__mutmut_1",
    ),
    "cdsessions._cli": (
        ["cdsessions/_cli/*.py"],
        [],
        ["tests/cli/"],
        "cdsessions._cli._keyfile.*__mutmut_1",
    ),
}
MUTATION_SEED = 23

#: Survivors argued equivalent to the code (no test can tell them apart): name = "reason".
EQUIVALENT_MUTANTS = "tests/equivalent_mutants.toml"

#: Imported by every Python the tests start during a mutation run (see ``mutation``): while
#: mutmut maps tests to the functions they reach, a subprocess (the command line, a fake
#: server) writes the functions it reached to a file, which tests/conftest.py hands to mutmut
#: as reached by the test that is running (mutmut's own bookkeeping would need the project's
#: directory as the subprocess's).
MUTATION_SUBPROCESS = """import os
if os.environ.get("MUTANT_UNDER_TEST") == "stats" and os.environ.get("CDSESSIONS_MUTATION_HITS"):
    import mutmut.mutation.trampoline as _trampoline
    _reached = set()
    def _reach(name, caller=None):
        if name not in _reached:
            _reached.add(name)
            with open(os.environ["CDSESSIONS_MUTATION_HITS"], "a") as hits:
                hits.write(name + "\\n")
    _trampoline.record_trampoline_hit = _reach
"""

# mutmut's exit codes (mutmut.stats.status_by_exit_code): a test failed, a timeout, or the type
# checker refused the mutant; survived; and never run.
_KILLED = frozenset({1, 3, 24, -24, 36, 37, 152, 255})
_SURVIVED = 0


@nox.session
def mutation(session: nox.Session) -> None:
    """Mutation testing with mutmut, package by package (not in the default run):
    ``nox -s mutation -- [PACKAGE ...] [SHARE]``. Every package of MUTATION_PACKAGES unless some
    are named; a seeded random SHARE of each package's mutants (default 0.05; 1 runs them all,
    ~19,000 in all: hours on 2 cores). Each mutant runs only the tests that reach its function.
    Prints the score per package and fails if a survivor is neither killed nor listed in
    tests/equivalent_mutants.toml with its reason. Each run stays in
    .nox/mutation-runs/PACKAGE/mutants (``mutmut show NAME`` there shows a mutant)."""
    session.install(".[test,cassette]", "mutmut>=3.8,<4")  # not editable: mutants/ comes first
    shares = [arg for arg in session.posargs if re.fullmatch(r"[0-9.]+", arg)]
    share = float(shares[0]) if shares else 0.05
    packages = [arg for arg in session.posargs if arg not in shares] or list(MUTATION_PACKAGES)
    unknown = [name for name in packages if name not in MUTATION_PACKAGES]
    if unknown:
        session.error(f"no such package {unknown}; the packages: {', '.join(MUTATION_PACKAGES)}")
    equivalent = tomllib.loads(Path(EQUIVALENT_MUTANTS).read_text("utf-8"))
    here = Path.cwd()
    cores = str(os.cpu_count() or 2)
    lines, unexplained = [], []
    for package in packages:
        mutate, skip, tests, warm_up = MUTATION_PACKAGES[package]
        copy = here / ".nox" / "mutation-runs" / package
        mutation_copy(here, copy)
        pyproject = copy / "pyproject.toml"
        pyproject.write_text(mutation_config(pyproject.read_text("utf-8"), mutate, skip, tests))
        (copy / "mutants").mkdir(exist_ok=True)
        (copy / "mutants" / "sitecustomize.py").write_text(MUTATION_SUBPROCESS, "utf-8")
        # Subprocess tests (the command line, fake servers) import the mutated copy too, run the
        # mutant under test, and count as reaching what they reach (MUTATION_SUBPROCESS).
        hits = copy / "mutants" / "subprocess-hits"
        env = {"PYTHONPATH": str(copy / "mutants"), "CDSESSIONS_MUTATION_HITS": str(hits)}
        session.chdir(copy)
        session.run("mutmut", "run", "--max-children", cores, warm_up, env=env)
        sample = mutation_sample(copy / "mutants", share, MUTATION_SEED)
        session.run("mutmut", "run", "--max-children", cores, *sample, env=env)
        session.chdir(here)
        scored, survivors = mutation_report(copy / "mutants", equivalent)
        lines += scored
        unexplained += survivors
    session.log("\n".join(lines))
    if unexplained:
        session.error(f"survivors to kill or argue equivalent: {', '.join(unexplained)}")


def mutation_copy(source: Path, copy: Path) -> None:
    """The project's files into ``copy``, keeping the mutants/ of an earlier run there (mutmut
    reuses what did not change)."""
    if copy.exists():
        for entry in copy.iterdir():
            if entry.name != "mutants":
                shutil.rmtree(entry) if entry.is_dir() else entry.unlink()
    ignored = shutil.ignore_patterns(
        ".git", ".nox", ".venv", "mutants", "__pycache__", ".hypothesis", "*.egg-info"
    )
    shutil.copytree(source, copy, ignore=ignored, dirs_exist_ok=True)


def mutation_config(text: str, mutate: list[str], skip: list[str], tests: list[str]) -> str:
    """pyproject.toml's text with ``[tool.mutmut]`` mutating ``mutate`` but ``skip``, and running
    ``tests``."""
    settings = {
        "only_mutate": mutate,
        "do_not_mutate": skip,
        "pytest_add_cli_args_test_selection": tests,
    }
    for key, value in settings.items():
        line = f"{key} = {json.dumps(value)}"
        text, found = re.subn(rf"(?m)^{key} = \[[^\]]*\]$", line, text)
        if not found:
            text = text.replace("[tool.mutmut]\n", f"[tool.mutmut]\n{line}\n", 1)
    return text


def mutation_sample(mutants: Path, share: float, seed: int) -> list[str]:
    """A seeded random ``share`` of every generated mutant's name (at least one)."""
    names = sorted(
        name
        for meta in mutants.glob("cdsessions/**/*.py.meta")
        for name in json.loads(meta.read_text("utf-8"))["exit_code_by_key"]
    )
    count = min(len(names), max(1, round(len(names) * share)))
    return sorted(random.Random(seed).sample(names, count))  # noqa: S311 (a sample, no secret)


def mutation_report(mutants: Path, equivalent: dict[str, str]) -> tuple[list[str], list[str]]:
    """The score per package of the mutants that were run, read from mutmut's ``.meta`` files,
    and the survivors that are not listed as ``equivalent``. The score is killed over killed
    plus unexplained survivors; listed equivalents count on neither side."""
    counts: dict[str, list[int]] = {}  # package: [killed, survived, equivalent]
    unexplained = []
    for meta in sorted(mutants.glob("cdsessions/**/*.py.meta")):
        parts = meta.relative_to(mutants).parts
        package = ".".join(parts[:2]) if len(parts) > 2 else "cdsessions"
        codes = json.loads(meta.read_text("utf-8"))["exit_code_by_key"]
        row = counts.setdefault(package, [0, 0, 0])
        for name, code in codes.items():
            if code in _KILLED:
                row[0] += 1
            elif code == _SURVIVED and name in equivalent:
                row[2] += 1
            elif code == _SURVIVED:
                row[1] += 1
                unexplained.append(name)
    lines = []
    for package, (killed, survived, same) in sorted(counts.items()):
        if killed + survived:
            score = f"{100 * killed / (killed + survived):.1f} %"
            lines.append(
                f"{package}: {killed}/{killed + survived} killed ({score}); {same} equivalent"
            )
    return lines, unexplained


@nox.session
def lint(session: nox.Session) -> None:
    """ruff (lint rules, import order, formatting), then the layers contract with import-linter
    (``[tool.importlinter]`` in pyproject.toml): the core imports nothing that waits or sits
    above it, transports know nothing of the fake, the cost tools or the CLI, and nothing
    imports the CLI."""
    session.install("-e", ".[lint]")
    session.run("ruff", "check", ".")
    session.run("ruff", "format", "--check", ".")
    session.run("lint-imports")


@nox.session
def typecheck(session: nox.Session) -> None:
    """mypy --strict with the returns plugin, over the package, the tests, examples/ and this
    file; then pyright, the other checker users run, over the package (basic mode) and the typed
    user script examples/typed_usage.py (strict). Both must accept the script's assert_types.
    Then both over every Python block of the README and docs/ (tests/test_doc_types.py)."""
    session.install("-e", ".[test,typecheck]", "nox")
    session.run("mypy")
    # The pyright wrapper otherwise asks PyPI for its latest version on every run: a type check
    # contacts nothing.
    session.run("pyright", env={"PYRIGHT_PYTHON_IGNORE_WARNINGS": "1"})
    # Every Python block of README.md and docs/*.md under both checkers (skipped in ``tests``,
    # whose environment has neither; required here).
    doc_types = ["pytest", "-q", "-p", "no:cacheprovider", "tests/test_doc_types.py"]
    session.run(*doc_types, env={"CDSESSIONS_DOC_TYPES": "required"})


@nox.session
def bench(session: nox.Session) -> None:
    """The benchmark against the official SDK, a bare-urllib3 floor and a raw-socket limit (slow,
    ~6 minutes; not in the default run). The official SDK ``comfydeploy==0.6.3`` gets a virtual
    environment of its own, beside this one. Results go to bench/results/latest.json;
    ``nox -s bench -- --quick`` is a smoke run written to bench/results/quick.json (git ignores
    it). ``python -m bench.run --show FILE --markdown`` prints docs/performance.md's table again.
    """
    session.install(".")
    official = Path(session.create_tmp()) / "official-sdk"
    python = official / ("Scripts/python.exe" if sys.platform == "win32" else "bin/python")
    if not python.exists():
        session.run("python", "-m", "venv", str(official))
    session.run(str(python), "-m", "pip", "install", "--quiet", "comfydeploy==0.6.3", external=True)
    session.run("python", "-m", "bench.run", "--official-python", str(python), *session.posargs)
    # Following 10,000 and 100,000 log lines: the memory peak must not grow with the lines.
    session.run("python", "-m", "bench.logs", *[a for a in session.posargs if a == "--quick"])
    # A 1 GiB workflow output brought home by run(), against a plain urllib3 streaming download:
    # at least 0.8x its throughput, under 50 MB of memory growth.
    session.run("python", "-m", "bench.downloads", *[a for a in session.posargs if a == "--quick"])


@nox.session
def contracts(session: nox.Session) -> None:
    """The contract tests alone: Hypothesis against contracts/*.json (also part of ``tests``)."""
    session.install("-e", ".[test]")
    session.run("pytest", "-m", "contract", *session.posargs)


@nox.session
def cassettes(session: nox.Session) -> None:
    """Re-record cassettes/ against the fake server on 127.0.0.1, then replay and check them.

    With COMFY_DEPLOY_API_KEY and COMFY_DEPLOY_MACHINE_ID both set it records against the
    production API instead: that starts (and cancels) real, billed sessions.
    """
    session.install("-e", ".[test]")
    record = [
        "pytest",
        "tests/transports/test_cassette_recordings.py",
        "-k",
        "test_replay",
        "--record-mode=rewrite",
    ]
    loopback_only = ["--block-network", "--allowed-hosts=127.0.0.1,localhost"]
    if os.environ.get("COMFY_DEPLOY_API_KEY") and os.environ.get("COMFY_DEPLOY_MACHINE_ID"):
        session.log("recording against production: real sessions are started and cancelled")
        session.run(*record, env={"CDSESSIONS_RECORD_REAL": "1"})
    else:
        session.run(*record, *loopback_only, env={"CDSESSIONS_RECORD_REAL": "0"})
    # Replay every cassette both ways and check none holds a key or a session url (the real key,
    # when given, is checked too).
    check = [
        "tests/transports/test_cassette_recordings.py",
        "tests/transports/test_cassette.py",
    ]
    session.run("pytest", *check, *loopback_only, *session.posargs)


#: The tests that exercise the urllib3 transport (a real 127.0.0.1 server, vcrpy recordings).
URLLIB3_TESTS = (
    "tests/transports",
    "tests/test_client.py",
    "tests/test_client_faults.py",
    "tests/test_concurrency.py",
    "tests/core/test_key_scrubbing.py",
)
#: Both ends of the pin ``urllib3>=2.2,<3`` in pyproject.toml: the lowest version, and the newest
#: the pin allows (whatever pip picks today).
URLLIB3_ENDS = {"lowest": "urllib3==2.2.0", "newest": "urllib3>=2.2,<3"}


@nox.session
@nox.parametrize("end", list(URLLIB3_ENDS))
def urllib3_range(session: nox.Session, end: str) -> None:
    """The urllib3 transport's tests against the lowest and the newest urllib3 the pin allows
    (``nox -s urllib3_range``, or ``"urllib3_range(end='lowest')"`` for one). The transport
    relies on urllib3 internals, all kept in cdsessions/transports/_urllib3_internals.py: a
    failure here after an upgrade points there. Pass pytest options after ``--``."""
    session.install("-e", ".[test,cassette]")
    session.install("--upgrade", URLLIB3_ENDS[end])
    session.run("python", "-c", "import urllib3; print('urllib3', urllib3.__version__)")
    session.run("pytest", "-q", "-p", "no:cacheprovider", *URLLIB3_TESTS, *session.posargs)
