"""CcxtProFeed against loopback venues speaking the exact wire formats (tests/fixtures/feeds/).

Every scenario runs the real connector (real ccxt.pro, real sockets) against real servers on
127.0.0.1; intervals are a few tens of milliseconds so each scenario takes well under a second
or two. REST bodies that the shared fixtures do not have (Bybit instruments-info and risk-limit,
OKX instruments) are written here in the shape of the venues' v5 documentation.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import json
import random
from collections.abc import AsyncIterator
from typing import Any

import pytest

from monitor.model.events import (
    Event,
    FeedState,
    FeedStatus,
    FundingRate,
    InstrumentSpec,
    MarkPrice,
)
from monitor.model.instruments import MaintenanceSchedule, Tier
from monitor.venues.backoff import Backoff
from monitor.venues.ccxt_pro.feed import CcxtProFeed
from monitor.venues.ccxt_pro.streams import KNOWN, FundingSource
from tests.venues.ccxt_pro.loopback import (
    BYBIT_INSTRUMENTS,
    BYBIT_RISK_LIMIT,
    OKX_INSTRUMENTS,
    BinanceDialect,
    BybitDialect,
    Dialect,
    OkxDialect,
    RestVenue,
    WsVenue,
    fixture,
    until,
)

pytestmark = pytest.mark.timeout(30)

MARK_SILENCE = 0.4  # s without data before a stream is stale in these tests


def fast_backoff() -> Backoff:
    return Backoff(
        initial=0.02, factor=2.0, cap=0.1, jitter=0.25, stable_after=0.2, rng=random.Random(7)
    )


# -- harness -------------------------------------------------------------------------------
class Run:
    """A feed running as a task; ``events`` collects what it emits."""

    def __init__(self, feed: CcxtProFeed) -> None:
        self.feed = feed
        self.events: list[Event] = []
        self.task: asyncio.Task[None] | None = None

    def start(self) -> None:
        self.task = asyncio.create_task(self.feed.run(self.events.append))

    async def stop(self) -> None:
        assert self.task is not None
        if self.task.done():
            self.task.result()  # surface a crash
        self.task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await self.task  # run()'s finally awaits exchange.close()

    def of(self, kind: type[Any], start: int = 0) -> list[Any]:
        return [e for e in self.events[start:] if isinstance(e, kind)]

    def statuses(self, start: int = 0) -> list[tuple[str, FeedState]]:
        return [(e.channel, e.state) for e in self.of(FeedStatus, start)]


@contextlib.asynccontextmanager
async def venue(
    dialect: Dialect, routes: dict[str, str]
) -> AsyncIterator[tuple[WsVenue, RestVenue]]:
    ws = WsVenue(dialect, interval=0.03)
    rest = RestVenue(routes)
    await ws.start()
    await rest.start()
    try:
        yield ws, rest
    finally:
        await ws.stop()
        await rest.stop()


def binance_feed(ws: WsVenue, rest: RestVenue, **kw: Any) -> CcxtProFeed:
    return CcxtProFeed(
        "binanceusdm",
        kw.pop("symbols", ["BTCUSDT", "ETHUSDT"]),
        urls={"api": {"fapiPublic": f"{rest.url}/fapi/v1", "ws": {"linear": f"{ws.url}/ws"}}},
        max_silence=kw.pop("max_silence", MARK_SILENCE),
        check_interval=0.02,
        backoff=fast_backoff,
        **kw,
    )


BINANCE_ROUTES = {"/fapi/v1/exchangeInfo": fixture("binance", "rest_exchangeInfo.json")}
BINANCE_SUBSCRIBE = {
    "method": "SUBSCRIBE",
    "params": ["btcusdt@markPrice@1s", "ethusdt@markPrice@1s"],
    "id": 1,
}


# -- binanceusdm ---------------------------------------------------------------------------
# GET /fapi/v1/fundingInfo lists only symbols whose funding differs from the default
# (shape of Binance's "Get Funding Rate Info"; not in the shared fixtures)
BINANCE_FUNDING_INFO = [
    {
        "symbol": "ETHUSDT",
        "adjustedFundingRateCap": "0.02500000",
        "adjustedFundingRateFloor": "-0.02500000",
        "fundingIntervalHours": 4,
        "disclaimer": False,
    }
]


async def test_binanceusdm_loads_markets_subscribes_and_emits_marks_and_funding() -> None:
    btc_schedule = MaintenanceSchedule((Tier(0.0, 0.004), Tier(50_000.0, 0.005, 50.0)))
    routes = {**BINANCE_ROUTES, "/fapi/v1/fundingInfo": json.dumps(BINANCE_FUNDING_INFO)}
    async with venue(BinanceDialect(), routes) as (ws, rest):
        run = Run(
            binance_feed(
                ws,
                rest,
                symbols=["BTCUSDT", "ETHUSDT", "DOGEUSDT"],
                maintenance={"BTCUSDT": btc_schedule},
            )
        )
        run.start()
        await until(lambda: len(run.of(FundingRate)) >= 2, what="BTC and ETH funding")
        await run.stop()

    assert rest.requests == ["/fapi/v1/exchangeInfo", "/fapi/v1/fundingInfo"]
    # ccxt rewrites .../ws to the /market category, stream 0, and sends one SUBSCRIBE
    assert ws.received[0][1] == "/market/ws/0"
    assert json.loads(ws.subscriptions()[0][1]) == BINANCE_SUBSCRIBE
    # DOGEUSDT is not in exchangeInfo: dropped and counted
    assert run.feed.errors["unknown_symbol"] == 1

    (spec,) = run.of(InstrumentSpec)  # only BTCUSDT has a maintenance schedule
    assert spec.instrument.venue == "binanceusdm"
    assert spec.instrument.symbol == "BTCUSDT"
    assert spec.instrument.maintenance is btc_schedule
    assert spec.instrument.funding_interval_hours == 8.0

    assert run.statuses()[0] == ("marks", FeedState.LIVE)
    marks = {m.symbol: m for m in run.of(MarkPrice)}
    # BTCUSDT p "95041.20000000", i "95003.81304348", E 1778000001000 ms
    assert marks["BTCUSDT"] == MarkPrice(
        "binanceusdm", "BTCUSDT", 95041.2, 95003.81304348, 1778000001.0, marks["BTCUSDT"].ts_recv
    )
    assert marks["ETHUSDT"].mark == pytest.approx(3513.01, rel=1e-12)
    funding = {f.symbol: f for f in run.of(FundingRate)}
    btc = funding["BTCUSDT"]
    assert (btc.venue, btc.rate, btc.interval_hours, btc.next_funding_ts) == (
        "binanceusdm",
        pytest.approx(0.00006521, rel=1e-12),
        8.0,
        1778025600.0,
    )
    assert funding["ETHUSDT"].rate == pytest.approx(-0.00001204, rel=1e-12)  # shorts pay
    assert funding["ETHUSDT"].interval_hours == 4.0  # fundingIntervalHours 4 in fundingInfo
    assert btc.ts_recv > 1.7e9  # wall-clock receive time, seconds


async def test_every_symbol_of_a_multi_symbol_frame_is_emitted() -> None:
    """ccxt resolves a watch with the first symbol of a frame only; the rest sit in its cache.
    The feed emits every cached ticker that changed, so none is lost."""
    async with venue(BinanceDialect(), BINANCE_ROUTES) as (ws, rest):
        run = Run(binance_feed(ws, rest))
        run.start()
        await until(lambda: len(run.of(MarkPrice)) >= 2, what="first marks")
        ws.stall = True
        await asyncio.sleep(0.05)  # let the last regular pushes drain
        after = len(run.events)
        await ws.inject(fixture("binance", "ws_markPrice_arr.json"))  # BTC and ETH in one frame
        await until(lambda: len(run.of(MarkPrice, after)) >= 2, what="both marks")
        await run.stop()
    assert sorted(m.symbol for m in run.of(MarkPrice, after)) == ["BTCUSDT", "ETHUSDT"]


async def _flowing(run: Run, ws: WsVenue) -> int:
    """Wait for marks to flow; return the index in ``run.events`` to look after."""
    await until(lambda: len(run.of(MarkPrice)) >= 2, what="first marks")
    return len(run.events)


async def _resubscribed_and_flowing(run: Run, ws: WsVenue, after: int, connections: int) -> None:
    await until(lambda: len(ws.connections) > connections, what="a new connection")
    await until(
        lambda: any(n >= connections for n, _ in ws.subscriptions()), what="a resubscription"
    )
    await until(lambda: len(run.of(MarkPrice, after)) >= 2, what="marks after the fault")
    last = max(n for n, _ in ws.subscriptions())
    resent = [json.loads(t) for n, t in ws.subscriptions() if n == last]
    assert resent[0]["method"] == "SUBSCRIBE"
    assert resent[0]["params"] == BINANCE_SUBSCRIBE["params"]


async def test_abrupt_close_reports_down_then_reconnects_and_resubscribes() -> None:
    async with venue(BinanceDialect(), BINANCE_ROUTES) as (ws, rest):
        run = Run(binance_feed(ws, rest))
        run.start()
        after = await _flowing(run, ws)
        ws.abort()  # TCP reset, no close frame: 1006 on the client
        await _resubscribed_and_flowing(run, ws, after, connections=1)
        await run.stop()
    assert ("marks", FeedState.DOWN) in run.statuses(after)
    assert run.statuses(after)[-1] == ("marks", FeedState.LIVE)
    assert run.feed.errors["disconnect"] >= 1


async def test_clean_close_1001_reconnects_and_resubscribes() -> None:
    async with venue(BinanceDialect(), BINANCE_ROUTES) as (ws, rest):
        run = Run(binance_feed(ws, rest))
        run.start()
        after = await _flowing(run, ws)
        await ws.close_all(1001)
        await _resubscribed_and_flowing(run, ws, after, connections=1)
        await run.stop()
    down = [e for e in run.of(FeedStatus, after) if e.state is FeedState.DOWN]
    assert down
    assert "1001" in down[0].detail


async def test_stall_with_tcp_open_goes_stale_forces_resubscribe_and_recovers() -> None:
    async with venue(BinanceDialect(), BINANCE_ROUTES) as (ws, rest):
        run = Run(binance_feed(ws, rest))
        run.start()
        after = await _flowing(run, ws)
        ws.stall = True  # socket open, pings answered, no data
        await until(
            lambda: ("marks", FeedState.STALE) in run.statuses(after), what="a stale report"
        )
        # the watchdog dropped the silent connection: the feed dials and subscribes again
        await until(lambda: len(ws.connections) >= 2, what="a forced reconnect")
        ws.stall = False
        await _resubscribed_and_flowing(run, ws, after, connections=1)
        await until(lambda: ("marks", FeedState.RECOVERED) in run.statuses(after), what="recovered")
        await run.stop()
    states = run.statuses(after)
    assert states.index(("marks", FeedState.STALE)) < states.index(("marks", FeedState.RECOVERED))
    stale = next(e for e in run.of(FeedStatus, after) if e.state is FeedState.STALE)
    assert "limit 0.4s" in stale.detail
    assert run.feed.errors["stale"] >= 1


async def test_stall_that_persists_keeps_forcing_reconnects() -> None:
    async with venue(BinanceDialect(), BINANCE_ROUTES) as (ws, rest):
        run = Run(binance_feed(ws, rest))
        run.start()
        after = await _flowing(run, ws)
        ws.stall = True
        await until(lambda: len(ws.connections) >= 3, within=8, what="two forced reconnects")
        ws.stall = False
        await until(lambda: len(run.of(MarkPrice, after)) >= 1, what="marks after the stall")
        await run.stop()
    # STALE is reported once per silent spell, however many reconnects it takes
    assert run.statuses(after).count(("marks", FeedState.STALE)) == 1


@pytest.mark.parametrize(
    ("frames", "counted"),
    [
        # text that is not a JSON object: ccxt hands it on as a string and ignores it
        (["this is not json", "", "12345"], None),
        # wrong-typed and non-finite values: ccxt parses them, our conversion rejects them
        (
            [
                json.dumps(
                    {
                        "e": "markPriceUpdate",
                        "E": 1778000001000,
                        "s": "BTCUSDT",
                        "p": ["x"],
                        "i": None,
                        "r": {},
                        "T": "soon",
                    }
                ),
                json.dumps(
                    {
                        "e": "markPriceUpdate",
                        "E": 1778000001000,
                        "s": "BTCUSDT",
                        "p": "NaN",
                        "i": "-1",
                        "r": "x",
                        "T": 0,
                    }
                ),
            ],
            "bad_frame",
        ),
        # an error reply to the subscription id rejects the pending watch
        ([fixture("binance", "ws_error.json")], "venue_error"),
    ],
    ids=["not_json", "wrong_types", "error_frame"],
)
async def test_bad_frames_are_counted_skipped_and_data_keeps_flowing(
    frames: list[str], counted: str | None
) -> None:
    async with venue(BinanceDialect(), BINANCE_ROUTES) as (ws, rest):
        run = Run(binance_feed(ws, rest))
        run.start()
        after = await _flowing(run, ws)
        for frame in frames:
            await ws.inject(frame)
        await until(lambda: len(run.of(MarkPrice, after)) >= 4, what="marks after bad frames")
        if counted is not None:
            await until(lambda: run.feed.errors[counted] >= 1, what=f"{counted} counted")
        assert run.task is not None
        assert not run.task.done()
        await run.stop()
    # no bad value reached an event: every mark is one of the two fixture marks
    assert {m.mark for m in run.of(MarkPrice, after)} <= {95041.2, 3513.01}
    assert len(ws.connections) == 1  # none of these needed a reconnect


@pytest.mark.parametrize(
    "frame",
    [
        "[1,2,",  # starts like JSON, does not parse: orjson raises inside ccxt's receive loop
        b"\xff\xfe\x00garbage",  # a binary frame that is not UTF-8: ccxt's decode raises
    ],
    ids=["truncated_json", "binary"],
)
async def test_garbage_frame_forces_an_immediate_reconnect_not_a_silent_stall(
    frame: str | bytes,
) -> None:
    """Left alone, ccxt stops reading after such a frame while the socket stays open, and
    prices stop until the watchdog notices. With a 30 s silence budget the watchdog cannot be
    what recovers here: the feed reconnects and resubscribes at once and counts the frame."""
    async with venue(BinanceDialect(), BINANCE_ROUTES) as (ws, rest):
        run = Run(binance_feed(ws, rest, max_silence=30.0))
        run.start()
        after = await _flowing(run, ws)
        await ws.inject(frame)
        await _resubscribed_and_flowing(run, ws, after, connections=1)
        await until(lambda: run.statuses(after)[-1:] == [("marks", FeedState.LIVE)], what="live")
        await run.stop()
    assert run.feed.errors["bad_frame"] == 1  # one frame, counted once
    assert run.feed.errors["disconnect"] == 0  # the drop is ours, not the venue's
    assert ("marks", FeedState.STALE) not in run.statuses(after)
    down = [e for e in run.of(FeedStatus, after) if e.state is FeedState.DOWN]
    assert len(down) == 1
    assert "bad frame" in down[0].detail


async def test_refused_connections_are_retried_until_the_venue_is_back() -> None:
    async with venue(BinanceDialect(), BINANCE_ROUTES) as (ws, rest):
        run = Run(binance_feed(ws, rest))
        run.start()
        after = await _flowing(run, ws)
        await ws.stop()  # closes the connection (1001) and refuses new dials
        await until(lambda: ("marks", FeedState.DOWN) in run.statuses(after), what="down")
        await asyncio.sleep(0.5)  # several refused dials with backoff
        await ws.start()  # same port
        await _resubscribed_and_flowing(run, ws, after, connections=1)
        await run.stop()
    assert run.feed.errors["disconnect"] >= 2  # the close, then at least one refused dial
    assert run.statuses(after)[-1][1] in (FeedState.LIVE, FeedState.RECOVERED)


async def test_rest_down_at_start_is_retried_with_backoff() -> None:
    async with venue(BinanceDialect(), BINANCE_ROUTES) as (ws, rest):
        port = rest.port
        await rest.stop()
        run = Run(binance_feed(ws, rest))
        run.start()
        await until(lambda: ("markets", FeedState.DOWN) in run.statuses(), what="markets down")
        rest.port = port
        await rest.start()
        await until(lambda: len(run.of(MarkPrice)) >= 2, what="marks once REST is back")
        await run.stop()
    # fundingInfo is not served here (404): the feed goes on with the 8 h default
    assert rest.requests == ["/fapi/v1/exchangeInfo", "/fapi/v1/fundingInfo"]
    assert {f.interval_hours for f in run.of(FundingRate)} == {8.0}


async def test_garbage_rest_body_at_start_is_counted_and_retried() -> None:
    bodies = iter(["<html>502 Bad Gateway</html>", '{"symbols": 7}'])
    good = fixture("binance", "rest_exchangeInfo.json")
    routes: dict[str, Any] = {"/fapi/v1/exchangeInfo": lambda _req: next(bodies, good)}
    async with venue(BinanceDialect(), routes) as (ws, rest):
        run = Run(binance_feed(ws, rest))
        run.start()
        await until(lambda: len(run.of(MarkPrice)) >= 2, what="marks after two bad bodies")
        await run.stop()
    assert rest.requests.count("/fapi/v1/exchangeInfo") == 3
    assert run.statuses()[:2] == [("markets", FeedState.DOWN), ("markets", FeedState.LIVE)]
    assert run.feed.errors["venue_error"] + run.feed.errors["bad_frame"] == 2


async def test_connections_are_rotated_before_the_venue_lifetime_without_an_outage() -> None:
    async with venue(BinanceDialect(), BINANCE_ROUTES) as (ws, rest):
        run = Run(binance_feed(ws, rest, max_connection_age=0.15))
        run.start()
        await until(lambda: len(ws.connections) >= 3, what="two rotations")
        after = len(run.events)
        await until(lambda: len(run.of(MarkPrice, after)) >= 2, what="marks after rotating")
        await run.stop()
    # each new connection got the same subscription again
    per_conn = {n: json.loads(t) for n, t in ws.subscriptions()}
    assert len(per_conn) >= 3
    assert all(m["params"] == BINANCE_SUBSCRIBE["params"] for m in per_conn.values())
    # a planned rotation is not an outage: only the first LIVE, no DOWN, no STALE
    assert run.statuses() == [("marks", FeedState.LIVE)]
    assert run.feed.errors["disconnect"] == 0


async def test_funding_polled_over_rest_where_the_plan_says_so() -> None:
    # binanceusdm with funding from GET /fapi/v1/premiumIndex (all symbols: a list of the
    # fixture's objects) every 50 ms instead of from the mark stream
    plan = dataclasses.replace(
        KNOWN["binanceusdm"], funding=FundingSource.POLL_FUNDING_RATES, info_funding=None
    )
    premium = json.loads(fixture("binance", "rest_premiumIndex.json"))
    routes = {**BINANCE_ROUTES, "/fapi/v1/premiumIndex": json.dumps([premium])}
    async with venue(BinanceDialect(), routes) as (ws, rest):
        run = Run(binance_feed(ws, rest, plan=plan, funding_poll_interval=0.05))
        run.start()
        await until(lambda: rest.requests.count("/fapi/v1/premiumIndex") >= 3, what="3 polls")
        await until(lambda: run.of(FundingRate), what="funding")
        await run.stop()
    (funding,) = {
        (f.symbol, f.rate, f.interval_hours, f.next_funding_ts) for f in run.of(FundingRate)
    }
    # lastFundingRate "0.00006521", nextFundingTime 1778025600000 ms; no interval in the body
    assert funding == ("BTCUSDT", 0.00006521, 8.0, 1778025600.0)
    assert ("funding", FeedState.LIVE) in run.statuses()
    assert all(m.venue == "binanceusdm" for m in run.of(MarkPrice))


def test_binance_rotates_ahead_of_its_24h_limit_by_default() -> None:
    feed = CcxtProFeed("binanceusdm", ["BTCUSDT"])
    assert feed._max_connection_age == 23.5 * 3600.0
    assert CcxtProFeed("bybit", ["BTCUSDT"])._max_connection_age is None


# -- bybit ---------------------------------------------------------------------------------
def bybit_feed(ws: WsVenue, rest: RestVenue, **kw: Any) -> CcxtProFeed:
    return CcxtProFeed(
        "bybit",
        ["BTCUSDT"],
        urls={
            "api": {"public": rest.url, "ws": {"public": {"linear": f"{ws.url}/v5/public/linear"}}}
        },
        max_silence=MARK_SILENCE,
        check_interval=0.02,
        backoff=fast_backoff,
        **kw,
    )


BYBIT_ROUTES = {
    "/v5/market/instruments-info": json.dumps(BYBIT_INSTRUMENTS),
    "/v5/market/risk-limit": json.dumps(BYBIT_RISK_LIMIT),
}


async def test_bybit_tiers_subscription_marks_and_merged_funding() -> None:
    async with venue(BybitDialect(), BYBIT_ROUTES) as (ws, rest):
        run = Run(bybit_feed(ws, rest))
        run.start()
        await until(lambda: len(run.of(MarkPrice)) >= 3, what="snapshot and deltas")
        await run.stop()

    assert rest.requests == [
        "/v5/market/instruments-info?category=linear&limit=1000",
        "/v5/market/instruments-info?category=linear&limit=1000&status=PreLaunch",
        "/v5/market/risk-limit?symbol=BTCUSDT&category=linear",  # one symbol, not all pages
    ]
    assert ws.received[0][1] == "/v5/public/linear"
    assert json.loads(ws.subscriptions()[0][1]) == {
        "op": "subscribe",
        "req_id": 1,
        "args": ["tickers.BTCUSDT"],
    }

    (spec,) = run.of(InstrumentSpec)
    inst = spec.instrument
    assert (inst.venue, inst.symbol) == ("bybit", "BTCUSDT")
    assert inst.funding_interval_hours == 8.0  # fundingInterval 480 min
    # risk limits: up to 2,000,000 USDT at 0.5 %, then 0.56 % with mmDeduction 1200
    # (= 2,000,000 · (0.0056 − 0.005), so the requirement is continuous at the bound)
    assert inst.maintenance.tiers == (Tier(0.0, 0.005, 0.0), Tier(2_000_000.0, 0.0056, 1200.0))
    assert inst.maintenance.requirement(2_000_000.0) == pytest.approx(10_000.0)

    first, second = run.of(MarkPrice)[:2]
    # snapshot: markPrice "95041.73", indexPrice "95004.02", ts 1778000001012
    assert (first.mark, first.oracle, first.ts_event) == (95041.73, 95004.02, 1778000001.012)
    # delta: markPrice "95044.10", indexPrice "95006.35", ts 1778000001112
    assert (second.mark, second.oracle, second.ts_event) == (95044.10, 95006.35, 1778000001.112)
    f1, f2 = run.of(FundingRate)[:2]
    assert (f1.rate, f1.interval_hours, f1.next_funding_ts) == (0.0000652, 8.0, 1778025600.0)
    # the delta has no nextFundingTime: ccxt merges it into the snapshot, so it is kept
    assert (f2.rate, f2.next_funding_ts) == (0.0000655, 1778025600.0)


async def test_bybit_tiers_unavailable_fall_back_to_configured_maintenance() -> None:
    routes = {"/v5/market/instruments-info": json.dumps(BYBIT_INSTRUMENTS)}  # no risk-limit
    configured = MaintenanceSchedule.flat(0.006)
    async with venue(BybitDialect(), routes) as (ws, rest):
        run = Run(bybit_feed(ws, rest, maintenance={"BTCUSDT": configured}))
        run.start()
        await until(lambda: run.of(MarkPrice), what="marks")
        await run.stop()
    (spec,) = run.of(InstrumentSpec)
    assert spec.instrument.maintenance is configured
    # configuration wins, so the risk-limit endpoint was not even asked
    assert not any("risk-limit" in r for r in rest.requests)


async def test_bybit_failed_tier_request_is_logged_and_the_feed_goes_on() -> None:
    routes = {"/v5/market/instruments-info": json.dumps(BYBIT_INSTRUMENTS)}  # risk-limit: 404
    async with venue(BybitDialect(), routes) as (ws, rest):
        run = Run(bybit_feed(ws, rest))
        run.start()
        await until(lambda: run.of(MarkPrice), what="marks")
        await run.stop()
    assert "/v5/market/risk-limit?symbol=BTCUSDT&category=linear" in rest.requests
    assert run.of(InstrumentSpec) == []  # no schedule known: no instrument is invented


@pytest.mark.parametrize(
    "body",
    [
        "<html>503</html>",
        json.dumps(
            {
                "retCode": 0,
                "retMsg": "OK",
                "result": {
                    "list": [
                        {
                            "id": 1,
                            "symbol": "BTCUSDT",
                            "riskLimitValue": "x",
                            "maintenanceMargin": "abc",
                        }
                    ]
                },
            }
        ),
        json.dumps({"retCode": 10001, "retMsg": "params error", "result": {}}),
    ],
    ids=["html", "wrong_types", "error_code"],
)
async def test_bybit_bad_risk_limit_body_gives_no_instrument_and_the_feed_goes_on(
    body: str,
) -> None:
    routes = {**BYBIT_ROUTES, "/v5/market/risk-limit": body}
    async with venue(BybitDialect(), routes) as (ws, rest):
        run = Run(bybit_feed(ws, rest))
        run.start()
        await until(lambda: len(run.of(MarkPrice)) >= 2, what="marks")
        await run.stop()
    assert run.of(InstrumentSpec) == []


async def test_bybit_unanswered_pings_time_out_and_the_feed_reconnects() -> None:
    async with venue(BybitDialect(), BYBIT_ROUTES) as (ws, rest):
        run = Run(bybit_feed(ws, rest, streaming={"keepAlive": 150}))
        run.start()
        await _flowing(run, ws)
        await until(lambda: len(ws.pings()) >= 1, what="an app-level ping")
        ping = json.loads(ws.pings()[0])
        assert set(ping) == {"req_id", "op"}
        assert ping["op"] == "ping"
        # counted from here: on a loaded machine a 150 ms keepalive may have missed once already
        after, conns = len(run.events), len(ws.connections)
        ws.answer_pings = False
        await until(lambda: len(ws.connections) > conns, what="a reconnect after missing pongs")
        ws.answer_pings = True
        await until(
            lambda: any(n >= conns and "subscribe" in t for n, t in ws.subscriptions()),
            what="a resubscription",
        )
        await until(lambda: len(run.of(MarkPrice, after)) >= 2, what="marks again")
        await run.stop()
    down = [e for e in run.of(FeedStatus, after) if e.state is FeedState.DOWN]
    assert any("RequestTimeout" in e.detail for e in down)


async def test_bybit_subscribe_error_frame_does_not_stop_the_feed() -> None:
    async with venue(BybitDialect(), BYBIT_ROUTES) as (ws, rest):
        run = Run(bybit_feed(ws, rest))
        run.start()
        after = await _flowing(run, ws)
        await ws.inject(fixture("bybit", "ws_subscribe_error.json"))
        await until(lambda: len(run.of(MarkPrice, after)) >= 2, what="marks after the error")
        await run.stop()


# -- okx -----------------------------------------------------------------------------------
async def test_okx_mark_and_funding_streams_with_text_ping() -> None:
    routes = {"/api/v5/public/instruments": json.dumps(OKX_INSTRUMENTS)}
    async with venue(OkxDialect(), routes) as (ws, rest):
        run = Run(
            CcxtProFeed(
                "okx",
                ["BTC-USDT-SWAP"],
                urls={"api": {"rest": rest.url, "ws": f"{ws.url}/ws/v5"}},
                streaming={"keepAlive": 100},
                max_silence=MARK_SILENCE,
                funding_max_silence=MARK_SILENCE,
                check_interval=0.02,
                backoff=fast_backoff,
            )
        )
        run.start()
        await until(lambda: run.of(FundingRate) and run.of(MarkPrice), what="mark and funding")
        await until(lambda: "ping" in ws.pings(), what="a text ping")
        await run.stop()

    assert rest.requests == ["/api/v5/public/instruments?instType=SWAP"]
    assert ws.received[0][1] == "/ws/v5/public"
    subs = sorted(json.loads(t)["args"][0]["channel"] for _, t in ws.subscriptions())
    assert subs == ["funding-rate", "mark-price"]
    assert {json.dumps(json.loads(t)) for _, t in ws.subscriptions()} == {
        json.dumps(json.loads(fixture("okx", "ws_subscribe_mark-price.json"))),
        json.dumps(json.loads(fixture("okx", "ws_subscribe_funding-rate.json"))),
    }
    assert run.of(InstrumentSpec) == []  # OKX tiers come from configuration only
    mark = run.of(MarkPrice)[0]
    assert (mark.venue, mark.symbol, mark.mark, mark.oracle, mark.ts_event) == (
        "okx",
        "BTC-USDT-SWAP",
        95038.7,
        None,
        1778000001.2,
    )
    funding = run.of(FundingRate)[0]
    # fundingTime 1778025600000 → next settlement; nextFundingTime − fundingTime = 8 h
    assert (funding.rate, funding.interval_hours, funding.next_funding_ts, funding.ts_event) == (
        0.0000652,
        8.0,
        1778025600.0,
        1778000001.5,
    )
    assert ("funding", FeedState.LIVE) in run.statuses()


def test_other_ccxt_exchanges_use_their_id_and_a_plan_from_ccxt() -> None:
    feed = CcxtProFeed("aster", ["BTCUSDT"])
    assert feed.venue == "aster"
    assert feed.plan.exchange_id == "aster"
    with pytest.raises(ValueError, match="no exchange"):
        CcxtProFeed("not_an_exchange", ["BTCUSDT"])


async def test_okx_error_event_is_counted_and_both_streams_keep_flowing() -> None:
    routes = {"/api/v5/public/instruments": json.dumps(OKX_INSTRUMENTS)}
    async with venue(OkxDialect(), routes) as (ws, rest):
        run = Run(
            CcxtProFeed(
                "okx",
                ["BTC-USDT-SWAP"],
                urls={"api": {"rest": rest.url, "ws": f"{ws.url}/ws/v5"}},
                max_silence=MARK_SILENCE,
                funding_max_silence=MARK_SILENCE,
                check_interval=0.02,
                backoff=fast_backoff,
            )
        )
        run.start()
        await until(lambda: run.of(FundingRate) and run.of(MarkPrice), what="mark and funding")
        after = len(run.events)
        await ws.inject(fixture("okx", "ws_error.json"))  # code 60018, channel doesn't exist
        await until(lambda: run.feed.errors["venue_error"] >= 1, what="the error counted")
        await until(
            lambda: run.of(MarkPrice, after) and run.of(FundingRate, after), what="data again"
        )
        await run.stop()
    down = [e for e in run.of(FeedStatus, after) if e.state is FeedState.DOWN]
    assert any("60018" in e.detail for e in down)
