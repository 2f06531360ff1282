"""Rule configuration: defaults, parsing, and clear error messages."""

from __future__ import annotations

import math
import tomllib

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from monitor.alerts.rules import (
    AlertRules,
    Level,
    RuleKind,
    Severity,
    parse_duration,
    parse_rules,
)
from monitor.config_rules import book_notes, rule_notes
from monitor.errors import ConfigError
from monitor.units import DURATION_HINT, duration_seconds, fraction


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


# -- one duration syntax, percent fractions (monitor.units) -------------------------------------

_FACTORS = {"ms": 0.001, "s": 1.0, "m": 60.0, "h": 3600.0, "d": 86400.0, "": 1.0}


@settings(max_examples=300, deadline=None)
@given(n=st.integers(min_value=0, max_value=10**6), unit=st.sampled_from(sorted(_FACTORS)))
def test_a_duration_is_its_number_times_its_unit(n: int, unit: str) -> None:
    assert duration_seconds(f"{n}{unit}") == pytest.approx(n * _FACTORS[unit])
    assert duration_seconds(f" {n} {unit} ") == pytest.approx(n * _FACTORS[unit])


@settings(max_examples=300, deadline=None)
@given(x=st.floats(min_value=-1000, max_value=1000, allow_nan=False))
def test_a_percent_string_is_a_hundredth(x: float) -> None:
    text = f"{x:.6f}%"
    assert fraction(text) == pytest.approx(float(f"{x:.6f}") / 100)  # "80%" = 80 / 100
    assert fraction(x) == x


@settings(max_examples=500, deadline=None)
@given(value=st.one_of(st.text(max_size=12), st.booleans(), st.none(), st.floats()))
def test_any_value_is_a_duration_or_a_value_error_in_words(value: object) -> None:
    for parse in (duration_seconds, fraction):
        problem = ""
        try:
            out = parse(value)
        except ValueError as exc:
            problem = str(exc)
        else:
            assert math.isfinite(out)
            continue
        assert problem.startswith(("expected a ", "a duration must be", "must be finite"))


@pytest.mark.parametrize(
    ("value", "problem"),
    [
        (
            "soon",
            f"expected {DURATION_HINT}, got the string 'soon'",
        ),
        (
            True,
            f"expected {DURATION_HINT}, got the boolean true",
        ),
        (-1, "a duration must be ≥ 0, got -1"),
        (math.inf, "a duration must be finite, got inf"),
        (
            "1w",
            "expected a duration like 30 (seconds), '15s', '5m', '2h' or '1d', got the string '1w'",
        ),
    ],
)
def test_bad_durations_are_named_in_words(value: object, problem: str) -> None:
    with pytest.raises(ConfigError) as err:
        parse_duration(value, "monitor.toml", "rules.for")
    assert (err.value.field, err.value.problem) == ("rules.for", problem)


# -- settings that can fire ---------------------------------------------------------------------


def test_fraction_rules_take_percent_strings() -> None:
    r = parse_rules(
        {
            "margin_ratio": {"warning": "80%", "warning_clear": "75%", "critical": 0.9},
            "liquidation_distance": {"warning": "10%", "hysteresis": "20%"},
            "liquidated": {"near": "3%"},
        },
        "f",
    )
    mr = r.thresholds[RuleKind.MARGIN_RATIO]
    assert mr.levels[0] == Level(Severity.WARNING, 0.8, 0.75)
    ld = r.thresholds[RuleKind.LIQUIDATION_DISTANCE]
    # clear = 0.10 + 20 % · 0.10 = 0.12 (bad when below)
    assert ld.levels == (Level(Severity.WARNING, 0.1, pytest.approx(0.12)),)
    assert r.liquidated_near == 0.03


