"""The risk report: JSON (contracts.md §3, version 1) and a readable table (pure).

The table (``monitor inspect``) prints numbers with :mod:`monitor.fmt`: prices below 1 with
6 significant digits (``0.000013`` and ``0.0000104347`` stay apart), sizes with 8 significant
digits and no exponent (``40,000,000``), the funding runway in days and hours. A scope's state
is ``LIQUIDATABLE`` at a margin ratio of 1 or more (the boundary included) or with equity at
or below zero, ``no positions`` for a pool without positions (an account holding only isolated
positions has an empty cross pool: it cannot be liquidated), ``UNKNOWN`` when its figures
could not be computed (NaN, the engine's fail-closed figures), else ``not liquidatable``.
Venue-chosen strings (account ids, symbols, warnings) have their control characters
replaced by spaces."""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

from monitor import fmt
from monitor.margin.risk import PositionRisk, ScopeRisk
from monitor.model.events import AccountSnapshot
from monitor.model.portfolio import Portfolio
from monitor.notify.render import one_line

REPORT_VERSION = 1


def portfolio_of(snapshots: Iterable[AccountSnapshot]) -> Portfolio:
    p = Portfolio()
    for snap in snapshots:
        p.apply(snap)
    return p


def risks_of(
    snapshots: Iterable[AccountSnapshot], *, include_empty_cross: bool = False
) -> list[ScopeRisk]:
    """Every scope of every snapshot, each snapshot priced with its own marks (a portfolio of
    its own): snapshots of a list are separate moments and never share a price."""
    out: list[ScopeRisk] = []
    for snap in snapshots:
        out.extend(portfolio_of([snap]).risks(include_empty_cross=include_empty_cross))
    return out


def _num(x: float | None) -> float | None:
    if x is None or not math.isfinite(x):
        return None
    return x


def position_json(p: PositionRisk) -> dict[str, Any]:
    out: dict[str, Any] = {
        "symbol": p.symbol,
        "size": p.size,
        "entry_price": p.entry_price,
        "mark_price": p.mark_price,
        "notional": p.notional,
        "unrealized_pnl": p.unrealized_pnl,
        "margin_mode": p.margin_mode,
        "liquidation_price": _num(p.liquidation_price),
        "liquidation_distance": _num(p.liquidation_distance),
        "maintenance_margin": p.maintenance_margin,
        "maintenance_rate": p.maintenance_rate,
        "initial_margin": _num(p.initial_margin),
        "leverage": p.leverage,
        "isolated_margin": _num(p.isolated_margin),
        "loss_if_liquidated": _num(p.loss_if_liquidated),
        "funding_rate_per_hour": _num(p.funding_rate_per_hour),
        "funding_cost_per_day": p.funding_cost_per_day,
    }
    if p.maintenance_share is not None:
        out["maintenance_share"] = p.maintenance_share
    if p.loss_share is not None:
        out["loss_share"] = p.loss_share
    if p.venue_liquidation_price is not None:
        out["venue_liquidation_price"] = p.venue_liquidation_price
    if p.venue_margin_used is not None:
        out["venue_margin_used"] = p.venue_margin_used
    return out


def scope_json(r: ScopeRisk) -> dict[str, Any]:
    positions = [position_json(p) for p in r.positions]
    past = scope_state(r) == "LIQUIDATABLE"
    # margin used by each position: its isolated equity, or its initial margin in cross
    for pj, p in zip(positions, r.positions, strict=True):
        pj["margin_used"] = r.equity if p.margin_mode == "isolated" else _num(p.initial_margin)
        if past:
            # at or past liquidation the loss is what the venue's liquidation realizes, not a
            # figure at a price still to come (a negative "loss" there would read as a gain)
            pj["loss_if_liquidated"] = None
    out: dict[str, Any] = {
        "venue": r.venue,
        "account": r.account,
        "scope": r.scope,
        "equity": r.equity,
        "collateral": r.collateral,
        "maintenance_margin": r.maintenance_margin,
        "initial_margin": _num(r.initial_margin),
        "margin_ratio": _num(r.margin_ratio),
        "free_collateral": _num(r.free_collateral),
        "liquidatable": r.liquidatable,
        "nearest_liquidation_distance": _num(r.nearest_liquidation_distance),
        "funding_cost_per_hour": r.funding_cost_per_hour,
        "funding_cost_per_day": r.funding_cost_per_day,
        "funding_runway_hours": _num(r.funding_runway_hours),
        "shock_to_liquidation": {"down": _num(r.shock_down), "up": _num(r.shock_up)},
        "stress": [
            {
                "move": s.move,
                "equity": s.equity,
                "maintenance_margin": s.maintenance_margin,
                "margin_ratio": _num(s.margin_ratio),
            }
            for s in r.stress
        ],
        "collateral_at_risk": r.collateral_at_risk,
        "drain_symbol": r.drain_symbol,
        "positions": positions,
    }
    if r.venue_equity is not None:
        out["venue_equity"] = r.venue_equity
    if r.venue_free_collateral is not None:
        out["venue_free_collateral"] = r.venue_free_collateral
    if r.venue_maintenance is not None:
        out["venue_maintenance_margin"] = r.venue_maintenance
    if r.warnings:
        out["warnings"] = list(r.warnings)
    return out


