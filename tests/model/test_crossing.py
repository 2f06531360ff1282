"""A price that leaves more bands than a receive may report (``apply_fast(..., limit)``):
the rest are reported by ``Portfolio.cross`` in the next receives, nearest bound first, and
all together they are exactly what the unbounded tick reports, in the same order."""

from __future__ import annotations

from hypothesis import given, settings
from hypothesis import strategies as st

from monitor.model.events import AccountSnapshot, MarkPrice
from monitor.model.fastpath import Thresholds
from monitor.model.instruments import MaintenanceSchedule
from monitor.model.portfolio import Portfolio
from monitor.model.positions import Position, ScopeKey

THRESHOLDS = Thresholds(margin_ratio=(0.5, 0.8, 0.9), equity=(), distance=())
VENUE = "binance_usdm"


def book(cash: list[float], sides: list[float]) -> tuple[Portfolio, list[ScopeKey]]:
    """One account per ``cash``: 1 BTC long or short (``sides``) from 50,000, maintenance
    1 % flat, each armed at 50,000 (equal cash: equal bands)."""
    p = Portfolio()
    sched = MaintenanceSchedule.flat(0.01)
    keys = []
    for i, (c, side) in enumerate(zip(cash, sides, strict=True)):
        held = (Position("BTC", side, 50_000.0, maintenance=sched, mark_price=50_000.0),)
        p.apply(AccountSnapshot(VENUE, f"a{i}", c, held))
        keys.append(ScopeKey(VENUE, f"a{i}", "cross"))
    for k in keys:
        p.arm(k, THRESHOLDS)
    return p, keys


@settings(max_examples=150, deadline=None)
@given(
    accounts=st.lists(
        st.tuples(
            st.sampled_from([600.0, 800.0, 1_000.0, 1_500.0, 3_000.0]), st.sampled_from([1.0, -1.0])
        ),
        min_size=1,
        max_size=40,
    ),
    prices=st.lists(st.floats(min_value=40_000.0, max_value=60_000.0), min_size=1, max_size=4),
    limit=st.integers(min_value=1, max_value=12),
)
def test_bounded_reports_add_up_to_the_unbounded_tick_in_its_order(
    accounts: list[tuple[float, float]], prices: list[float], limit: int
) -> None:
    cash, sides = [c for c, _ in accounts], [s for _, s in accounts]
    whole, _ = book(cash, sides)
    bounded, _ = book(cash, sides)
    for px in prices:
        ev = MarkPrice(VENUE, "BTC", px)
        expected = whole.apply_fast(ev)
        got = bounded.apply_fast(ev, limit)
        rounds = 0
        while bounded.crossing:
            # each round takes at least one heap entry (a stale one, of a band re-armed
            # since, counts as work and reports nothing)
            got += bounded.cross(limit)
            rounds += 1
            assert rounds <= 4 * len(accounts) * len(prices)
        assert got == expected
        for k in dict.fromkeys(expected):  # re-armed at the new price, in both
            whole.arm(k, THRESHOLDS)
            bounded.arm(k, THRESHOLDS)


def test_a_crash_tick_reports_the_nearest_bands_first_and_the_rest_later() -> None:
    # 12 longs on 650..1,750 of cash (ratios 500/650 = 77 % .. 29 %), all left at 40,000
    cash = [650.0 + 100.0 * i for i in range(12)]
    whole, keys = book(cash, [1.0] * 12)
    expected = whole.apply_fast(MarkPrice(VENUE, "BTC", 40_000.0))
    assert sorted(expected) == sorted(keys)
    # in bound order: the highest low first (the scope nearest a threshold); bounded, the
    # same order in chunks of 5 (and the scopes of an equal bound with the last one)
    p, _ = book(cash, [1.0] * 12)
    got = p.apply_fast(MarkPrice(VENUE, "BTC", 40_000.0), limit=5)
    assert 5 <= len(got) < 12 and got == expected[: len(got)] and p.crossing
    while p.crossing:
        more = p.cross(5)
        assert len(more) >= 1
        got += more
    assert got == expected
    assert not any(p.armed(k) for k in keys)


def test_a_price_back_inside_the_band_drops_what_was_not_reported_yet() -> None:
    p, keys = book([650.0 + 100.0 * i for i in range(12)], [1.0] * 12)
    first = p.apply_fast(MarkPrice(VENUE, "BTC", 40_000.0), limit=3)
    assert len(first) == 3 and p.crossing
    # back at 50,000 before the rest were reported: they never left their band at this
    # price, and the 3 reported (unarmed since) are the caller's: none is reported again
    assert p.apply_fast(MarkPrice(VENUE, "BTC", 50_000.0), limit=3) == []
    assert not p.crossing
    assert all(p.armed(k) for k in keys if k not in first)
    assert not any(p.armed(k) for k in first)
