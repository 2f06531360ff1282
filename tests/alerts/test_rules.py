"""Rule configuration: defaults, parsing, and clear error messages."""

from __future__ import annotations

import tomllib

import pytest

from monitor.alerts.rules import (
    AlertRules,
    Level,
    RuleKind,
    Severity,
    parse_duration,
    parse_rules,
)
from monitor.errors import ConfigError


def test_defaults_have_hysteresis_on_the_safe_side() -> None:
    d = AlertRules.default()
    mr = d.thresholds[RuleKind.MARGIN_RATIO]
    assert mr.levels == (
        Level(Severity.WARNING, 0.8, 0.75),
        Level(Severity.CRITICAL, 0.9, 0.85),
    )
    ld = d.thresholds[RuleKind.LIQUIDATION_DISTANCE]
    assert all(lv.clear > lv.fire for lv in ld.levels)  # distance: bad when below
    assert d.repeat[Severity.CRITICAL] < d.repeat[Severity.WARNING]


def test_parse_full_table() -> None:
    doc = tomllib.loads(
        """
        for = "90s"
        send_resolved = false
        [repeat]
        critical = "5m"
        [margin_ratio]
        warning = 0.7
        critical = 0.8
        critical_clear = 0.78
        for = 10
        [funding_rate.symbols.BTC]
        warning = 0.5
        [liquidated]
        near = 0.03
        [feed_stale]
        severity = "critical"
        [accounts."hyperliquid:0xabc".shock]
        critical = 0.2
        """
    )
    r = parse_rules(doc, "monitor.toml")
    assert r.pending_for == 90.0
    assert r.send_resolved is False
    assert r.repeat[Severity.CRITICAL] == 300.0
    assert r.repeat[Severity.WARNING] == 7200.0  # default kept
    mr = r.thresholds[RuleKind.MARGIN_RATIO]
    # warning clear defaults to 0.7 − 5 % · 0.7 = 0.665
    assert mr.levels[0].severity is Severity.WARNING
    assert abs(mr.levels[0].clear - 0.665) < 1e-12
    assert mr.levels[1] == Level(Severity.CRITICAL, 0.8, 0.78)
    assert mr.for_s == 10.0
    fr = r.thresholds[RuleKind.FUNDING_RATE]
    assert fr.levels_for("BTC")[0].fire == 0.5
    assert fr.levels_for("ETH")[0].fire == 1.0
    assert r.liquidated_near == 0.03
    assert r.feed_stale_severity is Severity.CRITICAL
    shock = r.rule(RuleKind.SHOCK, "hyperliquid:0xabc")
    assert shock is not None and len(shock.levels) == 1
    # clear = 0.2 + 5 % · 0.2 = 0.21 (bad when below)
    assert shock.levels[0].severity is Severity.CRITICAL and shock.levels[0].fire == 0.2
    assert abs(shock.levels[0].clear - 0.21) < 1e-12
    assert r.rule(RuleKind.SHOCK, "dydx_v4:x") is r.thresholds[RuleKind.SHOCK]


def test_equity_rule_enabled_by_setting_a_threshold() -> None:
    r = parse_rules({"equity": {"warning": 500, "critical": 200}}, "f")
    eq = r.thresholds[RuleKind.EQUITY]
    # bad when below: critical fire must be lower; clear = fire + 5 %
    assert eq.levels == (
        Level(Severity.WARNING, 500.0, 525.0),
        Level(Severity.CRITICAL, 200.0, 210.0),
    )


def test_disabled_rule_has_no_levels() -> None:
    r = parse_rules({"shock": {"enabled": False}}, "f")
    assert r.thresholds[RuleKind.SHOCK].levels_for(None) == ()


@pytest.mark.parametrize(
    ("table", "path", "words"),
    [
        ({"margn_ratio": {}}, "rules.margn_ratio", "did you mean 'margin_ratio'"),
        ({"margin_ratio": {"warnin": 0.5}}, "rules.margin_ratio.warnin", "did you mean 'warning'"),
        ({"margin_ratio": {"warning": "high"}}, "rules.margin_ratio.warning", "expected a number"),
        (
            {"margin_ratio": {"warning": 0.8, "warning_clear": 0.9}},
            "rules.margin_ratio.warning_clear",
            "at or below the fire threshold",
        ),
        ({"shock": {"warning": 0.05, "critical": 0.1}}, "rules.shock.critical", "must be worse"),
        ({"repeat": {"critical": "soon"}}, "rules.repeat.critical", "duration"),
        ({"repeat": {"critical": 0}}, "rules.repeat.critical", "> 0"),
        ({"for": -1}, "rules.for", "≥ 0"),
        ({"accounts": {"noaccount": {}}}, "rules.accounts.noaccount", "venue:account"),
        ({"feed_stale": {"severity": "loud"}}, "rules.feed_stale.severity", "one of"),
        ({"margin_ratio": {"symbols": {}}}, "rules.margin_ratio.symbols", "unknown key"),
        (
            {"margin_ratio": {"warning_clear": 0.5}},
            "rules.margin_ratio.warning_clear",
            "set warning",
        ),
    ],
)
def test_bad_config_names_the_key(table: dict[str, object], path: str, words: str) -> None:
    with pytest.raises(ConfigError) as err:
        parse_rules(table, "monitor.toml")
    assert err.value.field == path
    assert words in err.value.problem
    assert str(err.value).startswith(f"monitor.toml: {path}: ")


@pytest.mark.parametrize(
    ("text", "secs"),
    [
        (30, 30.0),
        ("90s", 90.0),
        ("5m", 300.0),
        ("2h", 7200.0),
        ("1d", 86400.0),
        ("250ms", 0.25),
        ("1.5h", 5400.0),
    ],
)
def test_durations(text: object, secs: float) -> None:
    assert parse_duration(text, "f", "k") == secs
