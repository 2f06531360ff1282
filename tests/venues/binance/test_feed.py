"""The native Binance USDⓈ-M price feed against loopback servers speaking Binance's wire format:
a real ``websockets`` server on 127.0.0.1 (combined ``/market/stream`` endpoint, SUBSCRIBE acks,
``markPriceUpdate`` pushes in the ``{"stream","data"}`` wrapper) and a real aiohttp server for
the REST metadata (``exchangeInfo``, ``fundingInfo``) read through ccxt."""

from __future__ import annotations

import asyncio
import contextlib
import json
from collections.abc import AsyncIterator
from typing import Any

import pytest

from monitor.config import AccountConfig, AccountKind, VenueConfig
from monitor.model.events import (
    AccountSnapshot,
    FeedState,
    FeedStatus,
    FundingRate,
    InstrumentSpec,
    MarkPrice,
)
from monitor.model.positions import Position
from monitor.venues.binance.feed import (
    ALL_MARKET_ABOVE,
    MAX_LIFETIME,
    binance_feed,
    build_binance_feed,
    default_ws_settings,
    subscriptions,
)
from monitor.venues.binance.parse import VENUE, BinanceParser
from monitor.venues.feed import CONNECTION, PriceFeed
from tests.venues.ccxt_pro.loopback import (
    BinanceDialect,
    FeedRun,
    RestVenue,
    WsVenue,
    fast_backoff,
    fast_settings,
    fixture,
    until,
)

pytestmark = pytest.mark.timeout(30)

SILENCE = 0.4  # s without data before the markPrice channel is stale in these tests
CALM = 5.0  # the budget where staleness is not what a test is about (robust under load)
SUBSCRIBE = {"method": "SUBSCRIBE", "params": ["btcusdt@markPrice@1s", "ethusdt@markPrice@1s"]}
# GET /fapi/v1/fundingInfo lists only the symbols off the 8 h default (Binance's
# "Get Funding Rate Info"; not in the shared fixtures)
FUNDING_INFO = [
    {
        "symbol": "ETHUSDT",
        "adjustedFundingRateCap": "0.02500000",
        "adjustedFundingRateFloor": "-0.02500000",
        "fundingIntervalHours": 4,
        "disclaimer": False,
    }
]
ROUTES = {
    "/fapi/v1/exchangeInfo": fixture("binance", "rest_exchangeInfo.json"),
    "/fapi/v1/fundingInfo": json.dumps(FUNDING_INFO),
}


@contextlib.asynccontextmanager
async def venue(routes: dict[str, Any] | None = None) -> AsyncIterator[tuple[WsVenue, RestVenue]]:
    ws = WsVenue(BinanceDialect(), interval=0.03)
    rest = RestVenue(ROUTES if routes is None else routes)
    await ws.start()
    await rest.start()
    try:
        yield ws, rest
    finally:
        await ws.stop()
        await rest.stop()


def feed_for(ws: WsVenue, rest: RestVenue, **kw: Any) -> PriceFeed:
    settings = fast_settings(f"{ws.url}/market/stream", **kw.pop("settings", {}))
    return binance_feed(
        kw.pop("symbols", ["BTCUSDT", "ETHUSDT"]),
        settings,
        max_silence=kw.pop("max_silence", SILENCE),
        metadata_urls={"api": {"fapiPublic": f"{rest.url}/fapi/v1"}},
        metadata_backoff=fast_backoff,
        **kw,
    )


def subscribes(ws: WsVenue, conn: int | None = None) -> list[dict[str, Any]]:
    return [
        {k: v for k, v in json.loads(t).items() if k != "id"}
        for n, t in ws.subscriptions()
        if conn is None or n == conn
    ]


async def flowing(run: FeedRun) -> int:
    await until(lambda: {m.symbol for m in run.of(MarkPrice)} >= {"BTCUSDT", "ETHUSDT"})
    return len(run.events)


