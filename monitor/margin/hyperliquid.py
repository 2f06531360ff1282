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
* Pools by account mode (Hyperliquid docs, "Account abstraction modes", "Margining"):
  standard accounts have one cross pool per perp dex; unified and portfolio-margin accounts
  one cross pool per collateral token across every dex posting it, whose equity is the spot
  balance of that token minus its isolated margin, liquidatable at
  ``Σ cross maintenance / (spot total − isolated margin) ≥ 1`` (the Unified Account Ratio).
  The same rules apply to either; the pools are built by
  :func:`monitor.venues.hyperliquid.accounts.pooled_snapshots`. Portfolio margin's own
  requirement (LTV-weighted HYPE/BTC collateral, borrows, caps) is not reproduced: its
  ``portfolioMarginRatio`` is carried as the venue's figure (liquidatable above 0.95).
"""

from __future__ import annotations

from monitor.margin.base import RuleSet


class HyperliquidRules(RuleSet):
    name = "hyperliquid"
    default_funding_interval_hours = 1.0
    forfeits_maintenance = True

    def funding_price(self, mark: float | None, oracle: float | None) -> float | None:
        return oracle if oracle is not None else mark
