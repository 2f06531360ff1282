"""The SQLite store: one file, WAL mode, versioned migrations, one instance at a time.

``await open_store(path)`` creates the parent directories, takes an exclusive lock on
``<real path>.lock`` (:func:`lock_path`: beside the file ``path`` resolves to, so two
spellings of one store share it; ``fcntl.flock``; a second process gets :class:`StoreLockedError`, a
:class:`~monitor.errors.FatalError`), opens the database in WAL mode (a WAL file that starts
over is cut back to :data:`WAL_LIMIT_BYTES`) and applies every migration in :data:`MIGRATIONS`
not yet applied. A path that cannot be created or written
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
import json
import os
import sqlite3
import threading
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path
from typing import Any

import aiosqlite
import structlog

from monitor.errors import FatalError
from monitor.model import ids
from monitor.model.venues import canonical, is_alias


def log() -> Any:
    """A fresh logger per call: never a module-level proxy that a configuration done with
    ``cache_logger_on_first_use`` would pin for the life of the process."""
    return structlog.get_logger()


def _venue(name: str) -> str:
    """The canonical spelling of an old venue alias; any other name unchanged."""
    return canonical(name) if is_alias(name) else name


def _respell_subject(text: str) -> str:
    """``text`` (an alert subject or group) with an old venue spelling at its start made
    canonical: ``dydx_v4:…`` → ``dydx:…``, ``feed:binance_usdm/…`` → ``feed:binanceusdm/…``."""
    if text.startswith("feed:"):
        venue, sep, rest = text[5:].partition("/")
        return f"feed:{_venue(venue)}{sep}{rest}"
    venue, sep, rest = text.partition(":")
    return f"{_venue(venue)}:{rest}" if sep else text


def _respell_key(key: str) -> str:
    """An alert key ``rule|subject``, or a subject, respelled (see :func:`_respell_subject`)."""
    rule, bar, subject = key.partition("|")
    return f"{rule}|{_respell_subject(subject)}" if bar else _respell_subject(key)


def _respell_feed(key: str) -> str:
    """A feed key ``venue/channel`` respelled."""
    venue, sep, rest = key.partition("/")
    return f"{_venue(venue)}{sep}{rest}"


def mute_parts(
    target: str,
) -> tuple[str, str | None, str | None, str | None, str | None, str | None]:
    """(kind, venue, account, scope, symbol, channel) of a mute target, for the ``mutes``
    columns; kind ``invalid`` (every part None) for a text that is not an identity."""
    try:
        key = ids.parse_subject(target)
    except ids.IdError:
        return ("invalid", None, None, None, None, None)
    if isinstance(key, ids.MonitorKey):
        return ("monitor", None, None, None, None, None)
    if isinstance(key, ids.FeedKey):
        return ("feed", key.venue, None, None, None, key.channel)
    if isinstance(key, ids.AccountKey):
        return ("account", key.venue, key.account, None, None, None)
    if isinstance(key, ids.ScopeKey):
        return ("scope", key.venue, key.account, key.scope, None, None)
    s = key.scope
    return ("position", s.venue, s.account, s.scope, key.symbol, None)


async def _respell_column(
    conn: aiosqlite.Connection, table: str, column: str, fix: Callable[[str], str]
) -> None:
    rows = await conn.execute_fetchall(f"SELECT rowid, {column} FROM {table}")
    for rowid, value in rows:
        new = fix(value)
        if new != value:
            # a row already under the new spelling (written after an upgrade) wins
            await conn.execute(
                f"UPDATE OR IGNORE {table} SET {column} = ? WHERE rowid = ?",
                (new, rowid),
            )
            await conn.execute(
                f"DELETE FROM {table} WHERE rowid = ? AND {column} = ?",
                (rowid, value),
            )


async def _migrate_3(conn: aiosqlite.Connection) -> None:
    """Venue aliases (``dydx_v4``, ``binance_usdm``) → canonical names in every table that
    keeps keys (alert state and its JSON documents, transitions, outbox groups, mutes, risk
    history, scope/feed status, funding); ``mutes`` gains its target's parts (``kind``,
    ``venue``, ``account``, ``scope``, ``symbol``, ``channel``), ``scope_status`` its scope's
    ``scope_name`` and ``risk_history`` its ``venue``, ``account`` and ``scope_name``."""
    for table, column, fix in (
        ("alert_state", "key", _respell_key),
        ("transitions", "key", _respell_key),
        ("transitions", "grp", _respell_subject),
        ("transitions", "subject", _respell_subject),
        ("outbox", "grp", _respell_subject),
        ("mutes", "target", _respell_subject),
        ("risk_history", "scope", _respell_subject),
        ("scope_status", "scope", _respell_subject),
        ("scope_status", "venue", _venue),
        ("feed_status", "venue", _venue),
        ("funding_paid", "venue", _venue),
    ):
        await _respell_column(conn, table, column, fix)
    for key, doc in await conn.execute_fetchall("SELECT key, doc FROM alert_state"):
        d = json.loads(doc)
        before = dict(d)
        for name in ("key",):
            if isinstance(d.get(name), str):
                d[name] = _respell_key(d[name])
        for name in ("subject", "group"):
            if isinstance(d.get(name), str):
                d[name] = _respell_subject(d[name])
        if isinstance(d.get("venue"), str):
            d["venue"] = _venue(d["venue"])
        if d != before:
            await conn.execute(
                "UPDATE alert_state SET doc = ? WHERE key = ?",
                (json.dumps(d, allow_nan=True, separators=(",", ":")), key),
            )
    for name, fix in (("peaks", _respell_key), ("stale", _respell_feed)):
        for (doc,) in await conn.execute_fetchall(
            "SELECT doc FROM engine_meta WHERE name = ?", (name,)
        ):
            table = json.loads(doc)
            if isinstance(table, dict):
                fixed = {fix(str(k)): v for k, v in table.items()}
                await conn.execute(
                    "UPDATE engine_meta SET doc = ? WHERE name = ?", (json.dumps(fixed), name)
                )
    for column in ("kind", "venue", "account", "scope", "symbol", "channel"):
        await conn.execute(f"ALTER TABLE mutes ADD COLUMN {column} TEXT")
    for rowid, target in await conn.execute_fetchall("SELECT rowid, target FROM mutes"):
        await conn.execute(
            "UPDATE mutes SET kind = ?, venue = ?, account = ?, scope = ?, symbol = ?, "
            "channel = ? WHERE rowid = ?",
            (*mute_parts(target), rowid),
        )
    await conn.execute("CREATE INDEX mutes_venue_account ON mutes (venue, account)")
    # the scope tables keep their key's parts beside the key text
    await conn.execute("ALTER TABLE scope_status ADD COLUMN scope_name TEXT")
    for column in ("venue", "account", "scope_name"):
        await conn.execute(f"ALTER TABLE risk_history ADD COLUMN {column} TEXT")
    for table in ("scope_status", "risk_history"):
        for (text,) in await conn.execute_fetchall(f"SELECT DISTINCT scope FROM {table}"):
            parts = scope_parts(str(text))
            if parts is not None:
                await conn.execute(
                    f"UPDATE {table} SET venue = ?, account = ?, scope_name = ? WHERE scope = ?",
                    (*parts, text),
                )
    await conn.execute("CREATE INDEX risk_history_account ON risk_history (venue, account)")


def scope_parts(text: str) -> tuple[str, str, str] | None:
    """(venue, account, scope) of a scope key's text, None when it is not one."""
    try:
        key = ids.parse_subject(text)
    except ids.IdError:
        return None
    if not isinstance(key, ids.ScopeKey):
        return None
    return (key.venue, key.account, key.scope)


