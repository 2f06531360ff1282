"""The dYdX v4 feed against loopback servers speaking the indexer's wire format."""

from __future__ import annotations

import asyncio
import copy
import json
from dataclasses import replace
from typing import Any

import pytest

from monitor.errors import ConfigError
from monitor.model.events import (
    AccountSnapshot,
    BalanceUpdate,
    FeedState,
    FeedStatus,
    FundingRate,
    InstrumentSpec,
    MarkPrice,
    PositionUpdate,
)
from monitor.venues.dydx.feed import DydxFeed, default_ws_settings
from monitor.venues.dydx.parse import VENUE
from tests.venues.servers import Conn, HttpServer, WsServer, fixture, run_feed, until

ADDR = "dydx1q8m3v5x9ljk2h7s0w4e6r8t0y2u4i6o8p0a2s4"
SUB = f"{ADDR}/0"


class DydxVenue:
    """An indexer look-alike: greeting, snapshots on subscribe, oracle updates every ``tick``
    (batched or not, as subscribed), one subaccount delta after the snapshot."""

    def __init__(self) -> None:
        self.tick = 0.03
        self.stalled = False
        self.price = 95021.07
        self.height = 61234569

    async def handler(self, conn: Conn) -> None:
        await conn.send(fixture("dydx", "ws_connected.json"))
        markets: dict[str, Any] = {}
        pusher = asyncio.create_task(self._push(conn, markets))
        try:
            async for msg in conn.ws:
                conn.received.append(str(msg))
                d = json.loads(msg)
                if d.get("type") != "subscribe":
                    continue
                if d["channel"] == "v4_markets":
                    await asyncio.sleep(0.05)  # the initial fetch takes a moment
                    await conn.send(fixture("dydx", "ws_subscribed_v4_markets.json"))
                    markets["batched"] = d.get("batched", False)
                elif d["channel"] == "v4_subaccounts":
                    snap = fixture("dydx", "ws_subscribed_v4_subaccounts.json")
                    snap["id"] = d["id"]
                    await conn.send(snap)
                    delta = fixture("dydx", "ws_channel_data_v4_subaccounts.json")
                    delta["id"] = d["id"]
                    await conn.send(delta)
                else:
                    error = fixture("dydx", "ws_error.json")
                    error["message"] = f"Invalid channel: {d['channel']}"
                    await conn.send(error)
        finally:
            pusher.cancel()

    async def _push(self, conn: Conn, markets: dict[str, Any]) -> None:
        single = fixture("dydx", "ws_channel_data_v4_markets_oraclePrices.json")
        batch = fixture("dydx", "ws_channel_batch_data_v4_markets.json")
        while True:
            await asyncio.sleep(self.tick)
            if self.stalled or "batched" not in markets:
                continue
            self.height += 1
            if markets["batched"]:
                frame = copy.deepcopy(batch)
                btc = frame["contents"][0]["oraclePrices"]["BTC-USD"]
            else:
                frame = copy.deepcopy(single)
                btc = frame["contents"]["oraclePrices"]["BTC-USD"]
                frame["contents"]["oraclePrices"]["ETH-USD"]["effectiveAtHeight"] = str(self.height)
            btc["oraclePrice"] = str(self.price)
            btc["effectiveAtHeight"] = str(self.height)
            await conn.send(frame)


def make_http() -> HttpServer:
    http = HttpServer()
    http.route(
        "GET",
        "/v4/perpetualMarkets",
        lambda _body: (200, json.dumps(fixture("dydx", "rest_perpetualMarkets.json"))),
    )
    return http


def make_feed(ws_url: str, rest_url: str, **kwargs: Any) -> DydxFeed:
    settings = replace(
        default_ws_settings(ws_url),
        check_interval=0.02,
        protocol_ping_interval=0.2,
        protocol_ping_timeout=0.3,
        backoff_initial=0.05,
        backoff_cap=0.2,
        open_timeout=1.0,
        close_timeout=0.2,
    )
    args: dict[str, Any] = {
        "subaccounts": (SUB,),
        "rest_url": f"{rest_url}/v4",
        "markets_max_silence": 0.3,
        "rest_timeout": 2.0,
    }
    args.update(kwargs)
    return DydxFeed(ws=settings, **args)


def oracle(events: list[Any]) -> list[MarkPrice]:
    return [e for e in events if isinstance(e, MarkPrice) and e.ts_event is not None]