async def test_subscribes_streams_marks_funding_and_learns_intervals_over_rest() -> None:
    async with venue() as (ws, rest):
        run = FeedRun(feed_for(ws, rest)).start()
        await until(lambda: run.feed.metadata_loads >= 1, what="metadata")
        after = len(run.events)
        await until(lambda: {f.symbol for f in run.of(FundingRate, after)} >= {"ETHUSDT"})
        await run.stop()

    assert ws.received[0][1] == "/market/stream"  # the combined endpoint of the market category
    (sub,) = [json.loads(t) for _, t in ws.subscriptions()]
    assert sub == {**SUBSCRIBE, "id": 1}
    assert sorted(rest.requests) == ["/fapi/v1/exchangeInfo", "/fapi/v1/fundingInfo"]
    assert run.statuses()[0] == (CONNECTION, FeedState.CONNECTING)
    assert (CONNECTION, FeedState.LIVE) in run.statuses()
    # the first BTC update: p "95041.20000000", i "95003.81304348", E 1778000001000 ms
    btc = next(m for m in run.of(MarkPrice) if m.symbol == "BTCUSDT")
    assert btc == MarkPrice(VENUE, "BTCUSDT", 95041.2, 95003.81304348, 1778000001.0, btc.ts_recv)
    assert btc.ts_recv > 1.7e9  # wall-clock receive time, seconds
    funding = {f.symbol: f for f in run.of(FundingRate, after)}
    # fundingInfo says ETHUSDT pays every 4 h; BTCUSDT is not listed: the 8 h default
    assert funding["ETHUSDT"].interval_hours == 4.0
    assert funding["ETHUSDT"].rate == pytest.approx(-0.00001204, rel=1e-12)  # shorts pay
    assert run.of(InstrumentSpec) == []  # Binance brackets need an API key: configuration


async def test_abrupt_drop_reports_down_then_reconnects_and_resubscribes() -> None:
    async with venue() as (ws, rest):
        run = FeedRun(feed_for(ws, rest, metadata=False)).start()
        after = await flowing(run)
        ws.abort()  # TCP reset without a close frame: 1006
        await until(lambda: len(ws.connections) >= 2, what="a new connection")
        await until(lambda: subscribes(ws, 1) == [SUBSCRIBE], what="the same SUBSCRIBE again")
        await until(lambda: len(run.of(MarkPrice, after)) >= 2, what="marks after the drop")
        await run.stop()
    down = [e for e in run.of(FeedStatus, after) if e.state is FeedState.DOWN]
    assert down
    assert down[0].channel == CONNECTION
    assert "1006" in down[0].detail
    assert run.statuses(after)[-1] == (CONNECTION, FeedState.LIVE)
    assert run.feed.stats.disconnects >= 1


async def test_silence_goes_stale_forces_a_reconnect_and_recovers() -> None:
    async with venue() as (ws, rest):
        run = FeedRun(feed_for(ws, rest, metadata=False)).start()
        after = await flowing(run)
        ws.stall = True  # TCP open, no data
        await until(lambda: ("markPrice", FeedState.STALE) in run.statuses(after), what="stale")
        await until(lambda: len(ws.connections) >= 2, what="a forced reconnect")
        ws.stall = False
        await until(
            lambda: ("markPrice", FeedState.RECOVERED) in run.statuses(after), what="recovered"
        )
        await run.stop()
    states = run.statuses(after)
    assert states.index(("markPrice", FeedState.STALE)) < states.index(
        ("markPrice", FeedState.RECOVERED)
    )
    assert subscribes(ws, 1) == [SUBSCRIBE]
    assert run.feed.stats.stale_reconnects >= 1


