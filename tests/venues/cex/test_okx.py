"""OKX accounts by key against a loopback OKX (tests/venues/cex/okx_mock.py): signed REST and
stream login verified by the mock, ``positions``/``account`` pushes through open, resize, move
margin and close, our liquidation price beside the venue's, and the faults."""

from __future__ import annotations

import json
from dataclasses import replace
from typing import Any

import pytest

from monitor.model.events import AccountSnapshot, FeedState, MarkPrice
from monitor.model.instruments import MarginMode
from monitor.model.positions import ScopeKey, isolated_scope
from monitor.venues.keys import (
    KeyAccount,
    KeyFeed,
    KeyRejected,
    RateLimited,
    TimestampRejected,
    VenueUnavailable,
    build_key_feed,
)
from monitor.venues.okx.accounts import (
    VENUE,
    OkxAccountState,
    contracts_from,
    data_of,
    tier_rate,
)
from monitor.venues.okx.private import classify, iso_ms, permissions_from_config
from monitor.venues.parsing import Bad
from tests.venues.cex.common import same_keys, shape
from tests.venues.cex.okx_mock import OkxMock
from tests.venues.cex.test_binance import FAST, follow, portfolio_of, snapshots, statuses
from tests.venues.servers import until

KEY = "985d5b66-57ce-40fb-b714-afc0b9787083"
SECRET = "B5E1A1F1C7D1E7A3F2B4C5D6E7F8A9B0"
PASS = "correct horse"
CROSS = ScopeKey(VENUE, "main", "cross")
BTC = "BTC-USDT-SWAP"
ETH = "ETH-USDT-SWAP"


def account(mock: OkxMock, **kw: Any) -> KeyAccount:
    return KeyAccount(
        venue=VENUE,
        name="main",
        api_key=kw.pop("api_key", KEY),
        secret=kw.pop("secret", SECRET),
        password=kw.pop("password", PASS),
        rest_url=mock.url,
        ws_url=f"{mock.ws_url}/ws/v5/private",
        **kw,
    )


@pytest.fixture
async def venue() -> Any:
    async with OkxMock(KEY, SECRET, PASS) as mock:
        yield mock


def with_marks(events: list[Any], venue: OkxMock) -> Any:
    pf = portfolio_of(events)
    # marks come from the public price feed in the daemon; here, the venue's marks
    for inst, mark in venue.marks.items():
        pf.apply(MarkPrice(VENUE, inst, mark))
    return pf


