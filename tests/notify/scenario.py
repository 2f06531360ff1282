"""A one-position account and a price path, shared by the end-to-end tests (and the child
process of the SIGKILL test).

Venue ``generic``: cross collateral 1000, long 1 BTC from 10000, maintenance 5 % of notional.
At price p: equity = 1000 + (p − 10000), maintenance = 0.05·p, margin ratio = 0.05·p / equity.

=======  ======  ===========  ==============================================
price    equity  maintenance  margin ratio
=======  ======  ===========  ==============================================
10000    1000    500          0.5
9700     700     485          0.6929 (below warning 0.8)
9500     500     475          0.95   (≥ critical 0.9: fires at once)
9520     520     476          0.9154 (> critical clear 0.85: still firing)
9700     700     485          0.6929 (≤ warning clear 0.75: resolved)
=======  ======  ===========  ==============================================
"""

from __future__ import annotations

from collections.abc import Mapping

from monitor.alerts.rules import AlertRules, parse_rules
from monitor.model.events import AccountSnapshot, MarkPrice
from monitor.model.instruments import MaintenanceSchedule
from monitor.model.positions import Position, ScopeKey

VENUE, ACCOUNT = "generic", "acct"
KEY = ScopeKey(VENUE, ACCOUNT, "cross")
PATH = (10000.0, 9700.0, 9500.0, 9520.0, 9700.0, 10000.0)

RULES_TABLE: Mapping[str, object] = {
    "for": 0,
    **{
        name: {"enabled": False}
        for name in (
            "liquidation_distance",
            "drawdown",
            "funding_cost_pct",
            "funding_rate",
            "funding_runway",
            "shock",
        )
    },
}


def rules() -> AlertRules:
    """Defaults with only the margin-ratio rule (warning 0.8/0.75, critical 0.9/0.85)."""
    return parse_rules(RULES_TABLE, "scenario")


def snapshot() -> AccountSnapshot:
    """The account: long 1 BTC from 10000, 1000 of collateral, mark 10000."""
    return AccountSnapshot(
        VENUE,
        ACCOUNT,
        cross_collateral=1000.0,
        positions=(
            Position(
                "BTC",
                1.0,
                10000.0,
                maintenance=MaintenanceSchedule.flat(0.05),
                mark_price=10000.0,
            ),
        ),
    )


def price(px: float) -> MarkPrice:
    return MarkPrice(VENUE, "BTC", px)
