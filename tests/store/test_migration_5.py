"""Migration 5: the partial index ``outbox_pending`` on each channel's pending rows, and the
delivery worker's queries that use it. Before it, each of the worker's questions (which
channels have due rows, each one's oldest, the rows to claim) scanned every pending row: a
crash at 1,000,000 positions queues ~200,000 of them, ~0.1 s a question, before every send.

The plan test fails if a query stops using the index (a ``status = ?`` parameter instead of
the literal makes SQLite ignore a partial index)."""

from __future__ import annotations

from pathlib import Path

from monitor.store import outbox
from monitor.store.db import MIGRATIONS, open_store
from monitor.store.outbox import OutboundMessage

OLD = MIGRATIONS[:4]  # the schema of a store written before migration 5


def _msg(key: str, channel: str, at: float) -> OutboundMessage:
    return OutboundMessage(key, channel, "g", "critical", "t", "b", "text", "failure", at)


async def test_rows_pending_before_migration_5_are_delivered_in_order_after_it(
    tmp_path: Path,
) -> None:
    path = tmp_path / "m.db"
    old = await open_store(path, migrations=OLD)
    async with old.transaction() as conn:
        await outbox.enqueue(
            conn, [_msg(f"k{i}", ("tg", "hook")[i % 2], 5.0 + i) for i in range(6)]
        )
    await old.close()
    store = await open_store(path)
    try:
        assert await store.schema_version() == len(MIGRATIONS) >= 5
        assert await outbox.heads(store) == {"hook": 6.0, "tg": 5.0}
        assert await outbox.due_channels(store, 8.0) == {"hook": 2, "tg": 2}
        assert await outbox.due_channels(store, 8.0, upto=1) == {"hook": 1, "tg": 1}
        claimed = await outbox.claim(store, "tg", 20.0, 10)
        assert [i.idem_key for i in claimed] == ["k0", "k2", "k4"]
        await outbox.mark_delivered(store, [i.id for i in claimed], 20.0)
        # a row put back for a retry later holds its channel (delivery in order)
        hook = await outbox.claim(store, "hook", 20.0, 1)
        await outbox.mark_retry(store, [hook[0].id], 60.0, "timeout")
        assert await outbox.heads(store) == {"hook": 60.0}
        assert await outbox.due_channels(store, 20.0) == {}
        assert await outbox.next_due(store) == 60.0
    finally:
        await store.close()


async def test_the_delivery_queries_search_the_index_and_scan_no_table(tmp_path: Path) -> None:
    store = await open_store(tmp_path / "m.db")
    try:
        async with store.transaction() as conn:
            await outbox.enqueue(conn, [_msg(f"k{i}", f"c{i % 3}", 1.0) for i in range(300)])
        async with store.read() as conn:
            for sql, args in (
                (outbox._CHANNELS, ()),
                (outbox._DUE, ("c1", 1000, 2.0)),
                (outbox._CLAIM, ("c1", 200)),
            ):
                plan = [
                    str(r[3])
                    for r in await conn.execute_fetchall(f"EXPLAIN QUERY PLAN {sql}", args)
                ]
                uses = [p for p in plan if "outbox" in p or " o " in p or " h " in p]
                assert uses and all("USING INDEX outbox_pending" in p for p in uses), plan
                assert not any(p.startswith("SCAN outbox") or "TEMP B-TREE" in p for p in plan), (
                    plan
                )
        assert sorted(await outbox.heads(store)) == ["c0", "c1", "c2"]
    finally:
        await store.close()
