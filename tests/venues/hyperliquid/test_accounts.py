"""Hyperliquid clearinghouseState fixtures: our liquidation prices equal the venue's."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from monitor.errors import InputError
from monitor.model.instruments import MarginMode
from monitor.report import portfolio_of
from monitor.venues.hyperliquid.accounts import clearinghouse_to_snapshot

FEEDS = Path(__file__).parents[2] / "fixtures" / "feeds" / "hyperliquid"
DOCS = ["rest_info_clearinghouseState_response.json", "ws_clearinghouseState.json"]


@pytest.mark.parametrize("name", DOCS)
def test_liquidation_prices_equal_the_venue_liquidationPx(name: str) -> None:
    doc = json.loads((FEEDS / name).read_text())
    snap = clearinghouse_to_snapshot(doc, name)
    risks = portfolio_of([snap]).risks()
    checked = 0
    for r in risks:
        for p in r.positions:
            assert p.venue_liquidation_price is not None
            assert p.liquidation_price == pytest.approx(p.venue_liquidation_price, rel=1e-6)
            checked += 1
    assert checked == 2


def test_cross_and_isolated_figures_match_the_summaries() -> None:
    doc = json.loads((FEEDS / DOCS[0]).read_text())
    snap = clearinghouse_to_snapshot(doc, DOCS[0])
    assert {p.symbol: p.margin_mode for p in snap.positions} == {
        "BTC": MarginMode.CROSS,
        "ETH": MarginMode.ISOLATED,
    }
    risks = {r.scope: r for r in portfolio_of([snap]).risks()}
    cross = risks["cross"]
    # cross equity = crossMarginSummary.accountValue; MM = crossMaintenanceMarginUsed
    assert cross.equity == pytest.approx(561.55, rel=1e-9)
    assert cross.maintenance_margin == pytest.approx(59.394375, rel=1e-9)
    # free collateral = accountValue − Σ positionValue/leverage = withdrawable
    assert cross.free_collateral == pytest.approx(86.395, rel=1e-9)
    iso = risks["isolated:ETH"]
    # isolated equity = rawUsd + szi·mark = marginUsed
    assert iso.equity == pytest.approx(882.804, rel=1e-9)
    assert iso.positions[0].unrealized_pnl == pytest.approx(33.18, abs=0.05)


def test_ws_push_names_the_user_as_account() -> None:
    doc = json.loads((FEEDS / DOCS[1]).read_text())
    snap = clearinghouse_to_snapshot(doc, DOCS[1])
    assert snap.account == doc["data"]["user"]
    assert snap.ts_event == pytest.approx(1778000000.123)


def test_integers_sent_as_strings_are_accepted() -> None:
    doc = json.loads((FEEDS / DOCS[0]).read_text())
    for ap in doc["assetPositions"]:
        ap["position"]["maxLeverage"] = str(ap["position"]["maxLeverage"])
        ap["position"]["leverage"]["value"] = str(ap["position"]["leverage"]["value"])
    snap = clearinghouse_to_snapshot(doc, "x.json")
    risks = portfolio_of([snap]).risks()
    assert risks[0].positions[0].liquidation_price == pytest.approx(84860.76, rel=1e-6)


@pytest.mark.parametrize(
    ("mutate", "field"),
    [
        (lambda d: d["assetPositions"][0]["position"].pop("szi"), "assetPositions[0].position.szi"),
        (
            lambda d: d["assetPositions"][0]["position"].__setitem__("entryPx", "NaN"),
            "assetPositions[0].position.entryPx",
        ),
        (
            lambda d: d["assetPositions"][1]["position"]["leverage"].__setitem__("type", "x"),
            "assetPositions[1].position.leverage.type",
        ),
        (lambda d: d["crossMarginSummary"].pop("totalRawUsd"), "crossMarginSummary.totalRawUsd"),
    ],
)
def test_bad_fields_are_named(mutate: object, field: str) -> None:
    doc = json.loads((FEEDS / DOCS[0]).read_text())
    mutate(doc)  # type: ignore[operator]
    with pytest.raises(InputError) as exc:
        clearinghouse_to_snapshot(doc, "bad.json")
    assert exc.value.field == field
    assert str(exc.value).startswith("bad.json: " + field)


def test_fast_and_validating_paths_agree_on_well_formed_documents() -> None:
    from monitor.venues.hyperliquid.accounts import _validated

    for name in DOCS:
        doc = json.loads((FEEDS / name).read_text())
        assert clearinghouse_to_snapshot(doc, name) == _validated(doc, name)
