"""Hyperliquid unified and portfolio-margin accounts, ADL and liquidation fills (parser level,
exact wire documents from tests/fixtures/feeds/hyperliquid; sources in its README.md)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from monitor.errors import ParseError
from monitor.model.events import (
    AccountSnapshot,
    Deleveraged,
    Event,
    Liquidated,
    VenueMarginRatio,
)
from monitor.model.instruments import MarginMode
from monitor.venues.hyperliquid import accounts
from monitor.venues.hyperliquid.parse import VENUE, HyperliquidParser, account_name

HL = Path(__file__).parents[2] / "fixtures" / "feeds" / "hyperliquid"
USER = "0x7a3b6f0e2d9c41b58e6f1c2d3e4f5a6b7c8d9e0f"
T = 1_778_000_001.0  # a wall-clock receive time just after the fixtures' `time`s


def raw(name: str) -> str:
    return (HL / name).read_text()


def doc(name: str) -> Any:
    return json.loads(raw(name))


def snaps(events: list[Event]) -> dict[str, AccountSnapshot]:
    return {e.account: e for e in events if isinstance(e, AccountSnapshot)}


def unified_parser(mode: str = "unifiedAccount") -> tuple[HyperliquidParser, list[Event]]:
    """A parser that learnt the dexes' collateral, the mode, the three dex states and the spot
    state, in that order; the events of the last step (the pools)."""
    p = HyperliquidParser()
    p.account_events = True
    p.collateral.update({"": 0, "xyz": 0, "cash": 268})
    assert p.parse_rest(f"userAbstraction:{USER}", json.dumps(mode), T) == []
    for dex in ("main", "xyz", "cash"):
        name = f"clearinghouseState:{USER}" + ("" if dex == "main" else f"@{dex}")
        body = raw(f"rest_info_clearinghouseState_response_unified_{dex}.json")
        # no spot state yet: a pooled account has no figure to emit
        assert p.parse_rest(name, body, T) == []
    spot = (
        "rest_info_spotClearinghouseState_response_unified.json"
        if mode == "unifiedAccount"
        else "rest_info_spotClearinghouseState_response_portfolioMargin.json"
    )
    return p, p.parse_rest(f"spotClearinghouseState:{USER}", raw(spot), T)


# -- unified account ratio ----------------------------------------------------------------
def test_unified_account_is_one_usdc_pool_across_dexes_with_the_venues_ratio() -> None:
    _, events = unified_parser()
    pools = snaps(events)
    assert set(pools) == {USER, f"{USER}@USDT0"}
    usdc = pools[USER]
    # the USDC pool holds the first dex's BTC (cross) and ETH (isolated) and xyz's NVDA
    assert sorted(p.symbol for p in usdc.positions) == ["BTC", "ETH", "xyz:NVDA"]
    # isolated margin = marginUsed of ETH = rawUsd + szi·mark = 5097.744 − 1.2·3512.45 = 882.804
    # venue equity = spot total − isolated = 1500 − 882.804 = 617.196
    assert usdc.venue_equity == pytest.approx(617.196)
    # venue maintenance = Σ crossMaintenanceMarginUsed of USDC dexes = 59.394375 + 92.5
    assert usdc.venue_maintenance == pytest.approx(151.894375)
    # UAR_USDC = 151.894375 / 617.196 = 0.2461040
    assert usdc.venue_maintenance is not None and usdc.venue_equity is not None
    assert usdc.venue_maintenance / usdc.venue_equity == pytest.approx(0.2461040, rel=1e-6)
    # cross collateral excl. uPnL = 617.196 − [0.05·(95031 − 93800) + 10·(185 − 180)]
    #                             = 617.196 − (61.55 + 50) = 505.646
    assert usdc.cross_collateral == pytest.approx(505.646)


def test_unified_account_second_collateral_token_is_its_own_pool() -> None:
    _, events = unified_parser()
    usdt = snaps(events)[f"{USER}@USDT0"]
    assert [p.symbol for p in usdt.positions] == ["cash:TSLA"]
    # UAR_USDT0 = 41 / (300 − 0) = 0.13667; collateral = 300 − (−2)·(410 − 400) = 320
    assert usdt.venue_equity == pytest.approx(300.0)
    assert usdt.venue_maintenance == pytest.approx(41.0)
    assert usdt.cross_collateral == pytest.approx(320.0)


def test_unified_pool_equity_follows_the_mark_like_the_venues_ratio() -> None:
    _, events = unified_parser()
    usdc = snaps(events)[USER]
    # at the snapshot's own marks our equity is the venue's denominator:
    # 505.646 + 61.55 + 50 = 617.196 (the ETH short is isolated: not in the cross pool)
    cross = [p for p in usdc.positions if p.margin_mode is MarginMode.CROSS]
    assert cross and all(p.mark_price is not None for p in cross)
    equity = usdc.cross_collateral + sum(
        p.size * (p.mark_price - p.entry_price) for p in cross if p.mark_price is not None
    )
    assert equity == pytest.approx(617.196)


def test_unified_pool_with_nothing_left_after_isolated_margin_alarms_not_skipped() -> None:
    p, _ = unified_parser()
    spot = doc("rest_info_spotClearinghouseState_response_unified.json")
    spot["balances"][0]["total"] = "800.0"  # 800 − 882.804 = −82.804: the docs' code skips it
    usdc = snaps(p.parse_rest(f"spotClearinghouseState:{USER}", json.dumps(spot), T))[USER]
    assert usdc.venue_equity == pytest.approx(-82.804)
    assert usdc.cross_collateral == pytest.approx(-82.804 - 111.55)


def test_perp_push_of_a_unified_account_updates_the_pool_not_a_per_dex_account() -> None:
    p, _ = unified_parser()
    push = doc("ws_clearinghouseState.json")  # the first dex, later `time`
    push["data"]["clearinghouseState"]["time"] += 1000
    events = p.parse(json.dumps(push), T + 1)
    assert set(snaps(events)) == {USER, f"{USER}@USDT0"}
    assert snaps(events)[USER].venue_equity == pytest.approx(617.196)


def test_spot_state_push_recomputes_the_pools() -> None:
    p, _ = unified_parser()
    frame = doc("ws_spotState.json")
    frame["data"]["spotState"]["balances"][0]["total"] = "1600.0"
    parsed = p.parse_frame(json.dumps(frame), T + 1)
    assert parsed.channel == f"spotState:{USER}"
    # 1600 − 882.804 = 717.196
    assert snaps(parsed.events)[USER].venue_equity == pytest.approx(717.196)


def test_standard_account_keeps_per_dex_pools_and_ignores_spot_state() -> None:
    p = HyperliquidParser()
    assert p.parse_rest(f"userAbstraction:{USER}", '"disabled"', T) == []
    body = raw("rest_info_clearinghouseState_response.json")
    (snap,) = p.parse_rest(f"clearinghouseState:{USER}", body, T)
    # exactly today's figures: cross collateral = totalRawUsd + Σ_cross szi·entry
    assert snap == HyperliquidParser().parse_rest(f"clearinghouseState:{USER}", body, T)[0]
    spot = raw("rest_info_spotClearinghouseState_response_unified.json")
    assert p.parse_rest(f"spotClearinghouseState:{USER}", spot, T) == []


def test_switch_to_unified_empties_the_per_dex_accounts_and_back() -> None:
    p = HyperliquidParser()
    p.collateral.update({"": 0, "xyz": 0, "cash": 268})
    p.parse_rest(f"userAbstraction:{USER}", '"disabled"', T)
    for dex in ("main", "xyz", "cash"):
        name = f"clearinghouseState:{USER}" + ("" if dex == "main" else f"@{dex}")
        body = raw(f"rest_info_clearinghouseState_response_unified_{dex}.json")
        assert len(p.parse_rest(name, body, T)) == 1  # standard: one account per dex
    p.parse_rest(
        f"spotClearinghouseState:{USER}",
        raw("rest_info_spotClearinghouseState_response_unified.json"),
        T,
    )
    events = p.parse_rest(f"userAbstraction:{USER}", '"unifiedAccount"', T)
    emptied = [e for e in snaps(events).values() if not e.positions and e.cross_collateral == 0]
    assert {e.account for e in emptied} == {f"{USER}@xyz", f"{USER}@cash"}
    assert set(snaps(events)) == {USER, f"{USER}@USDT0", f"{USER}@xyz", f"{USER}@cash"}
    back = snaps(p.parse_rest(f"userAbstraction:{USER}", '"disabled"', T))
    assert back[f"{USER}@USDT0"].positions == ()  # the USDT0 pool is gone
    assert [x.symbol for x in back[f"{USER}@cash"].positions] == ["cash:TSLA"]


def test_portfolio_margin_carries_the_venues_ratio_as_the_venues_figure() -> None:
    _, events = unified_parser("portfolioMargin")
    (ratio,) = [e for e in events if isinstance(e, VenueMarginRatio)]
    assert ratio == VenueMarginRatio(
        VENUE,
        USER,
        0.4123,
        0.95,
        "spotClearinghouseState.portfolioMarginRatio",
        1_778_000_000.789,
        T,
    )
    # the pools are computed as for a unified account (HYPE collateral not counted)
    assert snaps(events)[USER].venue_equity == pytest.approx(617.196)


def test_unknown_account_mode_is_a_refused_body() -> None:
    with pytest.raises(ParseError, match="unknown account abstraction mode"):
        HyperliquidParser().parse_rest(f"userAbstraction:{USER}", '"quantumMargin"', T)
    with pytest.raises(ParseError):
        HyperliquidParser().parse_rest(f"userAbstraction:{USER}", '{"mode": 1}', T)


def test_pooled_snapshots_pure_function_maps_unlisted_dex_to_usdc() -> None:
    spot, _ = accounts.spot_state(
        doc("rest_info_spotClearinghouseState_response_unified.json"), "spot"
    )
    states = {"": doc("rest_info_clearinghouseState_response_unified_main.json")}
    states["xyz"] = doc("rest_info_clearinghouseState_response_unified_xyz.json")
    out = accounts.pooled_snapshots(USER, "unifiedAccount", states, spot, {})
    (pool,) = out
    assert isinstance(pool, AccountSnapshot)
    assert pool.account == USER and len(pool.positions) == 3
    assert spot.available_after_maintenance == {0: 465.301625, 268: 259.0}
    assert 150 in spot.balances and all(b.token != -1 for b in spot.balances.values())


# -- fills: ADL and liquidations ------------------------------------------------------------
def fill_parser() -> HyperliquidParser:
    p = HyperliquidParser()
    p.account_events = True
    assert p.parse(raw("ws_userFills_snapshot.json"), T) == []  # history is not news
    return p


def test_adl_fill_becomes_deleveraged_with_signed_size() -> None:
    parsed = fill_parser().parse_frame(raw("ws_userFills_adl.json"), T + 100)
    assert parsed.channel == f"userFills:{USER}"
    # side B of 0.4 ETH: the 1.2 ETH short shrinks to 0.8 → size +0.4 at 3512.4
    assert parsed.events == [Deleveraged(VENUE, USER, "ETH", 0.4, 3512.4, 1_778_000_100.0, T + 100)]


def test_own_liquidation_fill_becomes_liquidated_and_liquidator_side_is_nothing() -> None:
    p = fill_parser()
    (ev,) = p.parse(raw("ws_userFills_liquidation.json"), T + 200)
    assert ev == Liquidated(VENUE, USER, "BTC", -0.05, 84850.0, 1_778_000_200.0, T + 200)
    assert p.parse(raw("ws_userFills_liquidator_side.json"), T + 201) == []


def test_fill_snapshot_after_reconnect_emits_only_fills_newer_than_seen() -> None:
    p = fill_parser()
    adl = doc("ws_userFills_adl.json")["data"]["fills"][0]
    liq = doc("ws_userFills_liquidation.json")["data"]["fills"][0]
    assert len(p.parse(raw("ws_userFills_adl.json"), T)) == 1
    again = {
        "channel": "userFills",
        "data": {"isSnapshot": True, "user": USER, "fills": [adl, liq]},
    }
    (ev,) = p.parse(json.dumps(again), T + 300)  # the ADL was seen; the liquidation is news
    assert isinstance(ev, Liquidated)
    assert p.parse(json.dumps(again), T + 301) == []


def test_fill_on_a_hip3_dex_names_the_dex_account_or_the_pool() -> None:
    f = doc("ws_userFills_adl.json")
    f["data"]["fills"][0]["coin"] = "cash:TSLA"
    (ev,) = fill_parser().parse(json.dumps(f), T)
    assert isinstance(ev, Deleveraged) and ev.account == account_name(USER, "cash")
    p, _ = unified_parser()
    p.parse(raw("ws_userFills_snapshot.json"), T)
    (pooled,) = p.parse(json.dumps(f), T)
    assert isinstance(pooled, Deleveraged) and pooled.account == f"{USER}@USDT0"


@pytest.mark.parametrize(
    ("key", "value"),
    [("sz", "1e200"), ("px", "1e300"), ("side", "X"), ("tid", "7"), ("sz", "-1")],
)
def test_malformed_adl_fill_is_a_refused_frame(key: str, value: str) -> None:
    f = doc("ws_userFills_adl.json")
    f["data"]["fills"][0][key] = value
    with pytest.raises(ParseError):
        fill_parser().parse(json.dumps(f), T)


def test_without_account_events_the_parser_emits_no_fill_or_ratio_events() -> None:
    p = HyperliquidParser()  # as `monitor replay` builds it: the engine does not take them yet
    p.parse(raw("ws_userFills_snapshot.json"), T)
    assert p.parse(raw("ws_userFills_adl.json"), T) == []
    p.collateral[""] = 0
    p.parse_rest(f"userAbstraction:{USER}", '"portfolioMargin"', T)
    p.parse_rest(
        f"clearinghouseState:{USER}",
        raw("rest_info_clearinghouseState_response_unified_main.json"),
        T,
    )
    name = "rest_info_spotClearinghouseState_response_portfolioMargin.json"
    events = p.parse_rest(f"spotClearinghouseState:{USER}", raw(name), T)
    assert [type(e) for e in events] == [AccountSnapshot]


def test_account_documents_for_inspect_give_the_pools_or_the_per_dex_accounts() -> None:
    states = {
        dex: doc(f"rest_info_clearinghouseState_response_unified_{name}.json")
        for dex, name in (("", "main"), ("xyz", "xyz"), ("cash", "cash"))
    }
    metas = {"": doc("rest_info_metaAndAssetCtxs_response.json"), "cash": {"collateralToken": 268}}
    spot = doc("rest_info_spotClearinghouseState_response_unified.json")
    pooled = accounts.account_documents(USER, "unifiedAccount", states, spot, metas)
    assert {e.account for e in pooled} == {USER, f"{USER}@USDT0"}
    usdc = snaps(list(pooled))[USER]
    assert usdc.venue_equity == pytest.approx(617.196)  # 1500 − 882.804
    standard = accounts.account_documents(USER, "default", states)
    assert [e.account for e in standard] == [USER, f"{USER}@xyz", f"{USER}@cash"]
    with pytest.raises(accounts.InputError, match="spotClearinghouseState"):
        accounts.account_documents(USER, "unifiedAccount", states)
