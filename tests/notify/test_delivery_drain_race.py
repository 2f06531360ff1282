"""SIGTERM's drain while the delivery loop is between two store questions: the loop's
``_spawn`` asked which channels are due and waits for the store (whose one connection the
engine's step transactions hold: at shutdown, the engine's last steps), and the drain starts
then. Before the fix the loop, once answered, still started a send task; the drain's own
round skipped that channel (a task was in flight), then stopped stepping because a task was
in flight, and returned with the backlog undelivered though its deadline was seconds away
(the rest waited for the next start). Real SQLite outbox in tmp_path, real loopback webhook
(apprise's json:// plugin), the system clock."""

from __future__ import annotations

import asyncio
import random

from monitor.clock import SystemClock
from monitor.notify.channels import parse_channels
from monitor.notify.delivery import DeliveryConfig, DeliveryWorker
from monitor.notify.sender import AppriseSender
from monitor.store import outbox
from monitor.store.db import Store
from monitor.store.outbox import OutboundMessage
from tests.notify.conftest import WebhookServer


async def test_a_drain_that_starts_while_the_loop_waits_for_the_store_delivers_the_backlog(
    store: Store, webhook: WebhookServer
) -> None:
    clock = SystemClock()
    (ch,) = parse_channels({"c": {"url": webhook.url()}}, "t", env={}, credentials_dir=None)
    w = DeliveryWorker(
        store, [ch], AppriseSender(), clock, config=DeliveryConfig(), rng=random.Random(3)
    )
    run = asyncio.create_task(w.run())
    await asyncio.sleep(0.1)  # resumed; nothing due: asleep
    webhook.delays = [0.3]  # the first post is slow: a task sending it stays in flight
    now = clock.now()
    async with store.transaction() as conn:  # an engine step holding the store
        await outbox.enqueue(
            conn,
            [
                OutboundMessage(
                    f"k{i}", "c", "g", "critical", f"t{i}", f"body {i}", "text", "failure", now
                )
                for i in range(3)
            ],
        )
        w.wake()
        await asyncio.sleep(0.2)  # the loop woke and waits for the store to ask what is due
        drain = asyncio.create_task(w.drain(clock.monotonic() + 10.0))
        await asyncio.sleep(0.2)  # the drain started, and waits for the store too
    left = await asyncio.wait_for(drain, 15)
    run.cancel()
    await asyncio.gather(run, return_exceptions=True)
    assert left == 0  # three rows due, one webhook post each, ten seconds to send them
    assert sorted(doc["message"] for _, doc in webhook.posts) == ["body 0", "body 1", "body 2"]
