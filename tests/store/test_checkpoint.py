"""WAL checkpoints beside the writes (issue 12): once ``checkpoint_apart`` ran, the store's
own commits leave the WAL to grow (up to the safety net) and ``Store.checkpoint`` copies it
into the database on a connection of its own, while a transaction is open too."""

from __future__ import annotations

import asyncio
import contextlib
import os
import sqlite3
from pathlib import Path

import pytest

from monitor.store.db import WAL_LIMIT_BYTES, WAL_SAFETY_PAGES, Store, open_store

ROW = "x" * 3000  # about a page a row


def _wal_bytes(path: Path) -> int:
    wal = Path(f"{path}-wal")
    return wal.stat().st_size if wal.exists() else 0


async def _write(store: Store, rows: int, start: int = 0) -> None:
    async with store.transaction() as conn:
        await conn.execute("CREATE TABLE IF NOT EXISTS filler (id INTEGER PRIMARY KEY, v TEXT)")
        await conn.executemany(
            "INSERT INTO filler (id, v) VALUES (?, ?)", ((start + i, ROW) for i in range(rows))
        )


async def test_commits_leave_the_wal_to_the_checkpointer(tmp_path: Path) -> None:
    path = tmp_path / "m.sqlite3"
    store = await open_store(path)
    try:
        await store.checkpoint_apart()
        for i in range(6):  # ~1,500 pages: past SQLite's default 1,000-page auto-checkpoint
            await _write(store, 250, start=i * 250)
        grown = _wal_bytes(path)
        assert grown > 1_000 * 4096  # no commit copied it into the database
        busy, frames, done = await store.checkpoint()
        assert busy == 0 and frames > 1_000 and done == frames
        await _write(store, 10, start=10_000)  # a complete checkpoint: the WAL starts over
        assert _wal_bytes(path) == grown  # reused from its start, not grown
        busy, frames, done = await store.checkpoint()
        assert frames < 50 and done == frames
    finally:
        await store.close()
    # the data is all there, and the close left no WAL behind
    assert _wal_bytes(path) == 0
    conn = sqlite3.connect(path)
    try:
        assert conn.execute("SELECT count(*) FROM filler").fetchone()[0] == 1_510
    finally:
        conn.close()


async def test_without_it_a_commit_checkpoints_as_sqlite_does_by_default(tmp_path: Path) -> None:
    """The control: the same writes with SQLite's default leave no large WAL (what the
    first test tells apart)."""
    path = tmp_path / "m.sqlite3"
    store = await open_store(path)
    try:
        for i in range(6):
            await _write(store, 250, start=i * 250)
        _, frames, _ = await store.checkpoint()
        assert frames < 1_000
    finally:
        await store.close()


async def test_a_checkpoint_runs_while_a_transaction_is_open(tmp_path: Path) -> None:
    """It takes neither the store's lock nor SQLite's write lock: a writer in the middle of
    its transaction does not hold it up, and what that writer commits later is kept."""
    path = tmp_path / "m.sqlite3"
    store = await open_store(path)
    try:
        await store.checkpoint_apart()
        await _write(store, 300)
        async with store.transaction() as conn:
            await conn.execute("INSERT INTO filler (id, v) VALUES (?, ?)", (99_999, "late"))
            busy, frames, done = await store.checkpoint()
            assert busy == 0 and done == frames > 0
        async with store.read() as conn:
            got = await conn.execute_fetchall("SELECT v FROM filler WHERE id = 99999")
        assert [r[0] for r in got] == ["late"]
    finally:
        await store.close()


async def test_a_checkpoint_of_a_moved_store_fails_and_creates_nothing(tmp_path: Path) -> None:
    path = tmp_path / "m.sqlite3"
    store = await open_store(path)
    try:
        await _write(store, 5)
        os.rename(path, tmp_path / "moved.sqlite3")
        with pytest.raises(sqlite3.OperationalError, match="moved or deleted"):
            await store.checkpoint()
        assert not path.exists()
    finally:
        await store.close()


@pytest.mark.parametrize("name", ["store#1.sqlite3", "store?x.sqlite3", "store%41.sqlite3"])
async def test_a_store_path_with_uri_characters_is_checkpointed_and_nothing_created(
    tmp_path: Path, name: str
) -> None:
    """The checkpointer opens the store as an SQLite URI: a ``#``, ``?`` or ``%`` in the
    path is the store's own character, never a fragment, query or escape (``store#1`` read
    as a URI is a new empty database ``store``, checkpointed instead of the store)."""
    path = tmp_path / name
    store = await open_store(path)
    try:
        await store.checkpoint_apart()
        await _write(store, 300)
        busy, frames, done = await store.checkpoint()
        assert busy == 0 and frames > 0 and done == frames  # this store's WAL, copied
    finally:
        await store.close()
    assert sorted(os.listdir(tmp_path)) == [name, f"{name}.lock"]


def _open_fds(path: Path) -> int:
    """This process's file descriptors open on ``path`` (Linux: /proc/self/fd)."""
    n = 0
    for fd in os.listdir("/proc/self/fd"):
        with contextlib.suppress(OSError):
            n += os.readlink(f"/proc/self/fd/{fd}") == str(path)
    return n


async def test_a_checkpoint_after_close_fails_and_opens_nothing(tmp_path: Path) -> None:
    path = tmp_path / "m.sqlite3"
    store = await open_store(path)
    await _write(store, 5)
    await store.checkpoint()
    await store.close()
    assert _open_fds(path) == 0
    with pytest.raises(sqlite3.ProgrammingError, match="closed"):
        await store.checkpoint()
    assert _open_fds(path) == 0  # no connection left open on a store that was closed


async def test_close_waits_for_a_cancelled_checkpoints_thread(tmp_path: Path) -> None:
    """Cancelling ``checkpoint`` cannot stop its worker thread: ``close`` waits for that
    thread rather than closing the connection under it (or missing the one it is opening,
    left open on the closed store)."""
    path = tmp_path / "m.sqlite3"
    store = await open_store(path)
    try:
        await store.checkpoint_apart()
        for i in range(20):  # ~6,000 pages: a checkpoint that takes a while
            await _write(store, 300, start=i * 300)
        job = asyncio.ensure_future(store.checkpoint())
        await asyncio.sleep(0.002)  # the worker thread has started
        job.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await job
    finally:
        await store.close()
    await asyncio.sleep(0.5)  # a thread left running would have finished by now
    assert _open_fds(path) == 0


async def test_a_wal_grown_past_the_limit_is_truncated_at_its_next_reset(tmp_path: Path) -> None:
    """A crash (or a reader holding the WAL) grows it far past its usual size, and SQLite
    keeps a WAL file at its largest size for good unless ``journal_size_limit`` is set: the
    first commit after a complete checkpoint (the status loop's, as the daemon runs it) starts
    the WAL over and truncates the file to the limit."""
    path = tmp_path / "m.sqlite3"
    store = await open_store(path)
    try:
        await store.checkpoint_apart()
        pages = WAL_LIMIT_BYTES // 4096 + 500  # past the limit, short of the safety net
        assert pages < WAL_SAFETY_PAGES
        for i in range(0, pages, 500):
            await _write(store, 500, start=i)
        assert _wal_bytes(path) > WAL_LIMIT_BYTES
        busy, frames, done = await store.checkpoint()
        assert busy == 0 and done == frames  # complete: the next commit starts the WAL over
        await _write(store, 10, start=100_000)
        assert 0 < _wal_bytes(path) <= WAL_LIMIT_BYTES
    finally:
        await store.close()