@pytest.mark.parametrize(
    "frame",
    [
        "this is not json",
        "[1,2,",  # the frame that silently stops ccxt's receive loop
        b"\xff\xfe\x00binary",
        fixture("binance", "ws_error.json"),
        json.dumps({"stream": "btcusdt@markPrice@1s", "data": {"e": "markPriceUpdate"}}),
        json.dumps(
            {
                "stream": "btcusdt@markPrice@1s",
                "data": dict(json.loads(fixture("binance", "ws_markPriceUpdate.json")), p="1e200"),
            }
        ),
    ],
    ids=["text", "truncated_json", "binary", "error_reply", "wrong_shape", "absurd_price"],
)
async def test_garbage_frames_are_counted_and_skipped_without_a_reconnect(
    frame: str | bytes,
) -> None:
    async with venue() as (ws, rest):
        run = FeedRun(feed_for(ws, rest, metadata=False, max_silence=CALM)).start()
        after = await flowing(run)
        await ws.inject(frame)
        await until(lambda: run.feed.stats.bad_frames >= 1, what="the bad frame counted")
        await until(lambda: len(run.of(MarkPrice, after)) >= 4, what="marks after it")
        await run.stop()
    assert run.feed.stats.bad_frames == 1
    assert len(ws.connections) == 1
    assert {m.mark for m in run.of(MarkPrice)} == {95041.2, 3513.01}  # nothing absurd got out


async def test_one_bad_entry_of_the_all_market_array_costs_that_entry_only() -> None:
    arr = json.loads(fixture("binance", "ws_markPrice_arr.json"))
    arr[0]["p"] = "NaN"
    arr[1]["p"] = "3600.5"
    async with venue() as (ws, rest):
        run = FeedRun(feed_for(ws, rest, metadata=False, max_silence=CALM)).start()
        await flowing(run)
        await ws.inject(json.dumps({"stream": "!markPrice@arr@1s", "data": arr}))
        await until(lambda: any(m.mark == 3600.5 for m in run.of(MarkPrice)), what="ETH 3600.5")
        await run.stop()
    assert run.feed.stats.bad_entries == 1  # BTC's NaN entry
    assert run.feed.stats.bad_frames == 0
    assert not any(m.symbol == "BTCUSDT" and m.mark != 95041.2 for m in run.of(MarkPrice))


async def test_connection_is_renewed_before_its_lifetime_and_resubscribed() -> None:
    async with venue() as (ws, rest):
        run = FeedRun(
            feed_for(ws, rest, metadata=False, max_silence=CALM, settings={"max_lifetime": 0.3})
        ).start()
        await until(lambda: len(ws.connections) >= 3, what="two renewals")
        after = len(run.events)
        await until(lambda: len(run.of(MarkPrice, after)) >= 2, what="marks after renewing")
        await run.stop()
    assert all(subscribes(ws, n) == [SUBSCRIBE] for n in range(3))
    assert run.feed.stats.lifetime_reconnects >= 2
    # a planned renewal is not an outage: LIVE per connection, never DOWN
    assert {state for _, state in run.statuses()} == {FeedState.CONNECTING, FeedState.LIVE}
    assert default_ws_settings().max_lifetime == MAX_LIFETIME == 23.5 * 3600  # Binance cuts at 24 h


async def test_prices_flow_while_rest_is_down_and_intervals_arrive_once_it_is_back() -> None:
    async with venue() as (ws, rest):
        port = rest.port
        await rest.stop()
        run = FeedRun(feed_for(ws, rest)).start()
        await flowing(run)  # the stream does not wait for REST
        assert run.feed.metadata_loads == 0
        eth_funding = [f for f in run.of(FundingRate) if f.symbol == "ETHUSDT"]
        assert {f.interval_hours for f in eth_funding} == {8.0}  # the default until known
        rest.port = port
        await rest.start()
        await until(lambda: run.feed.metadata_loads >= 1, what="metadata once REST is back")
        after = len(run.events)
        await until(lambda: any(f.symbol == "ETHUSDT" for f in run.of(FundingRate, after)))
        await run.stop()
    assert {f.interval_hours for f in run.of(FundingRate, after) if f.symbol == "ETHUSDT"} == {4.0}
    assert not any(s == ("markets", FeedState.DOWN) for s in run.statuses())


