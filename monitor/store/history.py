"""Risk history, the latest figures per scope, feed health and funding paid (SQLite).

Tables (migration 2 in :data:`monitor.store.db.MIGRATIONS`):

* ``risk_history(scope, ts, equity, maintenance, margin_ratio, nearest_liq, shock_down,
  shock_up, funding_day, venue, account, scope_name)``: one row per sample; pruned by
  retention. ``scope`` is the key's text, ``venue``/``account``/``scope_name`` its parts
  (migration 3; None for a text that is not a scope key).
* ``scope_status(scope, venue, account, ts, doc, scope_name)``: the latest figures of every
  scope (JSON), what ``monitor status`` shows; a scope that vanished is deleted.
* ``feed_status(venue, channel, state, detail, updated_at, last_message_at)``.
* ``funding_paid(venue, account, symbol, ts, amount, rate)``: funding the venue booked.
* ``daemon_status(name, doc, updated_at)``: the daemon's one-line summary and pid.

The sampling decision (:class:`Sampler`) is pure: a scope is sampled when ``interval`` seconds
passed since its last sample, or when its margin ratio moved by ``change`` (absolute, e.g.
0.05 = 5 points) since then, or when it first appears.
"""

from __future__ import annotations

import itertools
import json
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Any

import msgspec

from monitor.engine.status import Sample, Sampler, status_doc
from monitor.model.events import FeedStatus, FundingPayment
from monitor.model.ids import AccountKey, IdError, ScopeKey, parse_subject
from monitor.store.db import Store, scope_parts

__all__ = [
    "Known",
    "Sample",
    "Sampler",
    "StatusView",
    "known",
    "prune",
    "read_history",
    "read_status",
    "record",
    "record_feeds",
    "record_funding",
    "scopes",
    "set_daemon_status",
    "status_doc",
]


#: rows one transaction of :func:`record` writes at most: a flush of a large book (40,000
#: status rows a second at 100,000 positions) is cut into transactions of this size so the
#: engine's own transaction, which waits for the store's mutex, never waits for the whole
#: flush (it waited ~0.4 s at 100,000 positions: ``benchmarks/daemon.py``'s p99). At 1,000
#: rows a chunk's encoding and transaction still held a price decision up to ~20 ms (with the
#: engine's sweep slices, the p99 of 10–22 ms at 100,000 positions; 250 and 20-scope slices:
#: 2.8–7.5 ms, three runs)
ROWS_PER_TRANSACTION = 250
#: rows a transaction of :func:`record` writes once ``hurry`` says no engine step waits for
#: the store (shutdown): every transaction costs a round trip to the store's thread and a
#: commit, so the samples of a crash at 10⁶ positions went 250 at a time for seconds
EXIT_ROWS_PER_TRANSACTION = 10_000


def _plain(obj: Any) -> Any:
    """What msgspec cannot encode itself: ``str`` subclasses (the configuration's ``Text``
    names reach the figures) as text."""
    if isinstance(obj, str):
        return str(obj)
    raise NotImplementedError(f"cannot encode {type(obj).__name__}")


_encode = msgspec.json.Encoder(enc_hook=_plain)


