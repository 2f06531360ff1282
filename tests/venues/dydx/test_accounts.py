"""dYdX v4 fixtures: computed equity and free collateral equal the indexer's."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from monitor.errors import InputError
from monitor.report import portfolio_of
from monitor.venues.dydx.accounts import (
    effective_imf,
    markets_from_doc,
    subaccount_to_snapshot,
)

FEEDS = Path(__file__).parents[2] / "fixtures" / "feeds" / "dydx"


def _markets() -> dict[str, object]:
    return markets_from_doc(json.loads((FEEDS / "rest_perpetualMarkets.json").read_text()), "m")


@pytest.mark.parametrize("name", ["rest_subaccount.json", "ws_subscribed_v4_subaccounts.json"])
def test_equity_and_free_collateral_equal_the_indexer(name: str) -> None:
    doc = json.loads((FEEDS / name).read_text())
    snap = subaccount_to_snapshot(doc, _markets(), name)  # type: ignore[arg-type]
    (risk,) = portfolio_of([snap]).risks()
    assert risk.venue_equity is not None and risk.venue_free_collateral is not None
    assert risk.equity == pytest.approx(risk.venue_equity, rel=1e-6)
    assert risk.free_collateral == pytest.approx(risk.venue_free_collateral, rel=1e-6)
    # equity = USDC 2623.746886 + 0.1 × oracle 95018.54
    assert risk.equity == pytest.approx(2623.746886 + 0.1 * 95018.54, rel=1e-12)


def test_markets_from_the_ws_subscribed_message_are_the_same() -> None:
    ws = json.loads((FEEDS / "ws_subscribed_v4_markets.json").read_text())
    assert set(markets_from_doc(ws, "ws")) == set(_markets())


def test_short_usdc_and_short_positions_are_negative() -> None:
    doc = json.loads((FEEDS / "rest_subaccount.json").read_text())
    sub = doc["subaccount"]
    sub["assetPositions"]["USDC"]["side"] = "SHORT"
    pos = sub["openPerpetualPositions"]["BTC-USD"]
    pos["side"], pos["size"] = "SHORT", "0.1"
    snap = subaccount_to_snapshot(doc, _markets(), "s")  # type: ignore[arg-type]
    assert snap.positions[0].size == -0.1
    # collateral = −2623.746886 + (−0.1)·93750.5
    assert snap.cross_collateral == pytest.approx(-2623.746886 - 9375.05)


def test_open_interest_scales_the_initial_margin_fraction() -> None:
    m = {
        "initialMarginFraction": "0.05",
        "openInterest": "100",
        "oraclePrice": "10",
        "openInterestLowerCap": "500",
        "openInterestUpperCap": "1500",
    }
    # f = (100·10 − 500)/(1500 − 500) = 0.5 → IMF = 0.05 + 0.5·0.95
    assert effective_imf(m, "m", "markets.X") == pytest.approx(0.05 + 0.5 * 0.95)
    m["openInterestUpperCap"] = "0"
    m["openInterestLowerCap"] = "0"
    assert effective_imf(m, "m", "markets.X") == pytest.approx(0.05)


def test_unknown_market_is_named() -> None:
    doc = json.loads((FEEDS / "rest_subaccount.json").read_text())
    with pytest.raises(InputError) as exc:
        subaccount_to_snapshot(doc, {}, "s.json", markets_source="m.json")
    assert exc.value.source == "m.json"
    assert exc.value.field == "markets.BTC-USD"


def test_parent_subaccount_children_above_127_are_isolated() -> None:
    doc = json.loads((FEEDS / "rest_subaccount.json").read_text())
    child0 = doc["subaccount"]
    child128 = json.loads(json.dumps(child0))
    child128["subaccountNumber"] = 128
    child128["assetPositions"]["USDC"]["size"] = "500"
    eth = child128["openPerpetualPositions"].pop("BTC-USD")
    eth.update(market="ETH-USD", size="2", entryPrice="3400")
    child128["openPerpetualPositions"]["ETH-USD"] = eth
    parent = {
        "subaccount": {
            "address": child0["address"],
            "parentSubaccountNumber": 0,
            "equity": "0",
            "freeCollateral": "0",
            "childSubaccounts": [child0, child128],
        }
    }
    snap = subaccount_to_snapshot(parent, _markets(), "p")  # type: ignore[arg-type]
    risks = {r.scope: r for r in portfolio_of([snap]).risks()}
    iso = risks["isolated:ETH-USD"]
    # the child's own USDC 500 + 2 × oracle 3512.871 backs only that position
    assert iso.equity == pytest.approx(500 + 2 * 3512.871)
    assert risks["cross"].equity == pytest.approx(2623.746886 + 9501.854)
