"""The ``[rules]`` table: msgspec Structs, parsing into :class:`~monitor.alerts.rules.AlertRules`,
and the checks that every setting can fire (pure: no I/O, no clock).

Syntax (``config/example.toml`` documents every key)::

    [rules]
    for = "60s"                  # a duration: seconds or "90s", "5m", "2h", "1d"
    send_resolved = true
    [rules.repeat]
    critical = "10m"
    [rules.margin_ratio]
    warning = 0.8                # or "80%": fractions take a number or a percent string
    warning_clear = 0.75         # default: fire ∓ hysteresis·|fire|
    hysteresis = 0.05            # relative
    for = "30s"
    enabled = true
    [rules.funding_rate.symbols.BTC]
    warning = 0.5
    [rules.accounts."hyperliquid:0xabc".margin_ratio]
    warning = 0.6                # a whole rule table for one account

Fraction rules (margin_ratio, liquidation_distance, drawdown, funding_cost_pct, funding_rate,
shock) take fractions; a threshold above 1 for margin_ratio, liquidation_distance, drawdown or
funding_cost_pct is refused with the hint to write ``0.8`` or ``"80%"`` (it is almost always a
percent written as a plain number, and can then never fire, or fire on everything). The other
rules (equity, funding_cost, funding_runway, outbox_backlog) take plain numbers in their
units. An override key's venue may be written as an alias (``binance_usdm:main``): it is
normalised to the canonical venue name (``binanceusdm:main``).

:func:`rule_notes` lists levels that can never fire, or fire on every scope, whatever the
book (warnings for ``monitor check-config``); :func:`book_notes` does the same against the
figures of a current book.
"""

from __future__ import annotations

import itertools
from collections.abc import Iterable, Mapping
from dataclasses import replace
from typing import Any, Final

import msgspec

from monitor.alerts.rules import (
    DEFAULT_HYSTERESIS,
    DIRECTIONS,
    SEVERITIES,
    AlertRules,
    Direction,
    Level,
    RuleKind,
    Severity,
    ThresholdRule,
)
from monitor.errors import ConfigError
from monitor.model.venues import HYPERLIQUID, canonical
from monitor.schema import Fraction, Number, Seconds, Text, convert, field_names

#: rules whose values are fractions (numbers or percent strings)
FRACTION_RULES: Final = frozenset(
    {
        RuleKind.MARGIN_RATIO,
        RuleKind.LIQUIDATION_DISTANCE,
        RuleKind.DRAWDOWN,
        RuleKind.FUNDING_COST_PCT,
        RuleKind.FUNDING_RATE,
        RuleKind.SHOCK,
    }
)
#: fraction rules whose thresholds cannot usefully exceed 1 (100 %): refused above it
AT_MOST_ONE: Final = frozenset(
    {
        RuleKind.MARGIN_RATIO,
        RuleKind.LIQUIDATION_DISTANCE,
        RuleKind.DRAWDOWN,
        RuleKind.FUNDING_COST_PCT,
    }
)

_FORBID: Final[dict[str, Any]] = {"forbid_unknown_fields": True, "frozen": True}


class _FracLevels(msgspec.Struct, **_FORBID):
    info: Fraction | None = None
    warning: Fraction | None = None
    critical: Fraction | None = None
    info_clear: Fraction | None = None
    warning_clear: Fraction | None = None
    critical_clear: Fraction | None = None
    hysteresis: Fraction | None = None


class _FracRule(_FracLevels, **_FORBID):
    for_: Seconds | None = msgspec.field(default=None, name="for")
    enabled: bool = True


class _FundingRateRule(_FracRule, **_FORBID):
    symbols: dict[str, Any] = {}


class _AmountLevels(msgspec.Struct, **_FORBID):
    info: Number | None = None
    warning: Number | None = None
    critical: Number | None = None
    info_clear: Number | None = None
    warning_clear: Number | None = None
    critical_clear: Number | None = None
    hysteresis: Fraction | None = None


class _AmountRule(_AmountLevels, **_FORBID):
    for_: Seconds | None = msgspec.field(default=None, name="for")
    enabled: bool = True


class _Repeat(msgspec.Struct, **_FORBID):
    info: Seconds | None = None
    warning: Seconds | None = None
    critical: Seconds | None = None


class _Liquidated(msgspec.Struct, **_FORBID):
    enabled: bool | None = None
    near: Fraction | None = None


class _EventRule(msgspec.Struct, **_FORBID):
    enabled: bool | None = None
    severity: Text | None = None


