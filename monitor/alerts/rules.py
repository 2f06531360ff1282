"""Alert rules and their configuration (pure).

A *threshold rule* watches one figure and has up to three levels (severities ``info``,
``warning``, ``critical``), each with a **fire** threshold and a **clear** threshold
(hysteresis): a level fires when the value crosses ``fire`` and stays active until it crosses
back over ``clear``. Direction says which side is bad:

======================  =========  ==========================================  =======
rule                    direction  value (units)                               subject
======================  =========  ==========================================  =======
margin_ratio            above      maintenance / equity (fraction, ≥ 1 liq.)   scope
liquidation_distance    below      |mark − liq. price| / mark (fraction)       position
equity                  below      equity (quote currency)                     scope
drawdown                above      (peak equity − equity) / peak (fraction)    scope
funding_cost            above      funding paid per day (quote, > 0 = pays)    scope
funding_cost_pct        above      funding paid per day / equity (fraction)    scope
funding_rate            above      |hourly rate| · 24 · 365 (fraction, APR)    position
funding_runway          below      hours until funding eats the headroom       scope
shock                   below      smallest market-wide move that liquidates   scope
outbox_backlog          above      undelivered outbox rows (count)             monitor
======================  =========  ==========================================  =======

Event rules: ``liquidated`` (a position vanished while its liquidation distance was ≤ ``near``,
or the venue said so; always critical), ``feed_stale`` (a feed is stale: ``stale_severity``;
down: critical) and ``delivery_failing`` (a channel's outbox rows expired undelivered).

Timing: ``for`` (seconds) is how long a non-critical level must hold before it fires
(critical never waits); ``repeat`` per severity is the re-notification interval while an alert
stays active; ``send_resolved`` sends a notice when an alert clears.

Configuration (the ``[rules]`` TOML table)::

    [rules]
    for = "60s"                  # seconds, or "90s", "5m", "2h", "1d"
    send_resolved = true
    [rules.repeat]
    info = "12h"
    warning = "2h"
    critical = "10m"
    [rules.margin_ratio]
    warning = 0.8                # fire threshold
    warning_clear = 0.75         # default: fire ∓ hysteresis·|fire|
    critical = 0.9
    hysteresis = 0.05            # relative, used for missing *_clear
    for = "30s"                  # overrides the global `for`
    enabled = true
    [rules.funding_rate.symbols.BTC]
    warning = 0.5                # per-instrument bound (funding_rate only)
    [rules.accounts."hyperliquid:0xabc".margin_ratio]
    warning = 0.6                # per-account override of a whole rule table

Every unknown key is rejected naming the nearest valid key.
"""

from __future__ import annotations

import difflib
import itertools
import math
import re
from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from enum import StrEnum

from monitor.errors import ConfigError


class Severity(StrEnum):
    INFO = "info"
    WARNING = "warning"
    CRITICAL = "critical"

    @property
    def rank(self) -> int:
        return _RANK[self]


_RANK: dict[str, int] = {"info": 0, "warning": 1, "critical": 2}
SEVERITIES: tuple[Severity, ...] = (Severity.INFO, Severity.WARNING, Severity.CRITICAL)


class Direction(StrEnum):
    ABOVE = "above"
    """Bad when the value is high: fires at value ≥ fire, clears at value ≤ clear."""
    BELOW = "below"
    """Bad when the value is low: fires at value ≤ fire, clears at value ≥ clear."""


class RuleKind(StrEnum):
    MARGIN_RATIO = "margin_ratio"
    LIQUIDATION_DISTANCE = "liquidation_distance"
    EQUITY = "equity"
    DRAWDOWN = "drawdown"
    FUNDING_COST = "funding_cost"
    FUNDING_COST_PCT = "funding_cost_pct"
    FUNDING_RATE = "funding_rate"
    FUNDING_RUNWAY = "funding_runway"
    SHOCK = "shock"
    OUTBOX_BACKLOG = "outbox_backlog"
    LIQUIDATED = "liquidated"
    FEED_STALE = "feed_stale"
    DELIVERY_FAILING = "delivery_failing"
    MARGIN_UNKNOWN = "margin_unknown"
    """A scope whose figures are not finite: the margin cannot be computed (always critical)."""
    BAD_EVENT = "bad_event"
    """An event of an account could not be applied and was quarantined (always critical)."""


