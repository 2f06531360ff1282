"""The remedy: the deposit or the reduction that brings a scope back to a target, checked by
hand on worked examples and, on random books of every rule set, by recomputing the scope's
risk through the real portfolio engine after applying it."""

from __future__ import annotations

import dataclasses
import math

import pytest
from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st

from monitor.margin.registry import VENUES
from monitor.margin.remedy import Figures, Remedy, Target, meets
from monitor.margin.risk import ScopeRisk
from monitor.model.events import AccountSnapshot
from monitor.model.instruments import MaintenanceSchedule, MarginMode
from monitor.model.portfolio import Portfolio
from monitor.model.positions import Position, ScopeKey
from monitor.whatif import remedy_of

from .strategies import snapshots

SETTINGS = settings(
    max_examples=30,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.filter_too_much],
)
CROSS = ScopeKey("generic", "acct", "cross")


def book(snap: AccountSnapshot) -> Portfolio:
    p = Portfolio()
    p.apply(snap)
    return p


def btc(size: float = 1.0, schedule: MaintenanceSchedule | None = None, **kw: object) -> Position:
    return Position(
        symbol="BTC",
        size=size,
        entry_price=50_000.0,
        maintenance=schedule or MaintenanceSchedule.flat(0.01),
        mark_price=50_000.0,
        oracle_price=50_000.0,
        **kw,  # type: ignore[arg-type]
    )


def one_btc(collateral: float, venue: str = "generic", **kw: object) -> Portfolio:
    return book(AccountSnapshot(venue, "acct", collateral, (btc(**kw),)))  # type: ignore[arg-type]


def risk_of(p: Portfolio, key: ScopeKey) -> ScopeRisk:
    r = p.risk(key, with_stress=False)
    assert r is not None
    return r


def fix(p: Portfolio, key: ScopeKey, target: Target, symbol: str | None = None) -> Remedy:
    r = remedy_of(p, key, target, symbol=symbol)
    assert r is not None
    return r


# -- worked examples -----------------------------------------------------------------------------


def test_deposit_to_a_margin_ratio_is_maintenance_over_target_minus_equity() -> None:
    # 1 BTC long at 50 000, 1 % maintenance: MM = 500; collateral 1 000 → ratio 50 %
    r = fix(one_btc(1_000.0), CROSS, Target(margin_ratio=0.25))
    assert r.now.margin_ratio == pytest.approx(0.5)
    assert not r.met
    assert r.deposit == pytest.approx(1_000.0)  # 500 / 0.25 − 1 000
    assert r.after_deposit.margin_ratio == pytest.approx(0.25)  # 500 / 2 000
    assert r.after_deposit.equity == pytest.approx(2_000.0)


def test_deposit_to_a_liquidation_distance_survives_the_move_to_it() -> None:
    # 15 % below 50 000 is 42 500, where MM = 425 and the long lost 7 500:
    # D = 500 − 500 + 425 − 1·(42 500 − 50 000) − 1 000 = 6 925
    r = fix(one_btc(1_000.0), CROSS, Target(distance=0.15))
    assert r.deposit == pytest.approx(6_925.0)
    assert r.after_deposit.nearest_liquidation_distance == pytest.approx(0.15)
    assert r.after_deposit.equity == pytest.approx(7_925.0)


def test_reduction_to_a_margin_ratio_halves_the_position() -> None:
    # equity stays 1 000 (the realized PnL is 0 at entry, no fee); MM = 500·(1 − x) ≤ 250
    r = fix(one_btc(1_000.0), CROSS, Target(margin_ratio=0.25))
    assert r.reduce_symbol == "BTC"
    assert r.reduce_fraction == pytest.approx(0.5)
    assert r.reduce_size == pytest.approx(0.5)
    assert r.after_reduction is not None
    assert r.after_reduction.margin_ratio == pytest.approx(0.25)


def test_reduction_to_a_liquidation_distance() -> None:
    # size q left: 1 000 − q·7 500 ≥ q·425 at 42 500 → q ≤ 1 000 / 7 925 = 0.126183…
    r = fix(one_btc(1_000.0), CROSS, Target(distance=0.15))
    assert r.reduce_size == pytest.approx(1.0 - 1_000.0 / 7_925.0)
    assert r.after_reduction is not None
    assert r.after_reduction.nearest_liquidation_distance == pytest.approx(0.15)


