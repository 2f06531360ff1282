"""Delivery that nothing can block, against real loopback servers and apprise's real plugins:
refused rows, markup refusals, slow endpoints, one slow channel beside a fast one, outages."""

from __future__ import annotations

import asyncio
import random
import time

import pytest

from monitor.clock import FakeClock, SystemClock
from monitor.notify.channels import Channel, parse_channels
from monitor.notify.delivery import DeliveryConfig, DeliveryWorker
from monitor.notify.sender import IDEMPOTENCY_HEADER, AppriseSender
from monitor.store import outbox
from monitor.store.db import Store
from monitor.store.outbox import OutboundMessage
from tests.notify.conftest import SmtpServer, TelegramStandIn, WebhookServer


def chan(name: str, url: str, **opts: object) -> Channel:
    (ch,) = parse_channels({name: {"url": url, **opts}}, "t", env={}, credentials_dir=None)
    return ch


async def put(
    store: Store, key: str, at: float, body: str, channel: str, *, fmt: str = "text"
) -> None:
    async with store.transaction() as conn:
        await outbox.enqueue(
            conn,
            [OutboundMessage(key, channel, "g", "critical", f"t {key}", body, fmt, "failure", at)],
        )


def worker(
    store: Store, channels: list[Channel], clock: FakeClock | SystemClock, **cfg: float
) -> DeliveryWorker:
    return DeliveryWorker(
        store,
        channels,
        AppriseSender(),
        clock,
        config=DeliveryConfig(**cfg),  # type: ignore[arg-type]
        rng=random.Random(3),
    )


async def statuses(store: Store) -> dict[str, str]:
    return {r.idem_key: r.status for r in await outbox.items(store)}


async def test_refused_markup_is_resent_once_as_plain_text(
    store: Store, telegram: TelegramStandIn, tgram_schema: str
) -> None:
    """A row rendered in CommonMark with a ``*`` in a name (as an older version rendered it
    for Telegram) is refused by Telegram's parser; it is re-sent at once as plain text and
    delivered, with the row coalesced behind it: nothing waits for a retry."""
    clock = FakeClock()
    ch = chan("tg", tgram_schema)
    w = worker(store, [ch], clock)
    await put(
        store, "a", clock.now(), "**FIRING on hyperliquid:a\\*b/cross**", "tg", fmt="markdown"
    )
    await put(
        store, "b", clock.now(), "**FIRING on hyperliquid:desk\\_2/cross**", "tg", fmt="markdown"
    )
    assert await w.step() == 2
    assert len(telegram.refused) == 1 and "Can't find end of the entity" in telegram.refused[0]
    (visible,) = telegram.visible  # one plain-text message carrying both rows
    assert "FIRING on hyperliquid:a*b/cross" in visible
    assert "FIRING on hyperliquid:desk_2/cross" in visible
    assert telegram.attempts == 2  # the refused one and its plain-text resend, nothing more
    assert await statuses(store) == {"a": "delivered", "b": "delivered"}
    assert w.failing_channels == ()


async def test_a_refused_row_never_carries_healthy_rows_or_blocks_the_rest(
    store: Store, telegram: TelegramStandIn, tgram_schema: str
) -> None:
    """Three rows coalesced into one message that Telegram refuses for good (400): the
    message is split, the two healthy rows go out alone, in order, in the same minute; the
    refused row fails at once (not after 6 h of retries) and the channel is reported."""
    clock = FakeClock()
    ch = chan("tg", tgram_schema)
    w = worker(store, [ch], clock)
    telegram.refuse_containing = "POISON"
    for key, body in (("a", "first alert"), ("p", "POISON alert"), ("c", "third alert")):
        await put(store, key, clock.now(), body, "tg")
    assert await w.step() == 0  # the coalesced message is refused: split
    assert [r.status for r in await outbox.items(store)] == ["pending"] * 3
    clock.advance(1.0)  # Telegram's 1 message/s per chat
    assert await w.step() == 1  # "a" alone
    clock.advance(1.0)
    assert await w.step() == 0  # "p" alone: refused → failed, not retried
    clock.advance(1.0)
    assert await w.step() == 1  # "c" alone
    assert await statuses(store) == {"a": "delivered", "p": "failed", "c": "delivered"}
    assert [v.split("\n")[-1] for v in telegram.visible] == ["first alert", "third alert"]
    assert telegram.attempts == 4  # 1 coalesced + 3 alone
    # reported until a later message gets through and failing_hold (120 s) has passed, so
    # a health check every few seconds sees it
    assert w.failing_channels == (ch.label,)
    assert [(f.idem_key, f.kind) for f in w.take_failures()] == [("p", "permanent")]
    clock.advance(60.0)
    await put(store, "d", clock.now(), "fourth alert", "tg")
    assert await w.step() == 1 and w.failing_channels == (ch.label,)  # 62 s < 120 s
    clock.advance(60.0)
    await put(store, "e", clock.now(), "fifth alert", "tg")
    assert await w.step() == 1 and w.failing_channels == ()  # 122 s ≥ 120 s


