"""One delivery attempt of one queued alert through the real worker and apprise (the channel
tests that read what a failed attempt logs)."""

from __future__ import annotations

import random

from monitor.clock import FakeClock
from monitor.notify.channels import Channel
from monitor.notify.delivery import DeliveryConfig, DeliveryWorker
from monitor.notify.sender import AppriseSender
from monitor.store import outbox
from monitor.store.db import Store
from monitor.store.outbox import OutboundMessage


async def try_once(store: Store, ch: Channel) -> int:
    """Queue one critical alert for ``ch`` and let the worker try it once; the rows it
    delivered (0 when the channel refused it: a retry is logged)."""
    clock = FakeClock()
    async with store.transaction() as conn:
        await outbox.enqueue(
            conn,
            [
                OutboundMessage(
                    "k", ch.name, "g", "critical", "t", "b", "text", "failure", clock.now()
                )
            ],
        )
    worker = DeliveryWorker(
        store,
        [ch],
        AppriseSender(),
        clock,
        config=DeliveryConfig(base_backoff=5.0, jitter=0.0, max_age=60.0),
        rng=random.Random(3),
    )
    return await worker.step()
