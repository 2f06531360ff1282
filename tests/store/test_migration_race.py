"""Two processes opening the same old store at the same instant (``monitor mute`` while the
daemon starts): the second waits for the first's migration and finds it applied, instead of
running it again and failing ("index … already exists"). Each migration reads the schema
version inside its own ``BEGIN IMMEDIATE``."""

from __future__ import annotations

import asyncio
import sqlite3
from pathlib import Path

import aiosqlite
import pytest

from monitor.errors import FatalError
from monitor.store.db import MIGRATIONS, open_store


async def test_a_second_open_waits_for_the_first_migration_and_does_not_repeat_it(
    tmp_path: Path,
) -> None:
    path = tmp_path / "m.db"
    old = await open_store(path, migrations=MIGRATIONS[:1])
    await old.close()
    inside = asyncio.Event()
    gate = asyncio.Event()
    runs = 0

    async def slow_index(conn: aiosqlite.Connection) -> None:
        # migration 2 of this test: holds its transaction until the second open has read
        # the version and is queued behind the lock
        nonlocal runs
        runs += 1
        await conn.execute("CREATE INDEX only_once ON schema_version (applied_at)")
        inside.set()
        await gate.wait()

    migrations = (MIGRATIONS[0], slow_index)
    first = asyncio.create_task(open_store(path, lock=False, migrations=migrations))
    await inside.wait()
    second = asyncio.create_task(open_store(path, lock=False, migrations=migrations))
    await asyncio.sleep(0.3)  # the second has read version 1 and waits for the write lock
    assert not second.done()
    gate.set()
    a, b = await asyncio.gather(first, second)
    try:
        assert runs == 1
        assert await a.schema_version() == await b.schema_version() == 2
    finally:
        await a.close()
        await b.close()


def test_statements_keep_a_trigger_whole_and_refuse_a_truncated_script() -> None:
    from monitor.store.db import _statements

    script = """
    CREATE TABLE t (a INTEGER, note TEXT DEFAULT 'x;y');
    CREATE TRIGGER t_ai AFTER INSERT ON t BEGIN
        UPDATE t SET a = a + 1 WHERE rowid = new.rowid;
    END;
    """
    got = _statements(script)
    assert len(got) == 2
    assert got[1].startswith("CREATE TRIGGER") and got[1].endswith("END;")
    conn = sqlite3.connect(":memory:")
    for s in got:
        conn.execute(s)
    conn.execute("INSERT INTO t (a) VALUES (1)")
    assert conn.execute("SELECT a, note FROM t").fetchall() == [(2, "x;y")]
    with pytest.raises(ValueError, match="incomplete SQL"):
        _statements("CREATE TRIGGER u AFTER INSERT ON t BEGIN SELECT 1")


async def test_a_migration_script_ending_in_a_comment_applies(tmp_path: Path) -> None:
    # a one-line script with its reason after it, the style of migrations 4 and 5: run whole
    # by executescript before, it now runs statement by statement and must not take the
    # comment after the last ';' for a truncated statement
    migrations = (
        MIGRATIONS[0],
        "CREATE INDEX mutes_target ON mutes (target); -- mute lookups by target",
    )
    store = await open_store(tmp_path / "m.db", migrations=migrations)
    try:
        assert await store.schema_version() == 2
        async with store.read() as conn:
            rows = await conn.execute_fetchall(
                "SELECT name FROM sqlite_master WHERE type = 'index' AND name = 'mutes_target'"
            )
        assert [r[0] for r in rows] == ["mutes_target"]
    finally:
        await store.close()


async def test_a_migration_sqlite_rolled_back_itself_reports_its_own_error(
    tmp_path: Path,
) -> None:
    # SQLite ends the transaction itself on some errors (a full disk: SQLITE_FULL rolls it
    # back); the migration's ROLLBACK then failed with "no transaction is active" and the
    # operator saw that instead of the cause
    async def fails_after_sqlite_rolled_back(conn: aiosqlite.Connection) -> None:
        await conn.execute("ROLLBACK")  # as SQLite does on SQLITE_FULL
        raise sqlite3.OperationalError("database or disk is full")

    with pytest.raises(FatalError, match="disk is full"):
        await open_store(
            tmp_path / "m.db", migrations=(MIGRATIONS[0], fails_after_sqlite_rolled_back)
        )
    # the lock was released and nothing of migration 2 is recorded
    store = await open_store(tmp_path / "m.db", migrations=MIGRATIONS[:1])
    try:
        assert await store.schema_version() == 1
    finally:
        await store.close()
