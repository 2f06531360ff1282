"""The Hyperliquid feed against loopback servers speaking Hyperliquid's wire format."""

from __future__ import annotations

import asyncio
import contextlib
import copy
import json
from dataclasses import replace
from typing import Any

import pytest

from monitor.errors import ConfigError
from monitor.model.events import (
    AccountSnapshot,
    FeedState,
    FeedStatus,
    FundingPayment,
    InstrumentSpec,
    MarkPrice,
)
from monitor.model.instruments import MarginMode
from monitor.venues.hyperliquid.feed import (
    HyperliquidFeed,
    HyperliquidOptions,
    account_options,
    default_ws_settings,
)
from tests.venues.servers import Conn, HttpServer, WsServer, fixture, run_feed, until

USER = "0x7a3b6f0e2d9c41b58e6f1c2d3e4f5a6b7c8d9e0f"


class HlVenue:
    """A Hyperliquid look-alike: acks subscriptions, pushes activeAssetCtx ticks for the
    subscribed coins every ``tick`` seconds, answers pings, sends account states."""

    def __init__(self) -> None:
        self.answer_pings = True
        self.stalled = False
        self.tick = 0.03
        self.price = 95031.0

    async def handler(self, conn: Conn) -> None:
        await conn.send("Websocket connection established.")
        coins: list[str] = []
        pusher = asyncio.create_task(self._push(conn, coins))
        try:
            async for msg in conn.ws:
                conn.received.append(str(msg))
                d = json.loads(msg)
                if d.get("method") == "ping":
                    if self.answer_pings:
                        await conn.send(fixture("hyperliquid", "ws_pong.json"))
                    continue
                if d.get("method") != "subscribe":
                    continue
                sub = d["subscription"]
                await conn.send({"channel": "subscriptionResponse", "data": d})
                if sub["type"] == "activeAssetCtx":
                    coins.append(sub["coin"])
                elif sub["type"] == "clearinghouseState":
                    push = fixture("hyperliquid", "ws_clearinghouseState.json")
                    push["data"]["user"] = sub["user"]
                    await conn.send(push)
                elif sub["type"] == "userFundings":
                    await conn.send(
                        {
                            "channel": "userFundings",
                            "data": {
                                "isSnapshot": True,
                                "user": sub["user"],
                                "fundings": [
                                    {
                                        "time": 1_777_996_800_000,
                                        "coin": "BTC",
                                        "usdc": "-0.0594",
                                        "szi": "0.05",
                                        "fundingRate": "0.0000125",
                                        "nSamples": None,
                                    }
                                ],
                            },
                        }
                    )
        finally:
            pusher.cancel()

    async def _push(self, conn: Conn, coins: list[str]) -> None:
        base = fixture("hyperliquid", "ws_activeAssetCtx.json")
        while True:
            await asyncio.sleep(self.tick)
            if self.stalled:
                continue
            for coin in list(coins):
                frame = copy.deepcopy(base)
                frame["data"]["coin"] = coin
                frame["data"]["ctx"]["markPx"] = str(self.price)
                await conn.send(frame)


def rest_server(http: HttpServer, modes: dict[str, str] | None = None) -> None:
    """``POST /info`` as Hyperliquid answers it; ``modes`` gives a user's account mode
    (``userAbstraction``), "default" (a new account's answer) for the others."""

    def info(body: str) -> tuple[int, str]:
        req = json.loads(body)
        kind = req["type"]
        if kind == "metaAndAssetCtxs":
            return 200, json.dumps(
                fixture("hyperliquid", "rest_info_metaAndAssetCtxs_response.json")
            )
        if kind == "clearinghouseState":
            return 200, json.dumps(
                fixture("hyperliquid", "rest_info_clearinghouseState_response.json")
            )
        if kind == "userAbstraction":
            return 200, json.dumps((modes or {}).get(req["user"], "default"))
        return 400, '"unknown"'

    http.route("POST", "/info", info)


def make_feed(ws_url: str, rest_url: str, **options: Any) -> HyperliquidFeed:
    settings = replace(
        default_ws_settings(ws_url),
        check_interval=0.02,
        app_ping_interval=0.15,
        pong_timeout=0.25,
        backoff_initial=0.05,
        backoff_cap=0.2,
        open_timeout=1.0,
        close_timeout=0.2,
    )
    opts = HyperliquidOptions(
        coins=("BTC",),
        addresses=(USER,),
        rest_url=rest_url,
        price_max_silence=0.3,
        rest_timeout=2.0,
    )
    return HyperliquidFeed(replace(opts, **options), settings)


def marks(events: list[Any], coin: str = "BTC") -> list[MarkPrice]:
    return [e for e in events if isinstance(e, MarkPrice) and e.symbol == coin]


