"""RuleSet.maintenance: the direct formula is the segment's value, to the bit."""

from __future__ import annotations

import math

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from monitor.margin.base import Leg
from monitor.margin.registry import VENUES, rules_for
from monitor.model.instruments import MaintenanceSchedule

from .strategies import prices, schedules, sizes


@pytest.mark.parametrize("venue", VENUES)
@settings(max_examples=150, deadline=None)
@given(
    schedule=st.one_of(st.none(), schedules()),
    size=sizes,
    price=prices,
    entry=prices,
    isolated=st.booleans(),
    fee=st.sampled_from([0.0, 0.0005]),
)
def test_maintenance_equals_the_segment_at_the_price(
    venue: str,
    *,
    schedule: MaintenanceSchedule | None,
    size: float,
    price: float,
    entry: float,
    isolated: bool,
    fee: float,
) -> None:
    rules = rules_for(venue)
    leg = Leg("X", size, entry, schedule, isolated=isolated, fee_rate=fee)
    assert rules.maintenance(leg, price) == rules.segment(leg, price).at(price)


def test_maintenance_by_hand_on_a_tiered_schedule_with_a_close_fee() -> None:
    """OKX counts the close fee: 2 BTC at 30,000 = 60,000 notional, in the 0.5 % bracket from
    50,000 with deduction 50,000·(0.005 − 0.004) = 50: 60,000·(0.005 + 0.0005) − 50 = 280."""
    sched = MaintenanceSchedule.continuous([(0.0, 0.004), (50_000.0, 0.005)])
    leg = Leg("BTC-USDT-SWAP", -2.0, 29_000.0, sched, fee_rate=0.0005)
    assert rules_for("okx").maintenance(leg, 30_000.0) == pytest.approx(280.0)
    assert rules_for("binance_usdm").maintenance(leg, 30_000.0) == pytest.approx(250.0)
    # Bybit isolated values it at entry: 58,000 notional → 58,000·0.0055 − 50 = 269
    iso = Leg("BTCUSDT", -2.0, 29_000.0, sched, isolated=True, fee_rate=0.0005)
    assert rules_for("bybit").maintenance(iso, 30_000.0) == pytest.approx(269.0)


@pytest.mark.parametrize("venue", VENUES)
@settings(max_examples=150, deadline=None)
@given(
    schedule=st.one_of(st.none(), schedules()),
    size=sizes,
    entry=prices,
    isolated=st.booleans(),
)
def test_breakpoints_are_the_finite_positive_segment_bounds(
    venue: str,
    *,
    schedule: MaintenanceSchedule | None,
    size: float,
    entry: float,
    isolated: bool,
) -> None:
    """The shock search's breakpoints, taken from the schedule without building segments, are
    exactly the segments' finite positive bounds (Bybit isolated: none, one segment)."""
    rules = rules_for(venue)
    leg = Leg("X", size, entry, schedule, isolated=isolated)
    from_segments = {
        b for seg in rules.segments(leg) for b in (seg.lo, seg.hi) if math.isfinite(b) and b > 0.0
    }
    assert set(rules.breakpoints(leg)) == from_segments


def test_breakpoints_by_hand() -> None:
    """Brackets from 0 and 50,000 (quote) on 2 contracts: one bound, at 50,000 / 2 = 25,000."""
    sched = MaintenanceSchedule.continuous([(0.0, 0.004), (50_000.0, 0.005)])
    assert rules_for("okx").breakpoints(Leg("X", -2.0, 1.0, sched)) == [25_000.0]
    assert rules_for("bybit").breakpoints(Leg("X", -2.0, 1.0, sched, isolated=True)) == []
