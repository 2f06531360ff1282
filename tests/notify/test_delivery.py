"""The delivery worker against real loopback services; time from a FakeClock."""

from __future__ import annotations

import asyncio
import random
import tempfile
from pathlib import Path

from hypothesis import given, settings
from hypothesis import strategies as st

from monitor.clock import FakeClock, SystemClock
from monitor.notify.channels import Channel, parse_channels
from monitor.notify.delivery import DeliveryConfig, DeliveryWorker, RateLimiter
from monitor.notify.sender import AppriseSender, SendResult
from monitor.store import outbox
from monitor.store.db import Store, open_store
from monitor.store.outbox import OutboundMessage
from tests.notify.conftest import TelegramStandIn, WebhookServer


def one(url: str, **opts: object) -> Channel:
    (ch,) = parse_channels({"c": {"url": url, **opts}}, "t", env={}, credentials_dir=None)
    return ch


async def put(store: Store, key: str, at: float, body: str = "body", channel: str = "c") -> None:
    async with store.transaction() as conn:
        await outbox.enqueue(
            conn,
            [
                OutboundMessage(
                    key, channel, "g", "critical", f"title {key}", body, "text", "failure", at
                )
            ],
        )


def worker(
    store: Store, ch: Channel, clock: FakeClock | SystemClock, **cfg: float
) -> DeliveryWorker:
    config = DeliveryConfig(**cfg)  # type: ignore[arg-type]
    return DeliveryWorker(store, [ch], AppriseSender(), clock, config=config, rng=random.Random(7))


async def test_endpoint_down_then_up_delivers_exactly_once(
    store: Store, webhook: WebhookServer
) -> None:
    clock = FakeClock()
    w = worker(store, one(webhook.url()), clock, base_backoff=2.0, jitter=0.2)
    webhook.down = True
    await put(store, "a", clock.now())
    assert await w.step() == 0
    (row,) = await outbox.items(store)
    # first retry after 2 s · (1 ± 0.2)
    assert row.status == "pending" and row.attempts == 1 and "500" in (row.last_error or "")
    assert clock.now() + 1.6 <= row.next_attempt_at <= clock.now() + 2.4
    assert await w.step() == 0 and webhook.attempts == 1  # not due yet: no attempt
    clock.advance(2.5)
    assert await w.step() == 0 and webhook.attempts == 2
    (row,) = await outbox.items(store)
    # second retry after 4 s · (1 ± 0.2)
    assert clock.now() + 3.2 <= row.next_attempt_at <= clock.now() + 4.8
    webhook.down = False
    clock.advance(5.0)
    assert await w.step() == 1
    clock.advance(100.0)
    assert await w.step() == 0
    assert len(webhook.posts) == 1 and webhook.posts[0][1]["message"] == "body"
    (row,) = await outbox.items(store)
    assert row.status == "delivered" and row.attempts == 3


async def test_429_retry_after_is_honoured(
    store: Store, telegram: TelegramStandIn, tgram_schema: str
) -> None:
    clock = FakeClock()
    w = worker(store, one(tgram_schema), clock)
    telegram.replies = [(429, 3)]
    await put(store, "a", clock.now())
    await w.step()
    (row,) = await outbox.items(store)
    assert row.next_attempt_at == clock.now() + 3.0  # exactly retry_after, no jitter
    clock.advance(2.9)
    assert await w.step() == 0 and telegram.attempts == 1
    clock.advance(0.1)
    assert await w.step() == 1
    assert telegram.attempts == 2 and len(telegram.messages) == 1


async def test_5xx_from_telegram_backs_off(
    store: Store, telegram: TelegramStandIn, tgram_schema: str
) -> None:
    clock = FakeClock()
    w = worker(store, one(tgram_schema), clock, base_backoff=1.0, jitter=0.0)
    telegram.replies = [(502, None)]
    await put(store, "a", clock.now())
    await w.step()
    (row,) = await outbox.items(store)
    assert row.next_attempt_at == clock.now() + 1.0  # 1 s · 2⁰, no jitter
    clock.advance(1.0)
    assert await w.step() == 1


async def test_per_chat_rate_limit_queues_and_coalesces(
    store: Store, telegram: TelegramStandIn, tgram_schema: str
) -> None:
    clock = FakeClock()
    # the stand-in's schema is not tgram://, so give it Telegram's defaults by hand
    ch = one(tgram_schema, min_interval="1s", per_minute=20, max_length=4096)
    w = worker(store, ch, clock)
    await put(store, "a", clock.now(), "first alert")
    assert await w.step() == 1
    clock.advance(0.2)
    await put(store, "b", clock.now(), "second alert")
    await put(store, "c", clock.now(), "third alert")
    assert await w.step() == 0  # 0.2 s after the last message: wait for the 1 s slot
    clock.advance(0.8)
    assert await w.step() == 2  # both in one message
    texts = [m["text"] for m in telegram.messages]
    assert len(texts) == 2
    assert "second alert" in texts[1] and "third alert" in texts[1]
    assert [r.status for r in await outbox.items(store)] == ["delivered"] * 3


