"""Venue worked examples with the arithmetic beside each assertion (issue 13.2).

Bybit USDT perpetual, isolated (Help Center "Liquidation Price (USDT Contract)" and
"Liquidation Price Calculation under Isolated Mode (Unified Trading Account)"): the position
margin includes an estimated fee to close valued at the bankruptcy price, and the maintenance
margin counts the same fee, so it cancels out of the liquidation price. Binance's four FAQ
examples are cases of tests/fixtures/reference/margin_cases.json.
"""

from __future__ import annotations

import pytest

from monitor.margin.base import Leg
from monitor.margin.bybit import BybitRules
from monitor.model.events import AccountSnapshot
from monitor.model.instruments import MaintenanceSchedule, MarginMode
from monitor.model.portfolio import Portfolio
from monitor.model.positions import Position, ScopeKey, isolated_scope

FEE = 0.00055  # Bybit's standard taker fee


def bybit_isolated(
    size: float, margin: float, *, leverage: float | None, fee: float = FEE
) -> tuple[float | None, float]:
    """(liquidation price, maintenance) of one isolated BTCUSDT position at entry 20,000."""
    pos = Position(
        "BTCUSDT",
        size,
        20_000.0,
        MarginMode.ISOLATED,
        isolated_margin=margin,
        leverage=leverage,
        maintenance=MaintenanceSchedule.flat(0.005),
        fee_rate=fee,
        mark_price=20_000.0,
    )
    p = Portfolio()
    p.apply(AccountSnapshot("bybit", "docs", 0.0, (pos,)))
    risk = p.risk(ScopeKey("bybit", "docs", isolated_scope("BTCUSDT")))
    assert risk is not None
    return risk.positions[0].liquidation_price, risk.maintenance_margin


def test_bybit_example_1_long_with_the_fee_to_close_at_the_bankruptcy_price() -> None:
    # long 1 BTC at 20,000, 50x, MMR 0.5 %: IM = 20,000/50 = 400, MM = 20,000·0.5 % = 100
    # bankruptcy price BP = 20,000·(1 − 1/50) = 19,600; fee to close F = 1·19,600·0.055 % = 10.78
    # position margin = IM + F = 410.78; maintenance = MM + F = 110.78
    liq, mm = bybit_isolated(1.0, 410.78, leverage=50)
    assert mm == pytest.approx(100 + 19_600 * FEE)
    # LP = 20,000 − (410.78 − 110.78)/1 = 19,700: the document's figure, the fee cancels
    assert liq == pytest.approx(19_700.0, abs=1e-6)


def test_bybit_short_with_extra_margin_follows_the_same_formula() -> None:
    # short 1 BTC at 20,000, 50x, 3,000 USDT extra margin added (the help page's example 2
    # set-up); BP = 20,000·(1 + 1/50) = 20,400, F = 20,400·0.055 % = 11.22
    # position margin = 400 + 11.22 + 3,000; maintenance = 100 + 11.22
    liq, _ = bybit_isolated(-1.0, 3411.22, leverage=50)
    # LP = E + (IM − MM)/q + extra/q = 20,000 + (400 − 100) + 3,000 = 23,300
    assert liq == pytest.approx(23_300.0, abs=1e-6)


def test_the_old_entry_valued_fee_moved_the_price_by_fee_times_entry_over_leverage() -> None:
    rules = BybitRules()
    leg = Leg("BTCUSDT", 1.0, 20_000.0, MaintenanceSchedule.flat(0.005), True, FEE, 50.0)
    # fee at the bankruptcy price: 19,600·0.055 % = 10.78; at the entry: 20,000·0.055 % = 11
    assert rules.close_fee(leg) == pytest.approx(10.78)
    # the difference, fee·E/leverage = 0.055 %·20,000/50 = 0.22, was the old error in LP
    assert 20_000 * FEE - rules.close_fee(leg) == pytest.approx(FEE * 20_000 / 50)


def test_without_a_leverage_the_fee_is_valued_at_the_entry_price() -> None:
    # BP unknown: F = 1·20,000·0.055 % = 11; LP = 20,000 − (410.78 − 111) = 19,700.22
    liq, mm = bybit_isolated(1.0, 410.78, leverage=None)
    assert mm == pytest.approx(111.0)
    assert liq == pytest.approx(19_700.22)


def test_bybit_maintenance_rate_reports_the_fee_share_at_the_bankruptcy_price() -> None:
    rules = BybitRules()
    leg = Leg("BTCUSDT", -2.0, 20_000.0, MaintenanceSchedule.flat(0.005), True, FEE, 10.0)
    # short: BP = 20,000·(1 + 1/10) = 22,000; rate = 0.5 % + 0.055 %·22,000/20,000
    assert rules.maintenance_rate(leg, 21_000.0) == pytest.approx(0.005 + FEE * 1.1)
