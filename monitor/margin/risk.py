"""Risk of one margin scope: the figures alerts and reports are made of (pure).

Units and signs:

* ``equity`` = collateral (excl. uPnL) + Σ uPnL, quote currency.
* ``margin_ratio`` = maintenance_margin / equity; ≥ 1 means liquidatable; ``None`` when
  equity ≤ 0 (the scope is then liquidatable).
* ``liquidation_distance`` = |price − liquidation_price| / price (fraction) on the healthy
  side; 0 once the scope is liquidatable (the price went past it), never a distance measured
  on the far side (``liquidation_distance`` below).
* ``funding_cost_per_hour``/``_per_day``: positive when the scope pays, at current rates.
* ``funding_runway_hours``: hours until funding alone brings equity down to maintenance at
  today's prices; ``None`` when funding is not a cost.
* ``shock_down``/``shock_up``: smallest uniform move of every price at once (fraction, > 0)
  that liquidates the scope; 0.0 when already liquidatable, ``None`` when none exists.
* ``stress``: margin ratio under uniform moves (``STRESS_MOVES``).
* ``collateral_at_risk``: what the scope can lose at most: the whole cross pool's equity, or
  the isolated position's equity (its allocation plus uPnL).
* per position ``loss_if_liquidated``: equity lost if this instrument alone moves to its
  liquidation price and the venue then keeps its penalty (HL backstop: the remaining
  maintenance; dYdX: up to 1.5 % of notional; OKX/Bybit: the close fee).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, field

from monitor.margin.base import Leg, RuleSet, scope_value, shock_to_liquidation
from monitor.model.positions import ScopeKey

STRESS_MOVES: tuple[float, ...] = (-0.30, -0.20, -0.10, -0.05, 0.05, 0.10, 0.20, 0.30)


@dataclass(frozen=True, slots=True)
class PositionRisk:
    symbol: str
    size: float
    entry_price: float
    mark_price: float
    notional: float
    unrealized_pnl: float
    margin_mode: str
    maintenance_margin: float
    maintenance_rate: float
    initial_margin: float | None
    liquidation_price: float | None
    liquidation_distance: float | None
    loss_if_liquidated: float | None
    funding_rate_per_hour: float | None
    funding_cost_per_day: float
    maintenance_share: float | None = None
    loss_share: float | None = None
    isolated_margin: float | None = None
    leverage: float | None = None
    venue_liquidation_price: float | None = None
    venue_margin_used: float | None = None


@dataclass(frozen=True, slots=True)
class StressPoint:
    move: float
    equity: float
    maintenance_margin: float
    margin_ratio: float | None


@dataclass(frozen=True, slots=True)
class ScopeRisk:
    key: ScopeKey
    equity: float
    collateral: float
    maintenance_margin: float
    initial_margin: float | None
    margin_ratio: float | None
    free_collateral: float | None
    liquidatable: bool
    positions: tuple[PositionRisk, ...]
    funding_cost_per_hour: float
    funding_cost_per_day: float
    funding_runway_hours: float | None
    shock_down: float | None
    shock_up: float | None
    stress: tuple[StressPoint, ...]
    collateral_at_risk: float
    nearest_liquidation_distance: float | None
    drain_symbol: str | None
    venue_equity: float | None = None
    venue_free_collateral: float | None = None
    venue_maintenance: float | None = None
    warnings: tuple[str, ...] = field(default=())

    @property
    def venue(self) -> str:
        return self.key.venue

    @property
    def account(self) -> str:
        return self.key.account

    @property
    def scope(self) -> str:
        return self.key.scope

    @property
    def figures_unknown(self) -> bool:
        """Whether the scope's figures could not be computed: equity, maintenance, collateral
        or a position's notional not finite (the engine's fail-closed NaN figures of a scope
        whose computation raised, ``Engine._unknown_risk``, or an overflow). The alert engine
        alarms ``margin_unknown`` for such a scope; it is neither liquidatable nor "not
        liquidatable": its state is unknown, and every reader says so."""
        isfinite = math.isfinite
        return not (
            isfinite(self.equity)
            and isfinite(self.maintenance_margin)
            and isfinite(self.collateral)
            and all(isfinite(p.notional) for p in self.positions)
        )

    @property
    def shock_to_liquidation(self) -> float | None:
        """The smaller of the down and up shocks: how far a market-wide move may go."""
        vals = [v for v in (self.shock_down, self.shock_up) if v is not None]
        return min(vals) if vals else None


def liquidation_distance(
    size: float, price: float, liquidation: float | None, liquidatable: bool
) -> float | None:
    """How far the price may move against the position before its scope reaches
    maintenance, as a fraction of the price: ``side·(price − P*) / price``; 0 when the scope is
    already liquidatable, with or without a liquidation price (a pool sunk so deep that no
    price of this instrument brings it back to maintenance has none, and is no less
    liquidatable); None without a liquidation price otherwise (nothing liquidates it), or
    without a positive price."""
    if price <= 0.0:
        return None
    if liquidatable:
        return 0.0
    if liquidation is None:
        return None
    side = 1.0 if size > 0 else -1.0
    return max(side * (price - liquidation) / price, 0.0)


def is_liquidatable(equity: float, maintenance: float) -> bool:
    return equity <= 0.0 or (maintenance > 0.0 and equity < maintenance)


def margin_ratio(maintenance: float, equity: float) -> float | None:
    if equity <= 0.0:
        return None
    return maintenance / equity


@dataclass(frozen=True, slots=True)
class LegState:
    """A leg with its market: ``price`` is the venue's risk price, ``funding_price`` the price
    funding is paid on, ``funding_rate_per_hour`` the current hourly rate (None: unknown)."""

    leg: Leg
    price: float
    funding_price: float
    funding_rate_per_hour: float | None
    isolated_margin: float | None = None
    venue_liquidation_price: float | None = None
    venue_margin_used: float | None = None


