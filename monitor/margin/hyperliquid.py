"""Hyperliquid (HyperCore perps), margin-math.md §1.

* Risk price: the **mark** price; funding is paid on the **oracle** price, hourly
  (``funding`` in ``activeAssetCtx`` is the hourly rate).
* Maintenance rate of a tier: ``1 / (2 · maxLeverage_tier)`` with continuous deductions
  (margin tables); the user's leverage setting does not change maintenance, nor the cross
  liquidation price.
* Cross liquidation price: (★) with the cross account value and the total cross maintenance.
  Isolated: the same with the isolated margin (``rawUsd + s·mark``), which reduces to
  ``P* = rawUsd / (|s|·(l − side))``.
* Initial margin: ``|s|·mark / leverage``.
* Liquidation loss: a backstop liquidation forfeits the remaining maintenance margin
  (§1.4), so the worst case loses the whole maintenance requirement at the liquidation price.
"""

from __future__ import annotations

from monitor.margin.base import RuleSet


class HyperliquidRules(RuleSet):
    name = "hyperliquid"
    default_funding_interval_hours = 1.0
    forfeits_maintenance = True

    def funding_price(self, mark: float | None, oracle: float | None) -> float | None:
        return oracle if oracle is not None else mark