DIRECTIONS: dict[RuleKind, Direction] = {
    RuleKind.MARGIN_RATIO: Direction.ABOVE,
    RuleKind.LIQUIDATION_DISTANCE: Direction.BELOW,
    RuleKind.EQUITY: Direction.BELOW,
    RuleKind.DRAWDOWN: Direction.ABOVE,
    RuleKind.FUNDING_COST: Direction.ABOVE,
    RuleKind.FUNDING_COST_PCT: Direction.ABOVE,
    RuleKind.FUNDING_RATE: Direction.ABOVE,
    RuleKind.FUNDING_RUNWAY: Direction.BELOW,
    RuleKind.SHOCK: Direction.BELOW,
    RuleKind.OUTBOX_BACKLOG: Direction.ABOVE,
}
"""The threshold rules and which side of their thresholds is bad."""

POSITION_RULES: frozenset[RuleKind] = frozenset(
    {RuleKind.LIQUIDATION_DISTANCE, RuleKind.FUNDING_RATE}
)
SCOPE_RULES: tuple[RuleKind, ...] = (
    RuleKind.MARGIN_RATIO,
    RuleKind.EQUITY,
    RuleKind.DRAWDOWN,
    RuleKind.FUNDING_COST,
    RuleKind.FUNDING_COST_PCT,
    RuleKind.FUNDING_RUNWAY,
    RuleKind.SHOCK,
)

DEFAULT_HYSTERESIS = 0.05


@dataclass(frozen=True, slots=True)
class Level:
    """One severity of a threshold rule: fire at ``fire``, stay active until ``clear``."""

    severity: Severity
    fire: float
    clear: float


@dataclass(frozen=True, slots=True)
class ThresholdRule:
    """A threshold rule; ``levels`` in ascending severity (possibly empty: rule inactive).

    ``for_s``: pending time for non-critical levels (None: the global ``for``).
    ``symbols``: per-instrument levels (funding_rate).
    """

    kind: RuleKind
    levels: tuple[Level, ...]
    enabled: bool = True
    for_s: float | None = None
    symbols: Mapping[str, tuple[Level, ...]] = field(default_factory=dict)

    @property
    def direction(self) -> Direction:
        return DIRECTIONS[self.kind]

    def levels_for(self, symbol: str | None) -> tuple[Level, ...]:
        if not self.enabled:
            return ()
        if symbol is not None and symbol in self.symbols:
            return self.symbols[symbol]
        return self.levels

    def level(self, severity: Severity, symbol: str | None = None) -> Level | None:
        for lv in self.levels_for(symbol):
            if lv.severity is severity:
                return lv
        return None


