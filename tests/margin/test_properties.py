"""Properties every rule set must hold, on random books (hypothesis).

Tolerances are relative to the scale of the terms that were summed (cash, Σ|s·P|, MM): a float
sum of terms of that size carries an absolute error of about 1e-16 × scale, so 1e-9 × scale is
"equal" with a wide margin and still catches any formula error.
"""

from __future__ import annotations

import dataclasses
import math

import pytest
from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st

from monitor.margin.base import scope_value
from monitor.margin.registry import VENUES
from monitor.model.events import AccountSnapshot, MarkPrice
from monitor.model.instruments import MaintenanceSchedule, MarginMode
from monitor.model.portfolio import Portfolio
from monitor.model.positions import Position, ScopeKey, isolated_scope

from .strategies import positions, prices, snapshots

SETTINGS = settings(
    max_examples=150,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.filter_too_much],
)


def scale_of(p: Portfolio, key: ScopeKey) -> float:
    s = p.scope_state(key)
    assert s is not None
    return abs(s.cash) + sum(abs(h.value) + abs(h.mm) for h in s.holdings.values()) + 1.0


def book(snap: AccountSnapshot) -> Portfolio:
    p = Portfolio()
    p.apply(snap)
    return p


def tick(p: Portfolio, venue: str, symbol: str, price: float) -> None:
    p.apply(MarkPrice(venue, symbol, price, oracle=price))


@pytest.mark.parametrize("venue", VENUES)
@SETTINGS
@given(data=st.data())
def test_equity_equals_maintenance_at_the_liquidation_price(
    venue: str, data: st.DataObject
) -> None:
    """At P* (all other prices unchanged) the scope's equity meets its maintenance.

    For Bybit isolated positions maintenance is valued at entry (its documented identity:
    isolated_margin + s·(LP − E) = q·E·MMR − deduction); OKX's includes the close fee
    (margin balance + UPL = q·LP·(MMR + fee)). Both are what the rule sets' maintenance returns.
    """
    snap = data.draw(snapshots(venue=venue))
    p = book(snap)
    for key in p.scope_keys():
        risk = p.risk(key, with_stress=False)
        assert risk is not None
        for pr in risk.positions:
            if pr.liquidation_price is None:
                continue
            q = book(snap)
            tick(q, venue, pr.symbol, pr.liquidation_price)
            eq, mm = q.aggregates(key)
            # the figures cancel (equity = margin + size·(P − entry)): the rounding is relative
            # to the amounts that cancel, the entry notional and the margin, not to the result
            entry = sum(
                abs(x.size * x.entry_price) + (x.isolated_margin or 0.0) for x in snap.positions
            )
            scale = max(scale_of(q, key), entry + abs(snap.cross_collateral))
            assert eq == pytest.approx(mm, rel=0, abs=1e-9 * scale)


@pytest.mark.parametrize("venue", ["okx", "bybit"])
def test_okx_and_bybit_isolated_identities_written_out(venue: str) -> None:
    """The venues' documented closed forms, evaluated by hand beside the engine's figure."""
    q, entry, margin, rate, fee, lev = 2.0, 30_000.0, 3_000.0, 0.004, 0.0005, 20.0
    pos = Position(
        "BTC-USDT-SWAP",
        q,
        entry,
        MarginMode.ISOLATED,
        isolated_margin=margin,
        leverage=lev,
        maintenance=MaintenanceSchedule.flat(rate),
        fee_rate=fee,
        mark_price=29_000.0,
    )
    p = book(AccountSnapshot(venue, "a", 0.0, (pos,)))
    risk = p.risk(ScopeKey(venue, "a", isolated_scope(pos.symbol)))
    assert risk is not None
    liq = risk.positions[0].liquidation_price
    if venue == "okx":
        # LP_long = (E − M/q) / (1 − (MMR + fee))
        expected = (entry - margin / q) / (1 - (rate + fee))
    else:
        # LP_long = E − (M − MM)/q, MM = q·E·MMR + q·BP·fee: the fee to close is valued at
        # the bankruptcy price BP = E·(1 − 1/leverage), as in the position margin M
        bp = entry * (1 - 1 / lev)
        expected = entry - (margin - q * entry * rate - q * bp * fee) / q
    assert liq == pytest.approx(expected, rel=1e-12)


@SETTINGS
@given(data=st.data(), venue=st.sampled_from(VENUES))
def test_isolated_liquidation_price_ignores_every_other_position(
    venue: str, data: st.DataObject
) -> None:
    iso = data.draw(positions("ISO", MarginMode.ISOLATED))
    others = data.draw(st.lists(positions("X"), min_size=0, max_size=3))
    others = [dataclasses.replace(o, symbol=f"O{i}") for i, o in enumerate(others)]
    alone = book(AccountSnapshot(venue, "a", 1000.0, (iso,)))
    crowd = book(AccountSnapshot(venue, "a", data.draw(prices), (iso, *others)))
    for o in others:
        tick(crowd, venue, o.symbol, (o.mark_price or 1.0) * data.draw(st.floats(0.1, 3.0)))
    key = ScopeKey(venue, "a", isolated_scope("ISO"))
    ra, rc = alone.risk(key), crowd.risk(key)
    assert ra is not None and rc is not None
    assert ra.positions[0].liquidation_price == rc.positions[0].liquidation_price


