"""Binance USDⓈ-M futures, one-way mode, margin-math.md §3.

* Maintenance: ``N·MMR_b − cum_b`` with bracket ``b`` chosen by mark-priced notional.
* Margin ratio = Σ MM / margin balance (wallet + uPnL); liquidation at ≥ 100 %.
* Liquidation price (FAQ)::

      LP = (WB − TMM₁ + UPNL₁ + cum_B − side·q·EP) / (q·MMR_B − side·q)

  i.e. (★) written around the entry price; WB is the cross wallet balance (cross) or the
  isolated wallet balance (isolated, with TMM₁ = UPNL₁ = 0). If LP falls in another bracket it is
  recomputed with that bracket's MMR and cum (done by the segment walk).
* Funding every 8 h on the mark price. The liquidation clearance fee is not documented as a
  figure, so no penalty is added to the liquidation loss.
"""

from __future__ import annotations

from monitor.margin.base import RuleSet


class BinanceUsdmRules(RuleSet):
    name = "binance_usdm"