async def test_a_4xx_webhook_row_fails_at_once_and_the_next_row_goes(
    store: Store, webhook: WebhookServer
) -> None:
    clock = FakeClock()
    ch = chan("hook", webhook.url())
    w = worker(store, [ch], clock)
    webhook.refuse_containing = "POISON"
    await put(store, "p", clock.now(), "POISON", "hook")
    await put(store, "b", clock.now(), "healthy", "hook")
    assert await w.step() == 0
    (p, _) = await outbox.items(store)
    assert p.status == "failed" and "400" in (p.last_error or "") and p.attempts == 1
    assert w.failing_channels == (ch.label,)  # "delivery failing" goes out elsewhere
    assert await w.step() == 1
    assert [doc["message"] for _, doc in webhook.posts] == ["healthy"]


async def test_a_slow_webhook_within_the_channel_timeout_gets_each_message_once(
    store: Store, webhook: WebhookServer
) -> None:
    """The webhook answers after 4.5 s, past apprise's own 4 s default read timeout: the
    channel's 10 s timeout reaches the plugin, so the first try succeeds: one post, once."""
    clock = SystemClock()
    ch = chan("hook", webhook.url(), timeout=10)
    w = worker(store, [ch], clock)
    webhook.delays = [4.5]
    await put(store, "a", clock.now(), "first", "hook")
    assert await w.step() == 1
    assert [doc["message"] for _, doc in webhook.posts] == ["first"]
    (row,) = await outbox.items(store)
    assert row.status == "delivered" and row.attempts == 1


async def test_a_timed_out_send_is_resent_alone_with_the_same_idempotency_key(
    store: Store, webhook: WebhookServer
) -> None:
    """The channel's 0.5 s timeout reaches the plugin: a webhook answering after 1.5 s is a
    (transient) failure that may have been delivered. Each message is its own request with
    a stable ``Idempotency-Key``, so the repeat can be dropped by the receiver."""
    clock = FakeClock()
    ch = chan("hook", webhook.url(), timeout=0.5)
    w = worker(store, [ch], clock, base_backoff=1.0, jitter=0.0)
    webhook.delays = [1.5]
    await put(store, "a", clock.now(), "first", "hook")
    await put(store, "b", clock.now(), "second", "hook")
    started = time.monotonic()
    assert await w.step() == 0
    assert time.monotonic() - started < 1.4  # gave up at the channel's timeout
    clock.advance(1.0)
    assert await w.step() == 1  # "a" again, alone
    assert await w.step() == 1  # then "b"
    keys = [h[IDEMPOTENCY_HEADER] for h in webhook.headers]
    bodies = [doc["message"] for _, doc in webhook.posts]
    assert bodies == ["first", "first", "second"]
    assert keys == ["a", "a", "b"]
    assert await statuses(store) == {"a": "delivered", "b": "delivered"}


async def test_a_possibly_delivered_coalesced_message_is_resent_row_by_row(
    store: Store, telegram: TelegramStandIn, tgram_schema: str
) -> None:
    """Two rows coalesced into one Telegram message that times out (Telegram got it): on
    retry each row goes alone, never again inside a bigger batch."""
    clock = FakeClock()
    ch = chan("tg", tgram_schema, timeout=0.5)
    w = worker(store, [ch], clock, base_backoff=1.0, jitter=0.0)
    telegram.delays = [1.5]
    await put(store, "a", clock.now(), "alert A", "tg")
    await put(store, "b", clock.now(), "alert B", "tg")
    assert await w.step() == 0
    clock.advance(1.0)
    assert await w.step() == 1
    clock.advance(1.0)  # Telegram's 1 message/s per chat
    assert await w.step() == 1
    texts = [[ln for ln in v.splitlines()[1:] if ln] for v in telegram.visible]
    assert texts == [["alert A", "alert B"], ["alert A"], ["alert B"]]


async def test_one_slow_channel_never_delays_another(
    store: Store, webhook: WebhookServer, smtp: SmtpServer
) -> None:
    """A webhook that takes 3 s to answer is in flight; an email queued meanwhile goes out
    at once instead of waiting for the webhook's round."""
    clock = SystemClock()
    hook = chan("hook", webhook.url(), timeout=10)
    mail = chan("mail", smtp.url())
    w = worker(store, [hook, mail], clock, idle_poll=0.05)
    webhook.delays = [3.0]
    await put(store, "h", clock.now(), "to the webhook", "hook")
    task = asyncio.create_task(w.run())
    try:
        for _ in range(200):
            if webhook.attempts:
                break
            await asyncio.sleep(0.01)
        assert webhook.attempts == 1
        queued = time.monotonic()
        await put(store, "m", clock.now(), "to the mailbox", "mail")
        w.wake()
        for _ in range(250):
            if smtp.messages:
                break
            await asyncio.sleep(0.01)
        latency = time.monotonic() - queued
        assert smtp.messages and latency < 1.5  # well before the webhook answers (3 s)
        assert (await statuses(store))["h"] == "sending"
    finally:
        left = await w.drain(clock.monotonic() + 10)
        await asyncio.wait_for(task, 5)
    assert left == 0
    assert await statuses(store) == {"h": "delivered", "m": "delivered"}