async def test_account_is_followed_through_open_resize_move_margin_and_close(
    venue: OkxMock,
) -> None:
    feed = build_key_feed(account(venue), None, None, replace(FAST, resnapshot_interval=0.3))

    async def scenario(events: list[Any]) -> None:
        await until(lambda: len(venue.sockets) == 1, what="private stream")
        await until(lambda: len(snapshots(events)) >= 2, what="REST + stream snapshots")
        assert snapshots(events)[-1].positions == ()
        assert snapshots(events)[-1].cross_collateral == pytest.approx(10_000.0)

        # open 300 contracts of BTC (0.01 BTC each: 3 BTC) long cross at 60 000
        await venue.open(BTC, 300, 60_000.0)
        await until(lambda: any(s.positions for s in snapshots(events)), what="position")
        await until(
            lambda: snapshots(events)[-1].positions[0].maintenance is not None, what="tiers"
        )
        (btc,) = snapshots(events)[-1].positions
        assert btc.size == pytest.approx(3.0)  # 300 · 0.01
        assert btc.fee_rate == pytest.approx(0.0005)  # |takerU|
        assert btc.maintenance is not None
        assert btc.maintenance.bracket(180_000.0).rate == 0.004  # tier 1 up to 30 000 contracts

        # resize to 400 contracts at 61 000 → entry (300·60 000 + 100·61 000)/400 = 60 250
        venue.marks[BTC] = 61_000.0
        n = len(snapshots(events))
        await venue.resize(BTC, 400, 61_000.0)
        await until(lambda: len(snapshots(events)) > n + 1)
        btc = next(p for p in snapshots(events)[-1].positions if p.symbol == BTC)
        assert btc.entry_price == pytest.approx(60_250.0)
        assert btc.size == pytest.approx(4.0)

        # isolated ETH short: −20 contracts (2 ETH) with 500 USDT, then 100 more moved in
        n = len(snapshots(events))
        await venue.open(ETH, -20, 3_000.0, isolated_margin=500.0)
        await until(
            lambda: any(
                p.symbol == ETH and p.maintenance is not None
                for p in snapshots(events)[-1].positions
            ),
            what="ETH with its tiers",
        )
        n = len(snapshots(events))
        await venue.move_margin(ETH, 100.0)
        await until(lambda: len(snapshots(events)) > n + 1)
        snap = snapshots(events)[-1]
        eth = next(p for p in snap.positions if p.symbol == ETH)
        assert eth.margin_mode is MarginMode.ISOLATED
        assert eth.isolated_margin == pytest.approx(600.0)  # 500 + 100
        assert eth.size == pytest.approx(-2.0)
        assert snap.cross_collateral == pytest.approx(9_400.0)  # 10 000 − 500 − 100

        # the cross position's liqPx moved with the margin taken out: wait for a fresh one
        calls = venue.calls("GET", "/api/v5/account/positions")
        await until(lambda: venue.calls("GET", "/api/v5/account/positions") > calls)
        await until(lambda: snapshots(events)[-1].ts_recv > snap.ts_recv)
        pf = with_marks(events, venue)
        for scope, sym in ((CROSS, BTC), (ScopeKey(VENUE, "main", isolated_scope(ETH)), ETH)):
            risk = pf.risk(scope)
            assert risk is not None
            pr = next(x for x in risk.positions if x.symbol == sym)
            assert pr.venue_liquidation_price is not None
            assert pr.liquidation_price == pytest.approx(pr.venue_liquidation_price, abs=0.01)
        cross = pf.risk(CROSS)
        assert cross is not None
        # equity = 9 400 + 4·(61 000 − 60 250) = 12 400; MM = 4·61 000·(0.004 + 0.0005) = 1 098
        assert cross.venue_equity == pytest.approx(12_400.0)
        assert cross.equity == pytest.approx(12_400.0)
        assert cross.maintenance_margin == pytest.approx(1_098.0)
        assert cross.venue_maintenance == pytest.approx(1_098.0)

        # close BTC at 61 000: +3 000 (4·(61 000 − 60 250)) into the cross pool
        n = len(snapshots(events))
        await venue.close(BTC, 61_000.0)
        await until(lambda: len(snapshots(events)) > n + 1)
        snap = snapshots(events)[-1]
        assert [p.symbol for p in snap.positions] == [ETH]
        assert snap.cross_collateral == pytest.approx(12_400.0)  # 9 400 + 3 000

    events = await follow(feed, scenario)
    assert venue.bad_signatures == 0
    assert any(s.state is FeedState.LIVE for s in statuses(events))


async def test_isolated_liquidation_price_follows_the_documented_formula(venue: OkxMock) -> None:
    # long 100 contracts (1 BTC) @ 60 000 with 6 000 USDT isolated margin, mmr 0.4 %, fee 0.05 %:
    # LP = (E − M/q)/(1 − (mmr + fee)) = (60 000 − 6 000)/(1 − 0.0045) = 54 244.10
    await venue.open(BTC, 100, 60_000.0, isolated_margin=6_000.0)
    feed = build_key_feed(account(venue), None, None, FAST)
    events = await follow(feed, lambda ev: until(lambda: bool(snapshots(ev))))
    (pos,) = snapshots(events)[0].positions
    assert pos.venue_liquidation_price == pytest.approx(54_244.10, abs=0.01)
    risk = with_marks(events, venue).risk(ScopeKey(VENUE, "main", isolated_scope(BTC)))
    assert risk is not None
    assert risk.positions[0].liquidation_price == pytest.approx(54_244.10, abs=0.01)


