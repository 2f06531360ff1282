"""The trigger heaps stay compact in a trend: a falling price pops only ``lows`` on the fast
path, so the stale entries each re-arm leaves in ``highs`` must be compacted too."""

from __future__ import annotations

from monitor.model.events import AccountSnapshot, MarkPrice
from monitor.model.fastpath import Thresholds
from monitor.model.instruments import MaintenanceSchedule
from monitor.model.portfolio import Portfolio
from monitor.model.positions import Position, ScopeKey

VENUE = "binance_usdm"
THRESHOLDS = Thresholds(margin_ratio=(0.5, 0.9), equity=(), distance=())


def test_a_steady_fall_that_rearms_every_holder_keeps_both_heaps_compact() -> None:
    # 20 accounts long 1 BTC at 50,000 with 1e9 collateral (never near a threshold): each
    # tick down 0.5 % for 600 ticks (50,000 → 50,000 · 0.995^600 ≈ 2,470); a holder whose
    # band the price leaves is re-armed (80 re-arms). Without compacting ``highs`` it keeps
    # one stale entry per re-arm (20 live + 80 stale = 100); with it, at most
    # 20 + 20 // 4 + 16 = 41 entries a side
    p = Portfolio()
    sched = MaintenanceSchedule.flat(0.01)
    keys = []
    for i in range(20):
        btc = Position("BTC", 1.0, 50_000.0, maintenance=sched, mark_price=50_000.0)
        p.apply(AccountSnapshot(VENUE, f"a{i}", 1e9, (btc,)))
        keys.append(ScopeKey(VENUE, f"a{i}", "cross"))
    for k in keys:
        p.arm(k, THRESHOLDS)
    m = p.markets[(VENUE, "BTC")]
    price = 50_000.0
    rearms = longest = 0
    for _ in range(600):
        price *= 0.995
        for k in p.apply_fast(MarkPrice(VENUE, "BTC", price)):
            rearms += 1
            if p.rearm(k, THRESHOLDS):
                p.arm(k, THRESHOLDS)
        longest = max(longest, len(m.lows), len(m.highs))
    assert rearms >= 60  # every holder re-armed several times: 60 stale entries at least
    assert longest <= 20 + 5 + 16