async def test_too_old_is_failed_and_the_channel_reported(
    store: Store, webhook: WebhookServer
) -> None:
    clock = FakeClock()
    ch = one(webhook.url())
    w = worker(store, ch, clock, base_backoff=5.0, jitter=0.0, max_age=10.0)
    webhook.down = True
    await put(store, "a", clock.now())
    await w.step()  # retry at +5 s
    clock.advance(5.0)
    await w.step()  # retry would be at +15 s > max age 10 s → failed now
    (row,) = await outbox.items(store)
    assert row.status == "failed"
    assert w.failing_channels == (ch.label,)
    webhook.down = False
    clock.advance(120.0)  # failing_hold: reported at least that long
    await put(store, "b", clock.now())
    assert await w.step() == 1
    assert w.failing_channels == ()


async def test_resume_run_and_drain(store: Store, webhook: WebhookServer) -> None:
    now = SystemClock().now()
    for key in ("a", "b", "c"):
        await put(store, key, now, f"body {key}")
    await outbox.claim(store, "c", now, 2)  # a dead process left two rows "sending"
    w = worker(store, one(webhook.url()), SystemClock(), idle_poll=0.05)
    task = asyncio.create_task(w.run())
    for _ in range(200):
        if len(webhook.posts) >= 1:
            break
        await asyncio.sleep(0.02)
    left = await w.drain(SystemClock().monotonic() + 5.0)
    await asyncio.wait_for(task, 5)
    assert left == 0
    bodies = sorted(line for _, doc in webhook.posts for line in doc["message"].split("\n\n"))
    assert bodies == ["body a", "body b", "body c"]  # each exactly once


async def test_drain_gives_up_at_the_deadline(store: Store, webhook: WebhookServer) -> None:
    webhook.down = True
    clock = SystemClock()
    await put(store, "a", clock.now())
    w = worker(store, one(webhook.url()), clock, base_backoff=0.05, jitter=0.0)
    left = await w.drain(clock.monotonic() + 0.3)
    assert left == 1
    (row,) = await outbox.items(store)
    assert row.status == "pending" and row.attempts >= 2


def test_rate_limiter_group_minute() -> None:
    lim = RateLimiter(min_interval=1.0, per_minute=3)
    for t in (0.0, 1.0, 2.0):
        assert lim.next_allowed(t) <= t
        lim.record(t)
    # 3 in the last minute: the 4th waits until the first is 60 s old
    assert lim.next_allowed(3.0) == 60.0
    lim.pause(90.0)
    assert lim.next_allowed(61.0) == 90.0


class ScriptedSender:
    """A fake sender (time and outcomes scripted): ok, 500 or 429 with retry_after."""

    def __init__(self, outcomes: list[str]) -> None:
        self.outcomes = outcomes
        self.delivered: list[str] = []

    async def send(
        self,
        channel: Channel,
        title: str,
        body: str,
        body_format: str,
        notify_type: str,
        *,
        idem_key: str | None = None,
    ) -> SendResult:
        outcome = self.outcomes.pop(0) if self.outcomes else "ok"
        if outcome == "ok":
            self.delivered.extend(body.split("\n\n"))
            return SendResult(True, "SUCCESS")
        if outcome == "429":
            return SendResult(False, "FAILURE", "Too Many Requests: retry after 2", 2.0)
        return SendResult(False, "FAILURE", "error=500")


@settings(max_examples=40, deadline=None)
@given(
    outcomes=st.lists(st.sampled_from(["ok", "500", "429"]), max_size=12),
    arrivals=st.lists(st.floats(min_value=0.0, max_value=30.0), min_size=1, max_size=8),
)
def test_every_row_delivered_once_or_failed(outcomes: list[str], arrivals: list[float]) -> None:
    """Whatever the failures, a row is sent successfully at most once, and after enough time
    every row is delivered or (too old) failed: none is lost or left pending."""

    async def scenario() -> None:
        with tempfile.TemporaryDirectory() as d:
            store = await open_store(Path(d) / "m.db")
            try:
                clock = FakeClock()
                sender = ScriptedSender(list(outcomes))
                ch = one("json://127.0.0.1:9/x", min_interval="1s")
                w = DeliveryWorker(
                    store,
                    [ch],
                    sender,
                    clock,
                    config=DeliveryConfig(base_backoff=1.0, max_age=60.0),
                    rng=random.Random(1),
                )
                start = clock.now()
                pending = sorted(arrivals)
                t = 0.0
                while t < 200.0:
                    while pending and pending[0] <= t:
                        at = pending.pop(0)
                        await put(
                            store,
                            f"m{len(arrivals) - len(pending)}",
                            start + at,
                            f"body {len(arrivals) - len(pending)}",
                        )
                    await w.step()
                    clock.advance(0.5)
                    t += 0.5
                rows = await outcomes_of(store)
                assert all(s in ("delivered", "failed") for s in rows.values())
                delivered = sorted(sender.delivered)
                assert len(delivered) == len(set(delivered))  # never twice
                assert delivered == sorted(
                    f"body {k[1:]}" for k, s in rows.items() if s == "delivered"
                )
            finally:
                await store.close()

    asyncio.run(scenario())


async def outcomes_of(store: Store) -> dict[str, str]:
    return {r.idem_key: r.status for r in await outbox.items(store)}
