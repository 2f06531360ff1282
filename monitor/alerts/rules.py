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

Configuration (the ``[rules]`` TOML table, parsed by :mod:`monitor.config_rules`)::

    [rules]
    for = "60s"                  # a duration: seconds, or "90s", "5m", "2h", "1d"
    send_resolved = true
    [rules.repeat]
    info = "12h"
    warning = "2h"
    critical = "10m"
    [rules.margin_ratio]
    warning = 0.8                # fire threshold (fractions: 0.8 or "80%")
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

from collections.abc import Mapping
from dataclasses import dataclass, field
from enum import StrEnum

from monitor.units import parse_duration

__all__ = [
    "DEFAULT_HYSTERESIS",
    "DIRECTIONS",
    "POSITION_RULES",
    "SCOPE_RULES",
    "SEVERITIES",
    "AlertRules",
    "Direction",
    "Level",
    "RuleKind",
    "Severity",
    "ThresholdRule",
    "parse_duration",
    "parse_rules",
]


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
    ADL = "adl"
    """The venue auto-deleveraged a position (always critical)."""
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


def _configured_as(account: str) -> tuple[str, ...]:
    """The configured account ``account`` (``venue:account``) belongs to, if another."""
    if "@" in account:
        return (account.partition("@")[0],)
    if account.startswith("dydx:"):
        address, slash, number = account.rpartition("/")
        if slash and number.isdigit() and int(number) >= 128:
            return (f"{address}/{int(number) % 128}",)
    return ()


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
        """The rule that applies to ``account`` (``"venue:account"``): its override if any,
        else the override of the configured account it belongs to (a Hyperliquid HIP-3 dex
        account ``ADDR@dex`` → ``ADDR``; a dYdX child subaccount ``ADDR/N``, N ≥ 128 → its
        parent ``ADDR/(N mod 128)``)."""
        if account is not None and self.accounts:
            for name in (account, *_configured_as(account)):
                over = self.accounts.get(name)
                if over is not None and kind in over:
                    return over[kind]
        return self.thresholds.get(kind)

    def pending_for_rule(self, rule: ThresholdRule) -> float:
        return self.pending_for if rule.for_s is None else rule.for_s

    def repeat_for(self, severity: Severity) -> float:
        return self.repeat.get(severity, 3600.0)


# -- parsing (monitor.config_rules) ------------------------------------------------------------


def parse_rules(table: Mapping[str, object], source: str) -> AlertRules:
    """Parse a ``[rules]`` table: :func:`monitor.config_rules.parse_rules` (kept here for the
    callers that import it from this module)."""
    from monitor.config_rules import parse_rules as parse  # noqa: PLC0415 (it imports this module)

    return parse(table, source)
