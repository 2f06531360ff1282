"""What to do about a scope at risk (pure): the deposit, or the reduction of one position, that
brings it back to a target margin ratio or liquidation distance, under the venue's own rules.

Notation as in margin-math.md: ``s`` signed size, ``q = |s|``, ``side = sign(s)``, ``P`` the
venue's risk price, ``E`` the entry, ``Eq`` the scope's equity, ``MM`` its maintenance
requirement, ``mm_i(p)`` leg ``i``'s maintenance at price ``p`` from
:meth:`RuleSet.maintenance` (the bracket is picked at ``p``: tiers are re-checked).

**Deposit** ``D`` (quote currency, added to the scope's collateral; prices unchanged, so
``MM`` does not move):

* margin ratio at most ``R``: ``MM / (Eq + D) ≤ R``  ⇒  ``D_R = MM / R − Eq``;
* liquidation distance at least ``d`` for every leg: leg ``i`` alone moving against the
  position to ``P'_i = P_i·(1 − side_i·d)`` must leave equity at or above maintenance::

      Eq + D + s_i·(P'_i − P_i) ≥ MM − mm_i(P_i) + mm_i(P'_i)
      ⇒ D_i = MM − mm_i(P_i) + mm_i(P'_i) − s_i·(P'_i − P_i) − Eq

  This is the liquidation price equation (★) solved for the collateral instead of the price,
  with the bracket taken at ``P'_i``. Equity minus maintenance is monotone in one leg's price
  (``mm_i`` grows slower than the notional: rate < 1), so meeting it at ``P'_i`` means the
  liquidation price is at or beyond ``P'_i``.

``D = max(0, D_R, max_i D_i)``: the least deposit; round it up when acting on it.

**Reduction** of one position (the scope's draining position by default: the largest
unrealized loss, else the largest maintenance): close the fraction ``x`` of it at ``P``, so
its size becomes ``s·(1 − x)``. The realized PnL ``x·s·(P − E)`` stays in the pool (equity is
unchanged by the close itself) minus a close fee ``fee_rate·x·q·P`` (the leg's ``fee_rate``,
0 where unknown). For an **isolated** position the venue's handling of its margin decides:
on dYdX v4 (an isolated position is a subaccount) the collateral stays with the smaller
position; elsewhere (Hyperliquid, Binance, Bybit, OKX, generic) the margin is assumed to be
released pro rata (``collateral·(1 − x)``, the realized PnL and the fee settling outside the
scope), the conservative reading: then a reduction scales equity and maintenance alike and
only helps through a lower tier, or by closing the position entirely. The least ``x`` that meets
the target is found by bisection on ``[0, 1]`` to ``fraction_step`` (1e-12; alerts use
:data:`ALERT_FRACTION_STEP`), as equity − maintenance is monotone in ``x`` while the
maintenance rate exceeds the fee rate; the reduction is rounded up (it always reaches the
target), and every step is re-evaluated with :func:`compute_scope_risk`'s formulas, so tiers
are re-checked at the new size.

Targets are fractions: ``Target(margin_ratio=0.5)`` (maintenance / equity ≤ 50 %),
``Target(distance=0.15)`` (every position's liquidation price at least 15 % away).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, replace

from monitor.margin.base import Leg, RuleSet
from monitor.margin.risk import (
    LegState,
    ScopeRisk,
    compute_scope_risk,
    is_liquidatable,
    liquidation_distance,
    margin_ratio,
)
from monitor.model.positions import ScopeKey

#: rule sets on which a partial close of an isolated position keeps its collateral in the
#: scope; every other one is assumed to release it pro rata (see the module docstring)
ISOLATED_MARGIN_KEPT: frozenset[str] = frozenset({"dydx_v4"})

#: relative tolerance when checking that a target holds (float noise, not a margin of safety)
TOLERANCE = 1e-9

_BISECT_STEPS = 200
#: how ``reduce_note`` starts for a remedy computed without its reduction (``reduce=False``)
REDUCTION_SKIPPED = "reduction of the position not computed (too many alerts at once)"
#: the bisection stops when the fraction of the position is known to this
FRACTION_STEP = 1e-12
#: ... and in an alert's remedy: a 10⁻⁹ of the position never shows in a message's six
#: significant digits, and a crash asks for thousands of remedies at once (each step
#: re-evaluates the scope: 30 steps instead of 40)
ALERT_FRACTION_STEP = 1e-9


@dataclass(frozen=True, slots=True)
class Target:
    """What "safe again" means; at least one field is set, each a fraction in (0, 1).

    ``margin_ratio``: maintenance / equity at most this. ``distance``: every position's
    liquidation price at least this far (fraction of its price) on the adverse side.
    Raises ValueError for a value outside (0, 1) or when neither is given."""

    margin_ratio: float | None = None
    distance: float | None = None

    def __post_init__(self) -> None:
        if self.margin_ratio is None and self.distance is None:
            raise ValueError("a target needs a margin ratio or a liquidation distance")
        for name, v in (("margin ratio", self.margin_ratio), ("distance", self.distance)):
            if v is not None and not 0.0 < v < 1.0:
                raise ValueError(f"a target {name} must be between 0 and 1 (exclusive), got {v}")

    def __str__(self) -> str:
        parts = []
        if self.margin_ratio is not None:
            parts.append(f"margin ratio {self.margin_ratio * 100:g}%")
        if self.distance is not None:
            parts.append(f"liquidation distance {self.distance * 100:g}%")
        return " and ".join(parts)


@dataclass(frozen=True, slots=True)
class Figures:
    """A scope's headline figures (quote currency; fractions): what a remedy leads to."""

    equity: float
    maintenance_margin: float
    margin_ratio: float | None
    nearest_liquidation_distance: float | None
    liquidatable: bool

    @classmethod
    def of(cls, risk: ScopeRisk) -> Figures:
        return cls(
            risk.equity,
            risk.maintenance_margin,
            risk.margin_ratio,
            risk.nearest_liquidation_distance,
            risk.liquidatable,
        )