def statuses(events: list[Any], state: FeedState, channel: str | None = None) -> list[FeedStatus]:
    return [
        e
        for e in events
        if isinstance(e, FeedStatus) and e.state is state and channel in (None, e.channel)
    ]


@contextlib.asynccontextmanager
async def venue_servers(venue: HlVenue) -> Any:
    http = HttpServer()
    rest_server(http)
    async with WsServer(venue.handler) as ws, http:
        yield ws, http


async def test_bootstrap_subscriptions_pings_and_events_are_exact() -> None:
    venue = HlVenue()
    async with venue_servers(venue) as (ws, http):
        feed = make_feed(ws.url, http.url)

        async def scenario(events: list[Any]) -> None:
            await until(lambda: ws.conns and len(ws.conns[0].received) >= 5, what="ping")
            await until(lambda: any(isinstance(e, FundingPayment) for e in events))
            await until(lambda: len(marks(events, "ETH")) >= 2, what="ETH ticks")

        events = await run_feed(feed, scenario)

    # REST bootstrap body, exactly the documented request
    assert json.loads(http.requests[0][2]) == fixture(
        "hyperliquid", "rest_info_metaAndAssetCtxs_request.json"
    )
    assert http.requests[0][:2] == ("POST", "/info")
    sent = ws.conns[0].received_json()
    assert sent[:3] == [
        fixture("hyperliquid", "ws_subscribe_activeAssetCtx.json"),
        fixture("hyperliquid", "ws_subscribe_clearinghouseState.json"),
        fixture("hyperliquid", "ws_subscribe_userFundings.json"),
    ]
    # ETH is held (isolated short) but was not watched: subscribed live
    eth_sub = {"method": "subscribe", "subscription": {"type": "activeAssetCtx", "coin": "ETH"}}
    assert eth_sub in sent
    assert fixture("hyperliquid", "ws_ping.json") in sent
    assert all(m["method"] in ("subscribe", "ping") for m in sent)

    specs = {e.instrument.symbol: e.instrument for e in events if isinstance(e, InstrumentSpec)}
    assert [t.rate for t in specs["BTC"].maintenance.tiers] == pytest.approx([1 / 80, 1 / 40])
    ws_marks = [m for m in marks(events) if m.ts_recv > 0]
    assert ws_marks[-1].mark == 95031.0
    assert ws_marks[-1].oracle == 95012.0
    (snap,) = [e for e in events if isinstance(e, AccountSnapshot)]
    assert snap.account == USER
    assert [p.margin_mode for p in snap.positions] == [MarginMode.CROSS, MarginMode.ISOLATED]
    (paid,) = [e for e in events if isinstance(e, FundingPayment)]
    assert (paid.account, paid.symbol, paid.amount) == (USER, "BTC", -0.0594)
    assert statuses(events, FeedState.LIVE, "connection")
    assert feed.ws.stats.bad_frames == 0  # the greeting text is not an error


@pytest.mark.parametrize(
    ("fault", "reason"),
    [("abort", "1006"), ("close", "1001")],
)
async def test_dropped_connection_reconnects_resubscribes_and_data_flows_again(
    fault: str, reason: str
) -> None:
    venue = HlVenue()
    async with venue_servers(venue) as (ws, http):
        feed = make_feed(ws.url, http.url)

        async def scenario(events: list[Any]) -> None:
            await until(lambda: len(marks(events)) >= 3, what="first ticks")
            conn = ws.conns[0]
            if fault == "abort":
                conn.abort()
            else:
                await conn.close(1001, "going away")
            await until(lambda: len(ws.conns) >= 2, what="reconnect")
            n = len(marks(events))
            await until(lambda: len(marks(events)) >= n + 3, what="ticks after reconnect")

        events = await run_feed(feed, scenario)

    (down,) = statuses(events, FeedState.DOWN, "connection")
    assert reason in down.detail
    assert len(statuses(events, FeedState.LIVE, "connection")) == 2
    first = [m for m in ws.conns[0].received_json() if m.get("method") == "subscribe"]
    again = [m for m in ws.conns[1].received_json() if m.get("method") == "subscribe"]
    # everything resubscribed, the coin found held (ETH) included, each once
    assert sorted(map(json.dumps, again)) == sorted(map(json.dumps, first))
    assert len(first) == 4
    assert feed.ws.stats.connects == 2