def report_json(
    risks: Sequence[ScopeRisk], labels: Mapping[tuple[str, str], str] | None = None
) -> dict[str, Any]:
    """The report; ``labels`` maps ``(venue, account)`` to the configured label, added to
    that scope's object as ``"label"``."""
    out = []
    for r in risks:
        doc = scope_json(r)
        label = (labels or {}).get((r.venue, r.account))
        if label:
            doc["label"] = label
        out.append(doc)
    return {"version": REPORT_VERSION, "accounts": out}


# -- table -------------------------------------------------------------------------------
def _f(x: float | None, digits: int = 2) -> str:
    if x is None or not math.isfinite(x):
        return "—"
    return f"{x:,.{digits}f}"


def _pct(x: float | None, digits: int = 2) -> str:
    if x is None or not math.isfinite(x):
        return "—"
    return f"{x * 100:.{digits}f}%"


def _price(x: float | None) -> str:
    """2 decimals from 100, 4 from 1, below 1 six significant digits (never ``0.000010``
    for ``0.0000104347``)."""
    if x is None or not math.isfinite(x):
        return "—"
    mag = abs(x)
    if mag < 1.0:
        return fmt.price(x)
    digits = 2 if mag >= 100 else 4
    return f"{x:,.{digits}f}"


def scope_state(r: ScopeRisk) -> str:
    """``LIQUIDATABLE`` (margin ratio ≥ 1, or equity ≤ 0 with positions), ``no positions``
    (``no positions, negative balance`` when the pool owes, ``no positions, equity unknown``
    when its equity could not be computed), ``UNKNOWN`` when the figures could not be
    computed (:attr:`ScopeRisk.figures_unknown`), else ``not liquidatable``."""
    if not r.positions:
        if r.figures_unknown:
            return "no positions, equity unknown"
        return "no positions" if r.equity >= 0.0 else "no positions, negative balance"
    if r.liquidatable or r.margin_ratio is None or r.margin_ratio >= 1.0:
        return "LIQUIDATABLE"
    if r.figures_unknown:
        return "UNKNOWN"
    return "not liquidatable"


def render_table(
    risks: Sequence[ScopeRisk], labels: Mapping[tuple[str, str], str] | None = None
) -> str:
    """The readable report; ``labels`` maps ``(venue, account)`` to the configured label,
    shown after the account id: ``hyperliquid 0x1111… (hl main)  [cross]``."""
    lines: list[str] = []
    for r in risks:
        label = (labels or {}).get((r.venue, r.account))
        named = f"{r.account} ({label})" if label else r.account
        head = one_line(f"{r.venue} {named}  [{r.scope}]")
        lines.append(head)
        lines.append("-" * len(head))
        mr = "—" if r.margin_ratio is None else _pct(r.margin_ratio)
        state = scope_state(r)
        lines.append(
            f"  equity {_f(r.equity)}   maintenance {_f(r.maintenance_margin)}   "
            f"margin ratio {mr}   free collateral {_f(r.free_collateral)}   {state}"
        )
        venue_bits = []
        if r.venue_equity is not None:
            venue_bits.append(f"equity {_f(r.venue_equity)}")
        if r.venue_maintenance is not None:
            venue_bits.append(f"maintenance {_f(r.venue_maintenance)}")
        if r.venue_free_collateral is not None:
            venue_bits.append(f"free collateral {_f(r.venue_free_collateral)}")
        if venue_bits:
            lines.append("  venue says: " + "   ".join(venue_bits))
        lines.append(
            f"  shock to liquidation: down {_pct(r.shock_down, 1)}  up {_pct(r.shock_up, 1)}   "
            f"funding {_f(r.funding_cost_per_day)}/day   runway "
            f"{fmt.hours(r.funding_runway_hours)}"
            f"   at risk {_f(r.collateral_at_risk)}"
        )
        cols = (
            "symbol",
            "size",
            "entry",
            "mark",
            "uPnL",
            "maint",
            "liq price",
            "venue liq",
            "distance",
        )
        rows = [cols]
        for p in r.positions:
            rows.append(
                (
                    one_line(p.symbol),
                    fmt.size(p.size),
                    _price(p.entry_price),
                    _price(p.mark_price),
                    _f(p.unrealized_pnl),
                    _f(p.maintenance_margin),
                    _price(p.liquidation_price),
                    _price(p.venue_liquidation_price),
                    _pct(p.liquidation_distance),
                )
            )
        widths = [max(len(row[i]) for row in rows) for i in range(len(cols))]
        for row in rows:
            lines.append("  " + "  ".join(c.rjust(w) for c, w in zip(row, widths, strict=True)))
        if r.drain_symbol and len(r.positions) > 1:
            lines.append(one_line(f"  drains the pool most: {r.drain_symbol}"))
        for w in r.warnings:
            lines.append(one_line(f"  warning: {w}"))
        lines.append("")
    if not risks:
        lines.append("no open positions")
    return "\n".join(lines)
