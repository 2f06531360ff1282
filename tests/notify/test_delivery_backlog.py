"""A webhook's backlog while the engine keeps the store busy: the delivery worker claims
several digests in one transaction and marks them delivered in the transaction that claims
the next ones, so a digest no longer costs two store transactions (each waited for an engine
step in a crash). Real SQLite in tmp_path, a real loopback aiohttp webhook (apprise's
json:// plugin), time from a FakeClock."""

from __future__ import annotations

import asyncio
import math
import random
import re
import threading

from monitor.clock import FakeClock, SystemClock
from monitor.notify.channels import Channel, parse_channels
from monitor.notify.delivery import DeliveryConfig, DeliveryWorker
from monitor.notify.sender import IDEMPOTENCY_HEADER, AppriseSender
from monitor.store import outbox
from monitor.store.db import Store
from monitor.store.outbox import OutboundMessage
from tests.notify.conftest import WebhookServer

TOKEN = re.compile(r"row-(\d+) ")


def hook(url: str, **extra: str) -> Channel:
    (ch,) = parse_channels({"c": {"url": url, **extra}}, "t", env={}, credentials_dir=None)
    return ch


async def put_rows(store: Store, count: int, at: float) -> None:
    """``count`` critical rows on channel ``c``, bodies ``row-N <account>`` in outbox order."""
    start = len(await outbox.items(store))
    async with store.transaction() as conn:
        await outbox.enqueue(
            conn,
            [
                OutboundMessage(
                    f"key{n}:c",
                    "c",
                    f"v:a{n}",
                    "critical",
                    f"[CRITICAL] v:a{n} — margin ratio 91.0%",
                    f"row-{n} v:a{n}",
                    "text",
                    "failure",
                    at,
                )
                for n in range(start, start + count)
            ],
        )


def worker(store: Store, ch: Channel, clock: FakeClock, **cfg: float) -> DeliveryWorker:
    config = DeliveryConfig(**cfg)  # type: ignore[arg-type]
    return DeliveryWorker(store, [ch], AppriseSender(), clock, config=config, rng=random.Random(5))


def received(webhook: WebhookServer) -> list[list[int]]:
    """The row numbers each accepted post carried, in arrival order."""
    return [[int(m.group(1)) for m in TOKEN.finditer(doc["message"])] for _, doc in webhook.posts]


async def posted(webhook: WebhookServer, count: int) -> None:
    """Wait until the webhook has recorded ``count`` posts (at most 1,000 polls)."""
    for _ in range(1_000):
        if len(webhook.posts) >= count:
            return
        await asyncio.sleep(0.01)
    raise AssertionError(f"{len(webhook.posts)} posts, {count} expected")


class Statements:
    """Every SQL statement the store's connection runs (SQLite's trace callback, called in
    aiosqlite's thread): counts the transactions a delivery takes."""

    def __init__(self) -> None:
        self.sql: list[str] = []
        self._lock = threading.Lock()

    def __call__(self, statement: str) -> None:
        with self._lock:
            self.sql.append(statement)

    def begins(self) -> int:
        with self._lock:
            return sum(1 for s in self.sql if s.strip().upper().startswith("BEGIN"))


async def test_a_backlog_takes_fewer_store_transactions_than_digests(
    store: Store, webhook: WebhookServer
) -> None:
    """1,000 due rows in digests of 10: 100 posts. A claim and a mark per digest were 200
    transactions (in a crash each waited for the engine's step); now each transaction marks
    the digests sent and claims the next ``claim_digests``: 100 / 4 + the last mark."""
    clock = FakeClock()
    await put_rows(store, 1_000, clock.now())
    w = worker(store, hook(webhook.url()), clock, digest_after=3, digest=10)
    trace = Statements()
    await store.conn.set_trace_callback(trace)
    try:
        assert await w.step() == 1_000
    finally:
        await store.conn.set_trace_callback(None)
    assert received(webhook) == [list(range(n, n + 10)) for n in range(0, 1_000, 10)]
    assert trace.begins() <= math.ceil(100 / w.config.claim_digests) + 1
    items = await outbox.items(store)
    assert {i.status for i in items} == {"delivered"}
    assert {i.attempts for i in items} == {1}
    # each row's delivered_at is when its own digest's post was answered (the fake clock
    # stands still here): never the later transaction's time
    assert {i.delivered_at for i in items} == {clock.now()}


async def test_with_one_digest_a_claim_a_transaction_marks_the_last_and_claims_the_next(
    store: Store, webhook: WebhookServer
) -> None:
    """``claim_digests = 1``: one digest in flight, as before, and one transaction per digest
    (the mark of the one sent and the claim of the next), where there were two."""
    clock = FakeClock()
    await put_rows(store, 100, clock.now())
    w = worker(store, hook(webhook.url()), clock, digest_after=3, digest=10, claim_digests=1)
    trace = Statements()
    await store.conn.set_trace_callback(trace)
    try:
        assert await w.step() == 100
    finally:
        await store.conn.set_trace_callback(None)
    assert received(webhook) == [list(range(n, n + 10)) for n in range(0, 100, 10)]
    assert trace.begins() <= 10 + 1


