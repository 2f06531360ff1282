"""The fast path: trigger bands are sound, zones see every crossing, quick equals risk."""

from __future__ import annotations

import math

import pytest
from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st

from monitor.margin.base import Leg
from monitor.margin.registry import VENUES, rules_for
from monitor.model.events import AccountSnapshot, FundingRate, MarkPrice, PositionUpdate
from monitor.model.fastpath import (
    MAX_BAND,
    LegBound,
    Thresholds,
    assess,
    band_width,
    headline_zone,
    maintenance_slope,
    unit_leg,
    zone,
)
from monitor.model.instruments import MaintenanceSchedule, MarginMode
from monitor.model.portfolio import Portfolio
from monitor.model.positions import Position, ScopeKey

from ..margin.strategies import schedules, snapshots

SETTINGS = settings(
    max_examples=100,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.filter_too_much],
)
THRESHOLDS = Thresholds(
    margin_ratio=(0.5, 0.75, 0.8, 0.85, 0.9),
    equity=(1_000.0, 50_000.0),
    distance=(0.02, 0.05, 0.06, 0.1, 0.12),
)


def _bounds(p: Portfolio, key: ScopeKey) -> tuple[list[LegBound], float, float]:
    s = p.scope_state(key)
    assert s is not None
    out = []
    for h in s.holdings.values():
        slope, jump = maintenance_slope(s.rules, h.leg)
        out.append(LegBound(h.leg, h.price, slope, jump))
    return out, s.equity, s.mm


def _leg(size: float, schedule: MaintenanceSchedule) -> Leg:
    return Leg("X", size, 100.0, schedule)


# -- pure pieces -------------------------------------------------------------------------------
def test_maintenance_slope_of_continuous_tiers_is_the_top_rate_times_quantity() -> None:
    sched = MaintenanceSchedule.continuous([(0.0, 0.01), (1_000.0, 0.02), (5_000.0, 0.05)])
    slope, jump = maintenance_slope(rules_for("binance_usdm"), _leg(-3.0, sched))
    assert slope == pytest.approx(3.0 * 0.05)
    assert jump == pytest.approx(0.0, abs=1e-9)


@pytest.mark.parametrize("venue", VENUES)
@SETTINGS
@given(
    schedule=schedules(),
    size=st.floats(0.001, 5_000.0),
    isolated=st.booleans(),
    fee=st.sampled_from([0.0, 0.0005]),
)
def test_the_slope_scales_with_size_and_the_jumps_do_not(
    venue: str, *, schedule: MaintenanceSchedule, size: float, isolated: bool, fee: float
) -> None:
    rules = rules_for(venue)
    leg = Leg("X", -size, 100.0, schedule, isolated=isolated, fee_rate=fee)
    slope, jump = maintenance_slope(rules, leg)
    per_qty, unit_jump = maintenance_slope(rules, unit_leg(leg))
    assert slope == pytest.approx(per_qty * size, rel=1e-12, abs=1e-12)
    assert jump == pytest.approx(unit_jump, rel=1e-6, abs=1e-6)


def test_maintenance_slope_counts_the_jumps_of_a_discontinuous_schedule() -> None:
    from monitor.model.instruments import Tier

    sched = MaintenanceSchedule((Tier(0.0, 0.01, 0.0), Tier(1_000.0, 0.02, 0.0)))
    slope, jump = maintenance_slope(rules_for("generic"), _leg(2.0, sched))
    # at notional 1000 (price 500): 1000·0.01 = 10 below, 1000·0.02 = 20 above
    assert slope == pytest.approx(0.04)
    assert jump == pytest.approx(10.0)


