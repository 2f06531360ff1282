"""Builders of ScopeRisk values for the alert tests (figures chosen by hand)."""

from __future__ import annotations

from monitor.margin.risk import PositionRisk, ScopeRisk
from monitor.model.positions import ScopeKey

KEY = ScopeKey("hyperliquid", "0xabc", "cross")


def position(
    symbol: str = "BTC",
    *,
    mark: float = 100.0,
    liq: float | None = 50.0,
    funding_per_hour: float | None = None,
    size: float = 1.0,
) -> PositionRisk:
    dist = abs(mark - liq) / mark if liq is not None else None
    return PositionRisk(
        symbol=symbol,
        size=size,
        entry_price=mark,
        mark_price=mark,
        notional=abs(size) * mark,
        unrealized_pnl=0.0,
        margin_mode="cross",
        maintenance_margin=abs(size) * mark * 0.05,
        maintenance_rate=0.05,
        initial_margin=None,
        liquidation_price=liq,
        liquidation_distance=dist,
        loss_if_liquidated=None,
        funding_rate_per_hour=funding_per_hour,
        funding_cost_per_day=0.0
        if funding_per_hour is None
        else size * mark * funding_per_hour * 24,
    )


def scope(
    mr: float | None = 0.1,
    *,
    key: ScopeKey = KEY,
    equity: float = 1000.0,
    positions: tuple[PositionRisk, ...] | None = None,
    shock: float | None = 0.5,
    runway: float | None = None,
    funding_day: float = 0.0,
) -> ScopeRisk:
    """A scope whose margin ratio is ``mr`` (maintenance = mr · equity)."""
    pos = (position(),) if positions is None else positions
    mm = (mr or 0.0) * equity
    return ScopeRisk(
        key=key,
        equity=equity,
        collateral=equity,
        maintenance_margin=mm,
        initial_margin=None,
        margin_ratio=mr,
        free_collateral=None,
        liquidatable=mr is None or mr >= 1,
        positions=pos,
        funding_cost_per_hour=funding_day / 24,
        funding_cost_per_day=funding_day,
        funding_runway_hours=runway,
        shock_down=shock,
        shock_up=None,
        stress=(),
        collateral_at_risk=max(equity, 0.0),
        nearest_liquidation_distance=min(
            (p.liquidation_distance for p in pos if p.liquidation_distance is not None),
            default=None,
        ),
        drain_symbol=pos[0].symbol if pos else None,
    )
