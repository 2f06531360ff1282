"""A step's write overlaps the engine's next step (issue 12): the daemon renders a step's
messages, starts its transaction on SQLite's thread and goes on deciding; the writes stay one
at a time and in step order, a failed write still ends the engine task, and a cancelled
engine task lets the write in flight commit. Real engine, real SQLite file."""

from __future__ import annotations

import asyncio
import sqlite3
from pathlib import Path
from typing import Any

import pytest

from monitor.model.events import AccountSnapshot, MarkPrice
from tests.test_app import _daemon, _near


def _committed(path: Path) -> list[tuple[str, str]]:
    """(key, kind) of the transitions another connection sees committed, in write order."""
    with sqlite3.connect(path) as conn:
        rows = conn.execute("SELECT key, kind FROM transitions ORDER BY rowid").fetchall()
    return [(str(k), str(kind)) for k, kind in rows]


def _snapshot(collateral: float) -> AccountSnapshot:
    return AccountSnapshot("generic", "a", collateral, (_near("BTC"),))


async def test_a_step_is_written_while_the_next_one_is_decided_in_order(tmp_path: Path) -> None:
    d, store, clock = await _daemon(tmp_path)
    db = tmp_path / "s.sqlite3"
    try:
        first = await d.begin_step([_snapshot(10.0)], 0.0)
        fired = [(t.key, t.kind.value) for t in first.transitions]
        assert ("liquidation_distance|generic:a/cross#BTC", "fired") in fired
        # the step is decided and its messages rendered; its transaction has not run yet
        assert _committed(db) == []
        # the next step: deciding it overlaps the first write, and it waits for that write
        # to commit before its own starts
        clock.t = 1.0
        second = await d.begin_step([MarkPrice("generic", "BTC", 200.0)], 1.0)
        resolved = [(t.key, t.kind.value) for t in second.transitions]
        assert ("liquidation_distance|generic:a/cross#BTC", "resolved") in resolved
        assert _committed(db) == fired
        await d.settled()
        assert _committed(db) == fired + resolved
    finally:
        await d.settled()
        await store.close()


async def test_a_failed_write_ends_the_engine_task_with_the_store_error(tmp_path: Path) -> None:
    d, store, _ = await _daemon(tmp_path)
    try:
        with sqlite3.connect(tmp_path / "s.sqlite3") as conn:
            conn.execute("DROP TABLE transitions")
        engine = asyncio.create_task(d.engine_loop())
        d.inbox.put(_snapshot(10.0))
        with pytest.raises(sqlite3.OperationalError, match="no such table: transitions"):
            await asyncio.wait_for(engine, 10.0)
    finally:
        await store.close()


async def test_a_cancelled_engine_task_lets_the_write_in_flight_commit(tmp_path: Path) -> None:
    d, store, _ = await _daemon(tmp_path)
    db = tmp_path / "s.sqlite3"
    written: list[Any] = []
    try:
        engine = asyncio.create_task(d.engine_loop())
        d.inbox.put(_snapshot(10.0))
        for _ in range(1000):  # until the step's write is in flight
            await asyncio.sleep(0)
            if d._writing is not None:
                written.append(d._writing)
                break
        assert written, "no write started"
        engine.cancel()
        with pytest.raises(asyncio.CancelledError):
            await engine
        assert written[0].done() and written[0].exception() is None
        assert ("liquidation_distance|generic:a/cross#BTC", "fired") in _committed(db)
    finally:
        await store.close()