def statuses(events: list[Any], state: FeedState) -> list[FeedStatus]:
    return [e for e in events if isinstance(e, FeedStatus) and e.state is state]


async def test_bootstrap_greeting_gated_subscriptions_and_events_are_exact() -> None:
    venue = DydxVenue()
    http = make_http()
    async with WsServer(venue.handler) as ws, http:
        feed = make_feed(ws.url, http.url)

        async def scenario(events: list[Any]) -> None:
            await until(lambda: any(isinstance(e, BalanceUpdate) for e in events))
            await until(lambda: len(oracle(events)) >= 4, what="oracle updates")

        events = await run_feed(feed, scenario)

    assert http.requests[0][:2] == ("GET", "/v4/perpetualMarkets")
    assert ws.conns[0].received_json() == [
        fixture("dydx", "ws_subscribe_v4_markets.json"),
        fixture("dydx", "ws_subscribe_v4_subaccounts.json"),
    ]
    specs = [e for e in events if isinstance(e, InstrumentSpec)]
    # REST bootstrap, then the WS markets snapshot: 3 markets each
    assert len(specs) == 6
    btc = next(s.instrument for s in specs if s.instrument.symbol == "BTC-USD")
    assert btc.maintenance.tiers[0].rate == pytest.approx(0.012)
    assert btc.initial_margin_rate == pytest.approx(0.02)
    funding = [e for e in events if isinstance(e, FundingRate) and e.symbol == "BTC-USD"]
    assert funding[0].rate == pytest.approx(0.00000563)
    (snap,) = [e for e in events if isinstance(e, AccountSnapshot)]
    assert snap.account == SUB
    (update,) = [e for e in events if isinstance(e, PositionUpdate)]
    assert update.position.size == 0.15
    (balance,) = [e for e in events if isinstance(e, BalanceUpdate)]
    assert balance.cross_cash == pytest.approx(-2127.303114)
    last = oracle(events)[-1]
    assert last.mark == last.oracle
    assert feed.ws.stats.bad_frames == 0


async def test_batched_markets_subscription_is_parsed() -> None:
    venue = DydxVenue()
    http = make_http()
    async with WsServer(venue.handler) as ws, http:
        feed = make_feed(ws.url, http.url, batched=True, subaccounts=())

        async def scenario(events: list[Any]) -> None:
            await until(lambda: len(oracle(events)) >= 3)

        events = await run_feed(feed, scenario)

    assert ws.conns[0].received_json() == [fixture("dydx", "ws_subscribe_v4_markets_batched.json")]
    assert {m.symbol for m in oracle(events)} == {"BTC-USD"}
    assert any(isinstance(e, FundingRate) and e.symbol == "ETH-USD" for e in events)


async def test_abrupt_drop_reconnects_resubscribes_and_snapshot_replaces_state() -> None:
    venue = DydxVenue()
    http = make_http()
    async with WsServer(venue.handler) as ws, http:
        feed = make_feed(ws.url, http.url)

        async def scenario(events: list[Any]) -> None:
            await until(lambda: len(oracle(events)) >= 2)
            ws.conns[0].abort()
            await until(lambda: len(ws.conns) >= 2, what="reconnect")
            n = len(oracle(events))
            await until(lambda: len(oracle(events)) >= n + 2, what="data again")

        events = await run_feed(feed, scenario)

    assert ws.conns[1].received_json() == ws.conns[0].received_json()
    assert len([e for e in events if isinstance(e, AccountSnapshot)]) == 2
    assert "1006" in statuses(events, FeedState.DOWN)[0].detail
    # the snapshot after the reconnect is at the same block: the delta is not refused
    assert feed.ws.stats.bad_frames == 0


async def test_stalled_markets_go_stale_then_recover_after_reconnect() -> None:
    venue = DydxVenue()
    http = make_http()
    async with WsServer(venue.handler) as ws, http:
        feed = make_feed(ws.url, http.url, subaccounts=())

        async def scenario(events: list[Any]) -> None:
            await until(lambda: len(oracle(events)) >= 2)
            venue.stalled = True
            await until(lambda: statuses(events, FeedState.STALE), what="stale")
            await until(lambda: len(ws.conns) >= 2, what="forced reconnect")
            venue.stalled = False
            await until(lambda: statuses(events, FeedState.RECOVERED), what="recovered")

        events = await run_feed(feed, scenario)

    assert statuses(events, FeedState.STALE)[0].channel == "v4_markets"
    assert statuses(events, FeedState.RECOVERED)[0].channel == "v4_markets"


