"""OKX USDT-margined swaps, margin-math.md §5.

* Isolated margin ratio = (margin balance + UPL) / (q·mark·(MMR_tier + taker fee));
  liquidation when ≤ 100 %. Hence::

      LP_long = (E − M/q) / (1 − (MMR + fee))      LP_short = (E + M/q) / (1 + MMR + fee)

  which is (★) with the rate raised by the taker fee: the fee to close is part of maintenance.
* Cross: (equity − holds) / (MM + liquidation fees), the same fee-in-maintenance shape.
* Funding every 8 h on the mark price. The fee to close is what the liquidation costs beyond
  the price move.
"""

from __future__ import annotations

from monitor.margin.base import RuleSet


class OkxRules(RuleSet):
    name = "okx"
    counts_close_fee = True
