"""``Store.write_many``: one transaction in one call on SQLite's thread (the daemon's step
write, issue 12). Real SQLite file."""

from __future__ import annotations

import asyncio
import sqlite3
import time
from pathlib import Path

import pytest

from monitor.store.db import open_store


async def test_statements_commit_together_and_count_the_rows_each_changed(tmp_path: Path) -> None:
    store = await open_store(tmp_path / "s.sqlite3")
    try:
        upsert = "INSERT OR IGNORE INTO engine_meta (name, doc) VALUES (?, ?)"
        changed = await store.write_many(
            [
                (upsert, [("a", "1"), ("b", "2")]),
                (upsert, ((n, "x") for n in ("b", "c"))),  # b is there: ignored
                ("DELETE FROM engine_meta WHERE name = ?", [("a",)]),
            ]
        )
        assert changed == [2, 1, 1]
        with sqlite3.connect(tmp_path / "s.sqlite3") as other:
            rows = other.execute("SELECT name, doc FROM engine_meta ORDER BY name").fetchall()
        assert rows == [("b", "2"), ("c", "x")]
    finally:
        await store.close()


async def test_a_failing_statement_rolls_back_the_whole_write(tmp_path: Path) -> None:
    store = await open_store(tmp_path / "s.sqlite3")
    try:
        ok = ("INSERT INTO engine_meta (name, doc) VALUES (?, ?)", [("kept?", "no")])
        bad = ("INSERT INTO no_such_table (x) VALUES (?)", [(1,)])
        with pytest.raises(sqlite3.OperationalError, match="no_such_table"):
            await store.write_many([ok, bad])
        async with store.read() as conn:
            rows = await conn.execute_fetchall("SELECT name FROM engine_meta WHERE name = 'kept?'")
            assert list(rows) == []
            assert not conn.in_transaction
        # the store goes on: the next write commits
        assert await store.write_many([ok]) == [1]
    finally:
        await store.close()


async def test_a_write_runs_while_the_event_loop_is_busy(tmp_path: Path) -> None:
    """Handed to SQLite's thread in one call, the transaction needs no turn of the loop: it
    commits while the loop's thread computes (the engine's next step)."""
    store = await open_store(tmp_path / "s.sqlite3")
    try:
        rows = [(f"k{i}", "v") for i in range(20_000)]
        write = asyncio.ensure_future(
            store.write_many([("INSERT INTO engine_meta (name, doc) VALUES (?, ?)", rows)])
        )
        await asyncio.sleep(0)  # the write takes the store's lock and is handed over
        await asyncio.sleep(0)
        # the loop's thread is busy, without yielding, until another connection sees the
        # rows committed (bounded: a write that waited for the loop would never commit)
        seen = 0
        for _ in range(2_000):
            with sqlite3.connect(tmp_path / "s.sqlite3") as other:
                seen = other.execute("SELECT count(*) FROM engine_meta").fetchone()[0]
            if seen >= 20_000:
                break
            time.sleep(0.001)  # noqa: ASYNC251 (blocking on purpose: the loop must not turn)
        assert seen >= 20_000
        assert await write == [20_000]
    finally:
        await store.close()
