"""Mutes in the store: added by ``monitor mute`` (even while the daemon runs), read by the
alert service. ``until`` is epoch seconds (UTC)."""

from __future__ import annotations

from monitor.alerts.mutes import Mute
from monitor.store.db import Store


async def add_mute(store: Store, mute: Mute, now: float) -> int:
    async with store.transaction() as conn:
        cur = await conn.execute(
            "INSERT INTO mutes (target, rule, until, critical, reason, created_at) "
            "VALUES (?, ?, ?, ?, ?, ?)",
            (mute.target, mute.rule, mute.until, int(mute.critical), mute.reason, now),
        )
        return int(cur.lastrowid or 0)


async def remove_mutes(store: Store, target: str, rule: str | None = None) -> int:
    """Remove the mutes of exactly ``target`` (and ``rule`` when given); returns how many."""
    async with store.transaction() as conn:
        if rule is None:
            cur = await conn.execute("DELETE FROM mutes WHERE target = ?", (target,))
        else:
            cur = await conn.execute(
                "DELETE FROM mutes WHERE target = ? AND rule = ?", (target, rule)
            )
        return cur.rowcount


async def active_mutes(store: Store, now: float) -> list[Mute]:
    """Mutes in force at ``now``; expired ones are deleted on the way."""
    async with store.transaction() as conn:
        await conn.execute("DELETE FROM mutes WHERE until <= ?", (now,))
        rows = await conn.execute_fetchall(
            "SELECT target, until, rule, critical, reason FROM mutes ORDER BY id"
        )
    return [Mute(str(r[0]), float(r[1]), r[2], bool(r[3]), str(r[4])) for r in rows]