def test_band_of_a_single_long_against_one_equity_threshold_is_the_closed_form() -> None:
    """Equity 10,000 over a threshold of 9,000 with |s|·p = 50,000: w = 1,000 / 50,000."""
    leg = Leg("X", 500.0, 100.0, None)
    w = band_width(
        rules_for("generic"), [LegBound(leg, 100.0, 0.0, 0.0)], 10_000.0, 0.0, Thresholds()
    )
    # only the always-watched equity 0 and ratio 1 (maintenance 0): w = 10,000 / 50,000
    assert w == pytest.approx(0.2, rel=1e-5)
    w = band_width(
        rules_for("generic"),
        [LegBound(leg, 100.0, 0.0, 0.0)],
        10_000.0,
        0.0,
        Thresholds(equity=(9_000.0,)),
    )
    assert w == pytest.approx(1_000.0 / 50_000.0, rel=1e-5)


def test_band_against_a_margin_ratio_threshold_is_the_closed_form() -> None:
    """Flat 1 % on 1 BTC at 50,000 (mm 500, slope 0.01), equity 2,000, watching r = 0.5:
    |r·eq − mm| = 500, growth per unit w: r·50,000 + 0.01·50,000 = 25,500; the ratio 1
    gives 1,500 / 50,500, larger."""
    leg = Leg("BTC", 1.0, 50_000.0, MaintenanceSchedule.flat(0.01))
    lb = LegBound(leg, 50_000.0, 0.01, 0.0)
    w = band_width(rules_for("generic"), [lb], 2_000.0, 500.0, Thresholds(margin_ratio=(0.5,)))
    assert w == pytest.approx(500.0 / 25_500.0, rel=1e-5)


def test_band_is_zero_when_a_price_is_missing_and_full_without_positions() -> None:
    leg = Leg("X", 1.0, 100.0, None)
    assert (
        band_width(rules_for("generic"), [LegBound(leg, 0.0, 0.0, 0.0)], 10.0, 0.0, THRESHOLDS)
        == 0.0
    )
    assert band_width(rules_for("generic"), [], 10.0, 0.0, THRESHOLDS) == pytest.approx(
        MAX_BAND, rel=1e-5
    )


def test_zone_changes_when_equity_crosses_a_threshold() -> None:
    leg = Leg("X", 1.0, 100.0, None)
    lb = [LegBound(leg, 100.0, 0.0, 0.0)]
    th = Thresholds(equity=(1_000.0,))
    r = rules_for("generic")
    assert zone(r, lb, 999.0, 0.0, th) != zone(r, lb, 1_001.0, 0.0, th)
    assert zone(r, lb, 1_001.0, 0.0, th) == zone(r, lb, 5_000.0, 0.0, th)


@SETTINGS
@given(
    equity=st.floats(-1e7, 1e7) | st.just(math.nan) | st.just(math.inf),
    maintenance=st.floats(0.0, 1e7),
    ratios=st.lists(st.floats(0.01, 2.0), max_size=6),
    equities=st.lists(st.floats(-1e6, 1e7), max_size=6),
    distances=st.lists(st.floats(0.001, 0.999), max_size=4),
)
def test_headline_zone_is_the_low_bits_of_the_zone(
    equity: float,
    maintenance: float,
    ratios: list[float],
    equities: list[float],
    distances: list[float],
) -> None:
    """``headline_zone`` needs no position, and its bits are exactly the bits ``assess``
    gives below its mask (what lets ``rearm`` skip the distances once they differ)."""
    th = Thresholds(margin_ratio=tuple(ratios), equity=tuple(equities), distance=tuple(distances))
    sched = MaintenanceSchedule.flat(0.01)
    lb = [
        LegBound(_leg(2.0, sched), 100.0, 0.02, 0.0),
        LegBound(_leg(-1.0, sched), 90.0, 0.01, 0.0),
    ]
    bits, mask = headline_zone(equity, maintenance, th)
    assert mask == (1 << (2 + len(ratios) + len(equities))) - 1
    assert bits & ~mask == 0
    whole = assess(rules_for("generic"), lb, equity, maintenance, th)[1]
    assert whole & mask == bits


