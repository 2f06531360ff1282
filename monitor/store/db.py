"""The SQLite store: one file, WAL mode, versioned migrations, one instance at a time.

``await open_store(path)`` creates the parent directories, takes an exclusive lock on
``<path>.lock`` (``fcntl.flock``; a second process gets :class:`StoreLockedError`, a
:class:`~monitor.errors.FatalError`), opens the database in WAL mode and applies every
migration in :data:`MIGRATIONS` not yet applied. A path that cannot be created or written
gives one :class:`~monitor.errors.FatalError` naming it.

Writes go through ``async with store.transaction() as conn:`` (``BEGIN IMMEDIATE`` …
``COMMIT``, rolled back on error), serialised by one asyncio lock so that the alert
service and the delivery worker never interleave statements inside each other's
transaction. The lock file is released when the store is closed or the process dies
(the kernel drops ``flock`` locks with the file descriptor, SIGKILL included).
"""

from __future__ import annotations

import asyncio
import contextlib
import fcntl
import os
import sqlite3
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import aiosqlite
import structlog

from monitor.errors import FatalError


def log() -> Any:
    """A fresh logger per call: never a module-level proxy that a configuration done with
    ``cache_logger_on_first_use`` would pin for the life of the process."""
    return structlog.get_logger()


MIGRATIONS: tuple[str, ...] = (
    # 1: alert state, transition history, outbox, mutes
    """
    CREATE TABLE alert_state (
        key TEXT PRIMARY KEY,
        doc TEXT NOT NULL,
        updated_at REAL NOT NULL
    );
    CREATE TABLE engine_meta (
        name TEXT PRIMARY KEY,
        doc TEXT NOT NULL
    );
    CREATE TABLE transitions (
        id TEXT PRIMARY KEY,
        key TEXT NOT NULL,
        kind TEXT NOT NULL,
        rule TEXT NOT NULL,
        severity TEXT NOT NULL,
        grp TEXT NOT NULL,
        subject TEXT NOT NULL,
        at REAL NOT NULL,
        value REAL,
        threshold REAL,
        muted INTEGER NOT NULL,
        detail TEXT NOT NULL
    );
    CREATE INDEX transitions_at ON transitions(at);
    CREATE TABLE outbox (
        id INTEGER PRIMARY KEY AUTOINCREMENT,
        idem_key TEXT NOT NULL UNIQUE,
        channel TEXT NOT NULL,
        grp TEXT NOT NULL,
        severity TEXT NOT NULL,
        title TEXT NOT NULL,
        body TEXT NOT NULL,
        body_format TEXT NOT NULL,
        notify_type TEXT NOT NULL,
        created_at REAL NOT NULL,
        next_attempt_at REAL NOT NULL,
        attempts INTEGER NOT NULL DEFAULT 0,
        status TEXT NOT NULL DEFAULT 'pending',
        claimed_at REAL,
        delivered_at REAL,
        last_error TEXT
    );
    CREATE INDEX outbox_due ON outbox(status, next_attempt_at);
    CREATE TABLE mutes (
        id INTEGER PRIMARY KEY AUTOINCREMENT,
        target TEXT NOT NULL,
        rule TEXT,
        until REAL NOT NULL,
        critical INTEGER NOT NULL DEFAULT 0,
        reason TEXT NOT NULL DEFAULT '',
        created_at REAL NOT NULL
    );
    """,
    # 2: risk history, latest scope figures, feed health, funding paid, daemon status
    # (monitor/store/history.py)
    """
CREATE TABLE risk_history (
    scope TEXT NOT NULL,
    ts REAL NOT NULL,
    equity REAL,
    maintenance REAL,
    margin_ratio REAL,
    nearest_liq REAL,
    shock_down REAL,
    shock_up REAL,
    funding_day REAL,
    PRIMARY KEY (scope, ts)
);
CREATE INDEX risk_history_ts ON risk_history (ts);
CREATE TABLE scope_status (
    scope TEXT PRIMARY KEY,
    venue TEXT NOT NULL,
    account TEXT NOT NULL,
    ts REAL NOT NULL,
    doc TEXT NOT NULL
);
CREATE TABLE feed_status (
    venue TEXT NOT NULL,
    channel TEXT NOT NULL,
    state TEXT NOT NULL,
    detail TEXT NOT NULL DEFAULT '',
    updated_at REAL NOT NULL,
    last_message_at REAL,
    PRIMARY KEY (venue, channel)
);
CREATE TABLE funding_paid (
    venue TEXT NOT NULL,
    account TEXT NOT NULL,
    symbol TEXT NOT NULL,
    ts REAL NOT NULL,
    amount REAL NOT NULL,
    rate REAL,
    PRIMARY KEY (venue, account, symbol, ts)
);
CREATE TABLE daemon_status (
    name TEXT PRIMARY KEY,
    doc TEXT NOT NULL,
    updated_at REAL NOT NULL
);
""",
)
"""Append-only: each entry is one migration script; never edit a released one."""