@dataclass(frozen=True, slots=True)
class AlertRules:
    """Every rule, global and per account (``"venue:account"``), plus timing.

    Durations are seconds.
    """

    thresholds: Mapping[RuleKind, ThresholdRule]
    accounts: Mapping[str, Mapping[RuleKind, ThresholdRule]] = field(default_factory=dict)
    pending_for: float = 60.0
    repeat: Mapping[Severity, float] = field(
        default_factory=lambda: {
            Severity.INFO: 12 * 3600.0,
            Severity.WARNING: 2 * 3600.0,
            Severity.CRITICAL: 600.0,
        }
    )
    send_resolved: bool = True
    liquidated_enabled: bool = True
    liquidated_near: float = 0.02
    feed_stale_enabled: bool = True
    feed_stale_severity: Severity = Severity.WARNING
    #: seconds a feed must stay stale or down before its alert fires (the daemon sets it from
    #: ``daemon.stale_alert_after``); held alerts are held at once regardless
    feed_stale_for: float = 0.0
    delivery_failing_enabled: bool = True
    delivery_failing_severity: Severity = Severity.CRITICAL

    @classmethod
    def default(cls) -> AlertRules:
        """Defaults that make sense out of the box (see the module table for units)."""
        w, c = Severity.WARNING, Severity.CRITICAL
        t = {
            RuleKind.MARGIN_RATIO: ThresholdRule(
                RuleKind.MARGIN_RATIO, (Level(w, 0.8, 0.75), Level(c, 0.9, 0.85))
            ),
            RuleKind.LIQUIDATION_DISTANCE: ThresholdRule(
                RuleKind.LIQUIDATION_DISTANCE, (Level(w, 0.10, 0.12), Level(c, 0.05, 0.06))
            ),
            RuleKind.EQUITY: ThresholdRule(RuleKind.EQUITY, ()),
            RuleKind.DRAWDOWN: ThresholdRule(
                RuleKind.DRAWDOWN, (Level(w, 0.25, 0.20), Level(c, 0.50, 0.45))
            ),
            RuleKind.FUNDING_COST: ThresholdRule(RuleKind.FUNDING_COST, ()),
            RuleKind.FUNDING_COST_PCT: ThresholdRule(
                RuleKind.FUNDING_COST_PCT, (Level(w, 0.01, 0.008),)
            ),
            RuleKind.FUNDING_RATE: ThresholdRule(RuleKind.FUNDING_RATE, (Level(w, 1.0, 0.9),)),
            RuleKind.FUNDING_RUNWAY: ThresholdRule(
                RuleKind.FUNDING_RUNWAY, (Level(w, 72.0, 84.0), Level(c, 24.0, 30.0))
            ),
            RuleKind.SHOCK: ThresholdRule(
                RuleKind.SHOCK, (Level(w, 0.10, 0.12), Level(c, 0.05, 0.06))
            ),
            RuleKind.OUTBOX_BACKLOG: ThresholdRule(
                RuleKind.OUTBOX_BACKLOG, (Level(w, 50.0, 40.0),), for_s=0.0
            ),
        }
        return cls(thresholds=t)

    def rule(self, kind: RuleKind, account: str | None = None) -> ThresholdRule | None:
        """The rule that applies to ``account`` (``"venue:account"``): its override if any."""
        if account is not None:
            over = self.accounts.get(account)
            if over is not None and kind in over:
                return over[kind]
        return self.thresholds.get(kind)

    def pending_for_rule(self, rule: ThresholdRule) -> float:
        return self.pending_for if rule.for_s is None else rule.for_s

    def repeat_for(self, severity: Severity) -> float:
        return self.repeat.get(severity, 3600.0)


# -- parsing --------------------------------------------------------------------------------

_DURATION = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*(ms|s|m|h|d)?\s*$")
_UNIT = {"ms": 0.001, "s": 1.0, "m": 60.0, "h": 3600.0, "d": 86400.0, None: 1.0}

_TOP_KEYS = (
    "for",
    "send_resolved",
    "repeat",
    "accounts",
    "liquidated",
    "feed_stale",
    "delivery_failing",
    *(k.value for k in DIRECTIONS),
)
_RULE_KEYS = (
    "info",
    "warning",
    "critical",
    "info_clear",
    "warning_clear",
    "critical_clear",
    "hysteresis",
    "for",
    "enabled",
    "symbols",
)
_LEVEL_KEYS = tuple(k for k in _RULE_KEYS if k not in ("for", "enabled", "symbols"))


def parse_duration(value: object, source: str, path: str) -> float:
    """Seconds from a number (seconds) or a string like ``"90s"``, ``"5m"``, ``"2h"``, ``"1d"``."""
    if isinstance(value, bool):
        raise ConfigError(source, path, "expected a duration like 30, '90s', '5m' or '2h'")
    if isinstance(value, int | float):
        secs = float(value)
    elif isinstance(value, str) and (m := _DURATION.match(value)):
        secs = float(m.group(1)) * _UNIT[m.group(2)]
    else:
        raise ConfigError(
            source, path, f"expected a duration like 30, '90s', '5m' or '2h', got {value!r}"
        )
    if not math.isfinite(secs) or secs < 0:
        raise ConfigError(source, path, f"a duration must be ≥ 0, got {value!r}")
    return secs


def _unknown(key: str, valid: tuple[str, ...], source: str, path: str) -> ConfigError:
    near = difflib.get_close_matches(key, valid, n=1, cutoff=0.5)
    hint = f"; did you mean {near[0]!r}?" if near else f"; valid keys: {', '.join(valid)}"
    return ConfigError(source, path, f"unknown key {key!r}{hint}")


def _check_keys(
    table: Mapping[str, object], valid: tuple[str, ...], source: str, prefix: str
) -> None:
    for key in table:
        if key not in valid:
            raise _unknown(key, valid, source, f"{prefix}.{key}")


