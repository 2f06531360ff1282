"""The inspect table: numbers at any magnitude, truthful states, runway in days and hours,
control characters of venue-chosen strings neutralised (real portfolios, no stand-ins)."""

from __future__ import annotations

from typing import Any

from monitor.model.events import AccountSnapshot
from monitor.model.instruments import MaintenanceSchedule, MarginMode
from monitor.model.positions import Position
from monitor.report import render_table, risks_of, scope_state

ONE_PCT = MaintenanceSchedule.flat(0.01)


def pos(symbol: str, size: float, entry: float, mark: float, **kw: Any) -> Position:
    return Position(
        symbol=symbol, size=size, entry_price=entry, mark_price=mark, maintenance=ONE_PCT, **kw
    )


def test_tiny_prices_keep_significant_digits_and_huge_sizes_no_exponent() -> None:
    # 40 000 000 PEPE long at 0.000013, collateral 100: MM = 0.01 · 520 = 5.2;
    # liquidation: 100 + 4e7·(P − 0.000013) = 0.01 · 4e7 · P → P = 420 / 3.96e7 = 0.0000106061
    pepe = pos("PEPE", 40_000_000.0, 0.000013, 0.000013)
    table = render_table(risks_of([AccountSnapshot("generic", "acct", 100.0, (pepe,))]))
    (row,) = [line.split() for line in table.splitlines() if line.strip().startswith("PEPE")]
    assert row[:4] == ["PEPE", "40,000,000", "0.000013", "0.000013"]
    assert row[6] == "0.0000106061"


def test_a_margin_ratio_of_exactly_one_is_liquidatable() -> None:
    # BTC +1 at 50 000, 1 % → MM 500; collateral 500 → ratio 500 / 500 = 1
    snap = AccountSnapshot("generic", "acct", 500.0, (pos("BTC", 1.0, 50_000.0, 50_000.0),))
    (risk,) = risks_of([snap])
    assert risk.margin_ratio == 1.0
    assert scope_state(risk) == "LIQUIDATABLE"
    assert "margin ratio 100.00%   free collateral" in render_table([risk])
    assert render_table([risk]).splitlines()[2].endswith("LIQUIDATABLE")


def test_an_empty_cross_pool_of_an_isolated_only_account_is_not_liquidatable() -> None:
    eth = pos("ETH", -10.0, 3000.0, 3000.0, margin_mode=MarginMode.ISOLATED, isolated_margin=2e3)
    risks = risks_of([AccountSnapshot("generic", "acct", 100.0, (eth,))], include_empty_cross=True)
    by = {r.scope: r for r in risks}
    assert scope_state(by["cross"]) == "no positions"
    # the isolated ETH short: equity 2 000, MM 0.01 · 30 000 = 300 → 15 %
    assert scope_state(by["isolated:ETH"]) == "not liquidatable"
    assert "LIQUIDATABLE" not in render_table(risks)


def test_runway_prints_in_days_and_hours() -> None:
    # BTC +1 at 50 000 paying 0.01 %/h: 5 per hour; headroom 100 000 − 500 = 99 500
    # → 19 900 h = 829 d 4 h
    btc = pos("BTC", 1.0, 50_000.0, 50_000.0, funding_rate=0.0001, funding_interval_hours=1.0)
    (risk,) = risks_of([AccountSnapshot("generic", "acct", 100_000.0, (btc,))])
    assert risk.funding_runway_hours is not None
    assert "runway 829 d 4 h" in render_table([risk])


def test_control_characters_in_venue_strings_do_not_break_the_table() -> None:
    snap = AccountSnapshot("generic", "ac\x1b[2Jct", 1000.0, (pos("BT\nC", 1.0, 100.0, 100.0),))
    table = render_table(risks_of([snap]))
    assert "\x1b" not in table
    assert table.splitlines()[0] == "generic ac [2Jct  [cross]"
    assert any(line.split()[0] == "BT" and line.split()[1] == "C" for line in table.splitlines())


def test_a_scope_whose_figures_are_unknown_is_unknown_in_the_table() -> None:
    """NaN figures (a scope whose computation raised) are never "not liquidatable"."""
    from dataclasses import replace

    snap = AccountSnapshot("generic", "acct", 500.0, (pos("BTC", 1.0, 50_000.0, 50_000.0),))
    (risk,) = risks_of([snap])
    nan = float("nan")
    unknown = replace(risk, equity=nan, maintenance_margin=nan, margin_ratio=nan)
    assert scope_state(unknown) == "UNKNOWN"
    assert render_table([unknown]).splitlines()[2].endswith("UNKNOWN")
    assert scope_state(replace(unknown, positions=())) == "no positions, equity unknown"


def test_a_scope_whose_equity_overflowed_is_unknown_in_the_table() -> None:
    from dataclasses import replace

    snap = AccountSnapshot("generic", "acct", 500.0, (pos("BTC", 1.0, 50_000.0, 50_000.0),))
    (risk,) = risks_of([snap])
    assert scope_state(replace(risk, equity=float("inf"), margin_ratio=0.0)) == "UNKNOWN"
