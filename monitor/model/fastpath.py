"""The per-tick fast path: quick figures and trigger bands (pure).

A full :class:`~monitor.margin.risk.ScopeRisk` (liquidation prices, stress, shocks) costs
O(positions × brackets) per scope; recomputing it for every scope holding BTC on every BTC tick
does not scale to books of 10⁵–10⁶ positions. The fast path splits the work:

* :class:`QuickRisk`: equity, maintenance, margin ratio and nearest liquidation distance of one
  scope, O(positions in the scope) from the engine's aggregates.
* **Trigger bands.** Given the alert thresholds that matter for a scope (:class:`Thresholds`:
  margin-ratio, equity and liquidation-distance values), :func:`band_width` returns the
  largest relative move ``w`` such that, as long as **every** instrument price of the scope stays
  within ``[p·(1−w), p·(1+w)]`` of its price when the band was computed (all of them moving at
  once, in any direction), no quick figure can cross any of those thresholds. The engine keeps
  these bands per instrument (:meth:`monitor.model.portfolio.Portfolio.arm`), so a tick inside
  every band costs a comparison, and only the scopes whose band a tick leaves are handed back.

The bound is exact arithmetic on the shape of the margin rules (:mod:`monitor.margin.base`):
equity is linear in every price (|Δequity| ≤ w·Σ|s|·p) and maintenance is piecewise linear in
the price, with slope at most ``L = max segment slope`` and jumps summing to ``J`` between
brackets (0 for the continuous schedules every venue publishes), so
|Δmaintenance| ≤ w·Σ L·p + Σ J. Each threshold is a sign test on a linear form of equity and
maintenance (``r·equity − maintenance`` for a margin ratio ``r``; for a liquidation distance
``d`` of a position, the headroom left after moving that position's price adversely by ``d``),
so the band keeps every sign. A scope where the bound cannot be kept (already liquidatable,
a discontinuous schedule with a distance threshold, a slope ≥ 1) gets ``w = 0``: any price change
reports it. Funding, shock and stress figures are not covered: evaluate them on a slower cadence.

Units: prices in quote currency, ``w`` and distances are fractions, equity in quote currency.
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import NamedTuple

from monitor.margin.base import Leg, RuleSet
from monitor.model.positions import ScopeKey

#: widest band handed out (a fraction of the price): beyond, re-check anyway
MAX_BAND = 0.5
#: the bound is shrunk by this relative margin so float rounding cannot cross a threshold
SAFETY = 1e-6
#: bracket jumps below this fraction of the scope's notional are rounding (continuous tiers)
JUMP_TOLERANCE = 1e-9
#: how far (a fraction) equity may rise above its recorded peak before the scope is re-evaluated
PEAK_SLACK = 0.02


@dataclass(frozen=True, slots=True)
class QuickRisk:
    """The per-tick figures of one scope, from the engine's aggregates.

    ``equity`` and ``maintenance_margin`` in quote currency; ``margin_ratio`` =
    maintenance / equity (None when equity ≤ 0); ``nearest_liquidation_distance`` the smallest
    |price − liquidation price| / price over the scope's positions (None when none has one);
    ``liquidatable`` as in :class:`~monitor.margin.risk.ScopeRisk`. The same numbers a full
    ``Portfolio.risk(key)`` reports at the same prices.
    """

    key: ScopeKey
    equity: float
    maintenance_margin: float
    margin_ratio: float | None
    nearest_liquidation_distance: float | None
    liquidatable: bool
    positions: int


@dataclass(frozen=True, slots=True)
class Thresholds:
    """The values of the quick figures at which an alert decision can change, for one scope.

    ``margin_ratio``: ratios (> 0; others make the band 0); ``equity``: equity levels (quote
    currency; equity, drawdown levels as ``peak·(1 − x)``, the peak itself); ``distance``:
    liquidation distances in (0, 1) of any position. The margin ratio 1 and equity 0 (the
    liquidation boundary) are always watched.
    """

    margin_ratio: tuple[float, ...] = ()
    equity: tuple[float, ...] = ()
    distance: tuple[float, ...] = ()


class LegBound(NamedTuple):
    """One position as :func:`band_width` needs it: its leg, risk price, and the slope bound
    ``slope`` (max d maintenance / d price, quote per quote) and total bracket jump ``jump``
    (quote) of its maintenance (:func:`maintenance_slope`)."""

    leg: Leg
    price: float
    slope: float
    jump: float


def unit_leg(leg: Leg) -> Leg:
    """``leg`` with size 1: its maintenance slope is the slope per unit of size of ``leg``
    (slopes scale with |size|; the jumps between brackets do not)."""
    return Leg(leg.symbol, 1.0, leg.entry_price, leg.schedule, leg.isolated, leg.fee_rate)


def maintenance_slope(rules: RuleSet, leg: Leg) -> tuple[float, float]:
    """(max slope of maintenance in the price, sum of the jumps between brackets)."""
    segs = rules.segments(leg)
    slope = max((s.b for s in segs), default=0.0)
    jump = 0.0
    for a, b in itertools.pairwise(segs):
        if math.isfinite(a.hi):
            jump += abs(a.at(a.hi) - b.at(a.hi))
    return max(slope, 0.0), jump


def band_width(
    rules: RuleSet,
    legs: Sequence[LegBound],
    equity: float,
    maintenance: float,
    thresholds: Thresholds,
) -> float:
    """Largest relative move ``w`` (0 ≤ w ≤ MAX_BAND) of every price at once that cannot make
    a quick figure cross a threshold (see the module docstring for the bound)."""
    return assess(rules, legs, equity, maintenance, thresholds)[0]


def zone(
    rules: RuleSet,
    legs: Sequence[LegBound],
    equity: float,
    maintenance: float,
    thresholds: Thresholds,
) -> int:
    """Which side of every threshold the quick figures are on, as a bit set: two calls with
    the same result mean no threshold was crossed in between (the alert decision stands).

    Bits, in order: equity ≥ each equity threshold (0 first), maintenance ≥ r·equity for each
    margin ratio (1 first), and per position and distance ``d``: the headroom left after
    moving that position's price by ``d`` towards its liquidation price is > 0 (while the
    scope is healthy: the liquidation distance is > d; while liquidatable: it is ≤ d).
    """
    return assess(rules, legs, equity, maintenance, thresholds, band=False)[1]


def headline_zone(equity: float, maintenance: float, thresholds: Thresholds) -> tuple[int, int]:
    """The low bits of :func:`zone` that need no position: equity against each equity
    threshold (0 first), then maintenance against ``r·equity`` for each margin ratio (1 first);
    returns ``(bits, mask)``. O(thresholds), from the scope's aggregates alone; :func:`assess`
    starts its zone with them. Two scopes' states with the same thresholds whose headline
    bits differ have different zones (the rest of :func:`zone` is the liquidation-distance
    bits, above ``mask``)."""
    bits = 0
    n = 0
    for e in (0.0, *thresholds.equity):
        bits |= (equity >= e) << n
        n += 1
    for r in (1.0, *thresholds.margin_ratio):
        bits |= (maintenance >= r * equity) << n
        n += 1
    return bits, (1 << n) - 1


def assess(
    rules: RuleSet,
    legs: Sequence[LegBound],
    equity: float,
    maintenance: float,
    thresholds: Thresholds,
    *,
    band: bool = True,
) -> tuple[float, int]:
    """``(band_width(...), zone(...))`` in one pass (the band is 0.0 when ``band`` is False)."""
    a = 0.0  # Σ |s|·p: equity moves by at most w·a
    b = 0.0  # Σ L·p: maintenance moves by at most w·b + j
    j = 0.0
    w = MAX_BAND if band else 0.0
    for lb in legs:
        if not (lb.price > 0.0 and math.isfinite(lb.price)):
            w = 0.0
        a += lb.leg.qty * lb.price
        b += lb.slope * lb.price
        j += lb.jump
    bits, mask = headline_zone(equity, maintenance, thresholds)
    n = mask.bit_length()
    for e in (0.0, *thresholds.equity):
        if w > 0.0:
            w = min(w, _room(abs(equity - e), 0.0, a))
    for r in (1.0, *thresholds.margin_ratio):
        if w > 0.0:
            w = min(w, _room(abs(r * equity - maintenance), j, r * a + b)) if r > 0.0 else 0.0
    ds = thresholds.distance
    if ds and legs:
        ds = tuple(d for d in ds if 0.0 < d < 1.0)
        gap = equity - maintenance
        continuous = j <= JUMP_TOLERANCE * (a + 1.0)  # jumps of continuous tiers are rounding
        if gap == 0.0 or not continuous:
            w = 0.0
        healthy = gap > 0.0
        maint = rules.maintenance
        for lb in legs:
            leg, p, slope = lb.leg, lb.price, lb.slope
            size = leg.size
            qty = abs(size)
            toward = (-1.0 if size > 0 else 1.0) if healthy else (1.0 if size > 0 else -1.0)
            mm_here = maint(leg, p)
            base = gap + mm_here
            f = _HeadroomAfter(maint, leg, p=p, toward=toward, base=base, ds=ds)
            if slope < qty and continuous and gap != 0.0:
                # headroom is monotone in this price, hence in d: the thresholds on either
                # side of the distance decide every bit, and only they can be crossed first
                lo, hi = 0, len(ds)
                while lo < hi:
                    mid = (lo + hi) // 2
                    if (f(mid) > 0.0) == healthy:
                        lo = mid + 1
                    else:
                        hi = mid
                for i in range(len(ds)):
                    bits |= ((i < lo) == healthy) << (n + i)
                watch = [i for i in (lo - 1, lo) if 0 <= i < len(ds)]
            else:
                w = 0.0
                for i in range(len(ds)):
                    bits |= (f(i) > 0.0) << (n + i)
                watch = []
            n += len(ds)
            for i in watch:
                if w > 0.0:
                    d = ds[i]
                    grow = a + b + qty * p * d + slope * p * (2.0 + d)
                    w = min(w, _room(abs(f(i)), 0.0, grow))
    if not legs:
        w = MAX_BAND if band else 0.0
    return (w * (1.0 - SAFETY) if w > 0.0 else 0.0), bits


class _HeadroomAfter:
    """``f(i)``: the scope's headroom (equity − maintenance) once this position's price moved
    by the fraction ``ds[i]`` towards its liquidation price (``toward``: adversely while the
    scope is healthy, favourably while it is liquidatable: its liquidation price is then on the
    other side), every other price unchanged; memoised. ``base`` = headroom now + this
    position's maintenance now. Its sign says on which side of ``ds[i]`` the liquidation
    distance is."""

    __slots__ = ("base", "ds", "fs", "leg", "maint", "p", "toward")

    def __init__(
        self,
        maint: Callable[[Leg, float], float],
        leg: Leg,
        *,
        p: float,
        toward: float,
        base: float,
        ds: tuple[float, ...],
    ) -> None:
        self.maint, self.leg, self.p, self.toward = maint, leg, p, toward
        self.base, self.ds = base, ds
        self.fs: dict[int, float] = {}

    def __call__(self, i: int) -> float:
        got = self.fs.get(i)
        if got is None:
            p = self.p
            p_to = p * (1.0 + self.toward * self.ds[i])
            got = self.fs[i] = self.base + self.leg.size * (p_to - p) - self.maint(self.leg, p_to)
        return got


def _room(distance: float, fixed: float, per_w: float) -> float:
    """Largest w with ``fixed + w·per_w < distance`` (0 when none, MAX_BAND when unbounded)."""
    free = distance - fixed
    if not free > 0.0:
        return 0.0
    if per_w <= 0.0:
        return MAX_BAND
    return free / per_w
