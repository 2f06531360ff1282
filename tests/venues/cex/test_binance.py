"""Binance USDⓈ-M accounts by key against a loopback Binance (tests/venues/cex/binance_mock.py):
signed REST verified by the mock, the listen key and its stream, the trader opening, resizing,
moving margin and closing, and the faults (401, 429/418, -1021, expiry, silence, maintenance)."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import replace
from typing import Any

import pytest

from monitor.model.events import AccountSnapshot, FeedState, FeedStatus, PositionUpdate
from monitor.model.portfolio import Portfolio
from monitor.model.positions import ScopeKey, isolated_scope
from monitor.venues.binance.accounts import VENUE
from monitor.venues.keys import (
    KeyAccount,
    KeyFeed,
    KeySettings,
    NotReadOnly,
    build_key_feed,
    read_key_account,
)
from tests.venues.cex.binance_mock import BinanceMock
from tests.venues.servers import until

KEY = "vmPUZE6mv9SD5VNHk4HlWFsOr6aKE2zvsw0MuIgwCIPy6utIco14y7Ju91duEh8A"
SECRET = "NhqPtmdSJYdKjVHjA7PZj4Mge3R5YNiP1e3UZjInClVN65XAbvqqM6A7H5fATj0j"

FAST = KeySettings(
    resnapshot_interval=30.0,
    update_resnapshot_delay=0.05,
    heartbeat_interval=0.1,
    max_silence=0.6,
    check_interval=0.02,
    recheck_interval=0.3,
    backoff_initial=0.05,
    backoff_cap=0.2,
    stable_after=5.0,
    listen_key_keepalive=30.0,
)


def account(mock: BinanceMock, **kw: Any) -> KeyAccount:
    return KeyAccount(
        venue=VENUE,
        name="main",
        api_key=kw.pop("api_key", KEY),
        secret=kw.pop("secret", SECRET),
        rest_url=mock.url,
        ws_url=f"{mock.ws_url}/ws",
        **kw,
    )


@pytest.fixture
async def venue() -> AsyncIterator[BinanceMock]:
    async with BinanceMock(KEY, SECRET) as mock:
        yield mock


async def follow(feed: Any, body: Callable[[list[Any]], Awaitable[None]]) -> list[Any]:
    events: list[Any] = []
    task = asyncio.create_task(feed.run(events.append))
    try:
        await body(events)
    finally:
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task
    return events


def statuses(events: list[Any]) -> list[FeedStatus]:
    return [e for e in events if isinstance(e, FeedStatus)]


def snapshots(events: list[Any]) -> list[AccountSnapshot]:
    return [e for e in events if isinstance(e, AccountSnapshot)]


def portfolio_of(events: list[Any]) -> Portfolio:
    p = Portfolio()
    for e in events:
        p.apply(e)
    return p


CROSS = ScopeKey(VENUE, "main", "cross")


async def test_account_is_followed_through_open_resize_move_margin_and_close(
    venue: BinanceMock,
) -> None:
    feed = build_key_feed(account(venue), None, None, FAST)

    async def scenario(events: list[Any]) -> None:
        await until(lambda: len(venue.sockets) == 1, what="user-data stream")
        assert snapshots(events)[-1].positions == ()
        assert snapshots(events)[-1].cross_collateral == 10_000.0

        # open: 0.5 BTC long cross at 60 000 (mark 60 000)
        await venue.open("BTCUSDT", 0.5, 60_000.0)
        await until(lambda: any(isinstance(e, PositionUpdate) for e in events), what="push")
        upd = next(e for e in events if isinstance(e, PositionUpdate))
        assert upd.position.size == 0.5
        assert upd.position.entry_price == 60_000.0
        assert upd.cross_collateral == 10_000.0
        # the push has no liquidation price: a REST re-snapshot follows and brings it
        await until(
            lambda: any(p.venue_liquidation_price for s in snapshots(events) for p in s.positions),
            what="re-snapshot",
        )
        snap = snapshots(events)[-1]
        btc = snap.positions[0]
        # BTC bracket of 30 000 notional: 0.4 %, cum 0 → exact maintenance from the key's brackets
        assert btc.maintenance is not None
        assert btc.maintenance.requirement(30_000.0) == pytest.approx(30_000 * 0.004)
        assert btc.leverage == 10.0

        # resize: add 0.5 at 62 000 → 1.0 BTC at 61 000
        venue.marks["BTCUSDT"] = 62_000.0
        n = len(snapshots(events))
        await venue.resize("BTCUSDT", 1.0, 62_000.0)
        await until(lambda: len(snapshots(events)) > n, what="re-snapshot after resize")
        btc = snapshots(events)[-1].positions[0]
        assert btc.size == 1.0
        assert btc.entry_price == pytest.approx(61_000.0)  # (0.5·60 000 + 0.5·62 000)/1
        assert btc.mark_price == pytest.approx(62_000.0)

        # an isolated ETH short with 600 USDT of margin, then 400 more moved in
        n = len(snapshots(events))
        await venue.open("ETHUSDT", -2.0, 3_000.0, isolated_wallet=600.0)
        await until(lambda: len(snapshots(events)) > n, what="re-snapshot after open")
        n = len(snapshots(events))
        await venue.move_margin("ETHUSDT", 400.0)
        await until(lambda: len(snapshots(events)) > n, what="re-snapshot after margin move")
        snap = snapshots(events)[-1]
        eth = next(p for p in snap.positions if p.symbol == "ETHUSDT")
        assert eth.isolated_margin == pytest.approx(1_000.0)  # 600 + 400
        assert snap.cross_collateral == pytest.approx(9_000.0)  # 10 000 − 600 − 400

        pf = portfolio_of(events)
        for scope, sym in (
            (CROSS, "BTCUSDT"),
            (ScopeKey(VENUE, "main", isolated_scope("ETHUSDT")), "ETHUSDT"),
        ):
            risk = pf.risk(scope)
            assert risk is not None
            pr = next(x for x in risk.positions if x.symbol == sym)
            assert pr.venue_liquidation_price is not None
            # the venue rounds its figure to 0.01
            assert pr.liquidation_price == pytest.approx(pr.venue_liquidation_price, abs=0.01)

        # close BTC at 62 000: +1 000 realised into the cross wallet (1·(62 000 − 61 000))
        n = len(snapshots(events))
        await venue.close("BTCUSDT", 62_000.0)
        await until(lambda: len(snapshots(events)) > n, what="re-snapshot after close")
        snap = snapshots(events)[-1]
        assert [p.symbol for p in snap.positions] == ["ETHUSDT"]
        assert snap.cross_collateral == pytest.approx(10_000.0)  # 9 000 + 1 000

        pf = portfolio_of(events)
        risk = pf.risk(CROSS)
        assert risk is None or not risk.positions

    events = await follow(feed, scenario)
    sts = statuses(events)
    assert sts[0].state is FeedState.CONNECTING
    assert any(s.state is FeedState.LIVE and s.channel == "account:main" for s in sts)
    assert venue.bad_signatures == 0


# Binance FAQ worked examples (margin-math.md §3, tests/fixtures/reference):
# (symbol, size, entry, mark, isolated wallet, bracket rate, cum, the FAQ's answer)
FAQ_ISOLATED = [
    ("ETHUSDT", 3683.979, 1456.84, 1335.18, 1535443.01, 0.10, 135365.0, 1114.78),
    ("BTCUSDT", 109.488, 32481.98, 31967.27, 1535443.01, 0.025, 16300.0, 18778.73),
]


@pytest.mark.parametrize("case", FAQ_ISOLATED, ids=lambda c: c[0])
async def test_isolated_liquidation_price_matches_the_faq_worked_example(
    venue: BinanceMock, case: tuple[str, float, float, float, float, float, float, float]
) -> None:
    symbol, size, entry, mark, wallet, rate, cum, expected = case
    venue.marks[symbol] = mark
    venue.wallet = 2_000_000.0
    await venue.open(symbol, size, entry, isolated_wallet=wallet)
    feed = build_key_feed(account(venue), None, None, FAST)

    async def scenario(events: list[Any]) -> None:
        await until(lambda: bool(snapshots(events)), what="snapshot")

    events = await follow(feed, scenario)
    snap = snapshots(events)[0]
    pos = snap.positions[0]
    # the mock publishes the FAQ formula's figure: the FAQ's own answer
    assert pos.venue_liquidation_price == pytest.approx(expected, abs=0.01)
    assert pos.maintenance is not None
    bracket = pos.maintenance.bracket(size * mark)
    assert (bracket.rate, bracket.deduction) == (rate, cum)
    risk = portfolio_of(events).risk(ScopeKey(VENUE, "main", isolated_scope(symbol)))
    assert risk is not None
    assert risk.positions[0].liquidation_price == pytest.approx(expected, abs=0.01)


async def test_cross_liquidation_prices_match_the_faq_worked_example(venue: BinanceMock) -> None:
    # FAQ: cross wallet 1 535 443.01; ETH 3683.979 long @1456.84 (mark 1335.18) and BTC
    # 109.488 long @32481.98 (mark 31967.27); the FAQ answers ETH 1153.26, BTC 26316.89
    venue.wallet = 1_535_443.01
    venue.marks.update({"ETHUSDT": 1335.18, "BTCUSDT": 31967.27})
    await venue.open("ETHUSDT", 3683.979, 1456.84)
    await venue.open("BTCUSDT", 109.488, 32481.98)
    feed = build_key_feed(account(venue), None, None, FAST)
    events = await follow(feed, lambda ev: until(lambda: bool(snapshots(ev))))
    risk = portfolio_of(events).risk(CROSS)
    assert risk is not None
    ours = {p.symbol: p for p in risk.positions}
    for sym, faq in (("ETHUSDT", 1153.26), ("BTCUSDT", 26316.89)):
        assert ours[sym].venue_liquidation_price == pytest.approx(faq, abs=0.01)
        assert ours[sym].liquidation_price == pytest.approx(faq, abs=0.01)


async def test_cross_liquidation_price_matches_the_venue_with_two_positions(
    venue: BinanceMock,
) -> None:
    # 2 BTC long at 60 000 and 30 ETH short at 3 000 in cross, wallet 20 000
    venue.wallet = 20_000.0
    venue.marks.update({"BTCUSDT": 59_000.0, "ETHUSDT": 3_050.0})
    venue.positions.clear()
    await venue.open("BTCUSDT", 2.0, 60_000.0)
    await venue.open("ETHUSDT", -30.0, 3_000.0)
    feed = build_key_feed(account(venue), None, None, FAST)
    events = await follow(feed, lambda ev: until(lambda: bool(snapshots(ev)), what="snapshot"))
    risk = portfolio_of(events).risk(CROSS)
    assert risk is not None
    assert len(risk.positions) == 2
    for pr in risk.positions:
        assert pr.venue_liquidation_price is not None
        assert pr.liquidation_price == pytest.approx(pr.venue_liquidation_price, abs=0.01)
    snap = snapshots(events)[0]
    # venue equity = wallet + cross uPnL
    #             = 20 000 + 2·(59 000 − 60 000) − 30·(3 050 − 3 000)
    assert snap.venue_equity == pytest.approx(20_000 - 2_000 - 1_500)
    assert risk.equity == pytest.approx(snap.venue_equity)


async def test_a_key_that_can_trade_is_refused_and_never_read(venue: BinanceMock) -> None:
    venue.restrictions["enableFutures"] = True
    feed = build_key_feed(account(venue), None, None, FAST)

    async def scenario(events: list[Any]) -> None:
        await until(lambda: any(s.state is FeedState.DOWN for s in statuses(events)))

    events = await follow(feed, scenario)
    down = next(s for s in statuses(events) if s.state is FeedState.DOWN)
    assert "binanceusdm:main" in down.detail
    assert "can trade" in down.detail
    assert "allow_trading_key" in down.detail
    assert not snapshots(events)
    assert venue.calls("GET", "/fapi/v2/account") == 0
    assert venue.calls("POST", "/fapi/v1/listenKey") == 0


async def test_a_key_that_can_withdraw_is_refused(venue: BinanceMock) -> None:
    venue.restrictions["enableWithdrawals"] = True
    feed = build_key_feed(account(venue), None, None, FAST)
    events = await follow(
        feed,
        lambda ev: until(lambda: any(s.state is FeedState.DOWN for s in statuses(ev))),
    )
    down = next(s for s in statuses(events) if s.state is FeedState.DOWN)
    assert "can withdraw" in down.detail
    assert not snapshots(events)


async def test_a_trading_key_is_accepted_when_explicitly_allowed(venue: BinanceMock) -> None:
    venue.restrictions["enableFutures"] = True
    feed = build_key_feed(account(venue, allow_trading_key=True), None, None, FAST)
    events = await follow(feed, lambda ev: until(lambda: bool(snapshots(ev))))
    assert not any(s.state is FeedState.DOWN for s in statuses(events))


async def test_an_invalid_key_goes_down_naming_the_account_without_the_key(
    venue: BinanceMock,
) -> None:
    wrong = "X" * 64
    feed = build_key_feed(account(venue, api_key=wrong), None, None, FAST)
    events = await follow(
        feed,
        lambda ev: until(
            lambda: sum(s.state is FeedState.DOWN for s in statuses(ev)) >= 2,
            what="two refusals (rechecked)",
        ),
    )
    downs = [s for s in statuses(events) if s.state is FeedState.DOWN]
    assert "binanceusdm:main" in downs[0].detail
    assert "rejected" in downs[0].detail
    assert "-2015" in downs[0].detail
    for s in statuses(events):
        assert wrong not in s.detail
        assert SECRET not in s.detail
    assert not snapshots(events)


async def test_a_wrong_secret_fails_the_signature_check_and_goes_down(venue: BinanceMock) -> None:
    feed = build_key_feed(account(venue, secret="S" * 64), None, None, FAST)
    events = await follow(
        feed, lambda ev: until(lambda: any(s.state is FeedState.DOWN for s in statuses(ev)))
    )
    down = next(s for s in statuses(events) if s.state is FeedState.DOWN)
    assert "-1022" in down.detail
    assert "binanceusdm:main" in down.detail
    assert venue.bad_signatures >= 1


async def test_a_timestamp_refusal_resyncs_the_clock_and_retries(venue: BinanceMock) -> None:
    feed = build_key_feed(account(venue), None, None, FAST)

    async def scenario(events: list[Any]) -> None:
        await until(lambda: len(venue.sockets) == 1)
        venue.skew_ms = 30_000  # the venue's clock jumps 30 s ahead of ours
        n = len(snapshots(events))
        await venue.open("BTCUSDT", 0.1, 60_000.0)
        await until(lambda: len(snapshots(events)) > n, what="re-snapshot after resync")

    events = await follow(feed, scenario)
    assert venue.stale_timestamps >= 1  # -1021 answered at least once ...
    assert venue.calls("GET", "/fapi/v1/time") >= 2  # ... then the clock was read again
    assert not any(s.state is FeedState.DOWN for s in statuses(events))
    assert snapshots(events)[-1].positions[0].size == 0.1


@pytest.mark.parametrize("status", [429, 418])
async def test_a_rate_limit_waits_retry_after_then_recovers(
    venue: BinanceMock, status: int
) -> None:
    venue.fault(
        "/fapi/v2/account",
        status,
        {"code": -1003, "msg": "Too many requests."},
        **{"Retry-After": "0.4"},
    )
    feed = build_key_feed(account(venue), None, None, FAST)
    loop = asyncio.get_running_loop()
    seen: dict[str, float] = {}

    async def scenario(events: list[Any]) -> None:
        await until(lambda: any(s.state is FeedState.DOWN for s in statuses(events)))
        seen["down"] = loop.time()
        await until(lambda: bool(snapshots(events)), what="snapshot after the wait")
        seen["up"] = loop.time()
        await until(lambda: any(s.state is FeedState.RECOVERED for s in statuses(events)))

    events = await follow(feed, scenario)
    down = next(s for s in statuses(events) if s.state is FeedState.DOWN)
    assert "rate limited" in down.detail
    assert "retry in 0.4s" in down.detail
    assert seen["up"] - seen["down"] >= 0.35  # Retry-After honoured (0.4 s, timer slack)
    assert any(s.state is FeedState.RECOVERED for s in statuses(events))


async def test_exchange_maintenance_goes_down_and_comes_back(venue: BinanceMock) -> None:
    venue.fault(
        "/fapi/v2/account",
        503,
        {"code": -1008, "msg": "Server is currently overloaded"},
        **{"Retry-After": "0.1"},
    )
    feed = build_key_feed(account(venue), None, None, FAST)
    events = await follow(feed, lambda ev: until(lambda: bool(snapshots(ev))))
    down = next(s for s in statuses(events) if s.state is FeedState.DOWN)
    assert "venue unavailable" in down.detail


async def test_an_expired_listen_key_renews_the_stream_and_re_snapshots(
    venue: BinanceMock,
) -> None:
    feed = build_key_feed(account(venue), None, None, FAST)

    async def scenario(events: list[Any]) -> None:
        await until(lambda: len(venue.sockets) == 1)
        n = len(snapshots(events))
        await venue.expire_listen_key()
        await until(lambda: venue.calls("POST", "/fapi/v1/listenKey") == 2, what="new key")
        await until(lambda: len(venue.sockets) == 1, what="new stream")
        assert len(snapshots(events)) > n  # re-snapshot after the reconnect
        await venue.open("ETHUSDT", 1.0, 3_000.0)
        await until(lambda: any(isinstance(e, PositionUpdate) for e in events))

    events = await follow(feed, scenario)
    downs = [s for s in statuses(events) if s.state is FeedState.DOWN]
    assert any("listen key expired" in s.detail for s in downs)


async def test_the_listen_key_is_kept_alive_and_a_lost_one_renews_the_stream(
    venue: BinanceMock,
) -> None:
    from dataclasses import replace

    feed = build_key_feed(account(venue), None, None, replace(FAST, listen_key_keepalive=0.15))

    async def scenario(events: list[Any]) -> None:
        await until(lambda: venue.calls("PUT", "/fapi/v1/listenKey") >= 2, what="keepalives")
        venue.listen_keys.clear()  # the venue forgot it: the next PUT answers -1125
        await until(lambda: venue.calls("POST", "/fapi/v1/listenKey") >= 2, what="renewal")

    events = await follow(feed, scenario)
    assert any("listen key no longer exists" in s.detail for s in statuses(events))


async def test_the_stream_is_renewed_before_its_24_hour_limit(venue: BinanceMock) -> None:
    from dataclasses import replace

    feed = build_key_feed(account(venue), None, None, replace(FAST, binance_max_lifetime=0.3))
    events = await follow(
        feed, lambda ev: until(lambda: venue.calls("POST", "/fapi/v1/listenKey") >= 2)
    )
    assert any("lifetime" in s.detail for s in statuses(events))


async def test_a_silent_stream_goes_stale_re_snapshots_and_reconnects(
    venue: BinanceMock,
) -> None:
    feed = build_key_feed(account(venue), None, None, FAST)

    async def scenario(events: list[Any]) -> None:
        await until(lambda: len(venue.sockets) == 1)
        n = len(snapshots(events))
        venue.frozen = True  # no frames, pings unanswered, TCP open
        await until(lambda: any(s.state is FeedState.STALE for s in statuses(events)), what="stale")
        await until(lambda: len(snapshots(events)) > n, what="REST re-snapshot")
        venue.frozen = False
        await until(
            lambda: any(s.state is FeedState.RECOVERED for s in statuses(events)), what="recovered"
        )

    events = await follow(feed, scenario)
    stale = next(s for s in statuses(events) if s.state is FeedState.STALE)
    assert stale.channel == "account:main"
    assert "no stream data or pong" in stale.detail


async def test_a_malformed_frame_is_skipped_and_the_stream_goes_on(venue: BinanceMock) -> None:
    feed = build_key_feed(account(venue), None, None, FAST)
    assert isinstance(feed, KeyFeed)

    async def scenario(events: list[Any]) -> None:
        await until(lambda: len(venue.sockets) == 1)
        await venue.push("{not json")
        await venue.push({"e": "ACCOUNT_UPDATE", "E": 1, "a": {"B": [], "P": [{"s": "BTCUSDT"}]}})
        await venue.open("BTCUSDT", 0.2, 60_000.0)
        await until(lambda: any(isinstance(e, PositionUpdate) for e in events))

    events = await follow(feed, scenario)
    assert feed.bad_frames == 2
    assert not any(s.state is FeedState.DOWN for s in statuses(events))


async def test_a_periodic_re_snapshot_refreshes_the_venue_figures(venue: BinanceMock) -> None:
    from dataclasses import replace

    feed = build_key_feed(account(venue), None, None, replace(FAST, resnapshot_interval=0.1))
    events = await follow(feed, lambda ev: until(lambda: len(snapshots(ev)) >= 3))
    assert len(snapshots(events)) >= 3


def test_the_account_repr_masks_the_key_and_hides_the_secret() -> None:
    a = KeyAccount(venue="binance_usdm", name="main", api_key=KEY, secret=SECRET)
    assert a.venue == VENUE  # the old spelling is taken as the canonical name
    text = repr(a) + str(a)
    assert KEY not in text
    assert SECRET not in text
    assert "vmPU…Eh8A" in text


async def test_one_checked_snapshot_for_inspect(venue: BinanceMock) -> None:
    await venue.open("ETHUSDT", -1.5, 3_000.0)
    snap = await read_key_account(account(venue))
    assert snap.account == "main"
    assert snap.positions[0].size == -1.5
    assert venue.calls("POST", "/fapi/v1/listenKey") == 0  # no stream opened
    venue.restrictions["enableWithdrawals"] = True
    with pytest.raises(NotReadOnly, match="can withdraw"):
        await read_key_account(account(venue))


async def test_a_portfolio_margin_account_carries_the_venue_equity_and_maintenance() -> None:
    async with BinanceMock(KEY, SECRET, pm=True) as pm:
        pm.marks["BTCUSDT"] = 61_000.0
        pm.loan_mm = 200.0  # margin-loan maintenance: in the venue's figure, not in ours
        await pm.open("BTCUSDT", 1.0, 60_000.0)
        acct = replace(account(pm), portfolio_margin=True, ws_url=f"{pm.ws_url}/pm/ws")
        feed = build_key_feed(acct, None, None, FAST)

        async def scenario(events: list[Any]) -> None:
            await until(lambda: len(pm.sockets) == 1, what="PM user-data stream")
            n = pm.calls("GET", "/papi/v1/account")
            await pm.open("ETHUSDT", -2.0, 3_000.0)
            await until(lambda: any(isinstance(e, PositionUpdate) for e in events))
            upd = next(e for e in events if isinstance(e, PositionUpdate))
            assert upd.cross_collateral is None  # a PM stream balance is not the pool's
            await until(lambda: pm.calls("GET", "/papi/v1/account") > n, what="re-snapshot")
            n = pm.calls("GET", "/papi/v1/account")
            await pm.risk_level_change()
            await until(lambda: pm.calls("GET", "/papi/v1/account") > n, what="re-snapshot")

        events = await follow(feed, scenario)
    first = snapshots(events)[0]
    # accountEquity = 10 000 + 1·(61 000 − 60 000) = 11 000; collateral = 11 000 − uPnL 1 000
    assert first.venue_equity == pytest.approx(11_000.0)
    assert first.cross_collateral == pytest.approx(10_000.0)
    # accountMaintMargin = BTC 61 000·0.005 − 50 = 255, + 200 of loans = 455
    assert first.venue_maintenance == pytest.approx(455.0)
    pf = Portfolio()
    pf.apply(first)
    risk = pf.risk(CROSS)
    assert risk is not None
    assert risk.equity == pytest.approx(11_000.0)
    assert risk.maintenance_margin == pytest.approx(255.0)  # ours: the UM positions only
    assert risk.venue_maintenance == pytest.approx(455.0)  # the venue's, shown beside
    assert pm.calls("GET", "/fapi/v2/account") == 0
    assert pm.bad_signatures == 0


def test_the_documented_pm_account_body_makes_a_snapshot() -> None:
    from monitor.venues.binance.accounts import BinanceAccountState
    from tests.venues.cex.common import shape

    st = BinanceAccountState("pm")
    snap = st.pm_snapshot(
        shape(VENUE, "rest_papi_account.json"), shape(VENUE, "rest_papi_um_positionRisk.json"), 0.0
    )
    assert snap.venue_equity == pytest.approx(122607.35137903)
    assert snap.venue_maintenance == pytest.approx(23.72469206)
    assert snap.cross_collateral == pytest.approx(122607.35137903)  # no UM uPnL
    assert snap.positions == ()


async def test_a_venue_liquidation_price_that_differs_from_ours_is_noted(
    venue: BinanceMock,
) -> None:
    # FAQ ETH isolated example: the venue says 1114.78 and so do we ...
    venue.marks["ETHUSDT"] = 1335.18
    venue.wallet = 2_000_000.0
    await venue.open("ETHUSDT", 3683.979, 1456.84, isolated_wallet=1535443.01)
    feed = build_key_feed(account(venue), None, None, replace(FAST, resnapshot_interval=0.1))
    assert isinstance(feed, KeyFeed)

    async def scenario(events: list[Any]) -> None:
        await until(lambda: feed.snapshots >= 1)
        assert feed.diverging == {}
        # ... then the venue's figure moves 20 away (1.8 %, beyond the 0.5 % tolerance)
        venue.lp_error = 20.0
        await until(lambda: "ETHUSDT" in feed.diverging, what="divergence noted")
        ours, theirs = feed.diverging["ETHUSDT"]
        assert theirs == pytest.approx(1134.78)
        assert ours == pytest.approx(1114.78, abs=0.01)
        venue.lp_error = 0.0
        await until(lambda: feed.diverging == {}, what="agreement noted")

    await follow(feed, scenario)