async def record(
    store: Store,
    samples: Iterable[Sample],
    statuses: Iterable[tuple[ScopeKey, dict[str, Any]]],
    vanished: Iterable[str] = (),
    *,
    rows_per_transaction: int = ROWS_PER_TRANSACTION,
    samples_per_transaction: int | None = None,
    cut: Callable[[], bool] | None = None,
    hurry: Callable[[], bool] | None = None,
) -> int:
    """Write samples, the latest status of scopes (``statuses``: scope, its
    :func:`status_doc`) and the removal of ``vanished`` scopes,
    in transactions of at most ``rows_per_transaction`` rows each (one when they fit), each
    chunk encoded just before its transaction (the event loop runs between them). Each row
    is whole; a reader between two transactions sees some scopes' figures a flush older.
    ``samples_per_transaction`` (default ``rows_per_transaction``): the samples a transaction
    takes at most; the status rows and removals fill what is left of
    ``rows_per_transaction`` (a transaction of more samples than that writes samples only).

    ``cut``: asked before each transaction; once it says True the status rows not written
    yet are left out (the samples, which are history, and the removals still go). A status
    row is a cache of figures the engine computes again after a restart: a shutdown cuts them
    rather than spend seconds on them. ``hurry``: asked before each transaction too; once it
    says True (nothing waits for the store's mutex any more) the rest goes in transactions
    of :data:`EXIT_ROWS_PER_TRANSACTION` rows. Returns how many status rows were left out."""
    size = max(rows_per_transaction, 1)
    sample_size = max(samples_per_transaction or size, 1)
    sample_it, status_it, gone_it = iter(samples), iter(statuses), iter(vanished)
    left_out = 0
    while True:
        if cut is not None and cut():
            left_out += sum(1 for _ in status_it)
        if hurry is not None and size < EXIT_ROWS_PER_TRANSACTION and hurry():
            size = EXIT_ROWS_PER_TRANSACTION
            sample_size = max(sample_size, size)
        chunk_samples = [_sample_row(s) for s in itertools.islice(sample_it, sample_size)]
        room = max(size - len(chunk_samples), 0)
        chunk_status = [_status_row(k, doc) for k, doc in itertools.islice(status_it, room)]
        chunk_gone = [(s,) for s in itertools.islice(gone_it, room - len(chunk_status))]
        # the last: the samples ran out, and so did the rest (it had room it did not fill)
        last = len(chunk_samples) < sample_size and len(chunk_status) + len(chunk_gone) < room
        async with store.transaction() as conn:
            if chunk_samples:
                await conn.executemany(
                    "INSERT OR REPLACE INTO risk_history (scope, ts, equity, maintenance,"
                    " margin_ratio, nearest_liq, shock_down, shock_up, funding_day, venue,"
                    " account, scope_name) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                    chunk_samples,
                )
            if chunk_status:
                await conn.executemany(
                    "INSERT OR REPLACE INTO scope_status (scope, venue, account, ts, doc,"
                    " scope_name) VALUES (?, ?, ?, ?, ?, ?)",
                    chunk_status,
                )
            if chunk_gone:
                await conn.executemany("DELETE FROM scope_status WHERE scope = ?", chunk_gone)
        if last:
            return left_out


def _sample_row(s: Sample) -> tuple[Any, ...]:
    return (
        s.scope,
        s.ts,
        s.equity,
        s.maintenance,
        s.margin_ratio,
        s.nearest_liq,
        s.shock_down,
        s.shock_up,
        s.funding_day,
        *((k.venue, k.account, k.scope) if (k := s.key) is not None else _parts(s.scope)),
    )


def _status_row(key: ScopeKey, doc: dict[str, Any]) -> tuple[Any, ...]:
    return (str(key), key.venue, key.account, doc.get("ts", 0.0), _encode.encode(doc).decode(),
            key.scope)  # fmt: skip


def _parts(scope: str) -> tuple[str | None, str | None, str | None]:
    # a sample without its key (one read back, or built by hand): parsed once per scope. The
    # daemon's samples carry their key, so this cache stays empty in a daemon (filled, it
    # held ~100 B a position at 40,000 scopes)
    parts = _PARTS.get(scope)
    if parts is None:
        found = scope_parts(scope)
        parts = found if found is not None else (None, None, None)
        if len(_PARTS) >= 65536:
            _PARTS.clear()
        _PARTS[scope] = parts
    return parts


_PARTS: dict[str, tuple[str | None, str | None, str | None]] = {}


async def prune(store: Store, before: float) -> int:
    async with store.transaction() as conn:
        cur = await conn.execute("DELETE FROM risk_history WHERE ts < ?", (before,))
        return cur.rowcount


async def read_history(store: Store, scope: str, since: float) -> list[Sample]:
    async with store.read() as conn:
        cur = await conn.execute(
            "SELECT scope, ts, equity, maintenance, margin_ratio, nearest_liq, shock_down,"
            " shock_up, funding_day FROM risk_history WHERE scope = ? AND ts >= ? ORDER BY ts",
            (scope, since),
        )
        rows = await cur.fetchall()
    return [Sample(*row) for row in rows]


async def scopes(store: Store) -> list[str]:
    async with store.read() as conn:
        cur = await conn.execute("SELECT DISTINCT scope FROM risk_history ORDER BY scope")
        return [r[0] for r in await cur.fetchall()]


