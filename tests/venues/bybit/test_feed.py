"""The native Bybit price feed against loopback servers speaking Bybit's v5 wire format: a real
``websockets`` server on 127.0.0.1 (``/v5/public/linear``: op subscribe acks, app-level
``op: ping`` → pong, a ``tickers`` snapshot then deltas) and a real aiohttp server for the REST
metadata (``instruments-info``, ``risk-limit``) read through ccxt."""

from __future__ import annotations

import contextlib
import json
from collections.abc import AsyncIterator
from typing import Any

import pytest

from monitor.config import VenueConfig
from monitor.model.events import FeedState, FeedStatus, FundingRate, InstrumentSpec, MarkPrice
from monitor.model.instruments import Tier
from monitor.venues.bybit.feed import PING, build_bybit_feed, bybit_feed, subscriptions
from monitor.venues.bybit.parse import VENUE
from monitor.venues.feed import CONNECTION, PriceFeed
from tests.venues.ccxt_pro.loopback import (
    BYBIT_INSTRUMENTS,
    BYBIT_RISK_LIMIT,
    BybitDialect,
    FeedRun,
    RestVenue,
    WsVenue,
    fast_backoff,
    fast_settings,
    fixture,
    until,
)

pytestmark = pytest.mark.timeout(30)

SILENCE = 0.4
CALM = 5.0  # the budget where staleness is not what a test is about (robust under load)
ROUTES = {
    "/v5/market/instruments-info": json.dumps(BYBIT_INSTRUMENTS),
    "/v5/market/risk-limit": json.dumps(BYBIT_RISK_LIMIT),
}
SUBSCRIBE = {"req_id": "sub-1", "op": "subscribe", "args": ["tickers.BTCUSDT"]}


@contextlib.asynccontextmanager
async def venue(routes: dict[str, Any] | None = None) -> AsyncIterator[tuple[WsVenue, RestVenue]]:
    ws = WsVenue(BybitDialect(), interval=0.03)
    rest = RestVenue(ROUTES if routes is None else routes)
    await ws.start()
    await rest.start()
    try:
        yield ws, rest
    finally:
        await ws.stop()
        await rest.stop()


def feed_for(ws: WsVenue, rest: RestVenue, **kw: Any) -> PriceFeed:
    settings = fast_settings(
        f"{ws.url}/v5/public/linear",
        app_ping_message=PING,
        app_ping_interval=0.05,
        pong_timeout=1.0,
        **kw.pop("settings", {}),
    )
    return bybit_feed(
        kw.pop("symbols", ["BTCUSDT"]),
        settings,
        max_silence=kw.pop("max_silence", SILENCE),
        metadata_urls={"api": {"public": rest.url}},
        metadata_backoff=fast_backoff,
        **kw,
    )


def subscribes(ws: WsVenue, conn: int) -> list[dict[str, Any]]:
    return [json.loads(t) for n, t in ws.subscriptions() if n == conn]


async def test_subscribes_tickers_merges_deltas_and_reads_public_tiers() -> None:
    async with venue() as (ws, rest):
        run = FeedRun(feed_for(ws, rest)).start()
        await until(lambda: len(run.of(MarkPrice)) >= 3, what="snapshot and deltas")
        await until(lambda: run.of(InstrumentSpec), what="the instrument from risk limits")
        await run.stop()

    assert ws.received[0][1] == "/v5/public/linear"
    assert subscribes(ws, 0) == [SUBSCRIBE]
    first, second = run.of(MarkPrice)[:2]
    # snapshot: markPrice "95041.73", indexPrice "95004.02", ts 1778000001012 ms
    assert (first.venue, first.mark, first.oracle, first.ts_event) == (
        VENUE,
        95041.73,
        95004.02,
        1778000001.012,
    )
    # delta: markPrice "95044.10", indexPrice "95006.35", ts 1778000001112 ms
    assert (second.mark, second.oracle, second.ts_event) == (95044.10, 95006.35, 1778000001.112)
    f1, f2 = run.of(FundingRate)[:2]
    assert (f1.rate, f1.next_funding_ts) == (0.0000652, 1778025600.0)
    # the delta has no nextFundingTime: the snapshot's is kept, never invented
    assert (f2.rate, f2.next_funding_ts) == (0.0000655, 1778025600.0)
    (spec,) = run.of(InstrumentSpec)
    inst = spec.instrument
    assert (inst.venue, inst.symbol, inst.funding_interval_hours) == (VENUE, "BTCUSDT", 8.0)
    # risk limits: 0.5 % up to 2,000,000 USDT, then 0.56 % with mmDeduction 1200
    # (= 2,000,000 · (0.0056 − 0.005): continuous at the bound)
    assert inst.maintenance.tiers == (Tier(0.0, 0.005, 0.0), Tier(2_000_000.0, 0.0056, 1200.0))
    assert "/v5/market/risk-limit?symbol=BTCUSDT&category=linear" in rest.requests