def compute_scope_risk(
    key: ScopeKey,
    rules: RuleSet,
    legs: Sequence[LegState],
    collateral: float,
    *,
    equity: float | None = None,
    maintenance: float | None = None,
    stress_moves: Sequence[float] = STRESS_MOVES,
    with_stress: bool = True,
    with_shock: bool = True,
    venue_equity: float | None = None,
    venue_free_collateral: float | None = None,
    venue_maintenance: float | None = None,
    warnings: tuple[str, ...] = (),
) -> ScopeRisk:
    """Risk of one scope. ``collateral`` excludes uPnL. ``equity``/``maintenance`` may be
    passed in when the caller maintains them incrementally (they must equal the sums).
    ``with_stress`` False: no stress table (``stress`` empty); ``with_shock`` False: no
    shock figures (``shock_down``/``shock_up`` None): for callers that read neither (a
    remedy's search), as each costs a root search per direction."""
    raw_legs = [ls.leg for ls in legs]
    prices = [ls.price for ls in legs]
    upnls = [ls.leg.size * (ls.price - ls.leg.entry_price) for ls in legs]
    mms = [rules.maintenance(ls.leg, ls.price) for ls in legs]
    if equity is None:
        equity = collateral + math.fsum(upnls)
    if maintenance is None:
        maintenance = math.fsum(mms)
    ims = [rules.initial_margin(ls.leg, ls.price) for ls in legs]
    im_total: float | None = (
        None if any(v is None for v in ims) else math.fsum(v for v in ims if v is not None)
    )
    is_cross = not (len(legs) == 1 and legs[0].leg.isolated)

    liquidatable = is_liquidatable(equity, maintenance)
    loss_total = math.fsum(max(-u, 0.0) for u in upnls)
    funding_h = 0.0
    out: list[PositionRisk] = []
    nearest: float | None = None
    for ls, upnl, mm, im in zip(legs, upnls, mms, ims, strict=True):
        leg = ls.leg
        liq = rules.liquidation_price(leg, ls.price, equity, maintenance)
        dist = liquidation_distance(leg.size, ls.price, liq, liquidatable)
        if dist is not None and (nearest is None or dist < nearest):
            nearest = dist
        loss: float | None = None
        if liq is not None:
            eq_at = equity + leg.size * (liq - ls.price)
            loss = (equity - eq_at) + rules.liquidation_penalty(leg.qty * liq, eq_at)
        cost_h = 0.0
        if ls.funding_rate_per_hour is not None:
            cost_h = leg.size * ls.funding_price * ls.funding_rate_per_hour
        funding_h += cost_h
        out.append(
            PositionRisk(
                symbol=leg.symbol,
                size=leg.size,
                entry_price=leg.entry_price,
                mark_price=ls.price,
                notional=leg.qty * ls.price,
                unrealized_pnl=upnl,
                margin_mode="isolated" if leg.isolated else "cross",
                maintenance_margin=mm,
                maintenance_rate=rules.maintenance_rate(leg, ls.price),
                initial_margin=im,
                liquidation_price=liq,
                liquidation_distance=dist,
                loss_if_liquidated=loss,
                funding_rate_per_hour=ls.funding_rate_per_hour,
                funding_cost_per_day=cost_h * 24.0,
                maintenance_share=(mm / maintenance) if is_cross and maintenance > 0 else None,
                loss_share=(max(-upnl, 0.0) / loss_total) if is_cross and loss_total > 0 else None,
                isolated_margin=ls.isolated_margin,
                leverage=leg.leverage,
                venue_liquidation_price=ls.venue_liquidation_price,
                venue_margin_used=ls.venue_margin_used,
            )
        )

    headroom = equity - maintenance
    if funding_h > 0.0:
        runway: float | None = max(headroom, 0.0) / funding_h
    else:
        runway = None

    stress: list[StressPoint] = []
    shock_down = shock_up = None
    if legs and with_shock:
        if with_stress:  # the table of fixed moves; the shock figures feed the `shock` rule
            for mv in stress_moves:
                eq_s, mm_s = scope_value(rules, raw_legs, prices, collateral, mv)
                stress.append(StressPoint(mv, eq_s, mm_s, margin_ratio(mm_s, eq_s)))
        shock_down = shock_to_liquidation(rules, raw_legs, prices, collateral, -1)
        shock_up = shock_to_liquidation(rules, raw_legs, prices, collateral, +1)

    drain: str | None = None
    if is_cross and out:
        if loss_total > 0:
            drain = max(out, key=lambda p: max(-p.unrealized_pnl, 0.0)).symbol
        elif maintenance > 0:
            drain = max(out, key=lambda p: p.maintenance_margin).symbol

    return ScopeRisk(
        key=key,
        equity=equity,
        collateral=collateral,
        maintenance_margin=maintenance,
        initial_margin=im_total,
        margin_ratio=margin_ratio(maintenance, equity),
        free_collateral=(equity - im_total) if im_total is not None else None,
        liquidatable=liquidatable,
        positions=tuple(out),
        funding_cost_per_hour=funding_h,
        funding_cost_per_day=funding_h * 24.0,
        funding_runway_hours=runway,
        shock_down=shock_down,
        shock_up=shock_up,
        stress=tuple(stress),
        collateral_at_risk=max(equity, 0.0),
        nearest_liquidation_distance=nearest,
        drain_symbol=drain,
        venue_equity=venue_equity,
        venue_free_collateral=venue_free_collateral,
        venue_maintenance=venue_maintenance,
        warnings=warnings,
    )
