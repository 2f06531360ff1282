"""The lazy refresh of a holding at a new price (``Portfolio._sync``, run by ``rearm``,
``quick_ratio``, ``risk``...) is atomic per holding: when the maintenance figure raises (a
margin-model bug on an odd tier), the holding keeps its old price, value and maintenance, so
the scope's aggregates stay the sum of its holdings and the refresh that succeeds later
adds the whole move. Before, the holding took its new value and the scope never did: the
scope's equity missed that move until a re-sum (the engine's recovery decided on it)."""

from __future__ import annotations

from typing import ClassVar

import pytest

from monitor.model.events import AccountSnapshot, MarkPrice
from monitor.model.instruments import MaintenanceSchedule, Tier
from monitor.model.portfolio import Portfolio
from monitor.model.positions import Position, ScopeKey

KEY = ScopeKey("generic", "a", "cross")


class _Faulty(MaintenanceSchedule):
    """Fault injection: a flat 1 % schedule whose bracket lookup raises while ``broken``."""

    broken: ClassVar[bool] = False

    def index_for(self, notional: float) -> int:
        if type(self).broken:
            raise RuntimeError("odd tier")
        return super().index_for(notional)


def test_a_refresh_whose_maintenance_raises_keeps_the_scope_the_sum_of_its_holdings() -> None:
    btc = Position("BTC", 1.0, 100.0, maintenance=_Faulty((Tier(0.0, 0.01),)), mark_price=100.0)
    p = Portfolio()
    p.apply(AccountSnapshot("generic", "a", 10.0, (btc,)))
    assert p.aggregates(KEY) == (10.0, 1.0)
    try:
        _Faulty.broken = True
        p.apply_fast(MarkPrice("generic", "BTC", 91.0))
        with pytest.raises(RuntimeError):
            p.quick_ratio(KEY)
        p.apply_fast(MarkPrice("generic", "BTC", 95.0))
        with pytest.raises(RuntimeError):
            p.quick_ratio(KEY)
    finally:
        _Faulty.broken = False
    # the whole move from 100 to 95 (before: equity 10, as if BTC were still at 100; the
    # holding had taken 95 when its refresh raised, so the one that succeeded added nothing)
    equity, maintenance = p.aggregates(KEY)
    assert (equity, maintenance) == p.full_recompute(KEY)
    assert equity == 5.0 and maintenance == pytest.approx(0.95)
