"""Binance account documents → events (pure), on the documented shapes in
tests/fixtures/cex/binanceusdm/, and the loopback mock speaking those shapes."""

from __future__ import annotations

import json
from typing import Any

import aiohttp
import pytest

from monitor.model.events import BalanceUpdate, PositionUpdate
from monitor.model.instruments import MarginMode
from monitor.venues.binance.accounts import BinanceAccountState, brackets_from_body
from monitor.venues.binance.private import classify, permissions_from_body
from monitor.venues.keys import KeyAccount, KeyRejected, RateLimited, TimestampRejected
from monitor.venues.parsing import Bad
from tests.venues.cex.binance_mock import BinanceMock
from tests.venues.cex.common import same_keys, shape

V = "binanceusdm"


def fx(name: str) -> Any:
    return shape(V, name)


def test_documented_brackets_give_rate_and_cum_per_notional() -> None:
    sched = brackets_from_body(fx("rest_leverageBracket.json"))["ETHUSDT"]
    # one bracket: maintMarginRatio 0.0065, cum 0 → MM(5 000) = 5 000·0.0065 = 32.5
    assert sched.requirement(5_000.0) == pytest.approx(32.5)


def test_several_brackets_keep_the_venue_cum() -> None:
    body = [
        {
            "symbol": "BTCUSDT",
            "brackets": [
                {"notionalFloor": 50000, "maintMarginRatio": 0.005, "cum": 50},
                {"notionalFloor": 0, "maintMarginRatio": 0.004, "cum": 0},
            ],
        }
    ]
    sched = brackets_from_body(body)["BTCUSDT"]
    # 100 000 in the second bracket: 100 000·0.005 − 50 = 450
    assert sched.requirement(100_000.0) == pytest.approx(450.0)
    assert sched.requirement(10_000.0) == pytest.approx(40.0)  # 10 000·0.004


def test_a_bracket_without_a_rate_is_refused_naming_it() -> None:
    with pytest.raises(Bad, match="maintMarginRatio"):
        brackets_from_body([{"symbol": "X", "brackets": [{"notionalFloor": 0}]}])


def test_documented_account_and_position_bodies_make_an_empty_snapshot() -> None:
    st = BinanceAccountState("main")
    snap = st.snapshot(fx("rest_account_v2.json"), fx("rest_positionRisk_v2.json"), 5.0)
    assert snap.positions == ()  # the documented position has positionAmt 0
    assert snap.cross_collateral == pytest.approx(23.72469206)
    assert snap.venue_equity == pytest.approx(23.72469206)  # + crossUnPnl 0
    assert snap.venue_free_collateral == pytest.approx(23.72469206)
    assert snap.ts_recv == 5.0


def test_an_isolated_position_keeps_wallet_leverage_mark_and_venue_liquidation_price() -> None:
    risk = fx("rest_positionRisk_v2.json")
    risk[0].update(
        positionAmt="-0.5",
        entryPrice="6700",
        isolatedWallet="400",
        isolatedMargin="410.25",
        liquidationPrice="7450.1",
    )
    st = BinanceAccountState("main")
    st.brackets = brackets_from_body(fx("rest_leverageBracket.json"))
    snap = st.snapshot(fx("rest_account_v2.json"), risk, 0.0)
    (p,) = snap.positions
    assert p.size == -0.5
    assert p.margin_mode is MarginMode.ISOLATED
    assert p.isolated_margin == 400.0  # isolatedWallet: excluding uPnL
    assert p.venue_margin_used == 410.25
    assert p.leverage == 10.0
    assert p.mark_price == pytest.approx(6679.50671178)
    assert p.venue_liquidation_price == 7450.1
    assert p.maintenance is None  # BTCUSDT is not among the documented brackets


def test_hedge_mode_positions_are_refused_rather_than_shown_wrong() -> None:
    risk = fx("rest_positionRisk_v2.json")
    risk[0].update(positionAmt="1", positionSide="LONG", entryPrice="1")
    with pytest.raises(Bad, match="hedge-mode"):
        BinanceAccountState("main").snapshot(fx("rest_account_v2.json"), risk, 0.0)


def test_a_usdc_margined_position_is_refused_in_single_asset_mode() -> None:
    risk = fx("rest_positionRisk_v2.json")
    risk[0].update(positionAmt="1", entryPrice="1", symbol="BTCUSDC")
    with pytest.raises(Bad, match="USDT-margined"):
        BinanceAccountState("main").snapshot(fx("rest_account_v2.json"), risk, 0.0)


def test_multi_assets_mode_takes_the_usd_cross_wallet() -> None:
    acct = fx("rest_account_v2.json")
    acct.update(multiAssetsMargin=True, totalCrossWalletBalance="150.5", totalCrossUnPnl="-0.5")
    risk = fx("rest_positionRisk_v2.json")
    risk[0].update(positionAmt="1", entryPrice="1", symbol="BTCUSDC", marginType="cross")
    snap = BinanceAccountState("main").snapshot(acct, risk, 0.0)
    assert snap.cross_collateral == 150.5
    assert snap.venue_equity == 150.0  # 150.5 − 0.5
    assert snap.positions[0].symbol == "BTCUSDC"