#: a migration: an SQL script, or an async function run on the connection inside the
#: migration's transaction (for changes SQL cannot express, like parsing identities)
Migration = str | Callable[[aiosqlite.Connection], Awaitable[None]]


MIGRATIONS: tuple[Migration, ...] = (
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
    # 3: one spelling per venue in every stored key; mutes keep their target's parts
    _migrate_3,
    # 4: an outbox row may carry chart requests (monitor/ops/charts.py ChartSpec, JSON): the
    # delivery worker renders them at send time and attaches the PNGs
    "ALTER TABLE outbox ADD COLUMN attach TEXT;",
    # 5: the pending rows of each channel in order, without a scan of the whole outbox (a
    # crash queues tens of thousands of rows; the delivery worker asks for each channel's
    # oldest before every send: monitor/store/outbox.py)
    "CREATE INDEX outbox_pending ON outbox (channel, id) WHERE status = 'pending';",
)
"""Append-only: each entry is one migration script; never edit a released one."""


class StoreLockedError(FatalError):
    """Another process holds the store (exit code 3)."""


#: the WAL size (pages of 4 KiB) at which a commit on the store's own connection checkpoints
#: once :meth:`Store.checkpoint_apart` moved checkpoints to their own connection: a safety net
#: (~40 MiB) for when those stop (a reader holding the WAL, an error), not the usual path
WAL_SAFETY_PAGES = 10_000
#: the size (bytes) to which the commit that starts the WAL over after a complete checkpoint
#: truncates a larger WAL file (``PRAGMA journal_size_limit``, set on every connection of the
#: store); without it SQLite reuses the file from its start and never shrinks it, so a crash
#: (the WAL up to the ~40 MiB safety net) or a reader holding the WAL (no bound at all) left
#: that size on disk for good. 16 MiB: four times the WAL at which SQLite checkpoints by
#: default (1,000 pages), which the status loop's checkpoint once a second is meant to keep
#: it under, so a reset seldom truncates (a truncated file is regrown by the next writes);
#: well under the safety net, so what a crash grew goes back to the disk at its first reset
WAL_LIMIT_BYTES = 16 * 1024 * 1024