class _Overrides(msgspec.Struct, **_FORBID):
    margin_ratio: _FracRule | None = None
    liquidation_distance: _FracRule | None = None
    equity: _AmountRule | None = None
    drawdown: _FracRule | None = None
    funding_cost: _AmountRule | None = None
    funding_cost_pct: _FracRule | None = None
    funding_rate: _FundingRateRule | None = None
    funding_runway: _AmountRule | None = None
    shock: _FracRule | None = None
    outbox_backlog: _AmountRule | None = None


class RulesTable(_Overrides, **_FORBID):
    """The ``[rules]`` table as written (None: not given, the default applies)."""

    for_: Seconds | None = msgspec.field(default=None, name="for")
    send_resolved: bool | None = None
    repeat: _Repeat | None = None
    accounts: dict[str, Any] = {}
    liquidated: _Liquidated | None = None
    feed_stale: _EventRule | None = None
    delivery_failing: _EventRule | None = None


#: the keys of ``[rules]`` and of one rule table
TOP_KEYS: Final = field_names(RulesTable)
RULE_KEYS: Final = field_names(_FundingRateRule)

_RuleTable = _FracRule | _AmountRule


def parse_rules(table: Mapping[str, object], source: str) -> AlertRules:
    """Parse the ``[rules]`` table of ``source`` on top of :meth:`AlertRules.default`.

    Raises :class:`ConfigError` with the key path (``rules.margin_ratio.warning``) and the
    problem; unknown keys name the nearest valid key. Override keys come out as
    ``"<canonical venue>:<account>"``.
    """
    doc = convert(table, RulesTable, source, "rules")
    d = AlertRules.default()
    thresholds = dict(d.thresholds)
    thresholds.update(_rule_tables(doc, d.thresholds, source, "rules"))
    repeat = dict(d.repeat)
    if doc.repeat is not None:
        for sev in SEVERITIES:
            secs = getattr(doc.repeat, sev.value)
            if secs is None:
                continue
            if secs <= 0:
                raise ConfigError(
                    source, f"rules.repeat.{sev.value}", "a repeat interval must be > 0"
                )
            repeat[sev] = float(secs)
    rules = replace(
        d,
        thresholds=thresholds,
        pending_for=d.pending_for if doc.for_ is None else float(doc.for_),
        send_resolved=d.send_resolved if doc.send_resolved is None else doc.send_resolved,
        repeat=repeat,
    )
    if (lq := doc.liquidated) is not None:
        if lq.enabled is not None:
            rules = replace(rules, liquidated_enabled=lq.enabled)
        if lq.near is not None:
            if not 0.0 <= lq.near < 1.0:
                raise ConfigError(
                    source,
                    "rules.liquidated.near",
                    f"expected a fraction in [0, 1), got {lq.near:g}",
                )
            rules = replace(rules, liquidated_near=float(lq.near))
    if (fs := doc.feed_stale) is not None:
        if fs.enabled is not None:
            rules = replace(rules, feed_stale_enabled=fs.enabled)
        if fs.severity is not None:
            sev = _severity(fs.severity, source, "rules.feed_stale.severity")
            rules = replace(rules, feed_stale_severity=sev)
    if (df := doc.delivery_failing) is not None:
        if df.enabled is not None:
            rules = replace(rules, delivery_failing_enabled=df.enabled)
        if df.severity is not None:
            sev = _severity(df.severity, source, "rules.delivery_failing.severity")
            rules = replace(rules, delivery_failing_severity=sev)
    accounts: dict[str, Mapping[RuleKind, ThresholdRule]] = {}
    written: dict[str, str] = {}
    for key, sub in doc.accounts.items():
        path = f"rules.accounts.{key}"
        venue, sep, account = key.partition(":")
        if not sep or not venue.strip() or not account.strip():
            raise ConfigError(
                source, path, 'an account is named "venue:account", as check-config prints it'
            )
        norm = account_key(key)
        if norm in written:
            raise ConfigError(source, path, f"the same account as rules.accounts.{written[norm]}")
        written[norm] = key
        over = convert(sub, _Overrides, source, path)
        accounts[norm] = _rule_tables(over, thresholds, source, path)
    if accounts:
        rules = replace(rules, accounts=accounts)
    return rules


def override_keys(table: Mapping[str, object]) -> dict[str, str]:
    """The ``[rules.accounts]`` keys as written, by their normalised ``"venue:account"``."""
    raw = table.get("accounts")
    if not isinstance(raw, Mapping):
        return {}
    return {account_key(str(key)): str(key) for key in raw}


def account_key(written: str) -> str:
    """``"venue:account"`` as alerts name it: the canonical venue name (an alias such as
    ``binance_usdm`` normalised), a Hyperliquid address lower-cased."""
    venue, _, account = written.partition(":")
    name = canonical(venue)
    account = account.strip()
    return f"{name}:{account.lower() if name == HYPERLIQUID else account}"