@pytest.mark.parametrize(
    ("table", "path", "problem"),
    [
        (
            {"margin_ratio": {"warning": 60, "critical": 80}},
            "rules.margin_ratio.warning",
            "60 is above 1 (100 %), a fraction that margin_ratio never needs (a margin ratio is "
            'maintenance / equity, 1 = liquidatable); write 0.6 or "60%"',
        ),
        (
            {"margin_ratio": {"warning": 0.6, "critical": 80}},
            "rules.margin_ratio.critical",
            'write 0.8 or "80%"',
        ),
        (
            {"margin_ratio": {"warning": 0.6, "warning_clear": 1.5}},
            "rules.margin_ratio.warning_clear",
            'write 0.015 or "1.5%"',
        ),
        ({"drawdown": {"warning": 80}}, "rules.drawdown.warning", 'write 0.8 or "80%"'),
        ({"drawdown": {"warning": "120%"}}, "rules.drawdown.warning", "1.2 is above 1"),
        (
            {"liquidation_distance": {"warning": 8}},
            "rules.liquidation_distance.warning",
            'write 0.08 or "8%"',
        ),
        (
            {"funding_cost_pct": {"warning": 250}},
            "rules.funding_cost_pct.warning",
            'write a fraction such as 0.8 or "80%"',
        ),
        (
            {"accounts": {"okx:a": {"drawdown": {"critical": 75}}}},
            "rules.accounts.okx:a.drawdown.critical",
            'write 0.75 or "75%"',
        ),
        (
            {"equity": {"warning": "5%"}},
            "rules.equity.warning",
            "expected a number, got the string '5%'",
        ),
        ({"margin_ratio": {"warning": "80"}}, "rules.margin_ratio.warning", "percent string"),
        ({"margin_ratio": {"hysteresis": 1.5}}, "rules.margin_ratio.hysteresis", "in [0, 1)"),
        ({"liquidated": {"near": "150%"}}, "rules.liquidated.near", "in [0, 1), got 1.5"),
        (
            {"repeat": {"hourly": "1h"}},
            "rules.repeat.hourly",
            "unknown key (known: info, warning, critical)",
        ),
        (
            {"funding_rate": {"symbols": {"BTC": {}}}},
            "rules.funding_rate.symbols.BTC",
            "set at least one",
        ),
        (
            {"funding_rate": {"symbols": {"BTC": {"warnng": 1}}}},
            "rules.funding_rate.symbols.BTC.warnng",
            "did you mean 'warning'?",
        ),
        (
            {"accounts": {"binance_usdm:main": {}, "binanceusdm:main": {}}},
            "rules.accounts.binanceusdm:main",
            "the same account as rules.accounts.binance_usdm:main",
        ),
        (
            {"accounts": {"okx:a": {"margn_ratio": {}}}},
            "rules.accounts.okx:a.margn_ratio",
            "did you mean",
        ),
        ({"accounts": {"okx:a": 3}}, "rules.accounts.okx:a", "expected a table, got the number 3"),
    ],
)
def test_settings_that_cannot_fire_are_refused(
    table: dict[str, object], path: str, problem: str
) -> None:
    with pytest.raises(ConfigError) as err:
        parse_rules(table, "monitor.toml")
    assert err.value.field == path
    assert problem in err.value.problem, err.value.problem


def test_override_keys_are_normalised_to_the_canonical_venue() -> None:
    r = parse_rules(
        {"accounts": {"binance_usdm:main": {"shock": {"critical": 0.2}}, "dydx_v4:x/0": {}}},
        "f",
    )
    assert set(r.accounts) == {"binanceusdm:main", "dydx:x/0"}
    assert r.rule(RuleKind.SHOCK, "binanceusdm:main") is not r.thresholds[RuleKind.SHOCK]


def test_rule_notes_name_levels_that_never_or_always_fire() -> None:
    r = parse_rules(
        {
            "drawdown": {"warning": 0, "critical": 1},
            "shock": {"warning": 0.1, "critical": 0},
            "accounts": {"okx:a": {"margin_ratio": {"warning": "0%"}}},
        },
        "f",
    )
    assert rule_notes(r) == (
        "rules.drawdown.warning 0: fires on every scope (drawdown is never below 0)",
        "rules.drawdown.critical 1: fires only at 1, when it is too late to act "
        "(a drawdown is (peak − equity) / peak, 1 = everything lost)",
        "rules.shock.critical 0: can never fire before liquidation (shock is never below 0)",
        'rules.accounts."okx:a".margin_ratio.warning 0: fires on every scope '
        "(margin_ratio is never below 0)",
    )
    assert rule_notes(AlertRules.default()) == ()


def test_book_notes_name_levels_that_fire_on_the_whole_current_book() -> None:
    r = parse_rules(
        {
            "liquidation_distance": {"warning": 0.9, "critical": 0.05},
            "margin_ratio": {"warning": 0.3, "critical": 0.9},
            "accounts": {"okx:b": {"margin_ratio": {"warning": 0.01}}},
        },
        "f",
    )
    notes = book_notes(
        r,
        ratios={"okx:a": [0.35, 0.5], "okx:b": [0.02], "okx:empty": []},
        distances={"okx:a": [0.2, 0.4], "okx:b": [0.3]},
    )
    # every distance (0.2, 0.3, 0.4) ≤ 0.9 fires; 0.05 fires on none. Ratios of okx:a
    # (0.35, 0.5) ≥ 0.3 all fire; okx:b's override 0.01 ≤ 0.02 fires too.
    assert notes == (
        "rules.margin_ratio.warning 0.3 fires on every scope of the current book "
        "(margin_ratio now 0.35, 0.5)",
        'rules.accounts."okx:b".margin_ratio.warning 0.01 fires on every scope of the '
        "current book (margin_ratio now 0.02)",
        "rules.liquidation_distance.warning 0.9 fires on every position of the current "
        "book (liquidation_distance now 0.2, 0.3, 0.4)",
    )
    assert book_notes(r, ratios={"okx:a": [0.1]}, distances={"okx:a": [0.5, 0.95]}) == ()
