"""Alert thresholds as the fast path's trigger levels (pure).

:func:`thresholds_from_rules` turns a scope's alert rules into the
:class:`~monitor.model.fastpath.Thresholds` its price bands are built from, so the engine can
tell, with a comparison per tick, whether a price move can change an alert decision.
"""

from __future__ import annotations

from collections.abc import Sequence

from monitor.alerts.rules import AlertRules, Level, RuleKind
from monitor.model.fastpath import PEAK_SLACK, Thresholds


def _values(levels: Sequence[Level]) -> list[float]:
    return [v for lv in levels for v in (lv.fire, lv.clear)]


def thresholds_from_rules(
    rules: AlertRules, account: str, peak: float | None, peak_slack: float = PEAK_SLACK
) -> Thresholds:
    """The :class:`Thresholds` of a scope of ``account`` (``"venue:account"``) under ``rules``.

    Margin ratio and equity levels (fire and clear), drawdown levels turned into equity levels
    against ``peak`` (the scope's recorded peak equity), liquidation distance levels (every
    per-symbol table too) and ``liquidated_near`` (a position that vanishes is judged by its
    last distance). A new peak is only recorded when the scope is evaluated, so equity
    ``peak·(1 + peak_slack)`` is a threshold too: between evaluations the recorded peak lags the
    true one by less than ``peak_slack`` (a fraction), and drawdown with it.
    """
    mr = rules.rule(RuleKind.MARGIN_RATIO, account)
    eq = rules.rule(RuleKind.EQUITY, account)
    dd = rules.rule(RuleKind.DRAWDOWN, account)
    ld = rules.rule(RuleKind.LIQUIDATION_DISTANCE, account)
    equity = _values(eq.levels_for(None)) if eq is not None else []
    if peak is not None and peak > 0.0:
        equity.append(peak * (1.0 + peak_slack))
        if dd is not None:
            equity.extend(peak * (1.0 - x) for x in _values(dd.levels_for(None)))
    distance: list[float] = []
    if ld is not None and ld.enabled:
        distance.extend(_values(ld.levels))
        for levels in ld.symbols.values():
            distance.extend(_values(levels))
    if rules.liquidated_enabled:
        distance.append(rules.liquidated_near)
    return Thresholds(
        margin_ratio=tuple(sorted(set(_values(mr.levels_for(None)) if mr is not None else []))),
        equity=tuple(sorted(set(equity))),
        distance=tuple(sorted(set(distance))),
    )
