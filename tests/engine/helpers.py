"""Builders for the engine tests: a "generic" venue (no instrument metadata needed), manual
positions with a flat maintenance rate, and rules with only the alerts a test looks at."""

from __future__ import annotations

from dataclasses import replace

from monitor.alerts.rules import AlertRules, RuleKind, ThresholdRule
from monitor.engine import Engine
from monitor.model.events import AccountSnapshot
from monitor.model.instruments import MaintenanceSchedule
from monitor.model.positions import AccountKey, Position

VENUE = "generic"
T0 = 1_700_000_000.0


def rules(*keep: RuleKind, **kw: object) -> AlertRules:
    """The default rules with only ``keep`` active (default: margin ratio, whose defaults
    are warning 0.8 / clear 0.75, critical 0.9 / clear 0.85)."""
    d = AlertRules.default()
    keep = keep or (RuleKind.MARGIN_RATIO,)
    t = {k: (v if k in keep else ThresholdRule(k, ())) for k, v in d.thresholds.items()}
    return replace(d, thresholds=t, **kw)  # type: ignore[arg-type]


def long_btc(cash: float, *, size: float = 1.0, entry: float = 100.0) -> Position:
    """``size`` BTC long at ``entry``, maintenance 1 % flat: at price p, equity = cash +
    size·(p − entry) and maintenance = 0.01·size·p."""
    return Position(
        "BTC",
        size,
        entry,
        maintenance=MaintenanceSchedule.flat(0.01),
        mark_price=entry,
    )


def snapshot(account: str, cash: float, *positions: Position) -> AccountSnapshot:
    return AccountSnapshot(VENUE, account, cash, tuple(positions))


def engine(
    accounts: int = 0, *, r: AlertRules | None = None, **kw: object
) -> tuple[Engine, list[AccountKey]]:
    keys = [AccountKey(VENUE, f"a{i}") for i in range(accounts)]
    return Engine(r or rules(), accounts=keys, **kw), keys  # type: ignore[arg-type]
