"""Bybit USDT linear perpetuals, margin-math.md §4.

* Isolated (Bybit Help Center "Liquidation Price (USDT Contract)" and "Liquidation Price
  Calculation under Isolated Mode (Unified Trading Account)"): Bybit values maintenance at the
  **entry** price::

      LP_long  = E − (IM − MM)/q − extra/q        LP_short = E + (IM − MM)/q + extra/q
      IM = q·E/leverage + F,   MM = q·E·MMR − deduction + F

  where F is the estimated fee to close, valued at the **bankruptcy** price
  ``BP = E·(1 − side/leverage)``: ``F = q·BP·taker fee``. The position margin includes F and
  the maintenance margin counts the same F, so it cancels and the liquidation price is the
  fee-less one. With ``isolated_margin`` = the venue's position margin (IM incl. F) + extra,
  this is: at LP, isolated_margin + s·(LP − E) = MM. So an isolated position's maintenance does
  not move with the price (segment ``b = 0``). Without a known leverage the bankruptcy price is
  unknown and F is valued at the entry price (the old estimate, off by about fee·E/leverage).
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

    @staticmethod
    def bankruptcy_price(leg: Leg) -> float | None:
        """``E·(1 − side/leverage)`` (quote per base, ≥ 0); None without a leverage."""
        if not leg.leverage:
            return None
        return max(leg.entry_price * (1.0 - leg.side / leg.leverage), 0.0)

    def close_fee(self, leg: Leg) -> float:
        """The estimated fee to close an isolated position, quote: ``q·BP·fee`` (entry-valued
        when the bankruptcy price is unknown)."""
        fee = self._fee(leg)
        if fee == 0.0:
            return 0.0
        bp = self.bankruptcy_price(leg)
        return leg.qty * (leg.entry_price if bp is None else bp) * fee

    def _entry_segment(self, leg: Leg) -> Segment:
        sched = leg.schedule
        if sched is None or leg.qty == 0.0:
            return Segment(0.0, 0.0, 0.0, math.inf)
        n = leg.qty * leg.entry_price
        t = sched.bracket(n)
        return Segment(n * t.rate - t.deduction + self.close_fee(leg), 0.0, 0.0, math.inf)

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

    def breakpoints(self, leg: Leg) -> list[float]:
        if leg.isolated:
            return []  # valued at the entry price: one segment, whatever the price
        return RuleSet.breakpoints(self, leg)

    def maintenance_rate(self, leg: Leg, price: float) -> float:
        if leg.isolated and leg.schedule is not None:
            n = leg.qty * leg.entry_price
            fee = self.close_fee(leg) / n if n else 0.0
            return leg.schedule.bracket(n).rate + fee
        return RuleSet.maintenance_rate(self, leg, price)

    def initial_margin(self, leg: Leg, price: float) -> float | None:
        if leg.isolated and leg.leverage:
            return leg.qty * leg.entry_price / leg.leverage
        return RuleSet.initial_margin(self, leg, price)

    def liquidation_penalty(self, notional: float, remaining: float) -> float:
        return 0.0
