"""Alert state in the store, so a restart neither re-fires nor forgets an open alert.

:func:`save_delta` writes what one engine step changed (an :class:`AlertDelta`: changed
records upserted, vanished ones deleted, the peaks that moved, the stale feeds when changed),
:func:`save` the difference between two :class:`AlertState` values (start-up), and
:func:`record_transitions` the history; they run inside the caller's transaction, beside the
outbox rows.

Peak equity is kept per scope, one ``engine_meta`` row ``peak:<scope>`` each, so a moving peak
writes one small row, not the whole map (:func:`migrate_peaks` turns the older single
``peaks`` document into those rows; no schema change).

Per-position liquidation distances (for detecting a vanished position) are not persisted: after
a restart that detection starts from the first snapshot.
"""

from __future__ import annotations

import json
import math
from collections.abc import Iterable
from dataclasses import fields
from typing import Any

import aiosqlite

from monitor.alerts.engine import AlertDelta, AlertRecord, AlertState, AlertStatus, Transition
from monitor.alerts.rules import Severity
from monitor.store.db import Store

_FIELDS = tuple(f.name for f in fields(AlertRecord))


def _dump_reference(rec: AlertRecord) -> str:
    """The record as a JSON object: its fields in order, compact, NaN/Infinity allowed,
    ASCII only (what :func:`_dump` writes faster)."""
    # a flat record of scalars: no need for dataclasses.asdict's recursive deep copy
    return json.dumps(
        {name: getattr(rec, name) for name in _FIELDS}, allow_nan=True, separators=(",", ":")
    )


#: each field's ``"name":`` as json.dumps writes the key
_KEYS = tuple(json.dumps(name) + ":" for name in _FIELDS)
_FLOAT_REPR = float.__repr__
_INT_REPR = int.__repr__
_STRING = json.encoder.encode_basestring_ascii


def _dump(rec: AlertRecord) -> str:
    """:func:`_dump_reference`'s text, written field by field: a string (an enum's too) as
    json.dumps writes it, a float as its repr (``NaN``, ``Infinity``, ``-Infinity`` when not
    finite), None, booleans and ints as JSON; any other value: the reference's text."""
    parts = []
    for key, name in zip(_KEYS, _FIELDS, strict=True):
        v = getattr(rec, name)
        kind = type(v)
        if kind is float:
            if math.isnan(v):
                text = "NaN"
            elif v == math.inf:
                text = "Infinity"
            elif v == -math.inf:
                text = "-Infinity"
            else:
                text = _FLOAT_REPR(v)
        elif v is None:
            text = "null"
        elif isinstance(v, str):
            text = _STRING(v)
        elif v is True:
            text = "true"
        elif v is False:
            text = "false"
        elif kind is int:
            text = _INT_REPR(v)
        else:
            return _dump_reference(rec)
        parts.append(key + text)
    return "{" + ",".join(parts) + "}"


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
    if old.peaks is not new.peaks:
        moved: list[tuple[str, float | None]] = [
            (s, p) for s, p in new.peaks.items() if old.peaks.get(s) != p
        ]
        moved += [(s, None) for s in old.peaks if s not in new.peaks]
        await _save_peaks(conn, moved)
    if old.stale is not new.stale and dict(old.stale) != dict(new.stale):
        await _save_meta(conn, "stale", json.dumps(dict(new.stale)))


PEAK = "peak:"
"""``engine_meta`` name prefix of a scope's peak equity row."""

_UPSERT_META = (
    "INSERT INTO engine_meta (name, doc) VALUES (?, ?) "
    "ON CONFLICT(name) DO UPDATE SET doc = excluded.doc"
)


async def _save_meta(conn: aiosqlite.Connection, name: str, doc: str) -> None:
    await conn.execute(_UPSERT_META, (name, doc))


async def _save_peaks(
    conn: aiosqlite.Connection, peaks: Iterable[tuple[str, float | None]]
) -> None:
    rows = list(peaks)
    up = [(PEAK + s, repr(float(p))) for s, p in rows if p is not None]
    gone = [(PEAK + s,) for s, p in rows if p is None]
    if up:
        await conn.executemany(_UPSERT_META, up)
    if gone:
        await conn.executemany("DELETE FROM engine_meta WHERE name = ?", gone)


async def save_delta(conn: aiosqlite.Connection, delta: AlertDelta, now: float) -> None:
    """Persist one step's changes (inside the caller's transaction): O(size of the delta)."""
    if delta.upserts:
        await conn.executemany(
            "INSERT INTO alert_state (key, doc, updated_at) VALUES (?, ?, ?) "
            "ON CONFLICT(key) DO UPDATE SET doc = excluded.doc, updated_at = excluded.updated_at",
            # rows made as SQLite takes them (in its thread), each freed once bound: tens of
            # thousands of rows alive at once would drive the collector through full passes
            ((rec.key, _dump(rec), now) for rec in delta.upserts),
        )
    if delta.deletes:
        await conn.executemany(
            "DELETE FROM alert_state WHERE key = ?", ((k,) for k in delta.deletes)
        )
    if delta.peaks:
        await _save_peaks(conn, delta.peaks)
    if delta.stale is not None:
        await _save_meta(conn, "stale", json.dumps(dict(delta.stale)))


async def migrate_peaks(conn: aiosqlite.Connection) -> int:
    """Turn the older whole-map ``peaks`` document into one row per scope (inside the
    caller's transaction); a scope that already has its row keeps it. Returns the rows
    written (0 when there was no such document)."""
    rows = await conn.execute_fetchall("SELECT doc FROM engine_meta WHERE name = 'peaks'")
    if not rows:
        return 0
    try:
        doc = json.loads(str(next(iter(rows))[0]))
    except ValueError:
        doc = {}
    peaks = [(PEAK + str(k), repr(float(v))) for k, v in dict(doc).items()]
    await conn.executemany("INSERT OR IGNORE INTO engine_meta (name, doc) VALUES (?, ?)", peaks)
    await conn.execute("DELETE FROM engine_meta WHERE name = 'peaks'")
    return len(peaks)


async def record_transitions(conn: aiosqlite.Connection, transitions: Iterable[Transition]) -> None:
    await conn.executemany(
        "INSERT OR IGNORE INTO transitions (id, key, kind, rule, severity, grp, subject, at, "
        "value, threshold, muted, detail) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
        (  # rows made as SQLite takes them (see save_delta)
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
        ),
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
    peaks.update(
        {name[len(PEAK) :]: float(doc) for name, doc in meta.items() if name.startswith(PEAK)}
    )
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
