"""What the engine decides about status and history (pure): the sampling decision and the
figures ``monitor status`` shows per scope. The store (:mod:`monitor.store.history`) writes them.

A scope is sampled when ``interval`` seconds passed since its last sample, or when its margin
ratio moved by ``change`` (absolute, e.g. 0.05 = 5 points) since then, or when it first
appears. Non-finite figures are stored as null (unknown).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from monitor.margin.risk import ScopeRisk
from monitor.model.ids import ScopeKey


def _finite(x: float | None) -> float | None:
    return x if x is not None and math.isfinite(x) else None


@dataclass(frozen=True, slots=True)
class Sample:
    scope: str
    ts: float
    equity: float | None
    maintenance: float | None
    margin_ratio: float | None
    nearest_liq: float | None
    shock_down: float | None
    shock_up: float | None
    funding_day: float | None
    key: ScopeKey | None = field(default=None, compare=False, repr=False)
    """The scope's key when the sample was taken from a :class:`ScopeRisk` (the store reads
    its venue, account and scope name from it instead of parsing ``scope``); None when read
    back from the store."""

    @classmethod
    def of(cls, risk: ScopeRisk, ts: float) -> Sample:
        return cls(
            key=risk.key,
            scope=str(risk.key),
            ts=ts,
            equity=_finite(risk.equity),
            maintenance=_finite(risk.maintenance_margin),
            margin_ratio=_finite(risk.margin_ratio),
            nearest_liq=_finite(risk.nearest_liquidation_distance),
            shock_down=_finite(risk.shock_down),
            shock_up=_finite(risk.shock_up),
            funding_day=_finite(risk.funding_cost_per_day),
        )


class Sampler:
    """Decides which scopes to sample (pure; see the module docstring)."""

    def __init__(self, interval: float, change: float) -> None:
        self.interval = interval
        self.change = change
        self._last: dict[str, tuple[float, float | None]] = {}

    def due(self, risk: ScopeRisk, now: float) -> bool:
        scope = str(risk.key)
        last = self._last.get(scope)
        ratio = _finite(risk.margin_ratio)
        if last is None or now - last[0] >= self.interval:
            return True
        prev = last[1]
        if (prev is None) != (ratio is None):
            return True
        return prev is not None and ratio is not None and abs(ratio - prev) >= self.change

    def taken(self, sample: Sample) -> None:
        self._last[sample.scope] = (sample.ts, sample.margin_ratio)

    def forget(self, scope: str) -> None:
        self._last.pop(scope, None)


def status_doc(risk: ScopeRisk, active_alerts: Sequence[str] = ()) -> dict[str, Any]:
    """The figures ``monitor status`` shows for one scope: a figure that is not finite is
    ``None`` (JSON null), and ``liquidatable`` is ``None`` too when the figures could not be
    computed (:attr:`ScopeRisk.figures_unknown`: unknown, never a reassuring false)."""
    return {
        "venue": risk.venue,
        "account": risk.account,
        "scope": risk.scope,
        "equity": _finite(risk.equity),
        "maintenance_margin": _finite(risk.maintenance_margin),
        "margin_ratio": _finite(risk.margin_ratio),
        "nearest_liquidation_distance": _finite(risk.nearest_liquidation_distance),
        "shock_to_liquidation": _finite(risk.shock_to_liquidation),
        "funding_cost_per_day": _finite(risk.funding_cost_per_day),
        "collateral_at_risk": _finite(risk.collateral_at_risk),
        "positions": len(risk.positions),
        "liquidatable": None if risk.figures_unknown else risk.liquidatable,
        "active_alerts": list(active_alerts),
    }
