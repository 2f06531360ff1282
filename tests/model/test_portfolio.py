"""The incremental engine: deltas equal a full recompute; a tick touches only its holders."""

from __future__ import annotations

import dataclasses

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from monitor.margin.registry import VENUES
from monitor.model.events import (
    AccountSnapshot,
    BalanceUpdate,
    FundingRate,
    InstrumentSpec,
    MarkPrice,
    PositionUpdate,
)
from monitor.model.instruments import Instrument, MaintenanceSchedule, MarginMode
from monitor.model.portfolio import Portfolio
from monitor.model.positions import Position, ScopeKey

from ..margin.strategies import positions, schedules, snapshots

SYMBOLS = ["S0", "S1", "S2", "S3", "S4"]


@st.composite
def events(draw: st.DrawFn, venue: str) -> object:
    kind = draw(
        st.sampled_from(
            ["price", "price", "price", "position", "balance", "funding", "instrument", "close"]
        )
    )
    sym = draw(st.sampled_from(SYMBOLS))
    acct = draw(st.sampled_from(["a", "b"]))
    if kind == "price":
        px = draw(st.floats(min_value=0.01, max_value=200_000.0))
        return MarkPrice(venue, sym, px, oracle=px)
    if kind == "position":
        return PositionUpdate(venue, acct, draw(positions(sym)))
    if kind == "close":
        return PositionUpdate(venue, acct, Position(sym, 0.0, 1.0))
    if kind == "balance":
        return BalanceUpdate(venue, acct, cross_collateral=draw(st.floats(0.0, 1e6)))
    if kind == "funding":
        return FundingRate(venue, sym, draw(st.floats(-0.01, 0.01)), 8.0)
    return InstrumentSpec(Instrument(venue, sym, draw(schedules())))