class Store:
    """An open store. Use :meth:`transaction` for writes and :meth:`read` for reads."""

    def __init__(self, path: Path, conn: aiosqlite.Connection, lock_fd: int | None) -> None:
        self.path = path
        self.conn = conn
        self._lock_fd = lock_fd
        self._mutex = asyncio.Lock()
        st = os.stat(path)
        self._file = (st.st_dev, st.st_ino)
        self._checkpointer: sqlite3.Connection | None = None
        self._checkpointing = asyncio.Lock()
        #: held by the worker thread while it uses ``_checkpointer`` and by ``close`` while
        #: it closes it: a cancelled ``checkpoint`` releases ``_checkpointing`` at once, its
        #: thread runs on (closing a connection under it crashes the process)
        self._checkpointer_lock = threading.Lock()
        self._closed = False

    async def checkpoint_apart(self, safety_pages: int = WAL_SAFETY_PAGES) -> None:
        """Move WAL checkpoints off the writes: the store's connection checkpoints only once
        the WAL reaches ``safety_pages`` (SQLite's default is 1,000 pages, ~4 MiB: in a
        crash a step's commit every few steps copied the WAL into the database, inside
        the step's transaction); :meth:`checkpoint`, called regularly, does it instead."""
        await self.conn.execute(f"PRAGMA wal_autocheckpoint = {int(safety_pages)}")

    async def checkpoint(self) -> tuple[int, int, int]:
        """A passive WAL checkpoint on a connection of its own, in a worker thread: it takes
        neither this store's lock nor SQLite's write lock, so transactions go on meanwhile
        (SQLite runs the copy without Python's GIL, on another core). Copies what no reader
        still needs; the next commit after a complete one starts the WAL over, and cuts a
        WAL file larger than :data:`WAL_LIMIT_BYTES` back to that size. Returns
        SQLite's ``(busy, frames in the WAL, frames checkpointed)``. Raises
        ``sqlite3.Error`` (a store failure, as for a write), also when the file was moved
        or replaced (:meth:`check_file`); ``sqlite3.ProgrammingError`` once the store is
        closed."""
        async with self._checkpointing:
            if self._closed:
                raise sqlite3.ProgrammingError("the store is closed")
            self.check_file()
            return await asyncio.to_thread(self._checkpoint)

    def _checkpoint(self) -> tuple[int, int, int]:
        with self._checkpointer_lock:
            if self._closed:  # closed while this waited for a worker thread
                raise sqlite3.ProgrammingError("the store is closed")
            return self._checkpoint_locked()

    def _checkpoint_locked(self) -> tuple[int, int, int]:
        conn = self._checkpointer
        if conn is None:
            # mode=rw: never creates a database where the store was. The path percent-
            # encoded (as_uri): a '#', '?' or '%' in it is the file's own character, not a
            # URI's fragment, query or escape ('store#1' would open a new empty 'store')
            uri = Path(self.path).absolute().as_uri()
            conn = sqlite3.connect(
                f"{uri}?mode=rw", uri=True, isolation_level=None,
                check_same_thread=False, timeout=1.0,
            )  # fmt: skip
            # per connection: the truncation itself is done by the writer's commit that
            # restarts the WAL (its own limit, set in ``open_store``); set here too, so no
            # connection that checkpoints this store runs without it
            conn.execute(f"PRAGMA journal_size_limit = {WAL_LIMIT_BYTES}")
            self._checkpointer = conn
        row = conn.execute("PRAGMA wal_checkpoint(PASSIVE)").fetchone()
        busy, frames, done = (int(v) for v in row)
        return busy, frames, done

    def check_file(self) -> None:
        """Raise ``sqlite3.OperationalError`` (a store failure) when ``path`` no longer names
        the database this store has open: moved, deleted or replaced. SQLite in WAL mode
        would write on to the old file, and every write would be lost at the next start."""
        try:
            st = os.stat(self.path)
        except OSError as exc:
            raise sqlite3.OperationalError(
                f"the store file was moved or deleted ({exc.strerror})"
            ) from None
        if (st.st_dev, st.st_ino) != self._file:
            raise sqlite3.OperationalError("the store file was replaced by another one")

    @contextlib.asynccontextmanager
    async def transaction(self) -> AsyncIterator[aiosqlite.Connection]:
        """``BEGIN IMMEDIATE`` … ``COMMIT`` (rollback on any error), one at a time; first
        :meth:`check_file` (the path still names the open database)."""
        async with self._mutex:
            self.check_file()
            await self.conn.execute("BEGIN IMMEDIATE")
            try:
                yield self.conn
            except BaseException:
                # SQLite may have ended the transaction itself (disk full): a ROLLBACK then
                # would raise and hide the real error
                if self.conn.in_transaction:
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

    def _close_checkpointer(self) -> None:
        with self._checkpointer_lock:  # after a (cancelled) checkpoint's thread is done
            self._closed = True
            if self._checkpointer is not None:
                self._checkpointer.close()
                self._checkpointer = None

    async def close(self) -> None:
        async with self._checkpointing:
            self._closed = True  # no checkpoint starts from now on
            await asyncio.to_thread(self._close_checkpointer)
        await self.conn.close()
        if self._lock_fd is not None:
            os.close(self._lock_fd)
            self._lock_fd = None