@dataclass(frozen=True, slots=True)
class Remedy:
    """The two ways back to ``target`` for scope ``key``.

    ``deposit``: the least collateral to add (quote currency, ≥ 0; 0 when ``met``), and the
    figures it gives (``after_deposit``); both None, with ``unknown`` saying why, when a
    position's maintenance schedule is unknown (no remedy is computed then: it would
    reassure on a requirement of zero). ``reduce_symbol``/``reduce_size`` (base units, ≥ 0,
    the amount to close) / ``reduce_fraction`` (of the position) and ``after_reduction``:
    the least reduction of that position that reaches the target (a fraction of 1 closes
    it); None with ``reduce_note`` saying why when no reduction of it does (closing all of
    it is not enough, or the scope has no position). ``reduce_note`` also explains a full
    close forced by an isolated margin released pro rata."""

    key: ScopeKey
    target: Target
    now: Figures
    met: bool
    deposit: float | None
    after_deposit: Figures | None
    reduce_symbol: str | None
    reduce_size: float | None
    reduce_fraction: float | None
    after_reduction: Figures | None
    reduce_note: str | None = None
    unknown: str | None = None


def meets(figures: Figures, target: Target, *, has_positions: bool = True) -> bool:
    """Whether ``figures`` satisfy ``target`` (within :data:`TOLERANCE`): never when the
    scope is liquidatable or its margin ratio cannot be computed (equity ≤ 0) while it holds
    positions; a pool without positions meets any target unless its balance is negative; a
    missing liquidation distance (no price liquidates it) satisfies a distance."""
    if not has_positions:
        return figures.equity >= 0.0
    ratio = figures.margin_ratio
    if figures.liquidatable or ratio is None or ratio >= 1.0:
        return False
    if target.margin_ratio is not None and ratio > target.margin_ratio * (1.0 + TOLERANCE):
        return False
    dist = figures.nearest_liquidation_distance
    return not (
        target.distance is not None
        and dist is not None
        and dist < target.distance * (1.0 - TOLERANCE)
    )