@pytest.mark.parametrize(
    ("perm", "word"), [("read_only,trade", "trade"), ("read_only,withdraw", "withdraw")]
)
async def test_a_key_that_can_trade_or_withdraw_is_refused(
    venue: OkxMock, perm: str, word: str
) -> None:
    venue.perm = perm
    feed = build_key_feed(account(venue), None, None, FAST)
    events = await follow(
        feed, lambda ev: until(lambda: any(s.state is FeedState.DOWN for s in statuses(ev)))
    )
    down = next(s for s in statuses(events) if s.state is FeedState.DOWN)
    assert "okx:main" in down.detail
    assert f"can {word}" in down.detail
    assert not snapshots(events)
    assert venue.calls("GET", "/api/v5/account/positions") == 0


async def test_a_wrong_passphrase_goes_down_naming_the_account(venue: OkxMock) -> None:
    feed = build_key_feed(account(venue, password="wrong"), None, None, FAST)
    events = await follow(
        feed, lambda ev: until(lambda: any(s.state is FeedState.DOWN for s in statuses(ev)))
    )
    down = next(s for s in statuses(events) if s.state is FeedState.DOWN)
    assert "okx:main: API key rejected" in down.detail
    assert "50105" in down.detail
    assert "wrong" not in down.detail.replace("went wrong", "")
    assert PASS not in down.detail


async def test_a_timestamp_refusal_resyncs_and_retries(venue: OkxMock) -> None:
    feed = build_key_feed(account(venue), None, None, replace(FAST, resnapshot_interval=0.2))

    async def scenario(events: list[Any]) -> None:
        await until(lambda: len(venue.sockets) == 1)
        venue.skew_ms = 90_000  # the venue's clock runs 90 s ahead
        n = len(snapshots(events))
        await until(lambda: venue.stale_timestamps >= 1, what="50102")
        await until(lambda: len(snapshots(events)) > n + 1, what="snapshots after resync")

    events = await follow(feed, scenario)
    assert not any(s.state is FeedState.DOWN for s in statuses(events))


async def test_http_429_waits_and_recovers(venue: OkxMock) -> None:
    venue.fault(
        "/api/v5/account/balance",
        429,
        {"code": "50011", "msg": "Too Many Requests", "data": []},
        **{"Retry-After": "0.2"},
    )
    feed = build_key_feed(account(venue), None, None, FAST)
    events = await follow(
        feed, lambda ev: until(lambda: any(s.state is FeedState.RECOVERED for s in statuses(ev)))
    )
    down = next(s for s in statuses(events) if s.state is FeedState.DOWN)
    assert "rate limited" in down.detail


async def test_system_maintenance_goes_down_and_comes_back(venue: OkxMock) -> None:
    venue.fault(
        "/api/v5/account/balance",
        503,
        {
            "code": "50001",
            "msg": "Service temporarily unavailable. Please try again later.",
            "data": [],
        },
        **{"Retry-After": "0.1"},
    )
    feed = build_key_feed(account(venue), None, None, FAST)
    events = await follow(
        feed, lambda ev: until(lambda: any(s.state is FeedState.RECOVERED for s in statuses(ev)))
    )
    down = next(s for s in statuses(events) if s.state is FeedState.DOWN)
    assert "venue unavailable" in down.detail


async def test_a_refused_stream_login_goes_down(venue: OkxMock) -> None:
    venue.login_ok = False
    feed = build_key_feed(account(venue), None, None, FAST)
    events = await follow(
        feed, lambda ev: until(lambda: any("login refused" in s.detail for s in statuses(ev)))
    )
    down = next(s for s in statuses(events) if "login refused" in s.detail)
    assert down.state is FeedState.DOWN
    assert "60009" in down.detail


async def test_a_silent_stream_goes_stale_re_snapshots_and_recovers(venue: OkxMock) -> None:
    feed = build_key_feed(account(venue), None, None, FAST)
    assert isinstance(feed, KeyFeed)

    async def scenario(events: list[Any]) -> None:
        await until(lambda: len(venue.sockets) == 1)
        n = len(snapshots(events))
        venue.frozen = True  # our "ping" goes unanswered
        await until(lambda: any(s.state is FeedState.STALE for s in statuses(events)))
        await until(lambda: len(snapshots(events)) > n)
        venue.frozen = False
        await until(lambda: any(s.state is FeedState.RECOVERED for s in statuses(events)))

    await follow(feed, scenario)