def _severity(value: str, source: str, path: str) -> Severity:
    names = tuple(s.value for s in SEVERITIES)
    if value not in names:
        raise ConfigError(source, path, f"expected one of {', '.join(names)}, got {value!r}")
    return Severity(value)


def _rule_tables(
    doc: _Overrides, base: Mapping[RuleKind, ThresholdRule], source: str, prefix: str
) -> dict[RuleKind, ThresholdRule]:
    out: dict[RuleKind, ThresholdRule] = {}
    for kind in DIRECTIONS:
        sub = getattr(doc, kind.value)
        if sub is not None:
            out[kind] = _rule(sub, kind, base[kind], source, f"{prefix}.{kind.value}")
    return out


def _rule(
    t: _RuleTable, kind: RuleKind, base: ThresholdRule, source: str, path: str
) -> ThresholdRule:
    levels = _levels(t, kind, base.levels, source, path)
    for_s = base.for_s if t.for_ is None else float(t.for_)
    symbols: dict[str, tuple[Level, ...]] = dict(base.symbols)
    if isinstance(t, _FundingRateRule):
        for sym, sub in t.symbols.items():
            sub_path = f"{path}.symbols.{sym}"
            lt = convert(sub, _FracLevels, source, sub_path)
            if all(getattr(lt, s.value) is None for s in SEVERITIES):
                raise ConfigError(source, sub_path, "set at least one of info, warning, critical")
            symbols[sym] = _levels(lt, kind, levels, source, sub_path)
    return ThresholdRule(kind, levels, enabled=t.enabled, for_s=for_s, symbols=symbols)


def _levels(
    t: _FracLevels | _AmountLevels,
    kind: RuleKind,
    base: tuple[Level, ...],
    source: str,
    path: str,
) -> tuple[Level, ...]:
    """Levels of one rule table; a table naming any fire threshold replaces ``base`` whole."""
    direction = DIRECTIONS[kind]
    hyst = DEFAULT_HYSTERESIS
    if t.hysteresis is not None:
        hyst = float(t.hysteresis)
        if not 0.0 <= hyst < 1.0:
            raise ConfigError(
                source, f"{path}.hysteresis", f"expected a fraction in [0, 1), got {hyst:g}"
            )
    named = [s for s in SEVERITIES if getattr(t, s.value) is not None]
    if not named:
        for s in SEVERITIES:
            if getattr(t, f"{s.value}_clear") is not None:
                raise ConfigError(
                    source, f"{path}.{s.value}_clear", f"set {s.value} (the fire threshold) too"
                )
        if t.hysteresis is not None:
            return tuple(
                Level(lv.severity, lv.fire, _default_clear(lv.fire, direction, hyst)) for lv in base
            )
        return base
    out: list[Level] = []
    for s in SEVERITIES:
        clear_key = f"{s.value}_clear"
        raw_fire = getattr(t, s.value)
        raw_clear = getattr(t, clear_key)
        if raw_fire is None:
            if raw_clear is not None:
                raise ConfigError(source, f"{path}.{clear_key}", f"set {s.value} too")
            continue
        fire = float(raw_fire)
        _at_most_one(kind, fire, source, f"{path}.{s.value}")
        if raw_clear is not None:
            clear = float(raw_clear)
            _at_most_one(kind, clear, source, f"{path}.{clear_key}")
            bad = clear > fire if direction is Direction.ABOVE else clear < fire
            if bad:
                side = "at or below" if direction is Direction.ABOVE else "at or above"
                raise ConfigError(
                    source,
                    f"{path}.{clear_key}",
                    f"the clear threshold must be {side} the fire threshold {fire:g}"
                    f" ({kind.value} is bad when {direction.value})",
                )
        else:
            clear = _default_clear(fire, direction, hyst)
        out.append(Level(s, fire, clear))
    for lo, hi in itertools.pairwise(out):
        bad = hi.fire < lo.fire if direction is Direction.ABOVE else hi.fire > lo.fire
        if bad:
            raise ConfigError(
                source,
                f"{path}.{hi.severity.value}",
                f"{hi.severity.value} ({hi.fire:g}) must be worse than {lo.severity.value}"
                f" ({lo.fire:g}): {kind.value} is bad when {direction.value}",
            )
    return tuple(out)


_MEANING: Final = {
    RuleKind.MARGIN_RATIO: "a margin ratio is maintenance / equity, 1 = liquidatable",
    RuleKind.LIQUIDATION_DISTANCE: "a liquidation distance is |mark − liq. price| / mark",
    RuleKind.DRAWDOWN: "a drawdown is (peak − equity) / peak, 1 = everything lost",
    RuleKind.FUNDING_COST_PCT: "funding_cost_pct is funding per day / equity",
}


