"""Alert rules turned into the fast path's thresholds."""

from __future__ import annotations

import dataclasses

import pytest

from monitor.alerts.rules import AlertRules, Level, RuleKind, Severity, ThresholdRule
from monitor.alerts.thresholds import thresholds_from_rules


def test_thresholds_from_rules_collect_fire_and_clear_levels_drawdown_and_peak() -> None:
    rules = AlertRules.default()
    th = thresholds_from_rules(rules, "hyperliquid:0xabc", 10_000.0, peak_slack=0.02)
    assert th.margin_ratio == (0.75, 0.8, 0.85, 0.9)
    assert th.distance == (0.02, 0.05, 0.06, 0.1, 0.12)  # liquidated_near 0.02 included
    # drawdown 0.25/0.20/0.50/0.45 against the peak, and the peak raised by its slack
    assert th.equity == pytest.approx((5_000.0, 5_500.0, 7_500.0, 8_000.0, 10_200.0))


def test_thresholds_from_rules_follow_an_account_override() -> None:
    base = AlertRules.default()
    over = ThresholdRule(RuleKind.MARGIN_RATIO, (Level(Severity.WARNING, 0.6, 0.55),))
    rules = dataclasses.replace(base, accounts={"bybit:a": {RuleKind.MARGIN_RATIO: over}})
    assert thresholds_from_rules(rules, "bybit:a", None).margin_ratio == (0.55, 0.6)
    assert thresholds_from_rules(rules, "bybit:b", None).margin_ratio == (0.75, 0.8, 0.85, 0.9)