def test_reduction_rechecks_the_tier_at_the_new_size() -> None:
    # tiers: 1 % up to 40 000 notional, 2 % above (deduction 40 000·0.01 = 400).
    # Now: notional 50 000 → MM = 1 000 − 400 = 600; equity 1 500 → ratio 40 %.
    # Target 20 % → MM ≤ 300. In the upper tier 1 000·q − 400 ≤ 300 would give q = 0.7, but
    # 35 000 is in the lower tier: 500·q ≤ 300 → q = 0.6, so reduce 0.4 BTC (not 0.3 nor 0.7)
    tiers = MaintenanceSchedule.continuous([(0.0, 0.01), (40_000.0, 0.02)])
    r = fix(one_btc(1_500.0, schedule=tiers), CROSS, Target(margin_ratio=0.2))
    assert r.now.maintenance_margin == pytest.approx(600.0)
    assert r.reduce_size == pytest.approx(0.4)
    assert r.after_reduction is not None
    assert r.after_reduction.maintenance_margin == pytest.approx(300.0)
    assert r.deposit == pytest.approx(1_500.0)  # 600 / 0.2 − 1 500


def test_the_close_fee_is_paid_out_of_the_pool() -> None:
    # fee 0.1 %: closing x BTC costs 50·x; equity 1 000 − 50x, MM 500(1 − x) ≤ 0.25·(1 000 − 50x)
    # → 500 − 500x ≤ 250 − 12.5x → x ≥ 250 / 487.5 = 0.51282…
    r = fix(one_btc(1_000.0, fee_rate=0.001), CROSS, Target(margin_ratio=0.25))
    assert r.reduce_fraction == pytest.approx(250.0 / 487.5)
    assert r.after_reduction is not None
    assert r.after_reduction.equity == pytest.approx(1_000.0 - 50.0 * 250.0 / 487.5)


def test_a_loser_is_reduced_before_a_winner_and_its_loss_is_realized_in_the_pool() -> None:
    # cross: BTC long 1 @ entry 50 000 now 40 000 (−10 000), ETH long 10 @ 3 000 flat;
    # collateral 12 000 → equity 2 000; MM = 400 + 300 = 700 → ratio 35 %
    snap = AccountSnapshot(
        "generic",
        "acct",
        12_000.0,
        (
            dataclasses.replace(btc(), mark_price=40_000.0, oracle_price=40_000.0),
            Position(
                "ETH", 10.0, 3_000.0, maintenance=MaintenanceSchedule.flat(0.01), mark_price=3_000.0
            ),
        ),
    )
    r = fix(book(snap), CROSS, Target(margin_ratio=0.25))
    # equity unchanged by the close; 400(1 − x) + 300 ≤ 500 → x = 0.5
    assert r.reduce_symbol == "BTC"
    assert r.reduce_fraction == pytest.approx(0.5)
    assert r.deposit == pytest.approx(800.0)  # 700 / 0.25 − 2 000


def test_an_isolated_margin_released_pro_rata_is_fixed_only_by_closing_it() -> None:
    # Binance isolated: margin released pro rata; flat 1 % tier → the ratio is 50 % at any size
    snap = AccountSnapshot(
        "binance_usdm",
        "acct",
        0.0,
        (btc(margin_mode=MarginMode.ISOLATED, isolated_margin=1_000.0),),
    )
    key = ScopeKey("binance_usdm", "acct", "isolated:BTC")
    r = fix(book(snap), key, Target(margin_ratio=0.25))
    assert r.reduce_fraction == 1.0 and r.reduce_size == 1.0
    assert r.reduce_note == (
        "only closing all of BTC reaches margin ratio 25%: its isolated margin is released "
        "pro rata as it shrinks (add margin instead)"
    )
    assert r.deposit == pytest.approx(1_000.0)  # 500 / 0.25 − 1 000


def test_closing_the_drain_entirely_may_not_be_enough() -> None:
    # cross: BTC long 1 (MM 500) and ETH long 100 @ 3 000 (MM 3 000); equity 4 000.
    # The drain is ETH (largest maintenance, no loss); target 25 %: without ETH MM = 500 ≤ 1 000
    # works, so ask to reduce BTC instead: MM ≥ 3 000 > 1 000 at any BTC size
    snap = AccountSnapshot(
        "generic",
        "acct",
        4_000.0,
        (
            btc(),
            Position(
                "ETH",
                100.0,
                3_000.0,
                maintenance=MaintenanceSchedule.flat(0.01),
                mark_price=3_000.0,
            ),
        ),
    )
    r = fix(book(snap), CROSS, Target(margin_ratio=0.25))
    assert r.reduce_symbol == "ETH"
    assert r.reduce_fraction == pytest.approx((3_500.0 - 1_000.0) / 3_000.0)  # ETH MM ≤ 500
    r = fix(book(snap), CROSS, Target(margin_ratio=0.25), symbol="BTC")
    assert r.reduce_size is None
    assert r.reduce_note == "closing all of BTC does not reach margin ratio 25%"


