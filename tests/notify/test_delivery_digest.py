"""Webhook digests: a backlog on a webhook channel goes as digests naming every account, in
order, each row delivered once, against a real loopback aiohttp webhook (apprise's json://
plugin) and a real SQLite outbox; time from a FakeClock."""

from __future__ import annotations

import asyncio
import random
import re
import tempfile
from pathlib import Path

from hypothesis import given, settings
from hypothesis import strategies as st

from monitor.clock import FakeClock
from monitor.notify.channels import Channel, parse_channels
from monitor.notify.delivery import DeliveryConfig, DeliveryWorker
from monitor.notify.sender import IDEMPOTENCY_HEADER, AppriseSender
from monitor.store import outbox
from monitor.store.db import Store, open_store
from monitor.store.outbox import OutboundMessage
from tests.notify.conftest import WebhookServer

TOKEN = re.compile(r"row-(\d+)-(\w+)")


def hook(url: str) -> Channel:
    (ch,) = parse_channels({"c": {"url": url}}, "t", env={}, credentials_dir=None)
    return ch


async def put_rows(store: Store, rows: list[tuple[str, str, str]], at: float) -> None:
    """``rows``: (account, severity, kind); each row's body is ``row-N-kind`` (N from 0 in
    the order given, the outbox's order) and its title the one group_title makes."""
    start = len(await outbox.items(store))
    async with store.transaction() as conn:
        await outbox.enqueue(
            conn,
            [
                OutboundMessage(
                    f"key{start + n}:c",
                    "c",
                    account,
                    severity,
                    f"[{severity.upper()}] {account} — margin ratio 91.0%",
                    f"row-{start + n}-{kind} {account}",
                    "text",
                    "failure",
                    at,
                )
                for n, (account, severity, kind) in enumerate(rows)
            ],
        )


def worker(store: Store, ch: Channel, clock: FakeClock, **cfg: float) -> DeliveryWorker:
    config = DeliveryConfig(**cfg)  # type: ignore[arg-type]
    return DeliveryWorker(store, [ch], AppriseSender(), clock, config=config, rng=random.Random(5))


def received(webhook: WebhookServer) -> list[list[int]]:
    """The row numbers each accepted post carried, in arrival order."""
    return [[int(m.group(1)) for m in TOKEN.finditer(doc["message"])] for _, doc in webhook.posts]


async def test_a_backlog_over_digest_after_goes_as_digests_naming_every_account(
    store: Store, webhook: WebhookServer
) -> None:
    clock = FakeClock()
    accounts = [f"hyperliquid:0x{n:04x}" for n in range(25)]
    await put_rows(store, [(a, "critical", "fired") for a in accounts], clock.now())
    w = worker(store, hook(webhook.url()), clock, digest_after=3, digest=10)
    while await w.step():
        pass
    # 25 rows due > 3: digests of 10, 10, then the last 5 (5 due > 3: a digest too)
    assert received(webhook) == [list(range(10)), list(range(10, 20)), list(range(20, 25))]
    first = webhook.posts[0][1]
    # the title counts the alerts and names every account with its worst severity
    assert first["title"].startswith("10 alerts: ")
    for a in accounts[:10]:
        assert f"[CRITICAL] {a} (1)" in first["title"]
    keys = [h[IDEMPOTENCY_HEADER] for h in webhook.headers]
    assert all(k.startswith("batch:") for k in keys) and len(set(keys)) == 3
    assert {i.status for i in await outbox.items(store)} == {"delivered"}


async def test_a_backlog_goes_digest_after_digest_in_one_trip_of_the_worker(
    store: Store, webhook: WebhookServer
) -> None:
    """The channel's task sends the next digest at once while more than ``digest_after`` rows
    wait, instead of going back to the loop's questions to the store (which, in a crash,
    each waited for an engine step): one ``step`` delivers the whole backlog, in order. A
    rate limit still spaces the sends: the task stops at the first send it may not make."""
    clock = FakeClock()
    await put_rows(
        store, [(f"hyperliquid:0x{n:04x}", "critical", "fired") for n in range(25)], clock.now()
    )
    w = worker(store, hook(webhook.url()), clock, digest_after=3, digest=10)
    assert await w.step() == 25
    assert received(webhook) == [list(range(10)), list(range(10, 20)), list(range(20, 25))]
    assert await w.step() == 0

    (limited,) = parse_channels(
        {"c": {"url": webhook.url(), "min_interval": "1s"}}, "t", env={}, credentials_dir=None
    )
    await put_rows(store, [(f"dydx:a{n}", "critical", "fired") for n in range(25)], clock.now())
    w = worker(store, limited, clock, digest_after=3, digest=10)
    assert await w.step() == 10
    clock.advance(1.0)
    assert await w.step() == 10


async def test_a_digest_after_beyond_the_default_count_still_digests_a_backlog(
    store: Store, webhook: WebhookServer
) -> None:
    """The worker counts a channel's due rows up to ``digest_after + 1``: with
    ``digest_after`` 1,000 (the store's default count), 1,005 due rows start with a digest
    (counted as 1,000 before, they went one post a row). The 405 left are no longer more
    than ``digest_after``: they go alone, as any short queue does."""
    clock = FakeClock()
    await put_rows(
        store, [(f"dydx:a{n % 50}", "critical", "fired") for n in range(1_005)], clock.now()
    )
    w = worker(store, hook(webhook.url()), clock, digest_after=1_000, digest=600)
    assert await w.step() == 600
    assert [len(p) for p in received(webhook)] == [600]
    assert [i.status for i in await outbox.items(store)].count("delivered") == 600