def _table(value: object, source: str, path: str) -> Mapping[str, object]:
    if not isinstance(value, Mapping):
        raise ConfigError(source, path, f"expected a table, got {type(value).__name__}")
    return value


def _number(value: object, source: str, path: str) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise ConfigError(source, path, f"expected a number, got {value!r}")
    f = float(value)
    if not math.isfinite(f):
        raise ConfigError(source, path, f"expected a finite number, got {value!r}")
    return f


def _bool(value: object, source: str, path: str) -> bool:
    if not isinstance(value, bool):
        raise ConfigError(source, path, f"expected true or false, got {value!r}")
    return value


def _severity(value: object, source: str, path: str) -> Severity:
    if not isinstance(value, str) or value not in _RANK:
        raise ConfigError(source, path, f"expected one of info, warning, critical, got {value!r}")
    return Severity(value)


def _levels(
    table: Mapping[str, object],
    kind: RuleKind,
    base: tuple[Level, ...],
    source: str,
    path: str,
) -> tuple[Level, ...]:
    """Levels of one rule table; a table naming any fire threshold replaces ``base`` whole."""
    direction = DIRECTIONS[kind]
    hyst = DEFAULT_HYSTERESIS
    if "hysteresis" in table:
        hyst = _number(table["hysteresis"], source, f"{path}.hysteresis")
        if not 0.0 <= hyst < 1.0:
            raise ConfigError(source, f"{path}.hysteresis", "expected a fraction in [0, 1)")
    named = [s for s in SEVERITIES if s.value in table]
    if not named:
        for s in SEVERITIES:
            if f"{s.value}_clear" in table:
                raise ConfigError(
                    source, f"{path}.{s.value}_clear", f"set {s.value} (the fire threshold) too"
                )
        if "hysteresis" in table:
            return tuple(
                Level(lv.severity, lv.fire, _default_clear(lv.fire, direction, hyst)) for lv in base
            )
        return base
    out: list[Level] = []
    for s in SEVERITIES:
        clear_key = f"{s.value}_clear"
        if s.value not in table:
            if clear_key in table:
                raise ConfigError(source, f"{path}.{clear_key}", f"set {s.value} too")
            continue
        fire = _number(table[s.value], source, f"{path}.{s.value}")
        if clear_key in table:
            clear = _number(table[clear_key], source, f"{path}.{clear_key}")
            bad = clear > fire if direction is Direction.ABOVE else clear < fire
            if bad:
                side = "at or below" if direction is Direction.ABOVE else "at or above"
                raise ConfigError(
                    source,
                    f"{path}.{clear_key}",
                    f"the clear threshold must be {side} the fire threshold {fire}"
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
                f"{hi.severity.value} ({hi.fire}) must be worse than {lo.severity.value}"
                f" ({lo.fire}): {kind.value} is bad when {direction.value}",
            )
    return tuple(out)


def _default_clear(fire: float, direction: Direction, hyst: float) -> float:
    step = abs(fire) * hyst
    return fire - step if direction is Direction.ABOVE else fire + step


def _rule(
    value: object, kind: RuleKind, base: ThresholdRule, source: str, path: str
) -> ThresholdRule:
    table = _table(value, source, path)
    valid = _RULE_KEYS if kind is RuleKind.FUNDING_RATE else _RULE_KEYS[:-1]
    _check_keys(table, valid, source, path)
    levels = _levels(table, kind, base.levels, source, path)
    enabled = _bool(table["enabled"], source, f"{path}.enabled") if "enabled" in table else True
    for_s = base.for_s
    if "for" in table:
        for_s = parse_duration(table["for"], source, f"{path}.for")
    symbols: dict[str, tuple[Level, ...]] = dict(base.symbols)
    if "symbols" in table:
        sym_table = _table(table["symbols"], source, f"{path}.symbols")
        for sym, sub in sym_table.items():
            sub_path = f"{path}.symbols.{sym}"
            sub_t = _table(sub, source, sub_path)
            _check_keys(sub_t, _LEVEL_KEYS, source, sub_path)
            if not any(s.value in sub_t for s in SEVERITIES):
                raise ConfigError(source, sub_path, "set at least one of info, warning, critical")
            symbols[sym] = _levels(sub_t, kind, levels, source, sub_path)
    return ThresholdRule(kind, levels, enabled=enabled, for_s=for_s, symbols=symbols)


