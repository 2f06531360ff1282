"""Mutes in the store: added by ``monitor mute`` (even while the daemon runs), read by the
alert service. ``until`` is epoch seconds (UTC).

Each row keeps its target's text (``target``, as :mod:`monitor.model.ids` formats it) and its
parts (``kind``, ``venue``, ``account``, ``scope``, ``symbol``, ``channel``; migration 3), so
that removing mutes compares identities, never spellings.
"""

from __future__ import annotations

from typing import Any

import structlog

from monitor.alerts.mutes import Mute
from monitor.model.ids import IdError
from monitor.store.db import Store, mute_parts


def log() -> Any:
    return structlog.get_logger()


async def add_mute(store: Store, mute: Mute, now: float) -> int:
    async with store.transaction() as conn:
        cur = await conn.execute(
            "INSERT INTO mutes (target, rule, until, critical, reason, created_at, kind, venue,"
            " account, scope, symbol, channel) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
            (
                str(mute.key),
                mute.rule,
                mute.until,
                int(mute.critical),
                mute.reason,
                now,
                *mute_parts(str(mute.key)),
            ),
        )
        return int(cur.lastrowid or 0)


async def remove_mutes(store: Store, target: str, rule: str | None = None) -> int:
    """Remove the mutes of exactly the identity ``target`` (its parts compared, so another
    spelling of the same identity matches) and ``rule`` when given; returns how many.
    Raises IdError for a target that is not an identity."""
    kind, venue, account, scope, symbol, channel = mute_parts(target)
    if kind == "invalid":
        raise IdError(f"not a mute target: {target!r}")
    where = (
        "kind = ? AND venue IS ? AND account IS ? AND scope IS ? AND symbol IS ? AND channel IS ?"
    )
    params: list[Any] = [kind, venue, account, scope, symbol, channel]
    if rule is not None:
        where += " AND rule = ?"
        params.append(rule)
    async with store.transaction() as conn:
        cur = await conn.execute(f"DELETE FROM mutes WHERE {where}", params)
        return cur.rowcount


async def active_mutes(store: Store, now: float) -> list[Mute]:
    """Mutes in force at ``now``; expired ones are deleted on the way. A row whose target is
    not an identity (written by hand) is logged and skipped, never fatal."""
    async with store.transaction() as conn:
        await conn.execute("DELETE FROM mutes WHERE until <= ?", (now,))
        rows = await conn.execute_fetchall(
            "SELECT id, target, until, rule, critical, reason FROM mutes ORDER BY id"
        )
    out = []
    for rowid, target, until, rule, critical, reason in rows:
        try:
            out.append(Mute(str(target), float(until), rule, bool(critical), str(reason)))
        except (IdError, TypeError, ValueError) as exc:
            log().warning("store.mute_skipped", id=rowid, target=repr(target)[:120], error=str(exc))
    return out