async def test_up_to_digest_after_rows_each_go_alone_with_their_own_key(
    store: Store, webhook: WebhookServer
) -> None:
    clock = FakeClock()
    await put_rows(store, [(f"dydx:a{n}", "critical", "fired") for n in range(3)], clock.now())
    w = worker(store, hook(webhook.url()), clock, digest_after=3, digest=10)
    while await w.step():
        pass
    assert received(webhook) == [[0], [1], [2]]
    assert [h[IDEMPOTENCY_HEADER] for h in webhook.headers] == ["key0:c", "key1:c", "key2:c"]


async def test_a_digest_that_timed_out_is_sent_again_as_the_same_digest_with_the_same_key(
    store: Store, webhook: WebhookServer
) -> None:
    """The webhook received the first digest but answered after the client gave up: the
    retry carries the same rows and the same idempotency key, so the receiver can drop it."""
    clock = FakeClock()
    await put_rows(store, [(f"okx:a{n}", "critical", "fired") for n in range(6)], clock.now())
    webhook.delays = [1.5]  # the first post is recorded, then answered after the 0.5 s timeout
    (ch,) = parse_channels(
        {"c": {"url": webhook.url(), "timeout": "0.5s"}}, "t", env={}, credentials_dir=None
    )
    w = worker(store, ch, clock, digest_after=2, digest=4, base_backoff=1.0, jitter=0.0)
    assert await w.step() == 0  # timed out
    await put_rows(store, [("okx:late", "critical", "fired")], clock.now())  # row 6 arrives
    clock.advance(1.0)
    while await w.step():
        clock.advance(1.0)
    # rows 0-3 twice (the timed-out digest, then its resend), then 4, 5, 6
    assert received(webhook) == [[0, 1, 2, 3], [0, 1, 2, 3], [4, 5, 6]]
    keys = [h[IDEMPOTENCY_HEADER] for h in webhook.headers]
    assert keys[0] == keys[1] and keys[1] != keys[2]
    assert {i.status for i in await outbox.items(store)} == {"delivered"}


async def test_a_refused_digest_is_split_and_only_the_refused_row_fails(
    store: Store, webhook: WebhookServer
) -> None:
    clock = FakeClock()
    rows = [(f"bybit:a{n}", "critical", "fired") for n in range(4)]
    rows[2] = ("bybit:poison", "critical", "fired")
    await put_rows(store, rows, clock.now())
    webhook.refuse_containing = "poison"
    w = worker(store, hook(webhook.url()), clock, digest_after=2, digest=10)
    for _ in range(10):
        await w.step()
        clock.advance(1.0)
    assert received(webhook) == [[0], [1], [3]]  # each alone after the split
    status = {i.idem_key: i.status for i in await outbox.items(store)}
    assert status == {"key0:c": "delivered", "key1:c": "delivered", "key2:c": "failed"} | {
        "key3:c": "delivered"
    }


@settings(max_examples=40, deadline=None)
@given(
    batches=st.lists(
        st.tuples(
            st.lists(
                st.tuples(st.sampled_from("abcd"), st.sampled_from(["fired", "resolved"])),
                min_size=1,
                max_size=30,
            ),
            st.integers(min_value=0, max_value=3),  # steps before the next batch arrives
        ),
        min_size=1,
        max_size=5,
    ),
    statuses=st.lists(st.sampled_from([200, 200, 500, 429, 503]), max_size=15),
    digest_after=st.integers(min_value=0, max_value=5),
    digest=st.integers(min_value=1, max_value=12),
)
def test_digests_keep_each_accounts_order_and_deliver_every_row_exactly_once(
    batches: list[tuple[list[tuple[str, str]], int]],
    statuses: list[int],
    digest_after: int,
    digest: int,
) -> None:
    """Whatever arrives when and whatever error statuses the webhook answers, every row is
    received exactly once (an error status means not received), and an account's rows
    arrive in the order they were enqueued (a "resolved" never before its "fired"), also
    while older rows wait for their retry."""

    async def scenario() -> None:
        webhook = WebhookServer()
        await webhook.start()
        webhook.statuses = list(statuses)
        with tempfile.TemporaryDirectory() as d:
            store = await open_store(Path(d) / "m.db")
            try:
                clock = FakeClock()
                w = worker(
                    store,
                    hook(webhook.url()),
                    clock,
                    digest_after=digest_after,
                    digest=digest,
                    base_backoff=2.0,
                    max_backoff=4.0,
                )
                accounts: list[str] = []
                for batch, steps in batches:
                    rows = [(f"v:{a}", "critical", k) for a, k in batch]
                    await put_rows(store, rows, clock.now())
                    accounts.extend(f"v:{a}" for a, _ in batch)
                    for _ in range(steps):
                        await w.step()
                        clock.advance(0.5)
                for _ in range(300):
                    count, _ = await outbox.backlog(store)
                    if count == 0:
                        break
                    await w.step()
                    clock.advance(0.5)
                got = [n for post in received(webhook) for n in post]
                assert sorted(got) == list(range(len(accounts)))  # each row exactly once
                for account in set(accounts):
                    mine = [n for n in got if accounts[n] == account]
                    assert mine == sorted(mine)  # in enqueue order per account
                assert {i.status for i in await outbox.items(store)} == {"delivered"}
            finally:
                await store.close()
                await webhook.stop()

    asyncio.run(scenario())
