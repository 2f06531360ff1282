"""Scope risk figures that are easy to get wrong at the edges."""

from __future__ import annotations

import pytest

from monitor.margin.risk import liquidation_distance
from monitor.model.events import AccountSnapshot, MarkPrice
from monitor.model.instruments import MaintenanceSchedule
from monitor.model.portfolio import Portfolio
from monitor.model.positions import Position, ScopeKey

KEY = ScopeKey("generic", "a", "cross")


def _book(size: float = 1.0) -> Portfolio:
    # 1 BTC at 100 on 10 of collateral, MM 1 %: P* = 90 / 0.99 = 90.909 for the long
    p = Portfolio()
    pos = Position("BTC", size, 100.0, maintenance=MaintenanceSchedule.flat(0.01), mark_price=100.0)
    p.apply(AccountSnapshot("generic", "a", 10.0, (pos,)))
    return p


def test_distance_is_measured_on_the_adverse_side_and_is_zero_once_liquidatable() -> None:
    p = _book()
    p.apply(MarkPrice("generic", "BTC", 93.0))
    r = p.risk(KEY)
    assert r is not None
    # (93 − 90.909) / 93
    assert r.positions[0].liquidation_distance == pytest.approx((93 - 90 / 0.99) / 93)
    p.apply(MarkPrice("generic", "BTC", 80.0))  # gapped past the liquidation price
    r = p.risk(KEY)
    assert r is not None
    assert r.liquidatable
    assert r.positions[0].liquidation_distance == 0.0  # not |80 − 90.9| / 80 = 13.6 %
    assert r.nearest_liquidation_distance == 0.0
    q = p.quick(KEY)
    assert q is not None
    assert q.nearest_liquidation_distance == 0.0


def test_distance_of_a_short() -> None:
    assert liquidation_distance(-1.0, 100.0, 110.0, False) == pytest.approx(0.1)
    assert liquidation_distance(1.0, 100.0, 90.0, False) == pytest.approx(0.1)
    assert liquidation_distance(1.0, 100.0, 90.0, True) == 0.0
    assert liquidation_distance(1.0, 100.0, None, False) is None