async def test_error_frame_for_a_bad_subscription_is_counted_and_the_feed_goes_on() -> None:
    venue = DydxVenue()
    http = make_http()
    async with WsServer(venue.handler) as ws, http:
        feed = make_feed(ws.url, http.url, subaccounts=(), parent_subaccounts=(SUB,))

        async def scenario(events: list[Any]) -> None:
            await until(lambda: feed.ws.stats.bad_frames >= 1, what="error frame")
            n = len(oracle(events))
            await until(lambda: len(oracle(events)) >= n + 2, what="data goes on")

        await run_feed(feed, scenario)

    assert ws.conns[0].received_json()[1] == {
        "type": "subscribe",
        "channel": "v4_parent_subaccounts",
        "id": SUB,
    }
    assert any("Invalid channel" in p for p in feed.ws.stats.bad_by_problem)
    assert feed.ws.stats.connects == 1


def test_subaccount_ids_are_validated() -> None:
    with pytest.raises(ConfigError, match="address>/<number"):
        DydxFeed(subaccounts=("dydx1abc",))


async def test_unanswered_protocol_pings_close_the_connection_and_it_reconnects() -> None:
    async def deaf(conn: Conn) -> None:
        await conn.send(fixture("dydx", "ws_connected.json"))
        conn.ws.transport.pause_reading()  # nothing is read: protocol pings go unanswered
        await conn.ws.wait_closed()

    http = make_http()
    async with WsServer(deaf) as ws, http:
        feed = make_feed(ws.url, http.url, subaccounts=(), markets_max_silence=60.0)

        async def scenario(events: list[Any]) -> None:
            await until(lambda: len(ws.conns) >= 2, what="reconnect after ping timeout")

        events = await run_feed(feed, scenario)

    down = statuses(events, FeedState.DOWN)[0]
    assert "ping" in down.detail
    assert feed.ws.stats.stale_reconnects == 0  # it was the keepalive, not the watchdog


class RestAccount:
    """The REST subaccount endpoint with a switchable answer."""

    def __init__(self) -> None:
        self.status = 200
        self.calls = 0

    def __call__(self, _body: str) -> tuple[int, str]:
        self.calls += 1
        if self.status != 200:
            return self.status, '{"errors": [{"msg": "indexer unavailable"}]}'
        return 200, json.dumps(fixture("dydx", "rest_subaccount.json"))


def quiet_venue() -> DydxVenue:
    """Markets flow; the account channel says nothing after its snapshot."""
    venue = DydxVenue()

    async def handler(conn: Conn) -> None:
        await conn.send(fixture("dydx", "ws_connected.json"))
        markets: dict[str, Any] = {}
        pusher = asyncio.create_task(venue._push(conn, markets))
        try:
            async for msg in conn.ws:
                d = json.loads(msg)
                conn.received.append(str(msg))
                if d.get("channel") == "v4_markets":
                    await conn.send(fixture("dydx", "ws_subscribed_v4_markets.json"))
                    markets["batched"] = False
                elif d.get("channel") == "v4_subaccounts":
                    snap = fixture("dydx", "ws_subscribed_v4_subaccounts.json")
                    await conn.send(snap)
        finally:
            pusher.cancel()

    venue.handler = handler  # type: ignore[method-assign]
    return venue


def account_statuses(events: list[Any], state: FeedState) -> list[FeedStatus]:
    return [e for e in statuses(events, state) if e.channel == f"account:{SUB}"]


