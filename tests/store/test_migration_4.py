"""Migration 4: outbox rows gain ``attach`` (chart requests); rows written before it are kept,
unchanged, and deliver as before (no chart)."""

from __future__ import annotations

from pathlib import Path

from monitor.store import outbox
from monitor.store.db import MIGRATIONS, open_store
from monitor.store.outbox import OutboundMessage

OLD = MIGRATIONS[:3]  # the schema of a store written before migration 4


async def test_rows_written_before_migration_4_survive_it_without_an_attachment(
    tmp_path: Path,
) -> None:
    path = tmp_path / "m.db"
    old = await open_store(path, migrations=OLD)
    async with old.transaction() as conn:
        # the enqueue statement of the code before migration 4 (no attach column)
        await conn.execute(
            "INSERT INTO outbox (idem_key, channel, grp, severity, title, body, body_format, "
            "notify_type, created_at, next_attempt_at) VALUES "
            "('k1', 'tg', 'g', 'critical', 't', 'b', 'text', 'failure', 5.0, 5.0)"
        )
    await old.close()

    store = await open_store(path)
    try:
        assert await store.schema_version() == len(MIGRATIONS) >= 4
        async with store.transaction() as conn:
            new = OutboundMessage(
                "k2", "tg", "g", "critical", "t", "b", "text", "failure", 6.0, '[{"scope":"x"}]'
            )
            assert await outbox.enqueue(conn, [new]) == 1
        first, second = await outbox.items(store)
        assert (first.idem_key, first.body, first.attach) == ("k1", "b", None)
        assert (second.idem_key, second.attach) == ("k2", '[{"scope":"x"}]')
        claimed = await outbox.claim(store, "tg", 10.0, 10)
        assert [i.idem_key for i in claimed] == ["k1", "k2"]
    finally:
        await store.close()