# -- the engine --------------------------------------------------------------------------------
def _book() -> Portfolio:
    p = Portfolio()
    sched = MaintenanceSchedule.flat(0.01)
    p.apply(
        AccountSnapshot(
            "binance_usdm",
            "a",
            10_000.0,
            (
                Position("BTC", 1.0, 50_000.0, maintenance=sched, mark_price=50_000.0),
                Position("ETH", -10.0, 3_000.0, maintenance=sched, mark_price=3_000.0),
            ),
        )
    )
    p.apply(
        AccountSnapshot(
            "binance_usdm",
            "b",
            1_000.0,
            (Position("ETH", 1.0, 3_000.0, maintenance=sched, mark_price=3_000.0),),
        )
    )
    return p


A = ScopeKey("binance_usdm", "a", "cross")
B = ScopeKey("binance_usdm", "b", "cross")


def test_unarmed_scopes_are_reported_once_an_instrument_and_armed_ones_only_when_leaving() -> None:
    # A holds BTC and ETH, B holds ETH; both are unarmed after their snapshots
    p = _book()
    assert p.apply_fast(MarkPrice("binance_usdm", "ETH", 3_001.0)) == [A, B]
    w = p.arm(A, THRESHOLDS)
    assert w is not None and w > 0.0
    assert p.armed(A)
    # B is still unarmed, but ETH reported it already: it is the caller's to decide (a
    # crash's holders waiting for their evaluation are not reported by every tick again)
    assert p.apply_fast(MarkPrice("binance_usdm", "ETH", 3_002.0)) == []
    assert not p.armed(B)
    p.disarm(A)  # disarmed again: the next tick of each of its instruments reports it, once
    assert p.apply_fast(MarkPrice("binance_usdm", "ETH", 3_001.0)) == [A]
    assert p.apply_fast(MarkPrice("binance_usdm", "ETH", 3_002.0)) == []
    assert p.apply_fast(MarkPrice("binance_usdm", "BTC", 50_000.0)) == [A]
    p.arm(A, THRESHOLDS)
    p.arm(B, THRESHOLDS)
    assert p.apply_fast(MarkPrice("binance_usdm", "ETH", 3_001.5)) == []
    assert p.apply_fast(MarkPrice("binance_usdm", "BTC", 50_000.0 * (1.0 + w) * 1.001)) == [A]
    assert not p.armed(A)
    # A left its band on BTC: ETH's next tick reports it too (once), BTC's does not again
    assert p.apply_fast(MarkPrice("binance_usdm", "BTC", 50_000.0 * (1.0 + w) * 1.002)) == []
    assert p.apply_fast(MarkPrice("binance_usdm", "ETH", 3_001.0)) == [A]
    assert p.apply_fast(MarkPrice("binance_usdm", "SOL", 100.0)) == []


def test_funding_on_the_fast_path_updates_the_market_without_reporting() -> None:
    p = _book()
    p.arm(A, THRESHOLDS)
    assert p.apply_fast(FundingRate("binance_usdm", "ETH", 0.001, 8.0)) == []
    assert p.markets[("binance_usdm", "ETH")].funding_rate == 0.001
    risk = p.risk(A)
    assert risk is not None
    eth = next(x for x in risk.positions if x.symbol == "ETH")
    assert eth.funding_rate_per_hour == pytest.approx(0.001 / 8.0)


def test_a_position_event_disarms_and_forgets_the_zone() -> None:
    p = _book()
    p.arm(A, THRESHOLDS)
    touched = p.apply_fast(PositionUpdate("binance_usdm", "a", Position("BTC", 2.0, 50_000.0)))
    assert A in touched
    assert not p.armed(A)
    assert p.crossed(A, THRESHOLDS)  # no zone recorded since the change
    assert p.rearm(A, THRESHOLDS)  # so it must be evaluated, not just re-armed


