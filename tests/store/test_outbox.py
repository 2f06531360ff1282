"""The outbox: idempotent enqueue, claim, resume after a crash, retry and failure marks."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from monitor.store import outbox
from monitor.store.db import Store, open_store
from monitor.store.outbox import OutboundMessage


@pytest.fixture
async def store(tmp_path: Path) -> AsyncIterator[Store]:
    s = await open_store(tmp_path / "m.db")
    yield s
    await s.close()


def msg(key: str, channel: str = "tg", at: float = 100.0) -> OutboundMessage:
    return OutboundMessage(
        key, channel, "hl:0x1", "critical", "title", "body", "text", "failure", at
    )


async def test_enqueue_is_idempotent_per_key(store: Store) -> None:
    async with store.transaction() as conn:
        assert await outbox.enqueue(conn, [msg("a"), msg("b")]) == 2
    async with store.transaction() as conn:
        assert await outbox.enqueue(conn, [msg("a"), msg("c")]) == 1
    assert [i.idem_key for i in await outbox.items(store)] == ["a", "b", "c"]


async def test_claim_only_due_rows_of_one_channel(store: Store) -> None:
    async with store.transaction() as conn:
        await outbox.enqueue(conn, [msg("a", at=100), msg("b", at=200), msg("c", "mail", 100)])
    assert await outbox.due_channels(store, 150) == {"tg": 1, "mail": 1}
    claimed = await outbox.claim(store, "tg", 150, 10)
    assert [(c.idem_key, c.attempts) for c in claimed] == [("a", 0)]  # the value before claim
    rows = {i.idem_key: i for i in await outbox.items(store)}
    assert rows["a"].status == "sending" and rows["a"].attempts == 1
    assert await outbox.next_due(store) == 100.0  # "c" on mail
    assert await outbox.backlog(store) == (3, 100.0)


async def test_resume_puts_sending_rows_back(store: Store) -> None:
    async with store.transaction() as conn:
        await outbox.enqueue(conn, [msg("a")])
    await outbox.claim(store, "tg", 100, 10)
    assert await outbox.resume(store) == 1
    (row,) = await outbox.items(store)
    assert row.status == "pending" and row.attempts == 1


async def test_retry_failed_delivered_and_release(store: Store) -> None:
    async with store.transaction() as conn:
        await outbox.enqueue(conn, [msg("a"), msg("b"), msg("c"), msg("d")])
    ids = [c.id for c in await outbox.claim(store, "tg", 100, 10)]
    await outbox.mark_retry(store, [ids[0]], 160.0, "HTTP 500")
    await outbox.mark_failed(store, [ids[1]], "too old")
    await outbox.mark_delivered(store, [ids[2]], 101.0)
    await outbox.release(store, [ids[3]])
    rows = await outbox.items(store)
    assert [(r.status, r.next_attempt_at, r.last_error, r.attempts) for r in rows] == [
        ("pending", 160.0, "HTTP 500", 1),
        ("failed", 100.0, "too old", 1),
        ("delivered", 100.0, None, 1),
        ("pending", 100.0, None, 0),
    ]
    assert rows[2].delivered_at == 101.0
    assert await outbox.backlog(store) == (2, 100.0)


async def test_prune_keeps_pending_rows(store: Store) -> None:
    async with store.transaction() as conn:
        await outbox.enqueue(
            conn,
            [msg("old", at=10), msg("failed", at=10), msg("new", at=500), msg("waiting", at=10)],
        )
    rows = {r.idem_key: r.id for r in await outbox.items(store)}
    await outbox.claim(store, "tg", 600, 10)
    await outbox.mark_delivered(store, [rows["old"], rows["new"]], 600)
    await outbox.mark_failed(store, [rows["failed"]], "too old")
    await outbox.release(store, [rows["waiting"]])
    assert await outbox.prune(store, before=100) == 2  # "old" and "failed"; not "waiting"
    assert [r.idem_key for r in await outbox.items(store)] == ["new", "waiting"]


async def test_a_channel_delivers_in_order_behind_a_row_waiting_for_its_retry(
    store: Store,
) -> None:
    """The "fired" row failed and waits until 160; the "resolved" row queued after it is due
    now, but is not sent before it."""
    async with store.transaction() as conn:
        await outbox.enqueue(conn, [msg("fired", at=100)])
    (fired,) = await outbox.claim(store, "tg", 100, 10)
    await outbox.mark_retry(store, [fired.id], 160.0, "HTTP 500")
    async with store.transaction() as conn:
        await outbox.enqueue(conn, [msg("resolved", at=120)])
    assert await outbox.due_channels(store, 130) == {}
    assert await outbox.claim(store, "tg", 130, 10) == []
    assert await outbox.next_due(store) == 160.0
    assert await outbox.due_channels(store, 160) == {"tg": 2}
    # "fired" was tried before (it may have reached the endpoint): it goes alone, first
    assert [c.idem_key for c in await outbox.claim(store, "tg", 160, 10)] == ["fired"]
    assert [c.idem_key for c in await outbox.claim(store, "tg", 160, 10)] == ["resolved"]