@pytest.mark.timeout(60)
async def test_after_an_smtp_outage_queued_alerts_go_out_within_seconds(store: Store) -> None:
    """aiosmtpd stopped for 3 s while alerts queue, then restarted on the same port: with a
    1 s probe cap (the default is 10 s, not 300 s) they are delivered within about 1 s of
    its return, each once."""
    from aiosmtpd.controller import Controller

    from tests.notify.conftest import free_port

    handler = SmtpServer(free_port())
    clock = SystemClock()
    mail = chan("mail", handler.url(), timeout=2)
    w = worker(store, [mail], clock, base_backoff=0.2, max_backoff=1.0, jitter=0.0)
    for key in ("a", "b", "c"):
        await put(store, key, clock.now(), f"alert {key}", "mail")
    task = asyncio.create_task(w.run())
    controller = Controller(handler, hostname="127.0.0.1", port=handler.port)
    try:
        await asyncio.sleep(3.0)  # the outage: tries at 0, 0.2, 0.6, 1.4, 2.4 s ...
        assert handler.messages == []
        await asyncio.to_thread(controller.start)
        back = time.monotonic()
        for _ in range(250):
            if len(_parts(handler)) >= 3:
                break
            await asyncio.sleep(0.02)
        recovery = time.monotonic() - back
        assert recovery < 2.0  # probe cap 1 s (+ the send itself)
    finally:
        await w.drain(clock.monotonic() + 5)
        await asyncio.wait_for(task, 5)
        await asyncio.to_thread(controller.stop)
    bodies = sorted(
        line for p in _parts(handler) for line in p.get_content().splitlines() if line.strip()
    )
    assert bodies == ["alert a", "alert b", "alert c"]  # each exactly once
    assert set((await statuses(store)).values()) == {"delivered"}


def _parts(handler: SmtpServer) -> list[object]:
    out = []
    for m in handler.messages:
        body = m.get_body(preferencelist=("plain",))
        if body is not None:
            out.append(body)
    return out  # type: ignore[return-value]


def test_the_default_probe_cap_is_seconds_not_minutes() -> None:
    w = DeliveryWorker(
        None,  # type: ignore[arg-type]
        [],
        AppriseSender(),
        FakeClock(),
        rng=random.Random(1),
    )
    # base 2 s · 2^(n−1), capped at 10 s, ±20 % jitter: never above 10 · 1.2 = 12 s
    waits = [w._backoff(n) for n in range(1, 30)]
    assert max(waits) <= 12.0 and waits[-1] >= 8.0


async def test_cancelling_the_worker_stops_its_sends_and_the_row_is_resent_once_later(
    store: Store, webhook: WebhookServer
) -> None:
    """The daemon cancels ``run()`` without draining while a webhook send is in flight: the
    send task goes with it, the row stays ``sending`` and is put back once at the next start."""
    clock = SystemClock()
    w = worker(store, [chan("hook", webhook.url(), timeout=10)], clock, idle_poll=0.05)
    webhook.delays = [1.0]
    await put(store, "a", clock.now(), "in flight", "hook")
    task = asyncio.create_task(w.run())
    for _ in range(200):
        if webhook.attempts:
            break
        await asyncio.sleep(0.01)
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    assert await statuses(store) == {"a": "sending"}
    assert await outbox.resume(store) == 1
    assert await statuses(store) == {"a": "pending"}


async def test_a_coalesced_message_refused_with_429_is_retried_coalesced(
    store: Store, telegram: TelegramStandIn, tgram_schema: str
) -> None:
    """A 429 is an answer: the message certainly did not arrive, so after ``retry_after`` the
    same rows go out together again (not one by one at 1 message/s in a burst)."""
    clock = FakeClock()
    w = worker(store, [chan("tg", tgram_schema)], clock)
    telegram.replies = [(429, 5)]
    for key in ("a", "b", "c"):
        await put(store, key, clock.now(), f"alert {key}", "tg")
    assert await w.step() == 0
    clock.advance(5.0)
    assert await w.step() == 3
    (text,) = ([ln for ln in v.splitlines()[1:] if ln] for v in telegram.visible)
    assert text == ["alert a", "alert b", "alert c"]
