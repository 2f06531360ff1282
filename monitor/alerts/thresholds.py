"""Alert thresholds as the fast path's trigger levels (pure).

:func:`thresholds_from_rules` turns a scope's alert rules into the
:class:`~monitor.model.fastpath.Thresholds` its price bands are built from, so the engine can
tell, with a comparison per tick, whether a price move can change an alert decision.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

from monitor.alerts.rules import AlertRules, Level, RuleKind, Severity, ThresholdRule
from monitor.model.fastpath import PEAK_SLACK, Thresholds


def _values(levels: Sequence[Level]) -> list[float]:
    return [v for lv in levels for v in (lv.fire, lv.clear)]


@dataclass(frozen=True, slots=True)
class AccountLevels:
    """The parts of an account's :class:`Thresholds` that do not depend on the scope's peak
    (computed once per account and rules; see :func:`thresholds_from_rules`)."""

    margin_ratio: tuple[float, ...]
    equity: tuple[float, ...]
    drawdown: tuple[float, ...]
    distance: tuple[float, ...]
    critical: tuple[float, float, float] = (math.inf, -math.inf, math.inf)
    """Where the critical level of the margin ratio (a fraction, fires at or above), equity
    (quote, at or below) and drawdown (a fraction of the peak, at or above) rule fires; ``inf``,
    ``-inf``, ``inf`` for a rule with no critical level (or disabled). What orders a crash's
    owed work: the scopes these quick figures put at critical first."""


def account_levels(rules: AlertRules, account: str) -> AccountLevels:
    """Margin ratio, equity, drawdown (fractions) and liquidation distance levels (fire and
    clear, every per-symbol table, and ``liquidated_near``) of ``account`` under ``rules``."""
    mr = rules.rule(RuleKind.MARGIN_RATIO, account)
    eq = rules.rule(RuleKind.EQUITY, account)
    dd = rules.rule(RuleKind.DRAWDOWN, account)
    ld = rules.rule(RuleKind.LIQUIDATION_DISTANCE, account)
    distance: list[float] = []
    if ld is not None and ld.enabled:
        distance.extend(_values(ld.levels))
        for levels in ld.symbols.values():
            distance.extend(_values(levels))
    if rules.liquidated_enabled:
        distance.append(rules.liquidated_near)
    return AccountLevels(
        margin_ratio=tuple(sorted(set(_values(mr.levels_for(None)) if mr is not None else []))),
        equity=tuple(_values(eq.levels_for(None)) if eq is not None else ()),
        drawdown=tuple(_values(dd.levels_for(None)) if dd is not None else ()),
        distance=tuple(sorted(set(distance))),
        critical=(
            _critical_fire(mr, math.inf),
            _critical_fire(eq, -math.inf),
            _critical_fire(dd, math.inf),
        ),
    )


def _critical_fire(rule: ThresholdRule | None, none: float) -> float:
    """Where ``rule``'s critical level fires (its account-wide table), else ``none``."""
    if rule is not None:
        for lv in rule.levels_for(None):
            if lv.severity is Severity.CRITICAL:
                return lv.fire
    return none


def thresholds_from_rules(
    rules: AlertRules,
    account: str,
    peak: float | None,
    peak_slack: float = PEAK_SLACK,
    *,
    levels: AccountLevels | None = None,
) -> Thresholds:
    """The :class:`Thresholds` of a scope of ``account`` (``"venue:account"``) under ``rules``.

    Margin ratio and equity levels (fire and clear), drawdown levels turned into equity levels
    against ``peak`` (the scope's recorded peak equity), liquidation distance levels (every
    per-symbol table too) and ``liquidated_near`` (a position that vanishes is judged by its
    last distance). A new peak is only recorded when the scope is evaluated, so equity
    ``peak·(1 + peak_slack)`` is a threshold too: between evaluations the recorded peak lags the
    true one by less than ``peak_slack`` (a fraction), and drawdown with it. ``levels``: the
    account's :func:`account_levels`, when the caller keeps them.
    """
    lv = levels if levels is not None else account_levels(rules, account)
    equity = list(lv.equity)
    if peak is not None and peak > 0.0:
        equity.append(peak * (1.0 + peak_slack))
        equity.extend(peak * (1.0 - x) for x in lv.drawdown)
    return Thresholds(
        margin_ratio=lv.margin_ratio,
        equity=tuple(sorted(set(equity))),
        distance=lv.distance,
    )