async def _migrate(conn: aiosqlite.Connection, number: int, script: Migration) -> bool:
    """Apply migration ``number`` unless the store has it; return whether it was applied.

    The version is read inside the migration's ``BEGIN IMMEDIATE``: another process opening
    the same old store at the same instant (``monitor mute`` while the daemon starts) waits
    for this one's transaction, then finds the migration applied, instead of running it a
    second time ("index … already exists")."""
    await conn.execute("BEGIN IMMEDIATE")
    try:
        if await _version(conn) >= number:
            await conn.execute("ROLLBACK")
            return False
        if isinstance(script, str):
            for statement in _statements(script):
                await conn.execute(statement)
        else:
            await script(conn)
        await conn.execute("INSERT INTO schema_version (version) VALUES (?)", (number,))
    except BaseException:
        # SQLite may have ended the transaction itself (a full disk): a ROLLBACK then would
        # raise "no transaction is active" and hide the real error
        if conn.in_transaction:
            await conn.execute("ROLLBACK")
        raise
    await conn.execute("COMMIT")
    return True


def _statements(script: str) -> list[str]:
    """The SQL statements of ``script``, each whole (a trigger's body keeps its ``;``):
    ``executescript`` would commit the open transaction first. What follows the last ``;``
    (a comment, a last statement without its ``;``) is one more statement, ended on a line
    of its own so that a trailing ``-- comment`` cannot swallow the ``;``."""
    out: list[str] = []
    buf = ""
    parts = script.split(";")
    for part in parts[:-1]:
        buf += part + ";"
        if sqlite3.complete_statement(buf):
            if buf.strip(" \n\t;"):
                out.append(buf.strip())
            buf = ""
    buf += parts[-1]
    if buf.strip(" \n\t;"):
        if not sqlite3.complete_statement(buf + "\n;"):
            raise ValueError(f"incomplete SQL statement in a migration: {buf.strip()[:80]!r}")
        out.append(buf.strip() + "\n;")
    return out


