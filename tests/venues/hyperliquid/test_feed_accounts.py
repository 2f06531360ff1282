"""The Hyperliquid feed's account side against loopback servers speaking Hyperliquid's wire
format: unified accounts (userAbstraction, spotState, spotClearinghouseState across dexes),
the account silence budget, ordering resync, ADL fills, listings learnt mid-session."""

from __future__ import annotations

import asyncio
import contextlib
import copy
import json
from collections.abc import Callable
from dataclasses import replace
from typing import Any

import pytest

from monitor.model.events import AccountSnapshot, Deleveraged, FeedState, InstrumentSpec
from monitor.venues.hyperliquid.feed import HyperliquidFeed, HyperliquidOptions, default_ws_settings
from tests.venues.hyperliquid.test_feed import HlVenue, rest_server, statuses
from tests.venues.servers import Conn, HttpServer, WsServer, fixture, run_feed, until

USER = "0x7a3b6f0e2d9c41b58e6f1c2d3e4f5a6b7c8d9e0f"
DEXES = ("", "xyz", "cash")


def feed_for(ws_url: str, rest_url: str, **options: Any) -> HyperliquidFeed:
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
        coins=("BTC",), addresses=(USER,), rest_url=rest_url, price_max_silence=5.0
    )
    return HyperliquidFeed(replace(opts, **options), settings)


def dex_state(dex: str) -> dict[str, Any]:
    name = {"": "main", "xyz": "xyz", "cash": "cash"}[dex]
    out: dict[str, Any] = fixture(
        "hyperliquid", f"rest_info_clearinghouseState_response_unified_{name}.json"
    )
    return out


def dex_meta(dex: str) -> list[Any]:
    """metaAndAssetCtxs of a dex: the first dex's fixture, or one coin on a HIP-3 dex with its
    collateral token (xyz: USDC 0, cash: USDT0 268)."""
    main: list[Any] = fixture("hyperliquid", "rest_info_metaAndAssetCtxs_response.json")
    if not dex:
        return main
    coin = {"xyz": "NVDA", "cash": "TSLA"}[dex]
    meta = {
        "universe": [{"szDecimals": 2, "name": f"{dex}:{coin}", "maxLeverage": 10}],
        "marginTables": [],
        "collateralToken": {"xyz": 0, "cash": 268}[dex],
    }
    return [meta, [dict(main[1][0], markPx="185.0", oraclePx="184.9")]]


class UnifiedVenue:
    """Hyperliquid for one unified account on three dexes: REST and WebSocket."""

    def __init__(self) -> None:
        self.mode = "unifiedAccount"

    def rest(self, http: HttpServer) -> None:
        def info(body: str) -> tuple[int, str]:
            req = json.loads(body)
            kind = req["type"]
            if kind == "metaAndAssetCtxs":
                return 200, json.dumps(dex_meta(req.get("dex", "")))
            if kind == "userAbstraction":
                return 200, json.dumps(self.mode)
            if kind == "clearinghouseState":
                return 200, json.dumps(dex_state(req.get("dex", "")))
            if kind == "spotClearinghouseState":
                name = "rest_info_spotClearinghouseState_response_unified.json"
                return 200, json.dumps(fixture("hyperliquid", name))
            return 400, '"unknown"'

        http.route("POST", "/info", info)

    async def handler(self, conn: Conn) -> None:
        async for msg in conn.ws:
            conn.received.append(str(msg))
            d = json.loads(msg)
            if d.get("method") == "ping":
                await conn.send(fixture("hyperliquid", "ws_pong.json"))
            if d.get("method") != "subscribe":
                continue
            sub = d["subscription"]
            await conn.send({"channel": "subscriptionResponse", "data": d})
            if sub["type"] == "clearinghouseState":
                dex = sub.get("dex", "")
                await conn.send(
                    {
                        "channel": "clearinghouseState",
                        "data": {
                            "dex": dex,
                            "user": sub["user"],
                            "clearinghouseState": dex_state(dex),
                        },
                    }
                )
            elif sub["type"] == "spotState":
                await conn.send(fixture("hyperliquid", "ws_spotState.json"))


@contextlib.asynccontextmanager
async def servers(handler: Callable[[Conn], Any], rest: Callable[[HttpServer], None]) -> Any:
    http = HttpServer()
    rest(http)
    async with WsServer(handler) as ws, http:
        yield ws, http


def pools(events: list[Any]) -> dict[str, AccountSnapshot]:
    return {e.account: e for e in events if isinstance(e, AccountSnapshot)}