class StoreLockedError(FatalError):
    """Another process holds the store (exit code 3)."""


class Store:
    """An open store. Use :meth:`transaction` for writes and :meth:`read` for reads."""

    def __init__(self, path: Path, conn: aiosqlite.Connection, lock_fd: int | None) -> None:
        self.path = path
        self.conn = conn
        self._lock_fd = lock_fd
        self._mutex = asyncio.Lock()

    @contextlib.asynccontextmanager
    async def transaction(self) -> AsyncIterator[aiosqlite.Connection]:
        """``BEGIN IMMEDIATE`` … ``COMMIT`` (rollback on any error), one at a time."""
        async with self._mutex:
            await self.conn.execute("BEGIN IMMEDIATE")
            try:
                yield self.conn
            except BaseException:
                await self.conn.execute("ROLLBACK")
                raise
            await self.conn.execute("COMMIT")

    @contextlib.asynccontextmanager
    async def read(self) -> AsyncIterator[aiosqlite.Connection]:
        """The connection, for reads, not interleaved with a transaction."""
        async with self._mutex:
            yield self.conn

    async def schema_version(self) -> int:
        async with self.read() as conn:
            return await _version(conn)

    async def close(self) -> None:
        await self.conn.close()
        if self._lock_fd is not None:
            os.close(self._lock_fd)
            self._lock_fd = None


async def _version(conn: aiosqlite.Connection) -> int:
    rows = list(await conn.execute_fetchall("SELECT max(version) FROM schema_version"))
    value = rows[0][0] if rows else None
    return int(value) if value is not None else 0


def _lock(path: Path) -> int:
    lock_path = path.with_name(path.name + ".lock")
    try:
        fd = os.open(lock_path, os.O_RDWR | os.O_CREAT, 0o600)
    except OSError as exc:
        raise FatalError(f"store {path}: cannot create {lock_path}: {exc.strerror}") from None
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        os.close(fd)
        raise StoreLockedError(
            f"store {path} is in use by another monitor process (lock {lock_path});"
            " stop it first or use another store path"
        ) from None
    os.ftruncate(fd, 0)
    os.write(fd, f"{os.getpid()}\n".encode())
    return fd


async def open_store(
    path: Path, *, lock: bool = True, migrations: tuple[str, ...] = MIGRATIONS
) -> Store:
    """Open (create) the store at ``path``; see the module docstring.

    ``lock=False`` skips the instance lock: for tools that only add a row (``monitor mute``)
    while the daemon runs; SQLite's own locking keeps such writes safe.
    """
    path = Path(path)
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise FatalError(f"store {path}: cannot create {path.parent}: {exc.strerror}") from None
    fd = _lock(path) if lock else None
    try:
        conn = await aiosqlite.connect(path, isolation_level=None)
    except sqlite3.Error as exc:
        if fd is not None:
            os.close(fd)
        raise FatalError(f"store {path}: cannot open: {exc}") from None
    try:
        await conn.execute("PRAGMA busy_timeout = 5000")
        await conn.execute("PRAGMA journal_mode = WAL")
        await conn.execute("PRAGMA synchronous = NORMAL")
        await conn.execute("PRAGMA foreign_keys = ON")
        await conn.execute(
            "CREATE TABLE IF NOT EXISTS schema_version (version INTEGER PRIMARY KEY, "
            "applied_at REAL NOT NULL DEFAULT (CAST(strftime('%s', 'now') AS REAL)))"
        )
        current = await _version(conn)
        for number, script in enumerate(migrations, start=1):
            if number <= current:
                continue
            await conn.executescript(
                f"BEGIN IMMEDIATE;\n{script}\n"
                f"INSERT INTO schema_version (version) VALUES ({number});\nCOMMIT;"
            )
            log().info("store.migrated", path=str(path), version=number)
    except sqlite3.Error as exc:
        await conn.close()
        if fd is not None:
            os.close(fd)
        raise FatalError(f"store {path}: cannot write: {exc}") from None
    return Store(path, conn, fd)