@settings(max_examples=120, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(data=st.data(), venue=st.sampled_from(VENUES))
def test_delta_aggregates_equal_a_full_recompute_after_any_events(
    venue: str, data: st.DataObject
) -> None:
    p = Portfolio()
    for acct in ("a", "b"):
        snap = data.draw(snapshots(venue=venue, max_positions=5))
        p.apply(dataclasses.replace(snap, account=acct))
    for ev in data.draw(st.lists(events(venue), min_size=1, max_size=60)):
        p.apply(ev)  # type: ignore[arg-type]
        for key in p.scope_keys():
            eq_d, mm_d = p.aggregates(key)
            eq_f, mm_f = p.full_recompute(key)
            s = p.scope_state(key)
            assert s is not None
            scale = abs(s.cash) + sum(abs(h.value) + abs(h.mm) for h in s.holdings.values()) + 1
            assert eq_d == pytest.approx(eq_f, rel=0, abs=1e-9 * scale)
            assert mm_d == pytest.approx(mm_f, rel=0, abs=1e-9 * scale)


def _pos(symbol: str, size: float, mode: MarginMode = MarginMode.CROSS) -> Position:
    return Position(
        symbol,
        size,
        100.0,
        mode,
        isolated_margin=50.0 if mode == "isolated" else None,
        maintenance=MaintenanceSchedule.flat(0.01),
        mark_price=100.0,
    )


def test_price_tick_touches_only_the_scopes_holding_that_instrument() -> None:
    p = Portfolio()
    p.apply(AccountSnapshot("generic", "a", 1000.0, (_pos("BTC", 1.0), _pos("ETH", 2.0))))
    p.apply(
        AccountSnapshot(
            "generic", "b", 1000.0, (_pos("SOL", 3.0), _pos("BTC", -1.0, MarginMode.ISOLATED))
        )
    )
    p.apply(AccountSnapshot("generic", "c", 1000.0, (_pos("DOGE", 10.0),)))
    touched = p.apply(MarkPrice("generic", "BTC", 110.0))
    assert sorted(touched) == [
        ScopeKey("generic", "a", "cross"),
        ScopeKey("generic", "b", "isolated:BTC"),
    ]
    assert p.apply(MarkPrice("generic", "XRP", 1.0)) == []
    # same symbol on another venue is another instrument
    assert p.apply(MarkPrice("okx", "BTC", 1.0)) == []
    # account a: cash 1000 − (100 + 200) = 700; value 110 + 200 → equity 1010
    eq, mm = p.aggregates(ScopeKey("generic", "a", "cross"))
    assert eq == pytest.approx(1000.0 + 1.0 * (110 - 100))
    assert mm == pytest.approx(110 * 0.01 + 200 * 0.01)


def test_position_update_moves_a_position_between_cross_and_isolated() -> None:
    p = Portfolio()
    p.apply(AccountSnapshot("generic", "a", 1000.0, (_pos("BTC", 1.0),)))
    touched = p.apply(PositionUpdate("generic", "a", _pos("BTC", 1.0, MarginMode.ISOLATED)))
    assert set(touched) == {
        ScopeKey("generic", "a", "cross"),
        ScopeKey("generic", "a", "isolated:BTC"),
    }
    iso = p.risk(ScopeKey("generic", "a", "isolated:BTC"))
    assert iso is not None
    assert iso.equity == pytest.approx(50.0)  # isolated margin 50, mark = entry
    closed = p.apply(PositionUpdate("generic", "a", Position("BTC", 0.0, 100.0)))
    assert closed == [ScopeKey("generic", "a", "isolated:BTC")]
    assert p.risk(ScopeKey("generic", "a", "isolated:BTC")) is None


def test_dydx_risk_uses_the_oracle_and_hyperliquid_funding_uses_the_oracle() -> None:
    p = Portfolio()
    pos = Position(
        "ETH-USD", 1.0, 3000.0, maintenance=MaintenanceSchedule.flat(0.03), mark_price=3000.0
    )
    p.apply(AccountSnapshot("dydx_v4", "a", 1000.0, (pos,)))
    p.apply(MarkPrice("dydx_v4", "ETH-USD", mark=3100.0, oracle=3050.0))
    eq, _ = p.aggregates(ScopeKey("dydx_v4", "a", "cross"))
    assert eq == pytest.approx(1000.0 + 50.0)  # valued at the oracle, not the mark

    p.apply(AccountSnapshot("hyperliquid", "h", 1000.0, (dataclasses.replace(pos, symbol="ETH"),)))
    p.apply(MarkPrice("hyperliquid", "ETH", mark=3100.0, oracle=3000.0))
    p.apply(FundingRate("hyperliquid", "ETH", 0.0001, 1.0))
    r = p.risk(ScopeKey("hyperliquid", "h", "cross"))
    assert r is not None
    assert r.equity == pytest.approx(1000.0 + 100.0)  # valued at the mark
    # funding: 1 ETH × oracle 3000 × 0.0001/h = 0.3/h paid by the long
    assert r.funding_cost_per_hour == pytest.approx(0.3)
    assert r.funding_cost_per_day == pytest.approx(7.2)
    # runway: headroom (1100 − 3100·0.03) / 0.3 per hour
    assert r.funding_runway_hours == pytest.approx((1100 - 93.0) / 0.3)


def test_cross_pool_names_the_position_draining_it() -> None:
    p = Portfolio()
    btc = Position("BTC", 1.0, 100.0, maintenance=MaintenanceSchedule.flat(0.01), mark_price=100.0)
    eth = Position("ETH", -10.0, 10.0, maintenance=MaintenanceSchedule.flat(0.02), mark_price=10.0)
    p.apply(AccountSnapshot("generic", "a", 500.0, (btc, eth)))
    p.apply(MarkPrice("generic", "ETH", 15.0))  # the short loses 50
    p.apply(MarkPrice("generic", "BTC", 90.0))  # the long loses 10
    r = p.risk(ScopeKey("generic", "a", "cross"))
    assert r is not None
    assert r.drain_symbol == "ETH"
    shares = {x.symbol: x.loss_share for x in r.positions}
    assert shares["ETH"] == pytest.approx(50 / 60)
    assert shares["BTC"] == pytest.approx(10 / 60)
    mm = {x.symbol: x.maintenance_share for x in r.positions}
    # MM: BTC 90·0.01 = 0.9, ETH 150·0.02 = 3.0
    assert mm["ETH"] == pytest.approx(3.0 / 3.9)
    assert r.collateral_at_risk == pytest.approx(500 - 60)


def test_instrument_schedule_replaces_a_fallback_maintenance() -> None:
    """Hyperliquid positions carry only their tier's maxLeverage; the margin table wins."""
    p = Portfolio()
    pos = Position(
        "BTC",
        2000.0,
        100_000.0,
        maintenance=MaintenanceSchedule.from_max_leverage(20),
        mark_price=100_000.0,
        maintenance_fallback=True,
    )
    p.apply(AccountSnapshot("hyperliquid", "a", 50e6, (pos,)))
    key = ScopeKey("hyperliquid", "a", "cross")
    # notional 200 M at the stand-in rate 1/40, no deduction
    assert p.aggregates(key)[1] == pytest.approx(200e6 / 40)
    table = MaintenanceSchedule.from_hyperliquid_table([(0.0, 40.0), (150e6, 20.0)])
    p.apply(InstrumentSpec(Instrument("hyperliquid", "BTC", table, 1.0)))
    # tier 2: 200 M / 40 − 150 M · (1/40 − 1/80)
    assert p.aggregates(key)[1] == pytest.approx(200e6 / 40 - 150e6 * (1 / 40 - 1 / 80))


def test_the_same_instrument_specification_again_touches_nothing() -> None:
    # every reconnect delivers the venue's whole instrument list: unchanged, it must not
    # disarm and re-decide every holder (100,000 positions: seconds in one step)
    from monitor.model.events import AccountSnapshot
    from monitor.model.instruments import Instrument, MaintenanceSchedule
    from monitor.model.positions import Position

    p = Portfolio()
    spec = InstrumentSpec(Instrument("generic", "BTC", MaintenanceSchedule.flat(0.01)))
    pos = Position("BTC", 1.0, 100.0, mark_price=100.0)
    p.apply(AccountSnapshot("generic", "a", 1000.0, (pos,)))
    assert p.apply(spec) != []  # the first specification changes the maintenance
    assert p.apply(spec) == []
    changed = InstrumentSpec(Instrument("generic", "BTC", MaintenanceSchedule.flat(0.02)))
    assert p.apply(changed) != []