async def test_unified_account_streams_its_pools_from_spot_and_every_dex() -> None:
    venue = UnifiedVenue()
    async with servers(venue.handler, venue.rest) as (ws, http):
        feed = feed_for(ws.url, http.url, dexes=DEXES)

        async def scenario(events: list[Any]) -> None:
            await until(lambda: f"{USER}@USDT0" in pools(events), what="USDT0 pool")
            await until(
                lambda: any(
                    m.get("subscription", {}).get("type") == "spotState"
                    for m in ws.conns[0].received_json()
                ),
                what="spotState subscription",
            )

        events = await run_feed(feed, scenario)

    bodies = [json.loads(b) for _, _, b in http.requests]
    assert fixture("hyperliquid", "rest_info_userAbstraction_request.json") in bodies
    sent = ws.conns[0].received_json()
    assert fixture("hyperliquid", "ws_subscribe_spotState.json") in sent
    snaps = [e for e in events if isinstance(e, AccountSnapshot)]
    # the per-dex states were held back until the mode was known: never a per-dex account
    assert {s.account for s in snaps} <= {USER, f"{USER}@USDT0"}
    usdc = pools(events)[USER]
    # 1500 − 882.804 = 617.196; maintenance 59.394375 + 92.5 (the main and xyz dexes)
    assert usdc.venue_equity == pytest.approx(617.196)
    assert usdc.venue_maintenance == pytest.approx(151.894375)
    assert feed.parser.collateral == {"": 0, "xyz": 0, "cash": 268}


async def test_unified_account_polled_over_rest_reads_the_spot_state_too() -> None:
    venue = UnifiedVenue()
    async with servers(venue.handler, venue.rest) as (ws, http):
        feed = feed_for(
            ws.url, http.url, dexes=DEXES, resnapshot=True, poll_interval=0.05, ws_user_limit=0
        )
        assert feed.polled_addresses == (USER,)

        async def scenario(events: list[Any]) -> None:
            await until(lambda: f"{USER}@USDT0" in pools(events), what="pools over REST")

        events = await run_feed(feed, scenario)

    bodies = [json.loads(b) for _, _, b in http.requests]
    assert fixture("hyperliquid", "rest_info_spotClearinghouseState_request.json") in bodies
    assert pools(events)[f"{USER}@USDT0"].venue_maintenance == pytest.approx(41.0)


async def test_silent_account_is_reported_stale_with_the_error_then_recovers() -> None:
    venue = HlVenue()
    failing = {"on": False}
    http = HttpServer()
    good: dict[str, Callable[[str], tuple[int, str]]] = {}

    def capture(_method: str, _path: str, respond: Callable[[str], tuple[int, str]]) -> None:
        good["info"] = respond

    probe = HttpServer()
    probe.route = capture  # type: ignore[method-assign]
    rest_server(probe)

    def info(body: str) -> tuple[int, str]:
        if failing["on"] and json.loads(body)["type"] == "clearinghouseState":
            return 500, '"internal error"'
        return good["info"](body)

    http.route("POST", "/info", info)
    async with WsServer(venue.handler) as ws, http:
        feed = feed_for(
            ws.url, http.url, resnapshot=True, poll_interval=0.05, account_silence_budget=0.3
        )
        channel = f"account:{USER}"

        async def scenario(events: list[Any]) -> None:
            await until(lambda: feed.polls >= 2, what="polls")
            failing["on"] = True
            await until(lambda: statuses(events, FeedState.STALE, channel), what="stale")
            failing["on"] = False
            await until(lambda: statuses(events, FeedState.RECOVERED, channel), what="recovered")

        events = await run_feed(feed, scenario)

    (stale,) = statuses(events, FeedState.STALE, channel)
    assert stale.venue == "hyperliquid"
    assert "limit 0.3s" in stale.detail
    assert "HTTP 500" in stale.detail  # the reason, not just the silence
    assert feed.poll_failures >= 1


class PoisonVenue(HlVenue):
    """Sends one account push 50 s ahead of the ones that follow, then three in order."""

    async def handler(self, conn: Conn) -> None:
        async for msg in conn.ws:
            conn.received.append(str(msg))
            d = json.loads(msg)
            if d.get("method") == "ping":
                await conn.send(fixture("hyperliquid", "ws_pong.json"))
            if d.get("method") == "subscribe" and d["subscription"]["type"] == "clearinghouseState":
                base = fixture("hyperliquid", "ws_clearinghouseState.json")
                t = base["data"]["clearinghouseState"]["time"]
                for offset in (50_000, 0, 1, 2):
                    frame = copy.deepcopy(base)
                    frame["data"]["clearinghouseState"]["time"] = t + offset
                    await conn.send(frame)