def test_a_dydx_isolated_position_keeps_its_collateral_when_reduced() -> None:
    snap = AccountSnapshot(
        "dydx_v4",
        "acct",
        0.0,
        (btc(margin_mode=MarginMode.ISOLATED, isolated_margin=1_000.0),),
    )
    key = ScopeKey("dydx_v4", "acct", "isolated:BTC")
    r = fix(book(snap), key, Target(margin_ratio=0.25))
    assert r.reduce_size == pytest.approx(0.5)  # 500(1 − x) ≤ 250 with equity 1 000 kept


def test_a_target_already_met_needs_nothing() -> None:
    r = fix(one_btc(10_000.0), CROSS, Target(margin_ratio=0.25, distance=0.5))
    # ratio 5 %; liquidation at 40 000 / 0.99 → distance 19.2 %?  no: (50 000 − P*)/50 000
    # with P* = (50 000 − 10 000) / 0.99 = 40 404 → 19.19 % < 50 %: not met
    assert not r.met
    r = fix(one_btc(60_000.0), CROSS, Target(margin_ratio=0.25, distance=0.5))
    assert r.met and r.deposit == 0.0 and r.reduce_size == 0.0


def test_an_unknown_maintenance_schedule_gives_no_remedy_rather_than_a_false_one() -> None:
    # without a schedule the requirement would count as 0 and any positive equity "safe"
    snap = AccountSnapshot(
        "generic",
        "acct",
        1_000.0,
        (Position("BTC", 1.0, 50_000.0, mark_price=50_000.0),),
    )
    r = fix(book(snap), CROSS, Target(margin_ratio=0.5))
    assert not r.met
    assert r.deposit is None and r.after_deposit is None and r.reduce_size is None
    assert r.unknown == "maintenance schedule unknown for BTC: no remedy computed"


def test_an_empty_pool_has_nothing_to_reduce() -> None:
    p = book(AccountSnapshot("generic", "acct", 100.0, ()))
    r = fix(p, CROSS, Target(margin_ratio=0.5))
    assert r.met and r.deposit == 0.0
    assert r.reduce_symbol is None and r.reduce_note == "no position to reduce"


def test_an_unknown_symbol_or_scope_is_refused() -> None:
    p = one_btc(1_000.0)
    with pytest.raises(KeyError):
        fix(p, CROSS, Target(margin_ratio=0.5), symbol="DOGE")
    assert remedy_of(p, ScopeKey("generic", "nobody", "cross"), Target(distance=0.1)) is None


@pytest.mark.parametrize(
    ("kw", "message"),
    [
        ({}, "a target needs a margin ratio or a liquidation distance"),
        ({"margin_ratio": 1.0}, "a target margin ratio must be between 0 and 1"),
        ({"distance": 0.0}, "a target distance must be between 0 and 1"),
        ({"margin_ratio": 50.0}, "got 50.0"),
    ],
)
def test_targets_outside_zero_to_one_are_refused(kw: dict[str, float], message: str) -> None:
    with pytest.raises(ValueError, match=message):
        Target(**kw)


def test_a_liquidatable_scope_never_meets_a_target() -> None:
    fig = Figures(equity=100.0, maintenance_margin=100.0, margin_ratio=1.0, liquidatable=False,
                  nearest_liquidation_distance=0.2)  # fmt: skip
    # a margin ratio of exactly 1 is the liquidation boundary: never "safe"
    assert not meets(fig, Target(margin_ratio=0.99))
    assert not meets(dataclasses.replace(fig, margin_ratio=None), Target(distance=0.1))


# -- properties on random books of every rule set -----------------------------------------------


def deposited(snap: AccountSnapshot, key: ScopeKey, amount: float) -> AccountSnapshot:
    if key.scope == "cross":
        return dataclasses.replace(snap, cross_collateral=snap.cross_collateral + amount)
    symbol = key.scope.split(":", 1)[1]
    return dataclasses.replace(
        snap,
        positions=tuple(
            dataclasses.replace(p, isolated_margin=(p.isolated_margin or 0.0) + amount)
            if p.symbol == symbol and p.margin_mode is MarginMode.ISOLATED
            else p
            for p in snap.positions
        ),
    )