async def test_stall_reports_stale_forces_reconnect_and_reports_recovery() -> None:
    venue = HlVenue()
    async with venue_servers(venue) as (ws, http):
        feed = make_feed(ws.url, http.url)

        async def scenario(events: list[Any]) -> None:
            await until(lambda: len(marks(events)) >= 2, what="first ticks")
            venue.stalled = True  # TCP stays open, nothing comes
            await until(lambda: statuses(events, FeedState.STALE), what="stale")
            await until(lambda: len(ws.conns) >= 2, what="forced reconnect")
            venue.stalled = False
            await until(lambda: statuses(events, FeedState.RECOVERED), what="recovered")

        events = await run_feed(feed, scenario)

    stale = statuses(events, FeedState.STALE)
    assert {s.channel for s in stale} == {"activeAssetCtx:BTC"}
    (recovered,) = statuses(events, FeedState.RECOVERED)
    assert recovered.channel == "activeAssetCtx:BTC"
    assert feed.ws.stats.stale_reconnects >= 1
    assert "stale" in feed.ws.stats.last_disconnect


async def test_garbage_wrong_types_and_error_frames_are_counted_and_skipped() -> None:
    venue = HlVenue()
    async with venue_servers(venue) as (ws, http):
        feed = make_feed(ws.url, http.url)

        async def scenario(events: list[Any]) -> None:
            # the REST bootstrap prices BTC before the socket is up: wait for both
            await until(lambda: bool(ws.conns) and len(marks(events)) >= 2)
            conn = ws.conns[0]
            await conn.send("}{ not json")
            await conn.ws.send(b"\xff\xfe\x00")
            bad = fixture("hyperliquid", "ws_activeAssetCtx.json")
            bad["data"]["ctx"]["markPx"] = "NaN"
            await conn.send(bad)
            bad["data"]["ctx"]["markPx"] = {"price": 1}
            await conn.send(bad)
            bad["data"]["ctx"]["markPx"] = "-3"
            await conn.send(bad)
            await conn.send(fixture("hyperliquid", "ws_error.json"))
            await conn.send({"channel": "clearinghouseState", "data": {"user": USER}})
            await until(lambda: feed.ws.stats.bad_frames >= 7, what="bad frames counted")
            n = len(marks(events))
            await until(lambda: len(marks(events)) >= n + 2, what="data keeps flowing")

        events = await run_feed(feed, scenario)

    assert feed.ws.stats.bad_frames == 7
    assert feed.ws.stats.connects == 1  # bad frames do not cost the connection
    assert all(m.mark > 0 for m in marks(events))
    assert not statuses(events, FeedState.DOWN)


async def test_refused_connections_are_retried_with_backoff_until_the_venue_is_back() -> None:
    venue = HlVenue()
    ws = WsServer(venue.handler)
    await ws.start()
    await ws.stop()  # the port is known, nobody listens: connections are refused
    http = HttpServer()
    rest_server(http)
    async with http:
        feed = make_feed(ws.url, http.url)

        async def scenario(events: list[Any]) -> None:
            await until(lambda: len(statuses(events, FeedState.DOWN)) >= 3, what="refused attempts")
            await ws.start()
            await until(lambda: statuses(events, FeedState.LIVE), what="connected again")
            n = len(marks(events))
            await until(lambda: len(marks(events)) >= n + 2, what="data after the venue is back")

        try:
            events = await run_feed(feed, scenario)
        finally:
            await ws.stop()

    downs = statuses(events, FeedState.DOWN, "connection")
    assert all("connect failed" in d.detail for d in downs)
    assert statuses(events, FeedState.LIVE, "connection")
    assert len(downs) >= 3
    assert feed.ws.backoff.base_delay() == pytest.approx(0.2)  # grew to the cap: 0.05, 0.1, 0.2


async def test_unanswered_pings_force_a_reconnect() -> None:
    venue = HlVenue()
    venue.answer_pings = False
    async with venue_servers(venue) as (ws, http):
        feed = make_feed(ws.url, http.url)

        async def scenario(events: list[Any]) -> None:
            await until(lambda: len(ws.conns) >= 2, what="reconnect after missing pong")

        events = await run_feed(feed, scenario)

    assert feed.ws.stats.ping_timeouts >= 1
    (down, *_) = statuses(events, FeedState.DOWN)
    assert "no pong" in down.detail


async def test_addresses_beyond_the_websocket_user_limit_are_polled_over_rest() -> None:
    venue = HlVenue()
    users = [f"0x{i:040x}" for i in range(1, 13)]
    async with venue_servers(venue) as (ws, http):
        feed = make_feed(
            ws.url,
            http.url,
            addresses=tuple(users),
            poll_interval=0.05,
            weight_budget_per_minute=60_000.0,
        )
        # 2 polled addresses × weight 2 = 4 per cycle; 60 000/min allows one cycle per 4 ms
        assert feed.poll_interval() == pytest.approx(0.05)

        async def scenario(events: list[Any]) -> None:
            await until(lambda: feed.polls >= 4, what="polls")

        events = await run_feed(feed, scenario)

    assert feed.ws_addresses == tuple(users[:10])
    assert feed.polled_addresses == tuple(users[10:])
    ws_users = {
        m["subscription"]["user"]
        for m in ws.conns[0].received_json()
        if m.get("method") == "subscribe" and "user" in m["subscription"]
    }
    assert ws_users == set(users[:10])
    polled = [json.loads(b) for _, _, b in http.requests if "clearinghouseState" in b]
    assert {p["user"] for p in polled} == set(users[10:])
    accounts = {e.account for e in events if isinstance(e, AccountSnapshot)}
    assert set(users[10:]) <= accounts