async def test_account_pushes_refused_again_and_again_are_resynchronised_over_rest() -> None:
    venue = PoisonVenue()
    http = HttpServer()
    rest_server(http)
    async with WsServer(venue.handler) as ws, http:
        feed = feed_for(ws.url, http.url)
        assert feed.rest_addresses == ()  # no polling: only the resync fetches the account

        async def scenario(events: list[Any]) -> None:
            await until(lambda: feed.resync_fetches >= 1, what="resync")
            await until(
                lambda: any('"clearinghouseState"' in b for _, _, b in http.requests),
                what="REST re-snapshot",
            )

        events = await run_feed(feed, scenario)

    # pushes at +50 s (applied), +0 and +1 (refused: out of order), +2 (the 3rd: resync)
    assert feed.ws.stats.bad_frames == 2
    assert feed.parser.ordering_resyncs == 1
    assert len([e for e in events if isinstance(e, AccountSnapshot)]) >= 2


class FillsVenue(HlVenue):
    """Answers a userFills subscription with its snapshot, then one ADL fill."""

    async def handler(self, conn: Conn) -> None:
        async for msg in conn.ws:
            conn.received.append(str(msg))
            d = json.loads(msg)
            if d.get("method") == "ping":
                await conn.send(fixture("hyperliquid", "ws_pong.json"))
            if d.get("method") == "subscribe" and d["subscription"]["type"] == "userFills":
                await conn.send(fixture("hyperliquid", "ws_userFills_snapshot.json"))
                await asyncio.sleep(0.02)
                await conn.send(fixture("hyperliquid", "ws_userFills_adl.json"))


async def test_adl_fill_of_a_watched_address_is_an_event_when_enabled() -> None:
    venue = FillsVenue()
    http = HttpServer()
    rest_server(http)
    async with WsServer(venue.handler) as ws, http:
        feed = feed_for(ws.url, http.url, account_events=True)

        async def scenario(events: list[Any]) -> None:
            await until(lambda: any(isinstance(e, Deleveraged) for e in events), what="ADL")

        events = await run_feed(feed, scenario)

    assert fixture("hyperliquid", "ws_subscribe_userFills.json") in ws.conns[0].received_json()
    (adl,) = [e for e in events if isinstance(e, Deleveraged)]
    assert (adl.account, adl.symbol, adl.size, adl.price) == (USER, "ETH", 0.4, 3512.4)


async def test_without_account_events_no_fills_are_subscribed() -> None:
    venue = HlVenue()
    async with servers(venue.handler, rest_server) as (ws, http):
        feed = feed_for(ws.url, http.url)

        async def scenario(events: list[Any]) -> None:
            await until(lambda: any(isinstance(e, AccountSnapshot) for e in events))

        await run_feed(feed, scenario)

    types = {m["subscription"]["type"] for m in ws.conns[0].received_json() if "subscription" in m}
    assert "userFills" not in types and "spotState" not in types


class ListingVenue(HlVenue):
    """The account holds NEWCOIN, which the first metaAndAssetCtxs does not list yet."""

    async def handler(self, conn: Conn) -> None:
        async for msg in conn.ws:
            conn.received.append(str(msg))
            d = json.loads(msg)
            if d.get("method") == "ping":
                await conn.send(fixture("hyperliquid", "ws_pong.json"))
            if d.get("method") == "subscribe" and d["subscription"]["type"] == "clearinghouseState":
                push = fixture("hyperliquid", "ws_clearinghouseState.json")
                push["data"]["clearinghouseState"]["assetPositions"][0]["position"]["coin"] = (
                    "NEWCOIN"
                )
                await conn.send(push)


async def test_coin_held_but_not_listed_triggers_a_fresh_meta_and_is_learnt() -> None:
    venue = ListingVenue()
    http = HttpServer()
    metas = {"n": 0}

    def info(body: str) -> tuple[int, str]:
        kind = json.loads(body)["type"]
        if kind == "userAbstraction":
            return 200, '"default"'
        meta = fixture("hyperliquid", "rest_info_metaAndAssetCtxs_response.json")
        metas["n"] += 1
        if metas["n"] >= 2:  # listed by the time we ask again
            meta[0]["universe"].append({"szDecimals": 0, "name": "NEWCOIN", "maxLeverage": 3})
            meta[1].append(dict(meta[1][0], markPx="1.5", oraclePx="1.49"))
        return 200, json.dumps(meta)

    http.route("POST", "/info", info)
    async with WsServer(venue.handler) as ws, http:
        feed = feed_for(ws.url, http.url)

        async def scenario(events: list[Any]) -> None:
            await until(
                lambda: any(
                    isinstance(e, InstrumentSpec) and e.instrument.symbol == "NEWCOIN"
                    for e in events
                ),
                what="NEWCOIN learnt",
            )

        await run_feed(feed, scenario)

    assert feed.meta_refreshes == 1
    assert len(ws.conns) == 1  # learnt without a reconnect
