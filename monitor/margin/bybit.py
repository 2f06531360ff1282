"""Bybit USDT linear perpetuals, margin-math.md §4.

* Isolated: Bybit values maintenance at the **entry** price::

      LP_long  = E − (IM − MM)/q − extra/q        LP_short = E + (IM − MM)/q + extra/q
      IM = q·E/leverage,   MM = q·E·MMR − deduction (+ q·E·fee with UTA's fee to close)

  With ``isolated_margin = IM + extra`` this is: at LP, isolated_margin + s·(LP − E) = MM.
  So an isolated position's maintenance does not move with the price (segment ``b = 0``).
* Cross (UTA): account-level maintenance on the mark price; per position (★).
* Fee to close: when a ``fee_rate`` is known it is counted in maintenance (UTA).
* Initial margin for isolated positions is entry-valued: ``q·E / leverage``.
"""

from __future__ import annotations

import math

from monitor.margin.base import Leg, RuleSet, Segment


class BybitRules(RuleSet):
    name = "bybit"
    counts_close_fee = True

    def _entry_segment(self, leg: Leg) -> Segment:
        sched = leg.schedule
        if sched is None or leg.qty == 0.0:
            return Segment(0.0, 0.0, 0.0, math.inf)
        n = leg.qty * leg.entry_price
        t = sched.bracket(n)
        return Segment(n * (t.rate + self._fee(leg)) - t.deduction, 0.0, 0.0, math.inf)

    def segment(self, leg: Leg, price: float) -> Segment:
        if leg.isolated:
            return self._entry_segment(leg)
        return RuleSet.segment(self, leg, price)

    def maintenance(self, leg: Leg, price: float) -> float:
        if leg.isolated:
            return self._entry_segment(leg).at(price)
        return RuleSet.maintenance(self, leg, price)

    def segments(self, leg: Leg) -> list[Segment]:
        if leg.isolated:
            return [self._entry_segment(leg)]
        return RuleSet.segments(self, leg)

    def maintenance_rate(self, leg: Leg, price: float) -> float:
        if leg.isolated and leg.schedule is not None:
            return leg.schedule.bracket(leg.qty * leg.entry_price).rate + self._fee(leg)
        return RuleSet.maintenance_rate(self, leg, price)

    def initial_margin(self, leg: Leg, price: float) -> float | None:
        if leg.isolated and leg.leverage:
            return leg.qty * leg.entry_price / leg.leverage
        return RuleSet.initial_margin(self, leg, price)

    def liquidation_penalty(self, notional: float, remaining: float) -> float:
        return 0.0