def deposit_for(
    rules: RuleSet, legs: Sequence[LegState], collateral: float, target: Target
) -> float:
    """The least deposit (quote currency, ≥ 0) after which the scope meets ``target``
    (formulas in the module docstring). ``collateral`` excludes uPnL."""
    prices = [ls.price for ls in legs]
    equity = collateral + sum(ls.leg.size * (ls.price - ls.leg.entry_price) for ls in legs)
    mms = [rules.maintenance(ls.leg, p) for ls, p in zip(legs, prices, strict=True)]
    maintenance = sum(mms)
    need = 0.0
    if target.margin_ratio is not None:
        need = max(need, maintenance / target.margin_ratio - equity)
    if target.distance is not None:
        for ls, mm_now in zip(legs, mms, strict=True):
            s = ls.leg.size
            if s == 0.0 or ls.price <= 0.0:
                continue
            adverse = max(ls.price * (1.0 - ls.leg.side * target.distance), 0.0)
            mm_there = rules.maintenance(ls.leg, adverse)
            need = max(need, maintenance - mm_now + mm_there - s * (adverse - ls.price) - equity)
    need = max(need, -equity, 0.0)
    if any(ls.leg.size != 0.0 for ls in legs) and equity + need <= 0.0:
        # equity at zero is liquidatable whatever the maintenance (none known, say): the
        # least deposit is just above what brings equity to zero
        gross = sum(ls.leg.qty * ls.price for ls in legs)
        need = -equity + max(gross, 1.0) * 1e-9
    return need


def _drain(risk: ScopeRisk, legs: Sequence[LegState]) -> str | None:
    if risk.drain_symbol is not None:
        return risk.drain_symbol
    held = [ls for ls in legs if ls.leg.size != 0.0]
    if len(held) == 1:
        return held[0].leg.symbol
    if not held:
        return None
    return max(held, key=lambda ls: ls.leg.qty * ls.price).leg.symbol


def reduced(
    rules: RuleSet,
    legs: Sequence[LegState],
    collateral: float,
    symbol: str,
    fraction: float,
) -> tuple[list[LegState], float]:
    """The scope's legs and collateral after closing ``fraction`` (0..1) of the position in
    ``symbol`` at its current price (module docstring: realized PnL kept, close fee paid,
    isolated margin kept or released pro rata by venue). Raises KeyError for an unknown
    symbol."""
    idx = next((i for i, ls in enumerate(legs) if ls.leg.symbol == symbol), None)
    if idx is None:
        raise KeyError(symbol)
    ls = legs[idx]
    new_leg, new_collateral = _closing(rules, ls, collateral, fraction)
    out = list(legs)
    if new_leg is None:
        del out[idx]
    else:
        margin = new_collateral if ls.isolated_margin is not None else None
        out[idx] = replace(ls, leg=new_leg, isolated_margin=margin)
    return out, new_collateral


def _closing(
    rules: RuleSet, ls: LegState, collateral: float, fraction: float
) -> tuple[Leg | None, float]:
    """:func:`reduced` for the leg ``ls`` alone: the leg left after closing ``fraction`` of it
    (None when all of it is closed) and the scope's new collateral."""
    leg = ls.leg
    closed = leg.size * fraction
    if leg.isolated and rules.name not in ISOLATED_MARGIN_KEPT:
        # the isolated margin (= the scope's collateral, excl. uPnL) is released pro rata and
        # the realized PnL and the fee settle outside the scope: equity becomes (1 − x)·Eq
        new_collateral = collateral * (1.0 - fraction)
    else:
        # collateral excludes uPnL: the closed part's entry value leaves, its price value
        # arrives (= realized PnL), so equity is unchanged but for the close fee
        fee = leg.fee_rate * abs(closed) * ls.price
        new_collateral = collateral + closed * (ls.price - leg.entry_price) - fee
    if fraction >= 1.0:
        return None, new_collateral
    return replace(leg, size=leg.size - closed), new_collateral


def _figures(key: ScopeKey, rules: RuleSet, legs: Sequence[LegState], collateral: float) -> Figures:
    """The headline figures of the scope, with :func:`compute_scope_risk`'s formulas
    (equity, maintenance, margin ratio, nearest liquidation distance) and none of its other
    figures: a remedy's search evaluates the scope tens of times."""
    return _figures_at(rules, [(ls.leg, ls.price) for ls in legs], collateral)


def _figures_at(rules: RuleSet, held: Sequence[tuple[Leg, float]], collateral: float) -> Figures:
    """:func:`_figures` of the legs ``held`` as (leg, risk price) pairs."""
    equity = collateral + math.fsum(leg.size * (price - leg.entry_price) for leg, price in held)
    maintenance = math.fsum(rules.maintenance(leg, price) for leg, price in held)
    liquidatable = is_liquidatable(equity, maintenance)
    nearest: float | None = None
    for leg, price in held:
        liq = rules.liquidation_price(leg, price, equity, maintenance)
        dist = liquidation_distance(leg.size, price, liq, liquidatable)
        if dist is not None and (nearest is None or dist < nearest):
            nearest = dist
    return Figures(equity, maintenance, margin_ratio(maintenance, equity), nearest, liquidatable)


