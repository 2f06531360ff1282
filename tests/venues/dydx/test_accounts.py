"""dYdX v4 fixtures: computed equity and free collateral equal the indexer's."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from monitor.errors import InputError
from monitor.model.instruments import MarginMode
from monitor.report import portfolio_of
from monitor.venues.dydx.accounts import (
    effective_imf,
    markets_from_doc,
    parent_account,
    read_markets,
    subaccount_snapshots,
)

FEEDS = Path(__file__).parents[2] / "fixtures" / "feeds" / "dydx"


def _markets() -> dict[str, object]:
    return markets_from_doc(json.loads((FEEDS / "rest_perpetualMarkets.json").read_text()), "m")


@pytest.mark.parametrize("name", ["rest_subaccount.json", "ws_subscribed_v4_subaccounts.json"])
def test_equity_and_free_collateral_equal_the_indexer(name: str) -> None:
    doc = json.loads((FEEDS / name).read_text())
    (snap,) = subaccount_snapshots(doc, _markets(), name)  # type: ignore[arg-type]
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
    (snap,) = subaccount_snapshots(doc, _markets(), "s")  # type: ignore[arg-type]
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
        subaccount_snapshots(doc, {}, "s.json", markets_source="m.json")
    assert exc.value.source == "m.json"
    assert exc.value.field == "markets.BTC-USD"


ADDR = "dydx1q8m3v5x9ljk2h7s0w4e6r8t0y2u4i6o8p0a2s4"


def _sub(n: int, usdc: float, positions: dict[str, tuple[float, float]]) -> dict[str, Any]:
    return {
        "address": ADDR,
        "subaccountNumber": n,
        "equity": "0",
        "freeCollateral": "0",
        "openPerpetualPositions": {
            m: {
                "market": m,
                "status": "OPEN",
                "side": "LONG" if s > 0 else "SHORT",
                "size": str(s),
                "entryPrice": str(e),
                "subaccountNumber": n,
            }
            for m, (s, e) in positions.items()
        },
        "assetPositions": {
            "USDC": {
                "size": str(abs(usdc)),
                "symbol": "USDC",
                "side": "LONG" if usdc >= 0 else "SHORT",
            }
        },
    }


def _parent(*children: dict[str, Any]) -> dict[str, Any]:
    return {
        "subaccount": {
            "address": ADDR,
            "parentSubaccountNumber": 0,
            "childSubaccounts": list(children),
        }
    }


def test_issue_example_an_empty_childs_usdc_does_not_back_the_parent() -> None:
    # parent 0: 0.1 BTC-USD long, USDC −8,375.05; empty child 128: 500 USDC; MMF(BTC) = 0.012
    doc = _parent(_sub(0, -8375.05, {"BTC-USD": (0.1, 90000.0)}), _sub(128, 500.0, {}))
    snaps = subaccount_snapshots(doc, _markets(), "p")  # type: ignore[arg-type]
    assert [s.account for s in snaps] == [f"{ADDR}/0", f"{ADDR}/128"]
    risks = {r.account: r for r in portfolio_of(snaps).risks(include_empty_cross=True)}
    (btc,) = risks[f"{ADDR}/0"].positions
    assert btc.maintenance_rate == pytest.approx(0.012)
    # subaccount 0 liquidates where −8,375.05 + 0.1·P = 0.012·0.1·P = 0.0012·P
    # ⇒ P = 8,375.05 / (0.1 − 0.0012) = 84,767.71 (the old pooled figure was 79,706.98)
    assert btc.liquidation_price == pytest.approx(8375.05 / (0.1 - 0.0012))
    assert btc.liquidation_price == pytest.approx(84767.71, abs=0.01)
    # equity at oracle 95,018.54: −8,375.05 + 0.1·95,018.54; the child's 500 is not in it
    assert risks[f"{ADDR}/0"].equity == pytest.approx(-8375.05 + 0.1 * 95018.54)
    assert risks[f"{ADDR}/128"].equity == pytest.approx(500.0)
    assert risks[f"{ADDR}/128"].positions == ()


def test_a_child_with_two_positions_is_one_pool_of_its_own() -> None:
    doc = _parent(
        _sub(0, 1000.0, {}),
        _sub(256, 2000.0, {"BTC-USD": (0.01, 95000.0), "ETH-USD": (-1.0, 3500.0)}),
    )
    snaps = subaccount_snapshots(doc, _markets(), "p")  # type: ignore[arg-type]
    by = {s.account: s for s in snaps}
    child = by[f"{ADDR}/256"]
    assert {p.symbol for p in child.positions} == {"BTC-USD", "ETH-USD"}
    assert all(p.margin_mode is MarginMode.CROSS for p in child.positions)
    # collateral excl. uPnL = Q + Σ s·entry = 2000 + 0.01·95000 − 1·3500
    assert child.cross_collateral == pytest.approx(2000 + 0.01 * 95000 - 3500)
    assert by[f"{ADDR}/0"].cross_collateral == pytest.approx(1000.0)


def test_venue_figures_are_read_per_subaccount() -> None:
    c0 = _sub(0, 100.0, {})
    c0["equity"], c0["freeCollateral"] = "100", "100"
    c128 = _sub(128, 500.0, {})
    c128["equity"], c128["freeCollateral"] = "500", "500"
    doc = _parent(c0, c128)
    doc["subaccount"]["equity"] = "600"  # the sum of all children: not comparable with either
    snaps = subaccount_snapshots(doc, _markets(), "p")  # type: ignore[arg-type]
    assert [(s.venue_equity, s.venue_free_collateral) for s in snaps] == [(100, 100), (500, 500)]


def test_parent_pool_is_listed_even_when_the_document_omits_it() -> None:
    snaps = subaccount_snapshots(_parent(_sub(128, 500.0, {})), _markets(), "p")  # type: ignore[arg-type]
    assert [(s.account, s.cross_collateral, s.positions) for s in snaps] == [
        (f"{ADDR}/0", 0.0, ()),
        (f"{ADDR}/128", 500.0, ()),
    ]


@pytest.mark.parametrize(
    ("number", "problem"),
    [(129, "not a child of parent 0"), (128, "listed twice"), (-1, "subaccount number")],
)
def test_foreign_or_duplicate_children_are_refused(number: int, problem: str) -> None:
    doc = _parent(_sub(128, 1.0, {}), _sub(number, 1.0, {}))
    with pytest.raises(InputError, match=problem):
        subaccount_snapshots(doc, _markets(), "p")  # type: ignore[arg-type]


def _markets_doc() -> dict[str, Any]:
    doc: dict[str, Any] = json.loads((FEEDS / "rest_perpetualMarkets.json").read_text())
    return doc


def test_a_market_without_oracle_price_is_skipped_and_the_others_are_read() -> None:
    doc = _markets_doc()
    new = dict(doc["markets"]["ETH-USD"], ticker="NEW-USD", oraclePrice=None)
    doc["markets"]["NEW-USD"] = new
    gone = dict(doc["markets"]["ETH-USD"], ticker="GONE-USD")
    del gone["oraclePrice"]
    doc["markets"]["GONE-USD"] = gone
    doc["markets"]["BAD-USD"] = dict(doc["markets"]["ETH-USD"], maintenanceMarginFraction="x")
    read = read_markets(doc, "m")
    assert set(read.infos) == {"BTC-USD", "ETH-USD", "TRUMP-USD"}
    assert read.skipped["NEW-USD"] == "no oracle price yet"
    assert read.skipped["GONE-USD"] == "no oracle price yet"
    assert "not a number" in read.skipped["BAD-USD"]
    # the account holding only BTC is reported
    sub = json.loads((FEEDS / "rest_subaccount.json").read_text())
    (snap,) = subaccount_snapshots(sub, read.infos, "s", skipped=read.skipped)
    assert [p.symbol for p in snap.positions] == ["BTC-USD"]


def test_a_position_in_an_unpriced_market_is_refused_naming_it() -> None:
    doc = _markets_doc()
    doc["markets"]["BTC-USD"]["oraclePrice"] = None
    read = read_markets(doc, "m.json")
    sub = json.loads((FEEDS / "rest_subaccount.json").read_text())
    with pytest.raises(InputError) as exc:
        subaccount_snapshots(sub, read.infos, "s", markets_source="m.json", skipped=read.skipped)
    assert exc.value.field == "markets.BTC-USD"
    assert exc.value.problem == "market not priced: no oracle price yet"


@pytest.mark.parametrize("value", ["1e16", "-2e15", 1e300])
def test_sizes_no_venue_can_produce_are_refused(value: Any) -> None:
    sub = json.loads((FEEDS / "rest_subaccount.json").read_text())
    sub["subaccount"]["openPerpetualPositions"]["BTC-USD"]["size"] = value
    with pytest.raises(InputError, match="beyond any venue"):
        subaccount_snapshots(sub, _markets(), "s")  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("account", "parent"),
    [
        (f"{ADDR}/0", f"{ADDR}/0"),
        (f"{ADDR}/128", f"{ADDR}/0"),
        (f"{ADDR}/261", f"{ADDR}/5"),  # 261 = 5 + 2·128
        (f"{ADDR}/127", f"{ADDR}/127"),
        ("not-an-id", "not-an-id"),
        (f"{ADDR}/x", f"{ADDR}/x"),
    ],
)
def test_parent_account_maps_a_child_pool_to_its_parent(account: str, parent: str) -> None:
    assert parent_account(account) == parent