async def test_app_ping_is_answered_and_a_missing_pong_forces_a_reconnect() -> None:
    async with venue() as (ws, rest):
        run = FeedRun(feed_for(ws, rest, metadata=False, max_silence=CALM)).start()
        await until(lambda: run.of(MarkPrice), what="marks")
        await until(lambda: len(ws.pings()) >= 2, what="pings")
        assert json.loads(ws.pings()[0]) == {"req_id": "ping", "op": "ping"}
        assert run.feed.stats.ping_timeouts == 0  # answered pongs keep the connection
        ws.answer_pings = False
        await until(lambda: len(ws.connections) >= 2, what="a reconnect after a missing pong")
        ws.answer_pings = True
        await until(lambda: subscribes(ws, 1) == [SUBSCRIBE], what="the subscription again")
        after = len(run.events)
        await until(lambda: run.of(MarkPrice, after), what="marks again")
        await run.stop()
    assert run.feed.stats.ping_timeouts >= 1
    down = [e for e in run.of(FeedStatus) if e.state is FeedState.DOWN]
    assert "no pong" in down[0].detail


async def test_silence_goes_stale_and_recovers_after_the_resubscription() -> None:
    async with venue() as (ws, rest):
        run = FeedRun(feed_for(ws, rest, metadata=False)).start()
        await until(lambda: run.of(MarkPrice), what="marks")
        after = len(run.events)
        ws.stall = True
        await until(lambda: ("tickers", FeedState.STALE) in run.statuses(after), what="stale")
        await until(lambda: len(ws.connections) >= 2, what="a forced reconnect")
        ws.stall = False
        await until(lambda: ("tickers", FeedState.RECOVERED) in run.statuses(after))
        await run.stop()
    assert subscribes(ws, 1) == [SUBSCRIBE]


async def test_clean_close_reconnects_and_resubscribes() -> None:
    async with venue() as (ws, rest):
        run = FeedRun(feed_for(ws, rest, metadata=False)).start()
        await until(lambda: run.of(MarkPrice), what="marks")
        after = len(run.events)
        await ws.close_all(1001)
        await until(lambda: subscribes(ws, 1) == [SUBSCRIBE], what="resubscribed")
        await until(lambda: run.of(MarkPrice, after), what="marks again")
        await run.stop()
    down = [e for e in run.of(FeedStatus, after) if e.state is FeedState.DOWN]
    assert down[0].channel == CONNECTION
    assert "1001" in down[0].detail


@pytest.mark.parametrize(
    "frame",
    [
        "not json",
        b"\xff\xfe",
        fixture("bybit", "ws_subscribe_error.json"),
        json.dumps(
            dict(
                json.loads(fixture("bybit", "ws_tickers_snapshot.json")),
                data={"symbol": "BTCUSDT", "markPrice": "1e200"},
            )
        ),
    ],
    ids=["text", "binary", "subscribe_error", "absurd_price"],
)
async def test_garbage_frames_are_counted_and_skipped(frame: str | bytes) -> None:
    async with venue() as (ws, rest):
        run = FeedRun(feed_for(ws, rest, metadata=False, max_silence=CALM)).start()
        await until(lambda: run.of(MarkPrice), what="marks")
        after = len(run.events)
        await ws.inject(frame)
        await until(lambda: run.feed.stats.bad_frames >= 1, what="counted")
        await until(lambda: len(run.of(MarkPrice, after)) >= 2, what="marks after it")
        await run.stop()
    assert run.feed.stats.bad_frames == 1
    assert len(ws.connections) == 1
    assert all(m.mark < 1e6 for m in run.of(MarkPrice))


async def test_prices_flow_while_rest_is_down_and_tiers_arrive_once_it_is_back() -> None:
    async with venue() as (ws, rest):
        port = rest.port
        await rest.stop()
        run = FeedRun(feed_for(ws, rest)).start()
        await until(lambda: len(run.of(MarkPrice)) >= 2, what="marks without REST")
        assert run.of(InstrumentSpec) == []
        rest.port = port
        await rest.start()
        await until(lambda: run.feed.metadata_loads == 1, what="metadata once REST is back")
        await run.stop()
    assert len(run.of(InstrumentSpec)) == 1
    assert all(ch != "markets" for ch, _ in run.statuses())  # REST is not the price stream


def test_subscriptions_are_chunked_by_ten_topics() -> None:
    msgs = [json.loads(s.message) for s in subscriptions([f"S{i}USDT" for i in range(25)], 9.0)]
    # 25 topics, 10 per message: 10 + 10 + 5
    assert [len(m["args"]) for m in msgs] == [10, 10, 5]
    assert [m["req_id"] for m in msgs] == ["sub-1", "sub-2", "sub-3"]
    assert msgs[2]["args"][-1] == "tickers.S24USDT"


async def test_builder_uses_the_configured_endpoints_and_ping_interval() -> None:
    async with venue() as (ws, rest):
        config = VenueConfig(
            name="bybit",
            rule_set="bybit",
            native=True,
            ws_url=f"{ws.url}/v5/public/linear",
            rest_url=rest.url,
            ping_interval=7.0,
            symbols=("BTCUSDT",),
        )
        feed = build_bybit_feed(config, [], None, None)
        assert isinstance(feed, PriceFeed)
        assert feed.ws.settings.app_ping_interval == 7.0
        assert feed.ws.settings.app_ping_message == PING
        run = FeedRun(feed).start()
        await until(lambda: run.of(InstrumentSpec) and run.of(MarkPrice), what="data and tiers")
        await run.stop()
    assert subscribes(ws, 0) == [SUBSCRIBE]