def remedy(
    key: ScopeKey,
    rules: RuleSet,
    legs: Sequence[LegState],
    collateral: float,
    target: Target,
    *,
    symbol: str | None = None,
    fraction_step: float = FRACTION_STEP,
    reduce: bool = True,
    risk: ScopeRisk | None = None,
) -> Remedy:
    """The deposit and the reduction of ``symbol`` (default: the draining position) that
    bring scope ``key`` (``legs`` at their risk prices, ``collateral`` excluding uPnL, the
    venue's ``rules``) to ``target``. ``reduce`` False: the deposit only (the reduction's
    search costs tens of evaluations; ``reduce_note`` says it was not computed). Raises
    KeyError when ``symbol`` is not held. Fails
    closed: with a position whose maintenance schedule is unknown, nothing is computed and
    ``unknown`` says why. ``risk``: the scope's figures at these legs, prices and collateral
    when the caller has them (the engine's step, whose alert this remedy goes with), so they
    are not computed again."""
    if risk is None or risk.key != key:
        risk = compute_scope_risk(key, rules, legs, collateral, with_stress=False, with_shock=False)
    now = Figures.of(risk)
    blind = [ls.leg.symbol for ls in legs if ls.leg.size != 0.0 and ls.leg.schedule is None]
    if blind:
        why = f"maintenance schedule unknown for {', '.join(blind)}: no remedy computed"
        return Remedy(key, target, now, False, None, None, None, None, None, None, None, why)
    has_positions = any(ls.leg.size != 0.0 for ls in legs)
    met = meets(now, target, has_positions=has_positions)
    deposit = 0.0 if met else deposit_for(rules, legs, collateral, target)
    after_deposit = _figures(key, rules, legs, collateral + deposit)

    sym = symbol if symbol is not None else _drain(risk, legs)
    if symbol is not None and all(ls.leg.symbol != symbol for ls in legs):
        raise KeyError(symbol)
    base = Remedy(key, target, now, met, deposit, after_deposit, None, None, None, None)
    if sym is None:
        return replace(base, reduce_note="no position to reduce")
    idx = next(i for i, ls in enumerate(legs) if ls.leg.symbol == sym)
    leg = legs[idx].leg
    if not reduce and not met:
        flags = []
        if target.margin_ratio is not None:
            flags.append(f"--target-ratio {target.margin_ratio * 100:g}%")
        if target.distance is not None:
            flags.append(f"--target-distance {target.distance * 100:g}%")
        skipped = f"{REDUCTION_SKIPPED}; `monitor whatif` with {' '.join(flags)} computes it"
        return Remedy(key, target, now, met, deposit, after_deposit, sym, None, None, None, skipped)
    if met:
        return replace(
            base, reduce_symbol=sym, reduce_size=0.0, reduce_fraction=0.0, after_reduction=now
        )
    held = [(ls.leg, ls.price) for ls in legs]

    def ok(x: float) -> tuple[bool, Figures]:
        # reduced() and _figures() without the LegState copies: only the leg and the
        # collateral change
        new_leg, new_coll = _closing(rules, legs[idx], collateral, x)
        at = held.copy()
        if new_leg is None:
            del at[idx]
        else:
            at[idx] = (new_leg, held[idx][1])
        fig = _figures_at(rules, at, new_coll)
        return meets(fig, target, has_positions=bool(at)), fig

    full_ok, full_fig = ok(1.0)
    if not full_ok:
        return replace(
            base, reduce_symbol=sym, reduce_note=f"closing all of {sym} does not reach {target}"
        )
    lo, hi, hi_fig = 0.0, 1.0, full_fig
    for _ in range(_BISECT_STEPS):
        if hi - lo <= fraction_step:
            break
        mid = (lo + hi) / 2.0
        good, fig = ok(mid)
        if good:
            hi, hi_fig = mid, fig
        else:
            lo = mid
    note = None
    if hi >= 1.0 and leg.isolated and rules.name not in ISOLATED_MARGIN_KEPT:
        note = (
            f"only closing all of {sym} reaches {target}: its isolated margin is released "
            "pro rata as it shrinks (add margin instead)"
        )
    return replace(
        base,
        reduce_symbol=sym,
        reduce_size=leg.qty * hi,
        reduce_fraction=hi,
        after_reduction=hi_fig,
        reduce_note=note,
    )
