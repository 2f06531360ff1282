"""A Hyperliquid unified account's pools through the real Portfolio and margin rules: our
margin ratio reproduces the venue's Unified Account Ratio (Hyperliquid docs, "Account
abstraction modes"), and the pool responds to marks as the venue's ratio does."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from monitor.model.events import AccountSnapshot, MarkPrice
from monitor.model.portfolio import Portfolio
from monitor.model.positions import ScopeKey
from monitor.venues.hyperliquid.accounts import account_documents

HL = Path(__file__).parents[1] / "fixtures" / "feeds" / "hyperliquid"
USER = "0x7a3b6f0e2d9c41b58e6f1c2d3e4f5a6b7c8d9e0f"


def doc(name: str) -> Any:
    return json.loads((HL / name).read_text())


def unified_book() -> Portfolio:
    states = {
        dex: doc(f"rest_info_clearinghouseState_response_unified_{name}.json")
        for dex, name in (("", "main"), ("xyz", "xyz"), ("cash", "cash"))
    }
    spot = doc("rest_info_spotClearinghouseState_response_unified.json")
    metas = {"xyz": {"collateralToken": 0}, "cash": {"collateralToken": 268}}
    p = Portfolio()
    for ev in account_documents(USER, "unifiedAccount", states, spot, metas):
        assert isinstance(ev, AccountSnapshot)
        p.apply(ev)
    return p


def test_margin_ratio_of_the_usdc_pool_is_the_venues_unified_account_ratio() -> None:
    r = unified_book().risk(ScopeKey("hyperliquid", USER, "cross"))
    assert r is not None
    # maintenance: BTC 4751.55 / (2·40) = 59.394375; xyz:NVDA 1850 / (2·10) = 92.5
    assert r.maintenance_margin == pytest.approx(151.894375)
    # equity: spot USDC 1500 − isolated ETH margin 882.804 = 617.196
    assert r.equity == pytest.approx(617.196)
    # UAR = 151.894375 / 617.196 = 0.2461040, the venue's figures beside ours agree
    assert r.margin_ratio == pytest.approx(0.2461040, rel=1e-6)
    assert r.venue_equity == pytest.approx(r.equity)
    assert r.venue_maintenance == pytest.approx(r.maintenance_margin)


def test_usdt0_pool_is_separate_and_has_its_own_ratio() -> None:
    r = unified_book().risk(ScopeKey("hyperliquid", f"{USER}@USDT0", "cross"))
    assert r is not None
    # cash:TSLA short 2 at 410: maintenance 820 / 20 = 41; equity 300 → ratio 0.136667
    assert r.margin_ratio == pytest.approx(41 / 300)


def test_a_hip3_loss_drains_the_shared_usdc_pool_toward_liquidation() -> None:
    p = unified_book()
    key = ScopeKey("hyperliquid", USER, "cross")
    # NVDA falls from 185 to 140: the pool loses 10·45 = 450 → equity 617.196 − 450 = 167.196;
    # maintenance 59.394375 + 1400/20 = 129.394375 → ratio 0.77391
    p.apply(MarkPrice("hyperliquid", "xyz:NVDA", 140.0))
    r = p.risk(key)
    assert r is not None
    assert r.equity == pytest.approx(167.196)
    assert r.margin_ratio == pytest.approx(129.394375 / 167.196)
    assert not r.liquidatable
    # and at 130: equity 617.196 − 550 = 67.196 < maintenance 59.394375 + 65 = 124.394375
    p.apply(MarkPrice("hyperliquid", "xyz:NVDA", 130.0))
    r = p.risk(key)
    assert r is not None and r.liquidatable
