"""Alert state in the store, so a restart neither re-fires nor forgets an open alert.

:func:`save` writes the difference between two :class:`AlertState` values (changed records
upserted, vanished ones deleted, peaks and stale feeds when changed) and
:func:`record_transitions` the history; both run inside the caller's transaction, beside the
outbox rows. Per-position liquidation distances (for detecting a vanished position) are not
persisted: after a restart that detection starts from the first snapshot.
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from dataclasses import asdict
from typing import Any

import aiosqlite

from monitor.alerts.engine import AlertRecord, AlertState, AlertStatus, Transition
from monitor.alerts.rules import Severity
from monitor.store.db import Store


def _dump(rec: AlertRecord) -> str:
    return json.dumps(asdict(rec), allow_nan=True, separators=(",", ":"))


def _load(doc: str) -> AlertRecord:
    d: dict[str, Any] = json.loads(doc)
    d["status"] = AlertStatus(d["status"])
    d["severity"] = Severity(d["severity"])
    return AlertRecord(**d)


async def save(conn: aiosqlite.Connection, old: AlertState, new: AlertState, now: float) -> None:
    """Persist what changed from ``old`` to ``new`` (inside the caller's transaction)."""
    upserts = [
        (key, _dump(rec), now) for key, rec in new.alerts.items() if old.alerts.get(key) != rec
    ]
    if upserts:
        await conn.executemany(
            "INSERT INTO alert_state (key, doc, updated_at) VALUES (?, ?, ?) "
            "ON CONFLICT(key) DO UPDATE SET doc = excluded.doc, updated_at = excluded.updated_at",
            upserts,
        )
    gone = [(key,) for key in old.alerts if key not in new.alerts]
    if gone:
        await conn.executemany("DELETE FROM alert_state WHERE key = ?", gone)
    for name, before, after in (("peaks", old.peaks, new.peaks), ("stale", old.stale, new.stale)):
        if before is not after and dict(before) != dict(after):
            await conn.execute(
                "INSERT INTO engine_meta (name, doc) VALUES (?, ?) "
                "ON CONFLICT(name) DO UPDATE SET doc = excluded.doc",
                (name, json.dumps(dict(after))),
            )


async def record_transitions(conn: aiosqlite.Connection, transitions: Iterable[Transition]) -> None:
    await conn.executemany(
        "INSERT OR IGNORE INTO transitions (id, key, kind, rule, severity, grp, subject, at, "
        "value, threshold, muted, detail) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
        [
            (
                t.id,
                t.key,
                t.kind.value,
                t.rule,
                t.severity.value,
                t.group,
                t.subject,
                t.at,
                t.value,
                t.threshold,
                int(t.muted),
                t.detail,
            )
            for t in transitions
        ],
    )


async def load(store: Store) -> AlertState:
    """The persisted state (without mutes: see :mod:`monitor.store.mutes`)."""
    async with store.read() as conn:
        rows = await conn.execute_fetchall("SELECT doc FROM alert_state ORDER BY key")
        meta_rows = await conn.execute_fetchall("SELECT name, doc FROM engine_meta")
    meta: dict[str, str] = {str(r[0]): str(r[1]) for r in meta_rows}
    alerts = {}
    for (doc,) in rows:
        rec = _load(str(doc))
        alerts[rec.key] = rec
    peaks = {str(k): float(v) for k, v in json.loads(meta.get("peaks", "{}")).items()}
    stale = {str(k): str(v) for k, v in json.loads(meta.get("stale", "{}")).items()}
    return AlertState(alerts=alerts, peaks=peaks, stale=stale)


async def history(store: Store, limit: int = 100) -> list[dict[str, object]]:
    """The latest transitions, newest first (for status output and tests)."""
    async with store.read() as conn:
        conn.row_factory = aiosqlite.Row
        try:
            rows = await conn.execute_fetchall(
                "SELECT * FROM transitions ORDER BY at DESC, rowid DESC LIMIT ?", (limit,)
            )
        finally:
            conn.row_factory = None
    return [dict(r) for r in rows]


async def prune_history(store: Store, before: float) -> int:
    """Delete transitions older than ``before`` (epoch s); returns how many."""
    async with store.transaction() as conn:
        cur = await conn.execute("DELETE FROM transitions WHERE at < ?", (before,))
        return cur.rowcount