# -- pure: documented shapes ------------------------------------------------------------------
def fx(name: str) -> Any:
    return shape("okx", name)


def test_the_documented_config_key_can_trade_and_withdraw() -> None:
    perms = permissions_from_config(data_of(fx("rest_account_config.json"), "c")[0])
    assert perms.trade
    assert perms.withdraw
    acct = KeyAccount(venue=VENUE, name="m", api_key="k" * 20, secret="s" * 20, password="p")
    why = perms.refusal(acct)
    assert why is not None
    assert "trade and withdraw" in why


def test_documented_bodies_make_a_snapshot_in_contracts_times_ct_val() -> None:
    st = OkxAccountState("main")
    st.contracts = contracts_from(data_of(fx("rest_public_instruments.json"), "i"))
    st.tiers["BTC-USDT"] = data_of(fx("rest_position_tiers.json"), "t")
    st.fees["BTC-USDT"] = 0.0005
    st.set_balance(data_of(fx("rest_account_balance.json"), "b"))
    st.set_rows(data_of(fx("rest_account_positions.json"), "p"), replace_all=True)
    snap = st.snapshot(1.0)
    (p,) = snap.positions
    assert p.size == pytest.approx(0.01)  # 1 contract · ctVal 0.01 · ctMult 1
    assert p.entry_price == 2566.31
    assert p.isolated_margin == pytest.approx(0.0003896645377994)
    assert p.venue_liquidation_price == pytest.approx(2352.8496681818233)
    # USDT: equity = eq − isoEq = 4992.89…; collateral = equity − (upl − isoUpl)
    assert snap.venue_equity == pytest.approx(4992.890093622894)
    assert snap.cross_collateral == pytest.approx(4992.890093622894 + 7.545600000000006)


def test_a_documented_account_push_updates_the_pool() -> None:
    st = OkxAccountState("main")
    st.set_balance(fx("ws_account.json")["data"])
    snap = st.snapshot(0.0)
    assert isinstance(snap, AccountSnapshot)
    assert snap.cross_collateral == pytest.approx(4892.951170691435 + 7.475800000000003)


def test_tiers_are_chosen_by_contracts() -> None:
    rows = data_of(fx("rest_position_tiers.json"), "t")
    assert tier_rate(rows, 100) == 0.004
    assert tier_rate(rows, 40_000) == 0.005


def test_a_long_short_mode_position_is_refused() -> None:
    st = OkxAccountState("main")
    row = data_of(fx("rest_account_positions.json"), "p")[0] | {"posSide": "long"}
    with pytest.raises(Bad, match="one-way"):
        st.position(row)


def test_timestamps_are_iso_with_milliseconds() -> None:
    assert iso_ms(1607418537715) == "2020-12-08T09:08:57.715Z"


def test_error_codes_map_to_what_they_mean() -> None:
    assert isinstance(
        classify(401, {}, json.dumps(fx("rest_error_timestamp.json"))), TimestampRejected
    )
    assert isinstance(classify(401, {}, json.dumps(fx("rest_error_invalid_key.json"))), KeyRejected)
    assert isinstance(classify(429, {}, '{"code":"50011","msg":"slow"}'), RateLimited)
    assert isinstance(classify(503, {}, '{"code":"50001","msg":"maint"}'), VenueUnavailable)
    assert classify(200, {}, '{"code":"0","data":[]}') is None


async def test_the_mock_speaks_the_documented_shapes(venue: OkxMock) -> None:
    await venue.open(BTC, 100, 60_000.0)
    p = venue.positions[BTC]
    assert same_keys(venue.row(p), fx("rest_account_positions.json")["data"][0]) == []
    assert same_keys(venue.balance(), fx("rest_account_balance.json")["data"][0]) == []
    assert same_keys(venue.positions_push([BTC], "snapshot"), fx("ws_positions.json")) == []
    assert same_keys(venue.account_push(), fx("ws_account.json")) == []