def test_rearm_hands_back_a_scope_whose_margin_ratio_crossed_without_assessing_it() -> None:
    """A margin-ratio threshold crossed is a changed decision whatever the liquidation
    distances say: ``rearm`` hands the scope back without the distances' assessment (none
    kept for ``arm``), and ``arm`` then assesses it afresh: the same band and zone as a
    portfolio that never rearmed."""
    p, q = _book(), _book()
    th = Thresholds(margin_ratio=(0.1,), distance=(0.05,))  # 8 % → 11.9 %
    for x in (p, q):
        x.apply_fast(MarkPrice("binance_usdm", "ETH", 3_000.0))
        x.apply_fast(MarkPrice("binance_usdm", "BTC", 50_000.0))
        x.arm(A, th)
        assert x.apply_fast(MarkPrice("binance_usdm", "ETH", 3_300.0)) == [A]
    s = p.scope_state(A)
    assert s is not None and s.zone is not None
    before = s.zone
    bits, mask = headline_zone(s.equity, s.mm, th)
    assert bits != before & mask  # the short ETH lost 3,000: the ratio crossed 10 %
    assert p.rearm(A, th)
    assert s.assessed is None  # nothing assessed for arm to reuse
    assert p.arm(A, th) == q.arm(A, th)
    q_state = q.scope_state(A)
    assert q_state is not None and s.zone == q_state.zone != before


def _crossed_and_handed_back(p: Portfolio) -> None:
    """Arm A, then move BTC far enough that A's band is left and a threshold crossed: rearm
    hands it back for a full evaluation (and keeps what it assessed)."""
    p.apply_fast(MarkPrice("binance_usdm", "ETH", 3_000.0))
    p.apply_fast(MarkPrice("binance_usdm", "BTC", 50_000.0))
    p.arm(A, THRESHOLDS)
    assert p.apply_fast(MarkPrice("binance_usdm", "BTC", 41_000.0)) == [A]
    assert p.rearm(A, THRESHOLDS)


@pytest.mark.parametrize(
    "between",
    [
        "nothing",
        "the other instrument's price",
        "the same instrument's price",
        "a position",
        "other thresholds",
    ],
)
def test_arm_after_rearm_arms_as_a_fresh_assessment_whatever_changed_between(
    between: str,
) -> None:
    """``arm`` reuses ``rearm``'s assessment only when nothing it reads changed: the band
    and zone it gives are those of a portfolio that never rearmed."""
    p, q = _book(), _book()
    _crossed_and_handed_back(p)
    _crossed_and_handed_back(q)
    thresholds = THRESHOLDS
    for x in (p, q):
        if between == "the other instrument's price":
            x.apply_fast(MarkPrice("binance_usdm", "ETH", 2_900.0))
        elif between == "the same instrument's price":
            x.apply_fast(MarkPrice("binance_usdm", "BTC", 40_000.0))
        elif between == "a position":
            x.apply_fast(PositionUpdate("binance_usdm", "a", Position("BTC", 0.5, 50_000.0)))
    if between == "other thresholds":
        thresholds = Thresholds(margin_ratio=(0.3,), equity=(), distance=())
    q_state = q.scope_state(A)
    assert q_state is not None
    q_state.assessed = None  # q assesses afresh
    assert p.arm(A, thresholds) == q.arm(A, thresholds)
    p_state = p.scope_state(A)
    assert p_state is not None and p_state.zone == q_state.zone
    assert p_state.assessed is None  # used once


