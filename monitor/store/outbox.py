"""The durable outbox: one row per (message, channel), written in the same transaction as the
alert transitions that caused it.

Row life: ``pending`` → (claimed) ``sending`` → ``delivered`` | back to ``pending`` with a
later ``next_attempt_at`` | ``failed`` (too old). ``idem_key`` (unique) is the idempotency
key of the message for that channel: enqueueing it twice stores it once. A process that dies
between sending and marking leaves the row ``sending``; :func:`resume` at start puts it back
to ``pending``, so a crash re-sends a message at most once. (The delivery worker claims a
webhook backlog several digests at a time and marks them delivered in the transaction that
claims the next: a crash mid-way leaves those digests' rows ``sending`` too, sent or not, and
they go again, each alone.)

A row that was tried before (``attempts > 0``: after a failure, a timeout, or a crash
mid-send) may have reached its endpoint; :func:`claim` never puts it in a batch with other
rows, so a possibly delivered message is never resent inside a bigger coalesced one (the
delivery worker relaxes this for rows the service answered with an error status: those
certainly did not arrive).

Times are epoch seconds (UTC).
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass

import aiosqlite

from monitor.store.db import Store

PENDING = "pending"
SENDING = "sending"
DELIVERED = "delivered"
FAILED = "failed"


@dataclass(frozen=True, slots=True)
class OutboundMessage:
    """A message for one channel. ``body_format``: ``text`` | ``markdown`` | ``html``;
    ``notify_type``: apprise's ``info`` | ``success`` | ``warning`` | ``failure``.
    ``attach``: what to render and attach at delivery time (a
    :class:`monitor.ops.charts.ChartSpec` as JSON), or None."""

    idem_key: str
    channel: str
    group: str
    severity: str
    title: str
    body: str
    body_format: str
    notify_type: str
    created_at: float
    attach: str | None = None


@dataclass(frozen=True, slots=True)
class OutboxItem:
    id: int
    idem_key: str
    channel: str
    group: str
    severity: str
    title: str
    body: str
    body_format: str
    notify_type: str
    created_at: float
    attempts: int
    status: str
    next_attempt_at: float
    delivered_at: float | None
    last_error: str | None
    attach: str | None = None


_COLUMNS = (
    "id, idem_key, channel, grp, severity, title, body, body_format, notify_type, created_at, "
    "attempts, status, next_attempt_at, delivered_at, last_error, attach"
)


def _item(row: Sequence[object]) -> OutboxItem:
    return OutboxItem(*row)  # type: ignore[arg-type]


async def enqueue(conn: aiosqlite.Connection, messages: Iterable[OutboundMessage]) -> int:
    """Insert ``messages`` (inside the caller's transaction); duplicates by ``idem_key`` are
    ignored. Returns how many rows were new."""
    before = conn.total_changes
    await conn.executemany(
        "INSERT OR IGNORE INTO outbox (idem_key, channel, grp, severity, title, body, "
        "body_format, notify_type, created_at, next_attempt_at, attach) "
        "VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
        [
            (
                m.idem_key,
                m.channel,
                m.group,
                m.severity,
                m.title,
                m.body,
                m.body_format,
                m.notify_type,
                m.created_at,
                m.created_at,
                m.attach,
            )
            for m in messages
        ],
    )
    return conn.total_changes - before


async def resume(store: Store) -> int:
    """At start: rows left ``sending`` by a dead process become ``pending`` again."""
    async with store.transaction() as conn:
        cur = await conn.execute(
            "UPDATE outbox SET status = ?, claimed_at = NULL WHERE status = ?", (PENDING, SENDING)
        )
        return cur.rowcount


# A channel delivers in order: nothing is sent past its oldest pending row while that row
# waits for a retry, so a "resolved" never arrives before the "fired" it ends.
#
# The queries below use the partial index ``outbox_pending (channel, id) WHERE status =
# 'pending'`` (migration 5): the status is written into the SQL as a literal (an SQLite that
# does not plan with the bound values cannot match a parameter to the index's WHERE), and the
# walk over channels names the index (without it SQLite picks ``outbox_due`` and scans every
# pending row).
# Each costs O(channels · log rows). Before, each scanned every pending row: 5–17 ms a
# question at 20,000 rows and 49–180 ms at 200,000 (a crash's backlog at 100,000 and at
# 1,000,000 positions), two or three of them before every send (``benchmarks/outbox.py``).
_IS_PENDING = f"status = '{PENDING}'"
_CHANNELS = (
    "WITH RECURSIVE c(channel) AS ("
    f"SELECT min(channel) FROM outbox INDEXED BY outbox_pending WHERE {_IS_PENDING} "
    "UNION ALL SELECT (SELECT min(o.channel) FROM outbox o INDEXED BY outbox_pending "
    f"WHERE o.{_IS_PENDING} AND o.channel > c.channel) FROM c WHERE c.channel IS NOT NULL) "
    "SELECT c.channel, (SELECT h.next_attempt_at FROM outbox h "
    f"WHERE h.{_IS_PENDING} AND h.channel = c.channel ORDER BY h.id LIMIT 1) "
    "FROM c WHERE c.channel IS NOT NULL"
)
_DUE = (
    "SELECT count(*) FROM (SELECT next_attempt_at FROM outbox "
    f"WHERE {_IS_PENDING} AND channel = ? ORDER BY id LIMIT ?) WHERE next_attempt_at <= ?"
)

_CLAIM = f"SELECT {_COLUMNS} FROM outbox WHERE {_IS_PENDING} AND channel = ? ORDER BY id LIMIT ?"


async def due_channels(store: Store, now: float, upto: int = 1000) -> dict[str, int]:
    """Channels whose oldest pending row is due at ``now`` → how many of their ``upto``
    oldest pending rows are due (a send takes at most a digest's rows: the count only says
    whether more than ``digest_after`` wait)."""
    async with store.read() as conn:
        heads = await conn.execute_fetchall(_CHANNELS)
        out: dict[str, int] = {}
        for channel, head in heads:
            if head is not None and float(head) <= now:
                rows = list(await conn.execute_fetchall(_DUE, (channel, upto, now)))
                out[str(channel)] = int(rows[0][0])
    return out


async def next_due(store: Store) -> float | None:
    """The earliest time a channel's oldest pending row is due, or None."""
    due = (await heads(store)).values()
    return min(due) if due else None


async def heads(store: Store) -> dict[str, float]:
    """Every channel with pending rows → when its oldest pending row is due (epoch s)."""
    async with store.read() as conn:
        rows = await conn.execute_fetchall(_CHANNELS)
    return {str(r[0]): float(r[1]) for r in rows if r[1] is not None}


def tried_before(item: OutboxItem) -> bool:
    """The default rule of :func:`claim` for a row that must go alone."""
    return item.attempts > 0


async def claim(
    store: Store,
    channel: str,
    now: float,
    limit: int,
    *,
    alone: Callable[[OutboxItem], bool] = tried_before,
    delivered: Sequence[tuple[int, float]] = (),
    release: Sequence[int] = (),
) -> list[OutboxItem]:
    """Claim up to ``limit`` rows of ``channel`` in order, oldest first, stopping at the first
    one not due at ``now``: ``sending``, ``attempts + 1``. A row for which ``alone`` is true
    (by default: tried before) goes alone: when the oldest is such a row, only it is claimed;
    otherwise the claim stops before the first such row.

    In the same transaction, first: the ``delivered`` rows (``(id, delivered_at)``, epoch s)
    are marked delivered and the ``release`` rows put back as :func:`release` does, so a
    worker going through a backlog settles what it sent and claims what it sends next in
    one transaction (each waits for the store's lock)."""
    async with store.transaction() as conn:
        await _settle(conn, delivered, release)
        if limit <= 0:
            return []
        pending = list(
            await conn.execute_fetchall(
                _CLAIM,
                (channel, limit),
            )
        )
        rows: list[aiosqlite.Row] = []
        for r in pending:
            item = _item(r)
            if item.next_attempt_at > now or (rows and alone(item)):
                break
            rows.append(r)
            if alone(item):
                break
        ids = [int(r[0]) for r in rows]
        await conn.executemany(
            "UPDATE outbox SET status = ?, claimed_at = ?, attempts = attempts + 1 WHERE id = ?",
            [(SENDING, now, i) for i in ids],
        )
    return [_item(r) for r in rows]


async def release(store: Store, ids: Iterable[int]) -> None:
    """Put claimed rows back, unsent and uncounted (e.g. they did not fit a coalesced message)."""
    await settle(store, (), list(ids))


async def mark_delivered(store: Store, ids: Iterable[int], now: float) -> None:
    await settle(store, [(i, now) for i in ids])


async def settle(
    store: Store, delivered: Sequence[tuple[int, float]] = (), release: Sequence[int] = ()
) -> None:
    """In one transaction (none when both are empty): mark the ``delivered`` rows
    (``(id, delivered_at)``, epoch s) delivered and put the ``release`` rows back, unsent and
    uncounted (as :func:`release`)."""
    if not delivered and not release:
        return
    async with store.transaction() as conn:
        await _settle(conn, delivered, release)


async def _settle(
    conn: aiosqlite.Connection, delivered: Iterable[tuple[int, float]], release: Iterable[int]
) -> None:
    """Inside the caller's transaction: see :func:`settle`."""
    marks = [(DELIVERED, at, i) for i, at in delivered]
    if marks:
        await conn.executemany(
            "UPDATE outbox SET status = ?, delivered_at = ?, last_error = NULL WHERE id = ?",
            marks,
        )
    back = [(PENDING, i, SENDING) for i in release]
    if back:
        await conn.executemany(
            "UPDATE outbox SET status = ?, claimed_at = NULL, attempts = attempts - 1 "
            "WHERE id = ? AND status = ?",
            back,
        )


async def mark_retry(store: Store, ids: Iterable[int], next_attempt_at: float, error: str) -> None:
    async with store.transaction() as conn:
        await conn.executemany(
            "UPDATE outbox SET status = ?, next_attempt_at = ?, last_error = ?, claimed_at = NULL "
            "WHERE id = ?",
            [(PENDING, next_attempt_at, error, i) for i in ids],
        )


async def mark_failed(store: Store, ids: Iterable[int], error: str) -> None:
    async with store.transaction() as conn:
        await conn.executemany(
            "UPDATE outbox SET status = ?, last_error = ?, claimed_at = NULL WHERE id = ?",
            [(FAILED, error, i) for i in ids],
        )


async def backlog(store: Store) -> tuple[int, float | None]:
    """Undelivered rows (pending or sending) and the creation time of the oldest."""
    async with store.read() as conn:
        rows = list(
            await conn.execute_fetchall(
                "SELECT count(*), min(created_at) FROM outbox WHERE status IN (?, ?)",
                (PENDING, SENDING),
            )
        )
    count, oldest = rows[0]
    return int(count), (float(oldest) if oldest is not None else None)


async def items(store: Store, *, status: str | None = None) -> list[OutboxItem]:
    """Every row (or those in ``status``), in insertion order: for status output and tests."""
    async with store.read() as conn:
        if status is None:
            rows = await conn.execute_fetchall(f"SELECT {_COLUMNS} FROM outbox ORDER BY id")
        else:
            rows = await conn.execute_fetchall(
                f"SELECT {_COLUMNS} FROM outbox WHERE status = ? ORDER BY id", (status,)
            )
    return [_item(r) for r in rows]


async def prune(store: Store, before: float) -> int:
    """Delete delivered and failed rows created before ``before`` (epoch s); pending rows are
    never pruned. Returns how many rows went."""
    async with store.transaction() as conn:
        cur = await conn.execute(
            "DELETE FROM outbox WHERE status IN (?, ?) AND created_at < ?",
            (DELIVERED, FAILED, before),
        )
        return cur.rowcount
