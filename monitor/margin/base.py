"""The shared shape of every venue's margin rules (pure).

Every rule set answers, for one position ("leg") at a price ``p`` of its instrument, what its
maintenance requirement is. Within one bracket that requirement is linear in the price::

    mm(p) = a + b·p      for lo ≤ p < hi                 (a "segment")

(mark-priced brackets: ``a = −deduction``, ``b = |s|·(rate + close-fee rate)``; Bybit's isolated
rule values maintenance at the entry price, so there ``b = 0``). Equity is linear in every price.
So the liquidation price (★ of margin-math.md) and the uniform-shock root are found exactly by
walking segments, which also handles the "re-check the tier at the liquidation price" rule.

Sign conventions: ``size`` > 0 long, < 0 short; funding ``rate`` > 0 means longs pay; every
cost figure is positive when the trader pays.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from monitor.model.instruments import MaintenanceSchedule

#: a short liquidation price above this is "not liquidatable by this instrument" (HL uses 1e15)
MAX_PRICE = 1e15


@dataclass(frozen=True, slots=True)
class Leg:
    """What the margin rules need to know about one position."""

    symbol: str
    size: float
    entry_price: float
    schedule: MaintenanceSchedule | None
    isolated: bool = False
    fee_rate: float = 0.0
    leverage: float | None = None
    initial_margin_rate: float | None = None

    @property
    def qty(self) -> float:
        return abs(self.size)

    @property
    def side(self) -> int:
        return 1 if self.size > 0 else -1


@dataclass(frozen=True, slots=True)
class Segment:
    """``mm(p) = a + b·p`` for ``lo ≤ p < hi``."""

    a: float
    b: float
    lo: float
    hi: float

    def at(self, price: float) -> float:
        return self.a + self.b * price


_ZERO_SEGMENT = Segment(0.0, 0.0, 0.0, math.inf)


class RuleSet:
    """Textbook mark-priced rules; each venue module overrides what differs.

    Subclasses are stateless; one instance per venue lives in ``monitor.margin.registry``.
    """

    name: str = "generic"
    #: hours one quoted funding rate covers, when the feed does not say
    default_funding_interval_hours: float = 8.0
    #: count a close fee (``fee_rate`` × notional) in maintenance (OKX, Bybit UTA)
    counts_close_fee: bool = False
    #: fraction of notional lost to the venue on liquidation, beyond the price move
    liquidation_penalty_rate: float = 0.0
    #: on this venue a liquidation can forfeit the remaining maintenance margin (HL backstop)
    forfeits_maintenance: bool = False

    # -- prices --------------------------------------------------------------------------
    def risk_price(self, mark: float | None, oracle: float | None) -> float | None:
        """The price positions are valued and margined at (CEX and HL: mark)."""
        return mark if mark is not None else oracle

    def funding_price(self, mark: float | None, oracle: float | None) -> float | None:
        """The price funding payments are computed on (CEX: mark; HL: oracle)."""
        return mark if mark is not None else oracle

    # -- maintenance ---------------------------------------------------------------------
    def _fee(self, leg: Leg) -> float:
        return leg.fee_rate if self.counts_close_fee else 0.0

    def segment(self, leg: Leg, price: float) -> Segment:
        sched = leg.schedule
        q = leg.qty
        if sched is None or q == 0.0:
            return _ZERO_SEGMENT
        i = sched.index_for(q * price)
        return self._segment_of(leg, i)

    def _segment_of(self, leg: Leg, index: int) -> Segment:
        sched = leg.schedule
        assert sched is not None
        q = leg.qty
        t = sched.tiers[index]
        lo_n, hi_n = sched.bounds(index)
        return Segment(-t.deduction, q * (t.rate + self._fee(leg)), lo_n / q, hi_n / q)

    def segments(self, leg: Leg) -> list[Segment]:
        """Every bracket of this leg as price segments, in increasing price order."""
        sched = leg.schedule
        if sched is None or leg.qty == 0.0:
            return [_ZERO_SEGMENT]
        return [self._segment_of(leg, i) for i in range(len(sched.tiers))]

    def breakpoints(self, leg: Leg) -> list[float]:
        """The prices (finite, > 0) where this leg's maintenance changes bracket: every finite
        positive ``lo``/``hi`` of :meth:`segments` (a subclass that overrides ``segments``
        overrides this too). Without building the segments: a bracket floor ``N`` (quote)
        is the price ``N / |size|``."""
        sched = leg.schedule
        q = abs(leg.size)
        if sched is None or q == 0.0:
            return []
        out = []
        for t in sched.tiers[1:]:
            b = t.floor / q
            if b > 0.0 and math.isfinite(b):
                out.append(b)
        return out

    def maintenance(self, leg: Leg, price: float) -> float:
        """``segment(leg, price).at(price)``, computed without building the segment (the same
        arithmetic, so the same float). Subclasses that override ``segment`` override this
        too."""
        sched = leg.schedule
        if sched is None:
            return 0.0
        q = abs(leg.size)
        if q == 0.0:
            return 0.0
        t = sched.tiers[sched.index_for(q * price)]
        fee = leg.fee_rate if self.counts_close_fee else 0.0
        return -t.deduction + q * (t.rate + fee) * price

    def maintenance_rate(self, leg: Leg, price: float) -> float:
        sched = leg.schedule
        if sched is None:
            return 0.0
        rate = sched.bracket(leg.qty * price).rate
        fee = self._fee(leg)
        # the tier's own float when there is no fee (x + 0.0 is x for x != 0): one float per
        # tier instead of one per position in the figures the engine keeps
        return rate if fee == 0.0 and rate != 0.0 else rate + fee

    def initial_margin(self, leg: Leg, price: float) -> float | None:
        """Initial margin at ``price``: IMF where known, else notional / leverage."""
        if leg.initial_margin_rate is not None:
            return leg.qty * price * leg.initial_margin_rate
        if leg.leverage:
            return leg.qty * price / leg.leverage
        return None

    def liquidation_penalty(self, notional: float, remaining: float) -> float:
        """What the venue keeps on a liquidation at a price where the scope's equity is
        ``remaining`` (= its maintenance requirement there) and the position's notional is
        ``notional``. Never more than ``remaining``."""
        if self.forfeits_maintenance:
            return max(remaining, 0.0)
        return min(max(remaining, 0.0), notional * self.liquidation_penalty_rate)

    # -- liquidation price -----------------------------------------------------------------
    def liquidation_price(
        self, leg: Leg, price: float, equity: float, maintenance_total: float
    ) -> float | None:
        """Price of this leg's instrument at which the scope's equity meets its maintenance,
        every other price unchanged (formula ★). ``equity`` and ``maintenance_total`` are the
        scope's at the current ``price``. None when no positive price exists."""
        s = leg.size
        if s == 0.0:
            return None
        seg = self.segment(leg, price)
        # f(p') = k + s·p' − mm_leg(p'),  k = equity − s·p − (MM_total − mm_leg(p))
        k = equity - s * price - maintenance_total + seg.at(price)
        return self._solve(leg, k, seg)

    def _solve(self, leg: Leg, k: float, seg: Segment) -> float | None:
        s = leg.size
        segs: list[Segment] | None = None
        idx = -1
        seen: set[int] = set()
        for _ in range(256):
            denom = s - seg.b
            if denom == 0.0:
                return None
            r = (seg.a - k) / denom
            if seg.lo <= r < seg.hi or (r < seg.lo and seg.lo == 0.0):
                break
            if segs is None:
                segs = self.segments(leg)
                idx = next((i for i, x in enumerate(segs) if x == seg), 0)
            seen.add(idx)
            nxt = idx - 1 if r < seg.lo else idx + 1
            if nxt < 0 or nxt >= len(segs) or nxt in seen:
                # a gap between non-continuous brackets: the boundary is where it flips
                r = seg.lo if r < seg.lo else seg.hi
                break
            idx = nxt
            seg = segs[idx]
        if not math.isfinite(r) or r <= 0.0 or r > MAX_PRICE:
            return None
        return r