async def test_a_silent_account_goes_stale_with_the_reason_and_recovers_on_rest_data() -> None:
    venue = quiet_venue()
    http = make_http()
    rest = RestAccount()
    rest.status = 503
    http.route("GET", f"/v4/addresses/{ADDR}/subaccountNumber/0", rest)
    async with WsServer(venue.handler) as ws, http:
        feed = make_feed(ws.url, http.url, account_max_silence=0.4, resnapshot_interval=0.1)

        async def scenario(events: list[Any]) -> None:
            await until(lambda: account_statuses(events, FeedState.STALE), what="account stale")
            rest.status = 200
            await until(lambda: account_statuses(events, FeedState.RECOVERED), what="recovered")

        events = await run_feed(feed, scenario)

    (stale,) = account_statuses(events, FeedState.STALE)
    assert stale.venue == VENUE
    assert "no data for" in stale.detail and "limit 0.4s" in stale.detail
    assert "HTTP 503" in stale.detail  # why the safety net failed
    # the REST re-snapshot that ended the silence is emitted as the account's snapshot
    snaps = [e for e in events if isinstance(e, AccountSnapshot)]
    assert events.index(account_statuses(events, FeedState.RECOVERED)[0]) > events.index(snaps[-1])
    assert len(account_statuses(events, FeedState.STALE)) == 1  # reported once
    assert not statuses(events, FeedState.DOWN)  # the socket itself stayed up
    assert feed.ws.stats.stale_reconnects == 0


async def test_the_account_is_re_snapshotted_over_rest_periodically() -> None:
    venue = quiet_venue()
    http = make_http()
    rest = RestAccount()
    http.route("GET", f"/v4/addresses/{ADDR}/subaccountNumber/0", rest)
    async with WsServer(venue.handler) as ws, http:
        feed = make_feed(ws.url, http.url, account_max_silence=0.5, resnapshot_interval=0.1)

        async def scenario(events: list[Any]) -> None:
            await until(lambda: rest.calls >= 3, what="three re-snapshots")
            await asyncio.sleep(0.7)  # longer than the silence budget

        events = await run_feed(feed, scenario)

    snaps = [e for e in events if isinstance(e, AccountSnapshot)]
    assert len(snaps) >= 4  # the WS snapshot, then the REST ones
    assert all(s.account == SUB for s in snaps)
    assert not account_statuses(events, FeedState.STALE)  # REST data keeps the account fresh


async def test_a_refused_delta_triggers_a_rest_re_snapshot_at_once() -> None:
    venue = quiet_venue()
    http = make_http()
    rest = RestAccount()
    http.route("GET", f"/v4/addresses/{ADDR}/subaccountNumber/0", rest)
    bad = fixture("dydx", "ws_channel_data_v4_subaccounts.json")
    bad["contents"]["perpetualPositions"][0]["size"] = "1e200"
    async with WsServer(venue.handler) as ws, http:
        feed = make_feed(ws.url, http.url, resnapshot_interval=None, resync_min_interval=0.05)

        async def scenario(events: list[Any]) -> None:
            await until(lambda: any(isinstance(e, AccountSnapshot) for e in events))
            await ws.conns[0].send(bad)
            await until(lambda: rest.calls >= 1, what="re-snapshot")
            await until(lambda: len([e for e in events if isinstance(e, AccountSnapshot)]) >= 2)

        await run_feed(feed, scenario)

    assert feed.ws.stats.bad_frames == 1
    assert rest.calls == 1
    assert SUB not in feed.parser.resync


async def test_a_new_listing_without_oracle_price_is_logged_counted_and_the_rest_flows() -> None:
    venue = DydxVenue()
    http = HttpServer()
    markets = fixture("dydx", "rest_perpetualMarkets.json")
    markets["markets"]["NEW-USD"] = dict(
        markets["markets"]["ETH-USD"], ticker="NEW-USD", oraclePrice=None
    )
    http.route("GET", "/v4/perpetualMarkets", lambda _b: (200, json.dumps(markets)))
    async with WsServer(venue.handler) as ws, http:
        feed = make_feed(ws.url, http.url, subaccounts=())

        async def scenario(events: list[Any]) -> None:
            await until(lambda: len(oracle(events)) >= 2)

        events = await run_feed(feed, scenario)

    assert feed.skipped_entries == 1  # the REST bootstrap's NEW-USD (the WS snapshot lacks it)
    assert {s.instrument.symbol for s in events if isinstance(s, InstrumentSpec)} == {
        "BTC-USD",
        "ETH-USD",
        "TRUMP-USD",
    }


def test_account_durations_are_validated() -> None:
    with pytest.raises(ConfigError, match="account_max_silence"):
        DydxFeed(subaccounts=(SUB,), account_max_silence=0.0)
    with pytest.raises(ConfigError, match="address>/<number"):
        DydxFeed(subaccounts=(f"{ADDR}/\u0661",))  # an Arabic-Indic digit is not a number here