async def record_feeds(
    store: Store, statuses: Iterable[FeedStatus], last_message: dict[str, float], now: float
) -> None:
    """Upsert feed states; ``last_message`` maps venue → receive time of its last event."""
    async with store.transaction() as conn:
        for fs in statuses:
            await conn.execute(
                "INSERT INTO feed_status VALUES (?, ?, ?, ?, ?, ?) "
                "ON CONFLICT (venue, channel) DO UPDATE SET state = excluded.state, "
                "detail = excluded.detail, updated_at = excluded.updated_at",
                (fs.venue, fs.channel, fs.state.value, fs.detail, now, last_message.get(fs.venue)),
            )
        for venue, ts in last_message.items():
            await conn.execute(
                "INSERT INTO feed_status VALUES (?, '*', 'live', '', ?, ?) "
                "ON CONFLICT (venue, channel) DO UPDATE SET "
                "last_message_at = excluded.last_message_at",
                (venue, now, ts),
            )
            await conn.execute(
                "UPDATE feed_status SET last_message_at = ? WHERE venue = ?", (ts, venue)
            )


async def record_funding(store: Store, payments: Iterable[FundingPayment]) -> None:
    async with store.transaction() as conn:
        await conn.executemany(
            "INSERT OR IGNORE INTO funding_paid VALUES (?, ?, ?, ?, ?, ?)",
            [
                (
                    p.venue,
                    p.account,
                    p.symbol,
                    p.ts_event if p.ts_event is not None else p.ts_recv,
                    p.amount,
                    p.rate,
                )
                for p in payments
            ],
        )


async def set_daemon_status(store: Store, doc: dict[str, Any], now: float) -> None:
    async with store.transaction() as conn:
        await conn.execute(
            "INSERT OR REPLACE INTO daemon_status VALUES ('daemon', ?, ?)", (json.dumps(doc), now)
        )


@dataclass(frozen=True, slots=True)
class StatusView:
    daemon: dict[str, Any] | None
    daemon_updated_at: float | None
    scopes: list[dict[str, Any]]
    feeds: list[dict[str, Any]]
    funding_paid: list[dict[str, Any]]


async def read_status(store: Store) -> StatusView:
    async with store.read() as conn:
        cur = await conn.execute("SELECT doc, updated_at FROM daemon_status WHERE name='daemon'")
        row = await cur.fetchone()
        cur = await conn.execute("SELECT scope, ts, doc FROM scope_status ORDER BY scope")
        scope_rows = list(await cur.fetchall())
        cur = await conn.execute(
            "SELECT venue, channel, state, detail, updated_at, last_message_at FROM feed_status "
            "ORDER BY venue, channel"
        )
        feed_rows = list(await cur.fetchall())
        cur = await conn.execute(
            "SELECT venue, account, symbol, SUM(amount), COUNT(*) FROM funding_paid "
            "GROUP BY venue, account, symbol ORDER BY venue, account, symbol"
        )
        funding_rows = list(await cur.fetchall())
    scopes_out = []
    for scope, ts, doc in scope_rows:
        d = json.loads(doc)
        d["scope_key"] = scope
        d["updated_at"] = ts
        scopes_out.append(d)
    feeds_out = [
        {
            "venue": v,
            "channel": c,
            "state": s,
            "detail": d,
            "updated_at": u,
            "last_message_at": last,
        }
        for v, c, s, d, u, last in feed_rows
    ]
    funding_out = [
        {"venue": v, "account": a, "symbol": s, "amount": amt, "payments": n}
        for v, a, s, amt, n in funding_rows
    ]
    return StatusView(
        daemon=json.loads(row[0]) if row else None,
        daemon_updated_at=row[1] if row else None,
        scopes=scopes_out,
        feeds=feeds_out,
        funding_paid=funding_out,
    )


@dataclass(frozen=True, slots=True)
class Known:
    """What the store knows of: scopes (from the latest status and the risk history) and
    feed venues. Texts that are not identities are left out."""

    scopes: frozenset[ScopeKey]
    feed_venues: frozenset[str]

    @property
    def accounts(self) -> frozenset[AccountKey]:
        return frozenset(s.account_key for s in self.scopes)


async def known(store: Store) -> Known:
    async with store.read() as conn:
        rows = await conn.execute_fetchall(
            "SELECT scope FROM scope_status UNION SELECT DISTINCT scope FROM risk_history"
        )
        venues = await conn.execute_fetchall("SELECT DISTINCT venue FROM feed_status")
    scopes = set()
    for (text,) in rows:
        try:
            key = parse_subject(str(text))
        except IdError:
            continue
        if isinstance(key, ScopeKey):
            scopes.add(key)
    return Known(frozenset(scopes), frozenset(str(v) for (v,) in venues))