def test_the_documented_account_update_gives_position_updates_and_the_cross_wallet() -> None:
    st = BinanceAccountState("main")
    events, reconnect = st.on_event(json.dumps(fx("ws_ACCOUNT_UPDATE.json")), 9.0)
    assert reconnect is None
    btc, eth = events
    assert isinstance(btc, PositionUpdate)
    assert isinstance(eth, PositionUpdate)
    assert btc.position.size == 0.0  # closed
    assert btc.cross_collateral == pytest.approx(100.12345678)  # USDT "cw"
    assert eth.position.size == -2.0
    assert eth.position.margin_mode is MarginMode.CROSS
    # mark derived from uPnL: ep + up/pa = 1500 + 40/(−2) = 1480
    assert eth.position.mark_price == pytest.approx(1480.0)
    assert eth.ts_event == pytest.approx(1564745798.939)


def test_a_balance_only_account_update_gives_a_balance_update() -> None:
    st = BinanceAccountState("main")
    frame = {
        "e": "ACCOUNT_UPDATE",
        "E": 1,
        "a": {"m": "DEPOSIT", "B": [{"a": "USDT", "wb": "12", "cw": "11.5", "bc": "1"}], "P": []},
    }
    (ev,) = st.on_event(json.dumps(frame), 0.0)[0]
    assert isinstance(ev, BalanceUpdate)
    assert ev.cross_collateral == 11.5


def test_a_leverage_change_updates_the_known_position() -> None:
    st = BinanceAccountState("main")
    st.on_event(json.dumps(fx("ws_ACCOUNT_UPDATE.json")), 0.0)
    frame = fx("ws_ACCOUNT_CONFIG_UPDATE.json")
    frame["ac"]["s"] = "ETHUSDT"
    (ev,) = st.on_event(json.dumps(frame), 0.0)[0]
    assert isinstance(ev, PositionUpdate)
    assert ev.position.leverage == 25.0
    assert ev.position.size == -2.0


def test_listen_key_expired_asks_for_a_reconnect() -> None:
    events, reconnect = BinanceAccountState("main").on_event(
        json.dumps(fx("ws_listenKeyExpired.json")), 0.0
    )
    assert events == []
    assert reconnect == "listen key expired"


def test_an_unknown_event_is_refused() -> None:
    with pytest.raises(Bad, match="unknown user-data event"):
        BinanceAccountState("main").on_event('{"e":"SOMETHING"}', 0.0)


def test_documented_restrictions_are_read_only() -> None:
    perms = permissions_from_body(fx("rest_apiRestrictions.json"))
    assert perms.read_only
    acct = KeyAccount(venue=V, name="main", api_key="k" * 20, secret="s" * 20)
    assert perms.refusal(acct) is None


@pytest.mark.parametrize(
    ("flag", "word"),
    [
        ("enableFutures", "trade"),
        ("enableSpotAndMarginTrading", "trade"),
        ("enableWithdrawals", "withdraw"),
        ("permitsUniversalTransfer", "transfer funds"),
    ],
)
def test_a_key_with_a_dangerous_permission_is_refused(flag: str, word: str) -> None:
    body = fx("rest_apiRestrictions.json") | {flag: True}
    acct = KeyAccount(venue=V, name="main", api_key="k" * 20, secret="s" * 20)
    why = permissions_from_body(body).refusal(acct)
    assert why is not None
    assert f"can {word}" in why
    assert "binanceusdm:main" in why


def test_error_answers_map_to_what_they_mean() -> None:
    assert classify(200, {}, "{}") is None
    assert isinstance(
        classify(400, {}, json.dumps(fx("rest_error_timestamp.json"))), TimestampRejected
    )
    assert isinstance(classify(401, {}, json.dumps(fx("rest_error_invalid_key.json"))), KeyRejected)
    limited = classify(429, {"Retry-After": "7"}, "")
    assert isinstance(limited, RateLimited)
    assert limited.retry_after == 7.0
    banned = classify(418, {}, "")
    assert isinstance(banned, RateLimited)
    assert banned.retry_after == 60.0  # no Retry-After: a minute


async def test_the_mock_speaks_the_documented_shapes() -> None:
    async with BinanceMock("k", "s") as mock:
        await mock.open("BTCUSDT", 0.1, 60_000.0)
        async with aiohttp.ClientSession() as http:
            # the mock's own verification is exercised by the feed tests; here only shapes
            bodies = {}
            for path in (
                "/fapi/v2/account",
                "/fapi/v2/positionRisk",
                "/sapi/v1/account/apiRestrictions",
                "/fapi/v1/leverageBracket",
            ):
                bodies[path] = await _signed_get(http, mock, path)
        assert same_keys(bodies["/fapi/v2/account"], fx("rest_account_v2.json")) == []
        assert same_keys(bodies["/fapi/v2/positionRisk"], fx("rest_positionRisk_v2.json")) == []
        assert (
            same_keys(bodies["/sapi/v1/account/apiRestrictions"], fx("rest_apiRestrictions.json"))
            == []
        )
        assert same_keys(bodies["/fapi/v1/leverageBracket"], fx("rest_leverageBracket.json")) == []


async def _signed_get(http: aiohttp.ClientSession, mock: BinanceMock, path: str) -> Any:
    import hashlib
    import hmac

    query = f"recvWindow=5000&timestamp={mock.server_ms()}"
    sig = hmac.new(b"s", query.encode(), hashlib.sha256).hexdigest()
    async with http.get(
        f"{mock.url}{path}?{query}&signature={sig}", headers={"X-MBX-APIKEY": "k"}
    ) as resp:
        assert resp.status == 200
        return await resp.json()


def test_a_pm_risk_level_change_asks_for_a_re_snapshot() -> None:
    st = BinanceAccountState("pm")
    events, reconnect = st.on_event(json.dumps(fx("ws_riskLevelChange.json")), 0.0)
    assert (events, reconnect) == ([], None)
    assert st.refresh
