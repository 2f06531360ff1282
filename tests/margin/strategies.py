"""Hypothesis strategies for books of positions on every rule set."""

from __future__ import annotations

from hypothesis import strategies as st

from monitor.margin.registry import VENUES
from monitor.model.events import AccountSnapshot
from monitor.model.instruments import MaintenanceSchedule, MarginMode
from monitor.model.positions import Position

prices = st.floats(min_value=0.01, max_value=200_000.0, allow_nan=False, allow_infinity=False)
ratios = st.floats(min_value=0.5, max_value=1.5)
sizes = st.floats(min_value=0.001, max_value=5_000.0).flatmap(lambda q: st.sampled_from([q, -q]))


@st.composite
def schedules(draw: st.DrawFn) -> MaintenanceSchedule:
    kind = draw(st.sampled_from(["rate", "tiers", "max_leverage"]))
    if kind == "rate":
        return MaintenanceSchedule.flat(
            draw(st.floats(min_value=0.001, max_value=0.2)),
            draw(st.floats(min_value=0.0, max_value=50.0)),
        )
    if kind == "max_leverage":
        return MaintenanceSchedule.from_max_leverage(draw(st.integers(min_value=1, max_value=100)))
    n = draw(st.integers(min_value=2, max_value=5))
    floors = sorted(
        draw(
            st.lists(
                st.floats(min_value=1.0, max_value=5e6), min_size=n - 1, max_size=n - 1, unique=True
            )
        )
    )
    rates = sorted(
        draw(st.lists(st.floats(min_value=0.001, max_value=0.25), min_size=n, max_size=n))
    )
    return MaintenanceSchedule.continuous(list(zip([0.0, *floors], rates, strict=True)))


@st.composite
def positions(draw: st.DrawFn, symbol: str, mode: MarginMode | None = None) -> Position:
    mode = mode or draw(st.sampled_from([MarginMode.CROSS, MarginMode.ISOLATED]))
    size = draw(sizes)
    mark = draw(prices)
    entry = mark * draw(ratios)
    notional = abs(size) * mark
    iso = None
    if mode is MarginMode.ISOLATED:
        iso = notional * draw(st.floats(min_value=0.02, max_value=1.5))
    return Position(
        symbol=symbol,
        size=size,
        entry_price=entry,
        margin_mode=mode,
        isolated_margin=iso,
        leverage=float(draw(st.integers(min_value=1, max_value=50))),
        maintenance=draw(schedules()),
        fee_rate=draw(st.sampled_from([None, 0.0005])),
        mark_price=mark,
        oracle_price=mark,
        funding_rate=draw(st.floats(min_value=-0.001, max_value=0.001)),
    )


@st.composite
def snapshots(
    draw: st.DrawFn, venue: str | None = None, min_positions: int = 1, max_positions: int = 5
) -> AccountSnapshot:
    venue = venue or draw(st.sampled_from(VENUES))
    n = draw(st.integers(min_value=min_positions, max_value=max_positions))
    pos = tuple(draw(positions(f"S{i}")) for i in range(n))
    gross = sum(abs(p.size) * (p.mark_price or 0.0) for p in pos)
    collateral = gross * draw(st.floats(min_value=0.0, max_value=1.0)) + draw(
        st.floats(min_value=0.0, max_value=1e4)
    )
    return AccountSnapshot(venue=venue, account="acct", cross_collateral=collateral, positions=pos)
