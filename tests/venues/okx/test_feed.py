"""The native OKX price feed against a loopback ``websockets`` server on 127.0.0.1 speaking
OKX's v5 public wire format: ``/ws/v5/public``, one subscribe ack per arg, the text ``ping`` →
``pong`` keepalive, ``mark-price`` and ``funding-rate`` pushes from the fixtures."""

from __future__ import annotations

import contextlib
import json
from collections.abc import AsyncIterator
from typing import Any

import pytest

from monitor.config import VenueConfig
from monitor.model.events import FeedState, FeedStatus, FundingRate, MarkPrice
from monitor.venues.feed import CONNECTION, PriceFeed
from monitor.venues.okx.feed import (
    FUNDING_STALE_AFTER,
    PING,
    build_okx_feed,
    okx_feed,
    subscriptions,
)
from monitor.venues.okx.parse import VENUE
from tests.venues.ccxt_pro.loopback import (
    Conn,
    FeedRun,
    OkxDialect,
    WsVenue,
    fast_settings,
    fixture,
    until,
)

pytestmark = pytest.mark.timeout(30)

SILENCE = 0.4
CALM = 5.0  # the budget where staleness is not what a test is about (robust under load)


class QuietOkx(OkxDialect):
    """OKX whose pushes of the channels in ``quiet`` stop."""

    def __init__(self) -> None:
        self.quiet: set[str] = set()

    def pushes(self, conn: Conn) -> list[str]:
        return [fixture("okx", f"ws_{t}.json") for t in conn.topics if t not in self.quiet]


@contextlib.asynccontextmanager
async def venue() -> AsyncIterator[tuple[WsVenue, QuietOkx]]:
    dialect = QuietOkx()
    ws = WsVenue(dialect, interval=0.03)
    await ws.start()
    try:
        yield ws, dialect
    finally:
        await ws.stop()


def feed_for(ws: WsVenue, **kw: Any) -> PriceFeed:
    settings = fast_settings(
        f"{ws.url}/ws/v5/public",
        app_ping_message=PING,
        app_ping_interval=0.05,
        pong_timeout=1.0,
    )
    return okx_feed(
        kw.pop("symbols", ["BTC-USDT-SWAP"]),
        settings,
        max_silence=kw.pop("max_silence", SILENCE),
        funding_max_silence=kw.pop("funding_max_silence", SILENCE),
        **kw,
    )


def subscribes(ws: WsVenue, conn: int) -> list[Any]:
    return [json.loads(t) for n, t in ws.subscriptions() if n == conn]


EXPECTED = [
    json.loads(fixture("okx", "ws_subscribe_mark-price.json")),
    json.loads(fixture("okx", "ws_subscribe_funding-rate.json")),
]


async def test_subscribes_both_channels_with_text_ping_and_emits_marks_and_funding() -> None:
    async with venue() as (ws, _):
        run = FeedRun(feed_for(ws, max_silence=CALM, funding_max_silence=CALM)).start()
        await until(lambda: run.of(MarkPrice) and run.of(FundingRate), what="mark and funding")
        await until(lambda: "ping" in ws.pings(), what="a text ping")
        await run.stop()
    assert ws.received[0][1] == "/ws/v5/public"
    assert subscribes(ws, 0) == EXPECTED  # exactly the documented subscribe frames
    mark = run.of(MarkPrice)[0]
    # markPx "95038.7", ts "1778000001200" ms; the mark-price channel has no index price
    assert (mark.venue, mark.symbol, mark.mark, mark.oracle, mark.ts_event) == (
        VENUE,
        "BTC-USDT-SWAP",
        95038.7,
        None,
        1778000001.2,
    )
    funding = run.of(FundingRate)[0]
    # fundingTime 1778025600000, nextFundingTime 1778054400000: (…054400000 − …025600000) ms
    # = 28,800,000 ms = 8 h
    assert (funding.rate, funding.interval_hours, funding.next_funding_ts) == (
        0.0000652,
        8.0,
        1778025600.0,
    )
    assert run.feed.stats.ping_timeouts == 0


async def test_missing_pong_forces_a_reconnect_and_both_channels_are_resubscribed() -> None:
    async with venue() as (ws, _):
        run = FeedRun(feed_for(ws)).start()
        await until(lambda: run.of(MarkPrice), what="marks")
        ws.answer_pings = False
        await until(lambda: len(ws.connections) >= 2, what="a reconnect")
        ws.answer_pings = True
        await until(lambda: subscribes(ws, 1) == EXPECTED, what="both subscriptions again")
        after = len(run.events)
        await until(lambda: run.of(MarkPrice, after) and run.of(FundingRate, after))
        await run.stop()
    assert run.feed.stats.ping_timeouts >= 1