def test_quick_equals_the_full_risk_after_lazy_ticks() -> None:
    p = _book()
    for px in (3_010.0, 2_990.0, 3_100.0):
        p.apply_fast(MarkPrice("binance_usdm", "ETH", px))
    p.apply_fast(MarkPrice("binance_usdm", "BTC", 48_000.0))
    q = p.quick(A)
    r = p.risk(A)
    assert q is not None and r is not None
    # equity by hand: cash 10,000 − (50,000 − 30,000) = −10,000; + 48,000 − 31,000
    assert q.equity == pytest.approx(-10_000.0 + 48_000.0 - 31_000.0)
    assert q.maintenance_margin == pytest.approx(0.01 * (48_000.0 + 31_000.0))
    assert (q.equity, q.maintenance_margin, q.margin_ratio) == (
        r.equity,
        r.maintenance_margin,
        r.margin_ratio,
    )
    assert q.nearest_liquidation_distance == r.nearest_liquidation_distance
    assert q.liquidatable == r.liquidatable
    assert p.quick(ScopeKey("binance_usdm", "zz", "cross")) is None
    # the ratio that orders owed work: maintenance / equity, infinite at equity ≤ 0
    assert p.quick_ratio(A) == q.margin_ratio == pytest.approx(790.0 / 7_000.0)
    p.apply_fast(MarkPrice("binance_usdm", "BTC", 30_000.0))  # equity −11,000
    assert p.quick_ratio(A) == math.inf
    assert math.isnan(p.quick_ratio(ScopeKey("binance_usdm", "zz", "cross")))


# -- soundness ---------------------------------------------------------------------------------
@pytest.mark.parametrize("venue", VENUES)
@SETTINGS
@given(data=st.data())
def test_no_threshold_is_crossed_while_every_price_stays_in_its_band(
    venue: str, data: st.DataObject
) -> None:
    """Arm, then move every price of the scope anywhere inside its band (at once): the zone
    (which side of each threshold every figure is on) is unchanged, so nothing is reported,
    and the quick figures equal a fresh portfolio's at the moved prices."""
    snap = data.draw(snapshots(venue=venue, max_positions=4))
    th = Thresholds(
        margin_ratio=tuple(sorted(data.draw(st.lists(st.floats(0.05, 2.0), max_size=3)))),
        equity=tuple(sorted(data.draw(st.lists(st.floats(-1e6, 1e7), max_size=3)))),
        distance=tuple(sorted(data.draw(st.lists(st.floats(0.01, 0.5), max_size=3)))),
    )
    p = Portfolio()
    p.apply(snap)
    keys = [k for k in p.scope_keys() if p.scope_state(k).holdings]  # type: ignore[union-attr]
    for k in keys:  # away from the float edge of the always-watched equity 0 and ratio 1
        eq, mm = p.aggregates(k)
        s = p.scope_state(k)
        assert s is not None
        scale = abs(s.cash) + sum(abs(h.value) + abs(h.mm) for h in s.holdings.values()) + 1.0
        assume(abs(eq) > 1e-6 * scale and abs(eq - mm) > 1e-6 * scale)
    widths = {k: p.arm(k, th) for k in keys}
    before = {k: zone(p.scope_state(k).rules, *_bounds(p, k), th) for k in keys}  # type: ignore[union-attr]
    moved = dict(p.markets)
    fracs = {}
    for (v, sym), m in moved.items():
        if not m.holdings:
            continue
        w = min(widths[h.scope.key] or 0.0 for h in m.holdings)
        frac = data.draw(st.floats(-1.0, 1.0)) * w
        price = m.holdings[0].price * (1.0 + frac)
        fracs[sym] = price
        assert p.apply_fast(MarkPrice(v, sym, price, oracle=price)) == []
    for k in keys:
        assert not p.crossed(k, th)
        assert zone(p.scope_state(k).rules, *_bounds(p, k), th) == before[k]  # type: ignore[union-attr]
    fresh = Portfolio()
    fresh.apply(snap)
    for sym, price in fracs.items():
        fresh.apply(MarkPrice(venue, sym, price, oracle=price))
    for k in keys:
        q, f = p.quick(k), fresh.quick(k)
        assert q is not None and f is not None
        scale = abs(f.equity) + f.maintenance_margin + 1.0
        assert q.equity == pytest.approx(f.equity, rel=0, abs=1e-9 * scale)
        assert q.maintenance_margin == pytest.approx(f.maintenance_margin, rel=0, abs=1e-9 * scale)