def reduced_snapshot(
    snap: AccountSnapshot, key: ScopeKey, symbol: str, size: float
) -> AccountSnapshot:
    """Written out independently of remedy.reduced: close ``size`` of ``symbol`` at its mark."""
    pos = next(p for p in snap.positions if p.symbol == symbol and p.scope == key.scope)
    assert pos.mark_price is not None
    closed = math.copysign(size, pos.size)
    fee = (pos.fee_rate or 0.0) * size * pos.mark_price
    if pos.margin_mode is MarginMode.ISOLATED and snap.venue != "dydx_v4":
        fee = 0.0  # paid out of the margin released with the closed part
    new_size = pos.size - closed
    others = tuple(p for p in snap.positions if p is not pos)
    new_pos = dataclasses.replace(pos, size=new_size)
    if pos.margin_mode is MarginMode.ISOLATED:
        margin = pos.isolated_margin or 0.0
        if snap.venue == "dydx_v4":
            margin += closed * (pos.mark_price - pos.entry_price)
        else:
            margin *= new_size / pos.size
        new_pos = dataclasses.replace(new_pos, isolated_margin=margin - fee)
        return dataclasses.replace(snap, positions=(*others, new_pos))
    collateral = snap.cross_collateral + closed * (pos.mark_price - pos.entry_price) - fee
    return dataclasses.replace(snap, cross_collateral=collateral, positions=(*others, new_pos))


def scale_of(r: ScopeRisk) -> float:
    """The size of the terms summed into equity and maintenance: a float sum carries an error
    of about 1e-16 × scale, so 1e-9 × scale is "equal" (as in test_properties.py)."""
    return abs(r.collateral) + sum(p.notional for p in r.positions) + r.maintenance_margin + 1.0


def ratio_gap(r: ScopeRisk, target: Target) -> float:
    """MM − R·Eq: ≤ 0 when the margin ratio target holds (0 at the target exactly)."""
    assert target.margin_ratio is not None
    return r.maintenance_margin - target.margin_ratio * r.equity


def check_reaches(r: ScopeRisk, target: Target, scale: float) -> None:
    """``scale``: that of the book the remedy was computed on (its rounding carries over)."""
    tol = 1e-9 * scale
    assert r.equity > 0.0 and r.maintenance_margin <= r.equity + tol
    if target.margin_ratio is not None:
        assert ratio_gap(r, target) <= tol
    if target.distance is not None and r.nearest_liquidation_distance is not None:
        assert r.nearest_liquidation_distance >= target.distance - tol / max(r.equity, 1e-300)


def binding(r: ScopeRisk, target: Target, scale: float) -> bool:
    """At least one target is met with (near) equality: the remedy is no larger than needed."""
    tol = 1e-9 * scale
    hits = []
    if target.margin_ratio is not None:
        hits.append(abs(ratio_gap(r, target)) <= tol)
    if target.distance is not None and r.nearest_liquidation_distance is not None:
        hits.append(math.isclose(r.nearest_liquidation_distance, target.distance, rel_tol=1e-6))
    return any(hits)


def no_negative_maintenance(snap: AccountSnapshot) -> bool:
    """The strategy's flat schedules may carry a deduction, which makes a small position's
    maintenance negative; venues' schedules start at a zero deduction."""
    return all(p.maintenance is None or p.maintenance.tiers[0].deduction == 0.0
               for p in snap.positions)  # fmt: skip


targets = st.one_of(
    st.builds(Target, margin_ratio=st.floats(0.05, 0.95)),
    st.builds(Target, distance=st.floats(0.01, 0.9)),
    st.builds(Target, margin_ratio=st.floats(0.05, 0.95), distance=st.floats(0.01, 0.9)),
)


@pytest.mark.parametrize("venue", VENUES)
@SETTINGS
@given(data=st.data(), target=targets)
def test_after_the_deposit_the_scope_is_exactly_at_the_target(
    venue: str, data: st.DataObject, target: Target
) -> None:
    snap = data.draw(snapshots(venue, max_positions=3))
    assume(no_negative_maintenance(snap))
    p = book(snap)
    key = data.draw(st.sampled_from(p.scope_keys()))
    r = fix(p, key, target)
    assume(not r.met)
    assert r.deposit is not None and r.after_deposit is not None
    after = risk_of(book(deposited(snap, key, r.deposit)), key)
    scale = max(scale_of(risk_of(p, key)), scale_of(after))
    check_reaches(after, target, scale)
    assert binding(after, target, scale)
    assert after.equity == pytest.approx(r.after_deposit.equity, rel=1e-9, abs=1e-6)