async def test_a_digest_answered_with_an_error_keeps_the_one_before_and_puts_back_the_next(
    store: Store, webhook: WebhookServer
) -> None:
    """Three digests claimed together; the webhook takes the first and answers the second
    500: the first is delivered, the second waits for its retry (tried once, not received),
    the third is back to pending as if never claimed. Then every row goes exactly once, in
    order."""
    clock = FakeClock()
    await put_rows(store, 12, clock.now())
    webhook.statuses = [200, 500]
    w = worker(
        store, hook(webhook.url()), clock, digest_after=3, digest=4, base_backoff=1.0, jitter=0.0
    )
    assert await w.step() == 4
    assert received(webhook) == [[0, 1, 2, 3]]
    rows = {int(i.idem_key[3:-2]): i for i in await outbox.items(store)}
    assert [rows[n].status for n in range(4)] == ["delivered"] * 4
    assert [(rows[n].status, rows[n].attempts) for n in range(4, 8)] == [("pending", 1)] * 4
    assert all(rows[n].last_error and rows[n].next_attempt_at > clock.now() for n in range(4, 8))
    assert [(rows[n].status, rows[n].attempts) for n in range(8, 12)] == [("pending", 0)] * 4
    assert all(rows[n].last_error is None for n in range(8, 12))
    clock.advance(1.0)
    while await w.step():
        clock.advance(1.0)
    got = [n for post in received(webhook) for n in post]
    assert got == list(range(12))
    assert {i.status for i in await outbox.items(store)} == {"delivered"}


async def test_a_digest_that_timed_out_mid_backlog_is_resent_as_it_was_then_the_rest(
    store: Store, webhook: WebhookServer
) -> None:
    """The second of three claimed digests times out (the webhook got it, answered late):
    the first stays delivered, the second is resent with the same rows and key, the third
    was never sent before it and goes after it."""
    clock = FakeClock()
    await put_rows(store, 12, clock.now())
    webhook.delays = [0.0, 1.5]  # the second post is recorded, answered after the timeout
    ch = hook(webhook.url(), timeout="0.5s")
    w = worker(store, ch, clock, digest_after=3, digest=4, base_backoff=1.0, jitter=0.0)
    assert await w.step() == 4
    rows = {int(i.idem_key[3:-2]): i for i in await outbox.items(store)}
    assert [(rows[n].status, rows[n].attempts) for n in range(8, 12)] == [("pending", 0)] * 4
    clock.advance(1.0)
    while await w.step():
        clock.advance(1.0)
    assert received(webhook) == [[0, 1, 2, 3], [4, 5, 6, 7], [4, 5, 6, 7], [8, 9, 10, 11]]
    keys = [h[IDEMPOTENCY_HEADER] for h in webhook.headers]
    assert keys[1] == keys[2] and len({keys[0], keys[1], keys[3]}) == 3
    assert {i.status for i in await outbox.items(store)} == {"delivered"}


async def test_a_refused_digest_mid_backlog_is_split_after_the_one_delivered(
    store: Store, webhook: WebhookServer
) -> None:
    """The second claimed digest holds a row the webhook refuses for good: the first stays
    delivered; the second's rows then go alone, so only the refused row fails; the third
    follows as a digest."""
    clock = FakeClock()
    await put_rows(store, 30, clock.now())
    webhook.refuse_containing = "row-12 "
    w = worker(store, hook(webhook.url()), clock, digest_after=3, digest=10)
    for _ in range(30):
        await w.step()
        clock.advance(1.0)
    posts = received(webhook)
    assert posts[0] == list(range(10))
    assert posts[1:-1] == [[n] for n in range(10, 20) if n != 12]
    assert posts[-1] == list(range(20, 30))
    status = {int(i.idem_key[3:-2]): i.status for i in await outbox.items(store)}
    assert status == {n: ("failed" if n == 12 else "delivered") for n in range(30)}


async def test_drain_puts_back_claimed_digests_and_sends_them_as_digests(
    store: Store, webhook: WebhookServer
) -> None:
    """SIGTERM while the channel's task is in the middle of four claimed digests: it finishes
    the digest in flight and stops; the three it claimed and did not send go back untried,
    so drain's own rounds send them as digests (rows left tried would each go alone). The
    system clock: drain sleeps a millisecond between its rounds."""
    clock = SystemClock()
    await put_rows(store, 40, clock.now())
    webhook.delays = [0.3]  # the first post is answered late: drain begins meanwhile
    config = DeliveryConfig(digest_after=3, digest=10)
    w = DeliveryWorker(store, [hook(webhook.url())], AppriseSender(), clock, config=config)
    task = asyncio.create_task(w.run())
    await posted(webhook, 1)
    left = await w.drain(clock.monotonic() + 30.0)
    task.cancel()
    await asyncio.gather(task, return_exceptions=True)
    assert left == 0
    assert received(webhook) == [list(range(n, n + 10)) for n in range(0, 40, 10)]
    items = await outbox.items(store)
    assert {i.status for i in items} == {"delivered"}
    assert {i.attempts for i in items} == {1}


async def test_a_worker_cancelled_mid_backlog_loses_no_row(
    store: Store, webhook: WebhookServer
) -> None:
    """The process dies (the task is cancelled, no drain) while a claimed digest is posted:
    every row is still in the outbox, and after ``resume`` (the next start) every row the
    webhook had not received arrives; none is lost."""
    clock = FakeClock()
    await put_rows(store, 40, clock.now())
    webhook.delays = [0.0, 0.3]  # the second post is held: the process dies meanwhile
    w = worker(store, hook(webhook.url()), clock, digest_after=3, digest=10)
    task = asyncio.create_task(w.run())
    await posted(webhook, 2)
    task.cancel()
    await asyncio.gather(task, return_exceptions=True)
    assert {i.status for i in await outbox.items(store)} <= {"sending", "pending", "delivered"}
    assert await outbox.resume(store) > 0
    again = worker(store, hook(webhook.url()), clock, digest_after=3, digest=10)
    for _ in range(100):
        if not await again.step():
            break
    got = {n for post in received(webhook) for n in post}
    assert got == set(range(40))
    assert {i.status for i in await outbox.items(store)} == {"delivered"}
