"""Instruments and their maintenance-margin schedules (pure).

Units: prices and notionals in the quote currency (USD/USDC/USDT); rates are fractions
(0.01 = 1 %); sizes in base coins.

A maintenance schedule is a list of brackets chosen by the position's notional ``N = |s|·P``
at the price being evaluated. In bracket ``b`` the requirement is ``MM = N·rate_b − deduction_b``.
The three forms the venues publish all reduce to it:

* a single rate with an optional deduction (dYdX MMF, a Binance bracket given by hand);
* notional tiers with deductions (Binance ``cum``, Bybit risk limits, Hyperliquid margin tables);
* Hyperliquid ``maxLeverage``: ``rate = 1 / (2 · maxLeverage)`` (margin-math.md §1.2).

When tiers are given without deductions they are made continuous, as every venue does:
``d_0 = 0``, ``d_n = d_{n-1} + floor_n · (rate_n − rate_{n-1})``.
"""

from __future__ import annotations

import bisect
import itertools
import math
from dataclasses import dataclass, field
from enum import StrEnum


class MarginMode(StrEnum):
    CROSS = "cross"
    ISOLATED = "isolated"


@dataclass(frozen=True, slots=True)
class Tier:
    """One maintenance bracket: applies from ``floor`` (notional, inclusive) upward."""

    floor: float
    rate: float
    deduction: float = 0.0


@dataclass(frozen=True, slots=True)
class MaintenanceSchedule:
    """Maintenance brackets sorted by floor; the first floor is 0.

    ``kind`` records the form it was given in (``rate``, ``tiers`` or ``max_leverage``) so
    reports can show it back; the arithmetic only uses ``tiers``.
    """

    tiers: tuple[Tier, ...]
    kind: str = "tiers"
    _floors: tuple[float, ...] = field(default=(), compare=False, repr=False)

    def __post_init__(self) -> None:
        if not self.tiers:
            raise ValueError("a maintenance schedule needs at least one tier")
        floors = tuple(t.floor for t in self.tiers)
        if any(b <= a for a, b in itertools.pairwise(floors)):
            raise ValueError("tier floors must be strictly increasing")
        for t in self.tiers:
            if not (math.isfinite(t.rate) and 0.0 <= t.rate < 1.0):
                raise ValueError(f"maintenance rate {t.rate!r} must be in [0, 1)")
            if not (math.isfinite(t.deduction) and math.isfinite(t.floor)):
                raise ValueError("tier floor and deduction must be finite")
        object.__setattr__(self, "_floors", floors)

    # -- constructors -------------------------------------------------------------------
    @classmethod
    def flat(cls, rate: float, deduction: float = 0.0) -> MaintenanceSchedule:
        return cls((Tier(0.0, rate, deduction),), kind="rate")

    @classmethod
    def from_max_leverage(cls, max_leverage: float) -> MaintenanceSchedule:
        if not (math.isfinite(max_leverage) and max_leverage > 0):
            raise ValueError(f"max leverage {max_leverage!r} must be positive")
        return cls((Tier(0.0, 1.0 / (2.0 * max_leverage), 0.0),), kind="max_leverage")

    @classmethod
    def continuous(
        cls, brackets: list[tuple[float, float]], kind: str = "tiers"
    ) -> MaintenanceSchedule:
        """Brackets given as ``(floor, rate)``; deductions derived so MM is continuous."""
        brackets = sorted(brackets)
        tiers: list[Tier] = []
        d = 0.0
        prev_rate = 0.0
        for i, (given_floor, rate) in enumerate(brackets):
            floor = 0.0 if i == 0 else given_floor
            if i:
                d = d + floor * (rate - prev_rate)
            tiers.append(Tier(floor, rate, d))
            prev_rate = rate
        return cls(tuple(tiers), kind=kind)

    @classmethod
    def from_hyperliquid_table(cls, tiers: list[tuple[float, float]]) -> MaintenanceSchedule:
        """Hyperliquid ``marginTiers`` as ``(lowerBound, maxLeverage)`` pairs."""
        return cls.continuous([(lb, 1.0 / (2.0 * lev)) for lb, lev in tiers], kind="max_leverage")

    # -- queries ------------------------------------------------------------------------
    def index_for(self, notional: float) -> int:
        """Index of the bracket whose floor ≤ notional (the first bracket below 0)."""
        i = bisect.bisect_right(self._floors, notional) - 1
        return max(i, 0)

    def bracket(self, notional: float) -> Tier:
        return self.tiers[self.index_for(notional)]

    def requirement(self, notional: float) -> float:
        """Maintenance margin ``N·rate − deduction`` of the bracket of ``notional``."""
        t = self.tiers[self.index_for(notional)]
        return notional * t.rate - t.deduction

    def bounds(self, index: int) -> tuple[float, float]:
        """Notional range ``[lo, hi)`` of bracket ``index``."""
        lo = 0.0 if index == 0 else self.tiers[index].floor
        hi = self.tiers[index + 1].floor if index + 1 < len(self.tiers) else math.inf
        return lo, hi

    @property
    def is_single(self) -> bool:
        return len(self.tiers) == 1

    def as_json(self) -> dict[str, object]:
        if self.kind == "rate" and self.is_single:
            t = self.tiers[0]
            return {"rate": t.rate, "deduction": t.deduction}
        if self.kind == "max_leverage" and self.is_single:
            return {"max_leverage": 1.0 / (2.0 * self.tiers[0].rate)} if self.tiers[0].rate else {}
        return {
            "tiers": [
                {"floor": t.floor, "rate": t.rate, "deduction": t.deduction} for t in self.tiers
            ]
        }


@dataclass(frozen=True, slots=True)
class Instrument:
    """A linear perpetual on one venue.

    ``funding_interval_hours``: the period one quoted ``funding_rate`` covers (Hyperliquid and
    dYdX quote hourly rates: 1; Binance/Bybit/OKX usually 8).
    ``initial_margin_rate``: IMF where the venue publishes one (dYdX); otherwise initial
    margin comes from the position's leverage.
    ``fee_rate``: taker fee counted in maintenance by venues that do so (OKX, Bybit UTA).
    """

    venue: str
    symbol: str
    maintenance: MaintenanceSchedule
    funding_interval_hours: float = 8.0
    initial_margin_rate: float | None = None
    fee_rate: float | None = None
    only_isolated: bool = False
