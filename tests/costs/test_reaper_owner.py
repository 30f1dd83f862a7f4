"""The reaper's owner selectors (``mine``, ``label``, ``owner_gone``, ``user_id``) in the library,
with both clients: judged from the client's :class:`~cdsessions.ledger.Ledger` (or one given to
``reap``), and never matching a session the ledger only guesses at (a lost create's candidate)."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime
from pathlib import Path
from typing import Final

from returns.result import Failure, Result

from cdsessions import AsyncSessionsClient, CreateSessionBody, MachineGPU, SessionsClient
from cdsessions.costs.reaper import ReapReport, Selection, reap, reap_async
from cdsessions.errors import ApiError
from cdsessions.fake import (
    DEFAULT_MACHINE_ID,
    AsyncFakeTransport,
    FakeService,
    FakeTransport,
    ManualClock,
)
from cdsessions.ledger import Ledger

KEY: Final = "sk-reaper-owner-0123456789"
T0: Final = datetime(2025, 11, 2, 12, 0, tzinfo=UTC)
BODY: Final = CreateSessionBody(machine_id=DEFAULT_MACHINE_ID, gpu=MachineGPU.A10G, timeout=60)


def _made(fake: FakeService, ledger: Ledger | None) -> str:
    with SessionsClient(KEY, transport=FakeTransport(fake), ledger=ledger) as client:
        return client.create(BODY).unwrap().session_id


def _scene(tmp_path: Path) -> tuple[FakeService, Path, dict[str, set[str]]]:
    """Two sessions labelled "a", one labelled "b", one no ledger saw, one of a lost create."""
    fake = FakeService(clock=ManualClock(T0))
    path = tmp_path / "ledger.sqlite3"
    a = {_made(fake, Ledger(path, label="a")) for _ in range(2)}
    b = {_made(fake, Ledger(path, label="b"))}
    _made(fake, None)
    fake.fail_next("create", "no_answer")
    with SessionsClient(KEY, transport=FakeTransport(fake), ledger=Ledger(path)) as client:
        assert isinstance(client.create(BODY), Failure)
    return fake, path, {"a": a, "b": b}


def _selected(result: Result[ReapReport, ApiError]) -> set[str]:
    return {item.session_id for item in result.unwrap().reaped}


def test_owner_selectors_pick_only_what_the_ledger_recorded_with_both_clients(
    tmp_path: Path,
) -> None:
    fake, path, made = _scene(tmp_path)
    cases = [
        (Selection(mine=True), made["a"] | made["b"]),
        (Selection(label="a"), made["a"]),
        (Selection(label="a", gpu="H100"), set()),
        (Selection(owner_gone=True), set()),  # this process made them all, and it runs
        (Selection(user_id="user_fake1", label="b"), made["b"]),
        (Selection(user_id="nobody"), set()),
    ]
    for selection, expected in cases:
        with SessionsClient(KEY, transport=FakeTransport(fake), ledger=Ledger(path)) as client:
            assert _selected(reap(client, selection, T0, dry_run=True)) == expected, selection

        async def run(selection: Selection = selection) -> Result[ReapReport, ApiError]:
            async with AsyncSessionsClient(KEY, transport=AsyncFakeTransport(fake)) as aclient:
                # A ledger given to reap_async, rather than the client's.
                return await reap_async(aclient, selection, T0, dry_run=True, ledger=Ledger(path))

        assert _selected(asyncio.run(run())) == expected, selection
    assert len(fake.live_sessions()) == 5  # dry runs


def test_reap_mine_cancels_the_recorded_and_leaves_the_rest(tmp_path: Path) -> None:
    fake, path, made = _scene(tmp_path)
    with SessionsClient(KEY, transport=FakeTransport(fake), ledger=Ledger(path)) as client:
        report = reap(client, Selection(mine=True), T0).unwrap()
    assert {item.outcome for item in report.reaped} == {"cancelled"}
    left = {session.session_id for session in fake.live_sessions()}
    assert len(left) == 2
    assert not left & (made["a"] | made["b"])