def _at_most_one(kind: RuleKind, value: float, source: str, path: str) -> None:
    if kind not in AT_MOST_ONE or value <= 1.0:
        return
    hint = (
        f'write {value / 100:g} or "{value:g}%"'
        if value <= 100
        else 'write a fraction such as 0.8 or "80%"'
    )
    raise ConfigError(
        source,
        path,
        f"{value:g} is above 1 (100 %), a fraction that {kind.value} never needs "
        f"({_MEANING[kind]}); {hint}",
    )


def _default_clear(fire: float, direction: Direction, hyst: float) -> float:
    step = abs(fire) * hyst
    return fire - step if direction is Direction.ABOVE else fire + step


# -- settings that can fire -------------------------------------------------------------------

#: (kind, lowest possible value, highest value before liquidation or total loss) of the
#: rules whose range is known whatever the book; None: unbounded on that side
_RANGE: Final[dict[RuleKind, tuple[float, float | None]]] = {
    RuleKind.MARGIN_RATIO: (0.0, 1.0),
    RuleKind.LIQUIDATION_DISTANCE: (0.0, None),
    RuleKind.DRAWDOWN: (0.0, 1.0),
    RuleKind.SHOCK: (0.0, None),
    RuleKind.FUNDING_RUNWAY: (0.0, None),
    RuleKind.OUTBOX_BACKLOG: (0.0, None),
}


def _all_rules(rules: AlertRules) -> Iterable[tuple[str, ThresholdRule]]:
    for kind, rule in rules.thresholds.items():
        yield f"rules.{kind.value}", rule
    for acct, over in rules.accounts.items():
        for kind, rule in over.items():
            yield f'rules.accounts."{acct}".{kind.value}', rule


def rule_notes(rules: AlertRules) -> tuple[str, ...]:
    """Warnings for levels that can never fire, or fire on every scope, whatever the book:
    ``"rules.drawdown.warning 0: fires on every scope (a drawdown is never below 0)"``."""
    out: list[str] = []
    for path, rule in _all_rules(rules):
        if not rule.enabled or rule.kind not in _RANGE:
            continue
        low, high = _RANGE[rule.kind]
        levels: list[tuple[str | None, Level]] = [(None, lv) for lv in rule.levels]
        levels += [(sym, lv) for sym, lvs in rule.symbols.items() for lv in lvs]
        for sym, lv in levels:
            where = f"{path}.symbols.{sym}" if sym is not None else path
            name = f"{where}.{lv.severity.value} {lv.fire:g}"
            if rule.direction is Direction.ABOVE:
                if lv.fire <= low:
                    out.append(
                        f"{name}: fires on every scope ({rule.kind.value} is never below {low:g})"
                    )
                elif high is not None and lv.fire >= high:
                    out.append(
                        f"{name}: fires only at {high:g}, when it is too late to act "
                        f"({_MEANING.get(rule.kind, rule.kind.value)})"
                    )
            elif lv.fire <= low:
                out.append(
                    f"{name}: can never fire before liquidation ({rule.kind.value} is never "
                    f"below {low:g})"
                )
    return tuple(out)


def book_notes(
    rules: AlertRules,
    ratios: Mapping[str, Iterable[float]],
    distances: Mapping[str, Iterable[float]],
) -> tuple[str, ...]:
    """Warnings for margin_ratio and liquidation_distance levels that fire on every scope
    (every position) of the current book right now. ``ratios``/``distances``: the current
    margin ratios of the scopes / liquidation distances of the positions, by account
    (``"venue:account"``); accounts without figures are skipped."""
    out: list[str] = []
    checks = (
        (RuleKind.MARGIN_RATIO, ratios, "scope"),
        (RuleKind.LIQUIDATION_DISTANCE, distances, "position"),
    )
    for kind, figures, what in checks:
        by_rule: dict[str, tuple[ThresholdRule, list[float]]] = {}
        for acct, values in figures.items():
            vals = list(values)
            rule = rules.rule(kind, acct)
            if not vals or rule is None or not rule.enabled:
                continue
            path = (
                f'rules.accounts."{acct}".{kind.value}'
                if kind in rules.accounts.get(acct, {})
                else f"rules.{kind.value}"
            )
            by_rule.setdefault(path, (rule, []))[1].extend(vals)
        for path, (rule, vals) in by_rule.items():
            for lv in rule.levels:
                fires = (
                    all(v >= lv.fire for v in vals)
                    if rule.direction is Direction.ABOVE
                    else all(v <= lv.fire for v in vals)
                )
                if fires:
                    shown = ", ".join(f"{v:.4g}" for v in sorted(vals)[:5])
                    out.append(
                        f"{path}.{lv.severity.value} {lv.fire:g} fires on every {what} of the "
                        f"current book ({kind.value} now {shown})"
                    )
    return tuple(out)