@pytest.mark.parametrize("venue", VENUES)
@SETTINGS
@given(data=st.data())
def test_zone_sees_a_liquidation_distance_crossing(venue: str, data: st.DataObject) -> None:
    """The distance bits agree with the liquidation distances of the full risk: for every
    position and d, bit set ⇔ distance > d while the scope is healthy (away from the float
    edge). A liquidatable scope reports distance 0 for every position."""
    snap = data.draw(snapshots(venue=venue, max_positions=3))
    p = Portfolio()
    p.apply(snap)
    ds = (0.03, 0.1, 0.3)
    th = Thresholds(distance=ds)
    for k in p.scope_keys():
        s = p.scope_state(k)
        assert s is not None
        if not s.holdings:
            continue
        bounds, eq, mm = _bounds(p, k)
        if any(b.slope >= b.leg.qty or b.jump > 1e-9 for b in bounds) or eq == mm:
            continue
        risk = p.risk(k, with_stress=False)
        assert risk is not None
        if risk.liquidatable:
            # distances are 0 while liquidatable; the band keeps the scope on that side
            assert all(pr.liquidation_distance in (0.0, None) for pr in risk.positions)
            continue
        bits = assess(s.rules, bounds, eq, mm, th, band=False)[1]
        n = 2  # equity 0 and margin ratio 1 come first
        for pr in risk.positions:
            for d in ds:
                dist = pr.liquidation_distance
                far = dist is None or dist > d
                near_edge = dist is not None and math.isclose(dist, d, rel_tol=1e-6)
                if not near_edge:  # headroom left after an adverse move d ⇔ far
                    assert bool(bits >> n & 1) == far, (d, dist)
                n += 1


@pytest.mark.parametrize("venue", VENUES)
@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(data=st.data())
def test_fast_and_eager_paths_agree_after_any_ticks(venue: str, data: st.DataObject) -> None:
    snap = data.draw(snapshots(venue=venue, max_positions=4))
    eager, fast = Portfolio(), Portfolio()
    eager.apply(snap)
    fast.apply(snap)
    symbols = sorted({pos.symbol for pos in snap.positions}) or ["S0"]
    for _ in range(data.draw(st.integers(1, 30))):
        sym = data.draw(st.sampled_from(symbols))
        px = data.draw(st.floats(0.01, 200_000.0))
        eager.apply(MarkPrice(venue, sym, px, oracle=px))
        fast.apply_fast(MarkPrice(venue, sym, px, oracle=px))
    for k in eager.scope_keys():
        e_eq, e_mm = eager.full_recompute(k)
        f_eq, f_mm = fast.aggregates(k)
        s = fast.scope_state(k)
        assert s is not None
        scale = abs(s.cash) + sum(abs(h.value) + abs(h.mm) for h in s.holdings.values()) + 1.0
        assert f_eq == pytest.approx(e_eq, rel=0, abs=1e-9 * scale)
        assert f_mm == pytest.approx(e_mm, rel=0, abs=1e-9 * scale)


def test_isolated_positions_are_scopes_of_their_own_on_the_fast_path() -> None:
    p = Portfolio()
    sched = MaintenanceSchedule.flat(0.02)
    p.apply(
        AccountSnapshot(
            "bybit",
            "a",
            0.0,
            (
                Position(
                    "BTCUSDT",
                    1.0,
                    50_000.0,
                    MarginMode.ISOLATED,
                    isolated_margin=5_000.0,
                    maintenance=sched,
                    mark_price=50_000.0,
                ),
            ),
        )
    )
    key = ScopeKey("bybit", "a", "isolated:BTCUSDT")
    assert p.apply_fast(MarkPrice("bybit", "BTCUSDT", 50_010.0)) == [key]
    w = p.arm(key, THRESHOLDS)
    assert w is not None and 0.0 < w < MAX_BAND
    q = p.quick(key)
    # Bybit isolated: maintenance valued at entry, 2 % of 50,000
    assert q is not None and q.maintenance_margin == pytest.approx(1_000.0)


