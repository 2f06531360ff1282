"""dYdX v4, margin-math.md §2.

* Everything (valuation, margin, funding) uses the **oracle** price; there is no mark.
* ``equity (TNC) = Q + Σ s·oracle`` where Q is the signed USDC position (plus unsettled funding);
  ``IMR = Σ |s|·oracle·IMF``, ``MMR = Σ |s|·oracle·MMF``; ``free collateral = equity − IMR``.
* Liquidatable iff ``TNC < MMR``; liquidation price ``p* = (e − s·p − MMR_other)/(|s|·MMF − s)``,
  which is (★). An isolated position lives alone in a child subaccount, so it is one position
  in its own pool.
* Funding is hourly (``nextFundingRate`` is treated as a 1-hour rate).
* Liquidation loss: up to 1.5 % of the closed notional goes to the insurance fund.
"""

from __future__ import annotations

from monitor.margin.base import RuleSet


class DydxV4Rules(RuleSet):
    name = "dydx_v4"
    default_funding_interval_hours = 1.0
    liquidation_penalty_rate = 0.015

    def risk_price(self, mark: float | None, oracle: float | None) -> float | None:
        return oracle if oracle is not None else mark

    def funding_price(self, mark: float | None, oracle: float | None) -> float | None:
        return oracle if oracle is not None else mark