@SETTINGS
@given(data=st.data(), venue=st.sampled_from(VENUES), extra=st.floats(min_value=1.0, max_value=1e5))
def test_adding_isolated_margin_moves_the_liquidation_price_away(
    venue: str, data: st.DataObject, extra: float
) -> None:
    iso = data.draw(positions("ISO", MarginMode.ISOLATED))
    key = ScopeKey(venue, "a", isolated_scope("ISO"))
    before = book(AccountSnapshot(venue, "a", 0.0, (iso,))).risk(key)
    more = dataclasses.replace(iso, isolated_margin=(iso.isolated_margin or 0.0) + extra)
    after = book(AccountSnapshot(venue, "a", 0.0, (more,))).risk(key)
    assert before is not None and after is not None
    lb, la = before.positions[0].liquidation_price, after.positions[0].liquidation_price
    assume(lb is not None)
    if iso.size > 0:  # a long's liquidation price falls (or disappears below zero)
        assert la is None or la < lb
    else:  # a short's rises (or goes beyond any price)
        assert la is None or la > lb


@SETTINGS
@given(
    data=st.data(),
    venue=st.sampled_from(VENUES),
    move=st.floats(min_value=0.5, max_value=1.5).filter(lambda m: abs(m - 1) > 1e-3),
)
def test_cross_liquidation_price_moves_with_another_position_pnl(
    venue: str, data: st.DataObject, move: float
) -> None:
    a = data.draw(positions("A", MarginMode.CROSS))
    b = data.draw(positions("B", MarginMode.CROSS))
    p = book(AccountSnapshot(venue, "a", data.draw(prices), (a, b)))
    key = ScopeKey(venue, "a", "cross")
    r0 = p.risk(key, with_stress=False)
    assert r0 is not None
    liq0 = r0.positions[0].liquidation_price
    assume(liq0 is not None)
    new_b = (b.mark_price or 1.0) * move
    tick(p, venue, "B", new_b)
    r1 = p.risk(key, with_stress=False)
    assert r1 is not None
    liq1 = r1.positions[0].liquidation_price
    eq_change = r1.equity - r1.maintenance_margin - (r0.equity - r0.maintenance_margin)
    assume(abs(eq_change) > 1e-6 * scale_of(p, key))
    assert liq1 != liq0
    # more headroom pushes a long's liquidation price down and a short's up; less pulls back
    direction = 1 if eq_change > 0 else -1
    if liq1 is None:
        # it left the positive prices: a long gaining headroom (P* below zero), a short
        # gaining (beyond any price) or losing all of it (P* ≤ 0); never a long losing it
        assert not (a.size > 0 and direction == -1)
    elif a.size > 0:
        assert (liq1 - liq0) * direction < 0
    else:
        assert (liq1 - liq0) * direction > 0


@SETTINGS
@given(data=st.data(), lev=st.integers(min_value=1, max_value=50))
def test_hyperliquid_cross_leverage_does_not_change_liquidation_price(
    data: st.DataObject, lev: int
) -> None:
    snap = data.draw(snapshots(venue="hyperliquid"))
    cross = tuple(
        dataclasses.replace(p, margin_mode=MarginMode.CROSS, isolated_margin=None)
        for p in snap.positions
    )
    relev = tuple(dataclasses.replace(p, leverage=float(lev)) for p in cross)
    key = ScopeKey("hyperliquid", "acct", "cross")
    r1 = book(dataclasses.replace(snap, positions=cross)).risk(key, with_stress=False)
    r2 = book(dataclasses.replace(snap, positions=relev)).risk(key, with_stress=False)
    assert r1 is not None and r2 is not None
    assert [p.liquidation_price for p in r1.positions] == [
        p.liquidation_price for p in r2.positions
    ]


@pytest.mark.parametrize("venue", VENUES)
@SETTINGS
@given(data=st.data())
def test_shock_to_liquidation_is_where_equity_meets_maintenance(
    venue: str, data: st.DataObject
) -> None:
    snap = data.draw(snapshots(venue=venue, max_positions=4))
    p = book(snap)
    for key in p.scope_keys():
        r = p.risk(key)
        s = p.scope_state(key)
        assert r is not None and s is not None
        legs = [h.leg for h in s.holdings.values()]
        px = [h.price for h in s.holdings.values()]
        for shock, sign in ((r.shock_down, -1), (r.shock_up, 1)):
            if shock is None or shock == 0.0:
                continue
            eq, mm = scope_value(s.rules, legs, px, r.collateral, sign * shock)
            assert eq == pytest.approx(mm, rel=0, abs=1e-9 * scale_of(p, key) * (1 + shock))
            # and any smaller move in that direction leaves the scope alive
            eq2, mm2 = scope_value(s.rules, legs, px, r.collateral, sign * shock * 0.5)
            assert eq2 - mm2 > -1e-9 * scale_of(p, key)


def test_shock_is_zero_when_already_liquidatable() -> None:
    pos = Position(
        "BTCUSDT", 1.0, 100.0, maintenance=MaintenanceSchedule.flat(0.05), mark_price=100.0
    )
    # equity 4 < maintenance 5
    r = book(AccountSnapshot("binance_usdm", "a", 4.0, (pos,))).risk(
        ScopeKey("binance_usdm", "a", "cross")
    )
    assert r is not None
    assert r.liquidatable
    assert r.shock_down == 0.0
    assert r.margin_ratio == pytest.approx(5.0 / 4.0)


def test_no_liquidation_price_for_an_overcollateralised_long() -> None:
    # 1 BTC long at 100 with 200 collateral: equity stays above MM for every price ≥ 0
    pos = Position(
        "BTCUSDT", 1.0, 100.0, maintenance=MaintenanceSchedule.flat(0.05), mark_price=100.0
    )
    r = book(AccountSnapshot("generic", "a", 200.0, (pos,))).risk(ScopeKey("generic", "a", "cross"))
    assert r is not None
    assert r.positions[0].liquidation_price is None
    assert r.positions[0].liquidation_distance is None
    assert r.shock_down is None
    assert math.isfinite(r.equity)