async def test_frames_and_learnt_intervals_are_recorded_and_replay_the_same_events() -> None:
    recorded: list[tuple[float, str, str, str]] = []
    async with venue() as (ws, rest):
        run = FeedRun(feed_for(ws, rest, recorder=lambda *r: recorded.append(r))).start()
        await until(lambda: run.feed.metadata_loads >= 1, what="metadata")
        after = len(run.events)
        await until(lambda: {f.symbol for f in run.of(FundingRate, after)} >= {"ETHUSDT"})
        await run.stop()
    channels = {c for _, v, c, _ in recorded if v == VENUE}
    assert channels == {"markPrice", "ws", "rest:fundingIntervals"}  # "ws": the SUBSCRIBE ack
    (intervals,) = [json.loads(t) for _, _, c, t in recorded if c == "rest:fundingIntervals"]
    assert intervals == {"BTCUSDT": 8.0, "ETHUSDT": 4.0}
    parser = BinanceParser()  # as `monitor replay` builds it: no intervals known
    replayed = []
    for ts, _, channel, text in recorded:
        if channel.startswith("rest:"):
            replayed += parser.parse_rest(channel[5:], text, ts)
        else:
            replayed += parser.parse(text, ts)
    live = [e for e in run.events if isinstance(e, (MarkPrice, FundingRate))]
    assert replayed[: len(live)] == live  # the 4 h ETH interval included


def test_subscriptions_are_chunked_and_switch_to_the_all_market_stream() -> None:
    symbols = [f"S{i}USDT" for i in range(120)]
    subs = subscriptions(symbols, 30.0)
    msgs = [json.loads(s.message) for s in subs]
    # 120 streams, 50 per SUBSCRIBE: 50 + 50 + 20, ids 1..3
    assert [len(m["params"]) for m in msgs] == [50, 50, 20]
    assert [m["id"] for m in msgs] == [1, 2, 3]
    assert msgs[0]["params"][0] == "s0usdt@markPrice@1s"
    assert {(s.key, s.max_silence) for s in subs} == {("markPrice", 30.0)}
    many = [f"S{i}USDT" for i in range(ALL_MARKET_ABOVE + 1)]
    (one,) = subscriptions(many, 30.0)
    assert json.loads(one.message)["params"] == ["!markPrice@arr@1s"]


async def test_builder_watches_configured_and_held_symbols_with_config_endpoints() -> None:
    manual = AccountConfig(
        kind=AccountKind.MANUAL,
        rule_set="binance_usdm",
        account="main",
        feed="binanceusdm",
        snapshot=AccountSnapshot(
            "binance_usdm", "main", 10_000.0, (Position("ETHUSDT", 1.5, 3400.0),)
        ),
    )
    async with venue() as (ws, rest):
        config = VenueConfig(
            name="binanceusdm",
            rule_set="binance_usdm",
            native=True,
            ws_url=f"{ws.url}/market/stream",
            rest_url=rest.url,
            stale_after=5.0,
            symbols=("BTCUSDT",),
        )
        feed = build_binance_feed(config, [manual], None, None)
        assert isinstance(feed, PriceFeed)
        assert feed.venue == VENUE
        assert feed.symbols == ("BTCUSDT", "ETHUSDT")  # configured, then held
        run = FeedRun(feed).start()
        await until(lambda: feed.metadata_loads >= 1, what="metadata from rest_url")
        await until(lambda: {m.symbol for m in run.of(MarkPrice)} >= {"BTCUSDT", "ETHUSDT"})
        await run.stop()
    assert subscribes(ws) == [SUBSCRIBE]
    assert feed.ws.watchdogs["markPrice"].max_silence == 5.0


async def test_no_symbols_reports_down_once_and_does_not_dial() -> None:
    async with venue() as (ws, rest):
        run = FeedRun(feed_for(ws, rest, symbols=[])).start()
        await until(lambda: run.events, what="a status")
        await asyncio.sleep(0.1)
        await run.stop()
    assert run.statuses() == [(CONNECTION, FeedState.DOWN)]
    (status,) = run.of(FeedStatus)
    assert "no symbols" in status.detail
    assert ws.connections == []
