"""Positions (pure values); the scope and account identities live in :mod:`monitor.model.ids`.

Sign conventions: ``size`` is signed base quantity, long > 0, short < 0. ``isolated_margin``
is the margin allocated to an isolated position **excluding** its unrealized PnL, so the
isolated scope's equity is ``isolated_margin + size·(price − entry_price)``.
"""

from __future__ import annotations

from dataclasses import dataclass

from monitor.model.ids import CROSS, ISOLATED_PREFIX, AccountKey, ScopeKey
from monitor.model.instruments import MaintenanceSchedule, MarginMode

__all__ = ["CROSS_SCOPE", "AccountKey", "Position", "ScopeKey", "isolated_scope"]

CROSS_SCOPE = CROSS


def isolated_scope(symbol: str) -> str:
    return f"{ISOLATED_PREFIX}{symbol}"


@dataclass(frozen=True, slots=True)
class Position:
    """A position as a snapshot or update describes it.

    ``maintenance``/``fee_rate``/``initial_margin_rate`` override the instrument's when given.
    ``mark_price``/``oracle_price``/``funding_rate`` carried by a snapshot seed the market
    state when no fresher price is known. ``venue_*`` are the venue's own figures, kept to be
    shown beside ours.
    """

    symbol: str
    size: float
    entry_price: float
    margin_mode: MarginMode = MarginMode.CROSS
    isolated_margin: float | None = None
    leverage: float | None = None
    maintenance: MaintenanceSchedule | None = None
    fee_rate: float | None = None
    initial_margin_rate: float | None = None
    mark_price: float | None = None
    oracle_price: float | None = None
    funding_rate: float | None = None
    funding_interval_hours: float | None = None
    venue_liquidation_price: float | None = None
    venue_margin_used: float | None = None
    #: ``maintenance`` is a stand-in (Hyperliquid's per-position ``maxLeverage`` without the
    #: tier deductions): the instrument's own schedule wins once it is known
    maintenance_fallback: bool = False

    @property
    def scope(self) -> str:
        return CROSS_SCOPE if self.margin_mode is MarginMode.CROSS else isolated_scope(self.symbol)