def test_an_aggregate_that_collapses_is_resummed_not_left_with_cancellation_error() -> None:
    """A tick that takes a 4.5e11 position value down to ~1e-7 must not leave the delta's
    rounding (~1e-5) in the aggregate: it is re-summed from the holdings."""
    pos = Position(
        "S0",
        2499.0,
        191878.8419745618,
        MarginMode.ISOLATED,
        isolated_margin=479505226.0944299,
        maintenance=MaintenanceSchedule.from_max_leverage(2.0),
        mark_price=181906.75,
    )
    p = Portfolio()
    p.apply(AccountSnapshot("dydx_v4", "a", 0.0, (pos,)))
    key = ScopeKey("dydx_v4", "a", "isolated:S0")
    p.apply(MarkPrice("dydx_v4", "S0", 3.18e-11, oracle=3.18e-11))
    eq, mm = p.aggregates(key)
    f_eq, f_mm = p.full_recompute(key)
    assert eq == pytest.approx(f_eq, rel=0, abs=1e-12)
    assert mm == pytest.approx(f_mm, rel=0, abs=1e-12)


# -- the trigger heaps: stale entries compacted, live ones kept ----------------------------------
_SYMBOLS = ("BTC", "ETH", "SOL")
_START = {"BTC": 50_000.0, "ETH": 3_000.0, "SOL": 100.0}


def _many(accounts: int, *, twins: bool = False) -> Portfolio:
    """``accounts`` accounts holding two of three markets; ``twins``: accounts 2k and 2k+1
    hold the same positions (so their bands are equal)."""
    p = Portfolio()
    sched = MaintenanceSchedule.flat(0.01)
    for i in range(accounts):
        n = i // 2 if twins else i
        held = tuple(
            Position(sym, (1.0 + n) * (-1.0) ** (n + j), _START[sym], maintenance=sched)
            for j, sym in enumerate(_SYMBOLS)
            if (n + j) % 3 != 2  # two markets of three per account
        )
        p.apply(AccountSnapshot("binance_usdm", f"a{i}", 1e6, held))
    return p


@settings(max_examples=80, deadline=None)
@given(
    accounts=st.integers(1, 12),
    twins=st.booleans(),
    ops=st.lists(
        st.one_of(
            st.tuples(st.just("arm"), st.integers(0, 11)),
            st.tuples(st.just("tick"), st.sampled_from(_SYMBOLS), st.floats(0.9, 1.1)),
        ),
        max_size=120,
    ),
)
def test_the_heaps_report_what_each_scope_band_says_and_stay_compact(
    accounts: int, twins: bool, ops: list[tuple[object, ...]]
) -> None:
    # a reference without heaps: each armed scope's band per market, as arm left it; a tick
    # reports the unarmed scopes holding the instrument that its ticks have not reported
    # since they lost their band (``pending``), then the armed ones whose band the price
    # left (disarmed: pending in their other markets), those below their low first by low
    # (highest first), then those above their high by high, equal bounds in the order the
    # scopes were armed (twins have equal bounds). After every arm each heap holds at most
    # 1.25 entries a holding (+16): re-arming leaves stale entries, compacted before they
    # pile up
    p = _many(accounts, twins=twins)
    keys = [ScopeKey("binance_usdm", f"a{i}", "cross") for i in range(accounts)]
    bands: dict[ScopeKey, tuple[int, dict[str, tuple[float, float]]]] = {}
    held_by = {k: set(p.scope_state(k).holdings) for k in keys}  # type: ignore[union-attr]
    pending = {sym: {k for k in keys if sym in held_by[k]} for sym in _SYMBOLS}
    price = dict(_START)
    armed = 0
    for op in ops:
        if op[0] == "arm":
            key = keys[int(str(op[1])) % accounts]
            w = p.arm(key, THRESHOLDS)
            assert w is not None
            s = p.scope_state(key)
            assert s is not None
            armed += 1
            for waiting in pending.values():
                waiting.discard(key)
            bands[key] = (
                armed,
                {sym: (h.price * (1.0 - w), h.price * (1.0 + w)) for sym, h in s.holdings.items()},
            )
            for m in p.markets.values():
                held = len(m.holdings)
                assert len(m.lows) == len(m.highs) <= held + held // 4 + 16
            continue
        sym = str(op[1])
        factor = float(str(op[2]))
        price[sym] = price[sym] * factor
        px = price[sym]
        holders = [k for k in keys if sym in held_by[k]]
        unarmed = set(pending[sym])
        assert all(k not in bands for k in unarmed)
        below = sorted(
            (-bands[k][1][sym][0], bands[k][0], k)
            for k in holders
            if k in bands and bands[k][1][sym][0] > px
        )
        above = sorted(
            (bands[k][1][sym][1], bands[k][0], k)
            for k in holders
            if k in bands and bands[k][1][sym][1] < px
        )
        for _, _, k in below + above:
            del bands[k]
            for other in held_by[k] - {sym}:
                pending[other].add(k)
        pending[sym].clear()
        got = p.apply_fast(MarkPrice("binance_usdm", sym, px))
        assert len(got) == len(set(got))
        assert set(got[: len(unarmed)]) == unarmed
        assert got[len(unarmed) :] == [k for _, _, k in below + above]
        assert all(p.armed(k) == (k in bands) for k in keys)