async def _version(conn: aiosqlite.Connection) -> int:
    rows = list(await conn.execute_fetchall("SELECT max(version) FROM schema_version"))
    value = rows[0][0] if rows else None
    return int(value) if value is not None else 0


def lock_path(path: Path) -> Path:
    """The lock file of the store at ``path``: ``<real path>.lock`` beside the file the path
    resolves to (symlinks followed, ``.``/``..`` and relative parts removed), so that two
    spellings of one store (``./x``, ``x``, a symlink to it) take the same lock."""
    real = Path(os.path.realpath(path))
    return real.with_name(real.name + ".lock")


def _lock(path: Path) -> int:
    lock = lock_path(path)
    try:
        fd = os.open(lock, os.O_RDWR | os.O_CREAT, 0o600)
    except OSError as exc:
        raise FatalError(f"store {path}: cannot create {lock}: {exc.strerror}") from None
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        os.close(fd)
        raise StoreLockedError(
            f"store {path} is in use by another monitor process (lock {lock});"
            " stop it first or use another store path"
        ) from None
    os.ftruncate(fd, 0)
    os.write(fd, f"{os.getpid()}\n".encode())
    return fd


async def open_store(
    path: Path,
    *,
    lock: bool = True,
    create: bool = True,
    migrations: tuple[Migration, ...] = MIGRATIONS,
) -> Store:
    """Open (create) the store at ``path``; see the module docstring.

    ``lock=False`` skips the instance lock: for tools that only add a row (``monitor mute``)
    while the daemon runs; SQLite's own locking keeps such writes safe. ``create=False``: a
    path with no store is a :class:`~monitor.errors.FatalError` ("no store at …"), never a
    new empty database (every command but ``run``).
    """
    path = Path(path)
    if not create and not path.is_file():
        what = "is not a file" if path.exists() else "does not exist"
        raise FatalError(
            f"no store at {path}: it {what} (has the daemon run? check --store or the"
            " [store] path of --config)"
        )
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
        # its commit after a complete checkpoint (the status loop's, or its own at
        # ``wal_autocheckpoint``) truncates a WAL grown past the limit: WAL_LIMIT_BYTES
        await conn.execute(f"PRAGMA journal_size_limit = {WAL_LIMIT_BYTES}")
        await conn.execute(
            "CREATE TABLE IF NOT EXISTS schema_version (version INTEGER PRIMARY KEY, "
            "applied_at REAL NOT NULL DEFAULT (CAST(strftime('%s', 'now') AS REAL)))"
        )
        current = await _version(conn)  # an up-to-date store takes no write lock
        for number, script in enumerate(migrations, start=1):
            if number <= current or not await _migrate(conn, number, script):
                continue
            log().info("store.migrated", path=str(path), version=number)
    except sqlite3.Error as exc:
        await conn.close()
        if fd is not None:
            os.close(fd)
        raise FatalError(f"store {path}: cannot write: {exc}") from None
    return Store(path, conn, fd)
