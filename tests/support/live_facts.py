"""The live server's facts the tests rely on, read from ``contracts/live-bodies.json`` (exact
bodies, statuses, limits, sample payloads, each with its source; explained in
``contracts/live-server-facts.md``). Tests take these values from here rather than restating
them, so a reader of the repository can check every one against its source."""

from __future__ import annotations

import json
from dataclasses import dataclass
from functools import cache
from pathlib import Path
from typing import Any, Final

FACTS_FILE: Final = Path(__file__).resolve().parents[2] / "contracts" / "live-bodies.json"


@dataclass(frozen=True)
class Answer:
    """One row of the status table: what the server answers ``operation`` in ``case``."""

    operation: str
    case: str
    status: int
    body: str | None
    content_type: str | None
    source: str


@dataclass(frozen=True)
class Invalid:
    """A request FastAPI refuses before the route runs, and its exact 422 body."""

    request: str
    method: str
    path: str
    query: tuple[tuple[str, str], ...]
    body: bytes | None
    response: str


@cache
def facts() -> dict[str, Any]:
    loaded: dict[str, Any] = json.loads(FACTS_FILE.read_text(encoding="utf-8"))
    return loaded


def limit(name: str) -> int:
    value = facts()["limits"][name]["value"]
    assert isinstance(value, int), name
    return value


def limit_answer(name: str) -> tuple[int, str]:
    """The status and exact body the server answers when limit ``name`` is hit."""
    answer = facts()["limits"][name]["answer"]
    return int(answer["status"]), str(answer["body"])


def answers() -> tuple[Answer, ...]:
    return tuple(
        Answer(
            row["operation"],
            row["case"],
            row["status"],
            row.get("body") or row.get("body_template"),
            row.get("content_type"),
            row["source"],
        )
        for row in facts()["statuses"]
    )


def answer(operation: str, case: str) -> Answer:
    found = [a for a in answers() if a.operation == operation and a.case == case]
    assert len(found) == 1, (operation, case)
    return found[0]


def body(operation: str, case: str) -> str:
    """The exact body of ``operation`` in ``case`` (a template keeps its ``{session_id}``)."""
    text = answer(operation, case).body
    assert text is not None, (operation, case)
    return text


def invalid_requests() -> tuple[Invalid, ...]:
    return tuple(
        Invalid(
            row["request"],
            row["method"],
            row["path"],
            tuple((k, v) for k, v in row["query"]),
            None if row["body"] is None else row["body"].encode(),
            row["response"],
        )
        for row in facts()["validation_422"]
    )


def sample(name: str) -> str:
    """A sample payload as JSON text."""
    return json.dumps(facts()["samples"][name])


def gpus(contract: str) -> tuple[str, ...]:
    return tuple(facts()["gpus"][contract])