def test_rearming_one_scope_again_and_again_keeps_its_heaps_small() -> None:
    # 40 holders of BTC; arming the same scope 1,000 times leaves 999 stale entries a side
    # without compaction (1,039 a side): with it, a heap grows to 40 + 40 // 4 + 16 = 66
    # entries, then is compacted back to its 40 live ones
    p = _many(60)
    btc = p.markets[("binance_usdm", "BTC")]
    assert len(btc.holdings) == 40
    longest = 0
    for _ in range(1_000):
        p.arm(ScopeKey("binance_usdm", "a0", "cross"), THRESHOLDS)
        assert len(btc.highs) == len(btc.lows)
        longest = max(longest, len(btc.lows))
    assert longest == 40 + 10 + 16


def test_a_market_whose_holdings_are_all_armed_gives_back_its_unarmed_table() -> None:
    p = _many(50)
    keys = [ScopeKey("binance_usdm", f"a{i}", "cross") for i in range(50)]
    btc = p.markets[("binance_usdm", "BTC")]
    assert len(btc.unarmed) == len(btc.holdings)  # every scope is unarmed after its snapshot
    full = btc.unarmed.__sizeof__()
    for k in keys:
        p.arm(k, THRESHOLDS)
    assert not btc.unarmed and btc.unarmed.__sizeof__() < full
    assert p.apply_fast(MarkPrice("binance_usdm", "BTC", 50_001.0)) == []
    p.disarm(keys[0])
    assert p.apply_fast(MarkPrice("binance_usdm", "BTC", 50_002.0)) == [keys[0]]


def test_scopes_with_equal_bands_leave_in_the_order_they_were_armed() -> None:
    # 30 accounts holding the same position have equal bands; armed in a shuffled order, a
    # tick far below reports them in that order (as (bound, seq, scope) tuples did)
    p = Portfolio()
    sched = MaintenanceSchedule.flat(0.01)
    for i in range(30):
        held = (Position("BTC", 1.0, 50_000.0, maintenance=sched, mark_price=50_000.0),)
        p.apply(AccountSnapshot("binance_usdm", f"a{i}", 20_000.0, held))
    order = [ScopeKey("binance_usdm", f"a{(7 * i) % 30}", "cross") for i in range(30)]
    widths = {p.arm(k, THRESHOLDS) for k in order}
    assert len(widths) == 1 and 0.0 < next(iter(widths)) < 0.5  # one band for all
    assert p.apply_fast(MarkPrice("binance_usdm", "BTC", 25_000.0)) == order
    assert not any(p.armed(k) for k in order)
