"""The durable store (aiosqlite, WAL): migrations, instance lock, outbox, alert state, mutes."""
