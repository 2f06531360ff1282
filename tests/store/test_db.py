"""The store: WAL, migrations, the single-instance guard, unwritable paths."""

from __future__ import annotations

import asyncio
import sys
from pathlib import Path

import pytest

from monitor.errors import FatalError
from monitor.store.db import MIGRATIONS, Store, StoreLockedError, open_store


async def test_creates_dirs_wal_and_applies_migrations(tmp_path: Path) -> None:
    path = tmp_path / "deep" / "dir" / "monitor.db"
    store = await open_store(path)
    try:
        assert path.exists()
        async with store.read() as conn:
            mode = next(iter(await conn.execute_fetchall("PRAGMA journal_mode")))[0]
            tables = {
                r[0]
                for r in await conn.execute_fetchall(
                    "SELECT name FROM sqlite_master WHERE type = 'table'"
                )
            }
        assert mode == "wal"
        assert {"outbox", "alert_state", "mutes", "transitions"} <= tables
        assert await store.schema_version() == len(MIGRATIONS)
    finally:
        await store.close()


async def test_appended_migration_runs_once_on_reopen(tmp_path: Path) -> None:
    path = tmp_path / "m.db"
    store = await open_store(path)
    await store.close()
    extra = (*MIGRATIONS, "CREATE TABLE history (ts REAL NOT NULL);")
    store = await open_store(path, migrations=extra)
    assert await store.schema_version() == len(MIGRATIONS) + 1
    await store.close()
    store = await open_store(path, migrations=extra)  # not applied twice (would fail: exists)
    assert await store.schema_version() == len(MIGRATIONS) + 1
    await store.close()


async def test_second_instance_is_refused_then_allowed_after_close(tmp_path: Path) -> None:
    path = tmp_path / "m.db"
    store = await open_store(path)
    with pytest.raises(StoreLockedError, match="in use by another monitor process"):
        await open_store(path)
    await store.close()
    again = await open_store(path)
    await again.close()


async def test_lock_held_by_another_process(tmp_path: Path) -> None:
    path = tmp_path / "m.db"
    code = (
        "import asyncio, sys\n"
        "from pathlib import Path\n"
        "from monitor.store.db import open_store, StoreLockedError\n"
        "async def main():\n"
        "    try:\n"
        "        s = await open_store(Path(sys.argv[1]))\n"
        "    except StoreLockedError as e:\n"
        "        print('LOCKED', e); return 3\n"
        "    await s.close(); return 0\n"
        "sys.exit(asyncio.run(main()))\n"
    )
    store = await open_store(path)
    try:
        rc, out = await _run(code, path)
        assert rc == 3
        assert str(path) in out
    finally:
        await store.close()
    rc, out = await _run(code, path)
    assert rc == 0, out


async def _run(code: str, path: Path) -> tuple[int, str]:
    proc = await asyncio.create_subprocess_exec(
        sys.executable,
        "-c",
        code,
        str(path),
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.STDOUT,
    )
    out, _ = await asyncio.wait_for(proc.communicate(), 60)
    return proc.returncode or 0, out.decode()


async def test_unwritable_path_is_fatal_and_named(tmp_path: Path) -> None:
    blocker = tmp_path / "file"
    blocker.write_text("not a directory")
    path = blocker / "monitor.db"
    with pytest.raises(FatalError) as err:
        await open_store(path)
    assert str(path) in str(err.value)


async def test_transaction_rolls_back_on_error(tmp_path: Path) -> None:
    store = await open_store(tmp_path / "m.db")
    try:
        with pytest.raises(RuntimeError, match="boom"):
            await _insert_then_fail(store)
        async with store.read() as conn:
            n = next(iter(await conn.execute_fetchall("SELECT count(*) FROM mutes")))[0]
        assert n == 0
    finally:
        await store.close()


async def _insert_then_fail(store: Store) -> None:
    async with store.transaction() as conn:
        await conn.execute("INSERT INTO mutes (target, until, created_at) VALUES ('a', 1, 1)")
        raise RuntimeError("boom")