def test_poll_interval_is_stretched_to_stay_within_the_weight_budget() -> None:
    users = tuple(f"0x{i:040x}" for i in range(1, 111))  # 100 polled
    feed = HyperliquidFeed(
        HyperliquidOptions(addresses=users, poll_interval=1.0, weight_budget_per_minute=600.0)
    )
    # 100 addresses × weight 2 = 200 per cycle; 600/min → at most 3 cycles/min → 20 s
    assert feed.poll_interval() == pytest.approx(20.0)


async def test_connection_is_renewed_ahead_of_its_lifetime() -> None:
    venue = HlVenue()
    async with venue_servers(venue) as (ws, http):
        feed = make_feed(ws.url, http.url)
        feed.ws.settings = replace(feed.ws.settings, max_lifetime=0.2)

        async def scenario(events: list[Any]) -> None:
            await until(lambda: len(ws.conns) >= 2, what="renewal")

        await run_feed(feed, scenario)

    assert feed.ws.stats.lifetime_reconnects >= 1
    assert "lifetime" in feed.ws.stats.last_disconnect


async def test_resnapshot_fetches_websocket_accounts_over_rest_too() -> None:
    venue = HlVenue()
    async with venue_servers(venue) as (ws, http):
        feed = make_feed(ws.url, http.url, resnapshot=True, poll_interval=0.05)
        assert feed.rest_addresses == (USER,)

        async def scenario(events: list[Any]) -> None:
            await until(lambda: feed.polls >= 2, what="re-snapshots")

        await run_feed(feed, scenario)

    polled = [json.loads(b) for _, _, b in http.requests if "clearinghouseState" in b]
    assert polled[0] == fixture("hyperliquid", "rest_info_clearinghouseState_request.json")
    assert feed.ws_addresses == (USER,)  # still streamed as well


def test_poll_interval_counts_the_spot_state_of_unified_accounts() -> None:
    users = tuple(f"0x{i:040x}" for i in range(1, 111))  # 100 polled
    feed = HyperliquidFeed(
        HyperliquidOptions(addresses=users, poll_interval=1.0, weight_budget_per_minute=600.0)
    )
    for user in users[10:60]:  # 50 of the polled addresses are unified
        feed.parser.parse_rest(f"userAbstraction:{user}", '"unifiedAccount"', 0.0)
    # (100 perp states + 50 spot states) × weight 2 = 300 per cycle; 600/min → 30 s
    assert feed.poll_interval() == pytest.approx(30.0)


def test_account_options_read_the_venue_table_and_refuse_bad_values() -> None:
    table = {
        "account_modes": False,
        "mode_interval": 600,
        "account_events": True,
        "account_silence_budget": 0,
        "symbols": ["BTC"],  # other keys are not this function's
    }
    got = account_options(table)
    assert got == {
        "account_modes": False,
        "account_events": True,
        "mode_interval": 600.0,
        "account_silence_budget": 0.0,
    }
    opts = replace(HyperliquidOptions(addresses=(USER,), resnapshot=True), **got)
    assert HyperliquidFeed(opts).silence == {}  # a budget of 0 turns the watchdog off
    assert account_options({}) == {}
    for bad in (
        {"account_modes": "yes"},
        {"mode_interval": 0},
        {"mode_interval": True},
        {"account_silence_budget": -1},
        {"account_silence_budget": float("nan")},
    ):
        with pytest.raises(ConfigError, match=r"venues\.hyperliquid"):
            account_options(bad)


def test_default_silence_budget_is_three_polls_and_at_least_a_minute() -> None:
    fast = HyperliquidFeed(HyperliquidOptions(addresses=(USER,), resnapshot=True))
    assert fast.silence[USER].max_silence == 60.0  # 3 × 10 s < 60 s
    slow = HyperliquidFeed(
        HyperliquidOptions(addresses=(USER,), resnapshot=True, poll_interval=30.0)
    )
    assert slow.silence[USER].max_silence == 90.0  # 3 × 30 s
    assert slow.silence[USER].channel == f"account:{USER}"
    assert HyperliquidFeed(HyperliquidOptions(addresses=(USER,))).silence == {}  # WS only