async def test_a_silent_funding_channel_goes_stale_on_its_own() -> None:
    async with venue() as (ws, dialect):
        run = FeedRun(feed_for(ws)).start()
        await until(lambda: run.of(MarkPrice) and run.of(FundingRate), what="both channels")
        after = len(run.events)
        dialect.quiet.add("funding-rate")  # marks keep flowing
        await until(lambda: ("funding-rate", FeedState.STALE) in run.statuses(after), what="stale")
        dialect.quiet.clear()
        await until(lambda: ("funding-rate", FeedState.RECOVERED) in run.statuses(after))
        await run.stop()
    assert ("mark-price", FeedState.STALE) not in run.statuses(after)
    stale = next(e for e in run.of(FeedStatus, after) if e.state is FeedState.STALE)
    assert "limit 0.4s" in stale.detail


async def test_abrupt_drop_reconnects_and_resubscribes() -> None:
    async with venue() as (ws, _):
        run = FeedRun(feed_for(ws)).start()
        await until(lambda: run.of(MarkPrice), what="marks")
        after = len(run.events)
        ws.abort()
        await until(lambda: subscribes(ws, 1) == EXPECTED, what="resubscribed")
        await until(lambda: run.of(MarkPrice, after), what="marks again")
        await run.stop()
    assert (CONNECTION, FeedState.DOWN) in run.statuses(after)


async def test_one_bad_item_of_a_push_costs_that_item_only() -> None:
    msg = json.loads(fixture("okx", "ws_mark-price.json"))
    good = dict(msg["data"][0], instId="ETH-USDT-SWAP", markPx="3513.2")
    msg["data"] = [dict(msg["data"][0], markPx="1e200"), good]
    async with venue() as (ws, _):
        run = FeedRun(
            feed_for(ws, symbols=["BTC-USDT-SWAP", "ETH-USDT-SWAP"], max_silence=CALM)
        ).start()
        await until(lambda: run.of(MarkPrice), what="marks")
        await ws.inject(json.dumps(msg))
        await until(lambda: any(m.symbol == "ETH-USDT-SWAP" for m in run.of(MarkPrice)))
        await run.stop()
    assert run.feed.stats.bad_entries == 1
    assert run.feed.stats.bad_frames == 0
    assert {m.mark for m in run.of(MarkPrice)} == {95038.7, 3513.2}


@pytest.mark.parametrize(
    "frame", ["not json", b"\x00\x01", fixture("okx", "ws_error.json")], ids=str
)
async def test_garbage_and_error_frames_are_counted_and_skipped(frame: str | bytes) -> None:
    async with venue() as (ws, _):
        run = FeedRun(feed_for(ws, max_silence=CALM, funding_max_silence=CALM)).start()
        await until(lambda: run.of(MarkPrice), what="marks")
        after = len(run.events)
        await ws.inject(frame)
        await until(lambda: run.feed.stats.bad_frames >= 1, what="counted")
        await until(lambda: len(run.of(MarkPrice, after)) >= 2, what="marks after it")
        await run.stop()
    assert run.feed.stats.bad_frames == 1
    assert len(ws.connections) == 1


def test_subscriptions_chunk_args_and_give_funding_its_own_budget() -> None:
    subs = subscriptions([f"S{i}-USDT-SWAP" for i in range(30)], 30.0, 180.0)
    # 30 instruments × 2 channels, 20 args per message: 20 + 10 per channel
    assert [(s.key, len(json.loads(s.message)["args"])) for s in subs] == [
        ("mark-price", 20),
        ("mark-price", 10),
        ("funding-rate", 20),
        ("funding-rate", 10),
    ]
    assert {s.key: s.max_silence for s in subs} == {"mark-price": 30.0, "funding-rate": 180.0}


def test_builder_takes_stale_after_for_marks_and_at_least_180_s_for_funding() -> None:
    config = VenueConfig(
        name="okx", rule_set="okx", native=True, stale_after=12.0, symbols=("BTC-USDT-SWAP",)
    )
    feed = build_okx_feed(config, [], None, None)
    assert isinstance(feed, PriceFeed)
    budgets = {
        json.loads(s.message)["args"][0]["channel"]: s.max_silence for s in feed.ws._subscriptions()
    }
    assert budgets == {"mark-price": 12.0, "funding-rate": FUNDING_STALE_AFTER}
    assert feed.ws.settings.url == "wss://ws.okx.com:8443/ws/v5/public"
    assert feed.ws.settings.app_ping_message == "ping"
    assert feed.ws.settings.app_ping_interval < 30.0  # OKX drops a connection silent for 30 s