def scope_value(
    rules: RuleSet, legs: list[Leg], prices: list[float], collateral: float, move: float
) -> tuple[float, float]:
    """(equity, maintenance) of a scope when every price moves by the fraction ``move``.

    ``collateral`` excludes uPnL: equity = collateral + Σ s·(p·(1+move) − entry).
    """
    eq = collateral
    mm = 0.0
    f = 1.0 + move
    for leg, p in zip(legs, prices, strict=True):
        pp = p * f
        eq += leg.size * (pp - leg.entry_price)
        mm += rules.maintenance(leg, pp)
    return eq, mm


def shock_to_liquidation(
    rules: RuleSet, legs: list[Leg], prices: list[float], collateral: float, direction: int
) -> float | None:
    """Smallest uniform move (a positive fraction) down (``direction=-1``) or up (+1) of every
    price at once at which the scope's equity falls to its maintenance requirement.

    0.0 when the scope is already liquidatable; None when no such move exists (down to a
    price of zero, or up to ×1000).
    """

    def gap(x: float) -> float:
        eq, mm = scope_value(rules, legs, prices, collateral, x)
        return eq - mm

    g0 = gap(0.0)
    if g0 <= 0.0:
        return 0.0
    # breakpoints: where any leg changes bracket
    bps: set[float] = set()
    for leg, p in zip(legs, prices, strict=True):
        if p <= 0.0:
            continue
        for bound in rules.breakpoints(leg):
            x = bound / p - 1.0
            if (direction < 0 and -1.0 < x < 0.0) or (direction > 0 and x > 0.0):
                bps.add(x)
    limit = -1.0 if direction < 0 else 1000.0
    points = sorted(bps, reverse=direction < 0)
    points.append(limit)
    x0, g_prev = 0.0, g0
    for x1 in points:
        g1 = gap(x1)
        if g1 <= 0.0:
            # f is linear inside (x0, x1): interpolate (exact up to the bracket flip at x1)
            root = x0 + (x1 - x0) * g_prev / (g_prev - g1) if g_prev != g1 else x1
            return abs(root)
        x0, g_prev = x1, g1
    return None