def _rule_tables(
    table: Mapping[str, object],
    base: Mapping[RuleKind, ThresholdRule],
    source: str,
    prefix: str,
) -> dict[RuleKind, ThresholdRule]:
    out: dict[RuleKind, ThresholdRule] = {}
    for kind in DIRECTIONS:
        if kind.value in table:
            out[kind] = _rule(table[kind.value], kind, base[kind], source, f"{prefix}.{kind.value}")
    return out


def _event_rule(value: object, source: str, path: str) -> tuple[bool | None, Severity | None]:
    et = _table(value, source, path)
    _check_keys(et, ("enabled", "severity"), source, path)
    enabled = _bool(et["enabled"], source, f"{path}.enabled") if "enabled" in et else None
    sev = _severity(et["severity"], source, f"{path}.severity") if "severity" in et else None
    return enabled, sev


def parse_rules(table: Mapping[str, object], source: str) -> AlertRules:
    """Parse the ``[rules]`` table of ``source`` on top of :meth:`AlertRules.default`.

    Raises :class:`ConfigError` with the key path (``rules.margin_ratio.warning``) and the
    problem; unknown keys are rejected naming the nearest valid key.
    """
    d = AlertRules.default()
    _check_keys(table, _TOP_KEYS, source, "rules")
    thresholds = dict(d.thresholds)
    thresholds.update(_rule_tables(table, d.thresholds, source, "rules"))
    pending_for = d.pending_for
    if "for" in table:
        pending_for = parse_duration(table["for"], source, "rules.for")
    send_resolved = d.send_resolved
    if "send_resolved" in table:
        send_resolved = _bool(table["send_resolved"], source, "rules.send_resolved")
    repeat = dict(d.repeat)
    if "repeat" in table:
        rt = _table(table["repeat"], source, "rules.repeat")
        _check_keys(rt, tuple(s.value for s in SEVERITIES), source, "rules.repeat")
        for key, val in rt.items():
            secs = parse_duration(val, source, f"rules.repeat.{key}")
            if secs <= 0:
                raise ConfigError(source, f"rules.repeat.{key}", "a repeat interval must be > 0")
            repeat[Severity(key)] = secs
    rules = replace(
        d,
        thresholds=thresholds,
        pending_for=pending_for,
        send_resolved=send_resolved,
        repeat=repeat,
    )
    if "liquidated" in table:
        lt = _table(table["liquidated"], source, "rules.liquidated")
        _check_keys(lt, ("enabled", "near"), source, "rules.liquidated")
        if "enabled" in lt:
            rules = replace(
                rules, liquidated_enabled=_bool(lt["enabled"], source, "rules.liquidated.enabled")
            )
        if "near" in lt:
            near = _number(lt["near"], source, "rules.liquidated.near")
            if not 0.0 <= near < 1.0:
                raise ConfigError(source, "rules.liquidated.near", "expected a fraction in [0, 1)")
            rules = replace(rules, liquidated_near=near)
    if "feed_stale" in table:
        enabled, sev = _event_rule(table["feed_stale"], source, "rules.feed_stale")
        if enabled is not None:
            rules = replace(rules, feed_stale_enabled=enabled)
        if sev is not None:
            rules = replace(rules, feed_stale_severity=sev)
    if "delivery_failing" in table:
        enabled, sev = _event_rule(table["delivery_failing"], source, "rules.delivery_failing")
        if enabled is not None:
            rules = replace(rules, delivery_failing_enabled=enabled)
        if sev is not None:
            rules = replace(rules, delivery_failing_severity=sev)
    if "accounts" in table:
        at = _table(table["accounts"], source, "rules.accounts")
        accounts: dict[str, dict[RuleKind, ThresholdRule]] = {}
        for acct, sub in at.items():
            path = f"rules.accounts.{acct}"
            if ":" not in acct:
                raise ConfigError(source, path, "an account is named 'venue:account'")
            st = _table(sub, source, path)
            _check_keys(st, tuple(k.value for k in DIRECTIONS), source, path)
            accounts[acct] = _rule_tables(st, thresholds, source, path)
        rules = replace(rules, accounts=accounts)
    return rules