@pytest.mark.parametrize("venue", VENUES)
@SETTINGS
@given(data=st.data(), target=targets)
def test_after_the_reduction_the_scope_reaches_the_target(
    venue: str, data: st.DataObject, target: Target
) -> None:
    snap = data.draw(snapshots(venue, max_positions=3))
    assume(no_negative_maintenance(snap))
    p = book(snap)
    key = data.draw(st.sampled_from([k for k in p.scope_keys() if p.scope_state(k)]))
    r = fix(p, key, target)
    assume(not r.met)
    assume(r.reduce_size is not None and r.reduce_symbol is not None)
    assert r.reduce_fraction is not None and 0.0 < r.reduce_fraction <= 1.0
    scale = scale_of(risk_of(p, key))
    after = book(reduced_snapshot(snap, key, r.reduce_symbol, r.reduce_size)).risk(key)
    if after is None:  # an isolated position closed entirely: nothing left at risk
        assert key.scope != "cross" and r.reduce_fraction == 1.0
    elif after.positions:
        check_reaches(after, target, scale)
    if r.reduce_fraction < 1.0 - 1e-9:
        # a little less than the computed reduction does not reach it (it is the least)
        less = r.reduce_size * (1 - 1e-4)
        short = risk_of(book(reduced_snapshot(snap, key, r.reduce_symbol, less)), key)
        ok = meets(Figures.of(short), target)
        assert not ok or binding(short, target, scale)


@pytest.mark.parametrize("venue", VENUES)
@SETTINGS
@given(data=st.data(), fraction=st.floats(0.0, 1.0))
def test_the_searchs_light_figures_are_the_full_risks_figures(
    venue: str, data: st.DataObject, fraction: float
) -> None:
    # the reduction's search evaluates a scope tens of times with the light figures; they
    # must be exactly those of the full evaluation, whatever the book and the reduction
    from monitor.margin.remedy import _figures, reduced
    from monitor.margin.risk import compute_scope_risk
    from monitor.whatif import scope_inputs

    p = book(data.draw(snapshots(venue, max_positions=3)))
    key = data.draw(st.sampled_from(p.scope_keys()))
    inputs = scope_inputs(p, key)
    assume(inputs is not None)
    assert inputs is not None
    rules, legs, collateral = inputs
    if legs:
        legs, collateral = reduced(rules, legs, collateral, legs[0].leg.symbol, fraction)
    full = compute_scope_risk(key, rules, legs, collateral, with_stress=False)
    assert _figures(key, rules, legs, collateral) == Figures.of(full)


@pytest.mark.parametrize("venue", VENUES)
@SETTINGS
@given(data=st.data(), target=targets)
def test_a_remedy_from_the_steps_figures_is_the_remedy_computed_afresh(
    venue: str, data: st.DataObject, target: Target
) -> None:
    # an alert's remedy starts from the figures the engine computed at the same step (the
    # transition's risk) instead of computing them again: the remedy must be the same (to
    # the rounding of the portfolio's own sums: the alert's figures are the remedy's "now");
    # a risk of another scope is not taken for this one
    from monitor.whatif import remedy_of

    p = book(data.draw(snapshots(venue, max_positions=3)))
    key = data.draw(st.sampled_from(p.scope_keys()))
    risk = p.risk(key, with_stress=False)
    assert risk is not None
    afresh = remedy_of(p, key, target)
    assert same(remedy_of(p, key, target, risk=risk), afresh)
    other = [k for k in p.scope_keys() if k != key]
    if other:
        assert remedy_of(p, key, target, risk=p.risk(other[0])) == afresh


def same(a: object, b: object) -> bool:
    """Equal, floats to 1e-9 of their size (dataclasses field by field)."""
    if isinstance(a, float) and isinstance(b, float):
        return a == pytest.approx(b, rel=1e-9, abs=1e-9)
    if dataclasses.is_dataclass(a) and type(a) is type(b):
        return all(same(getattr(a, f.name), getattr(b, f.name)) for f in dataclasses.fields(a))
    return a == b
