"""Accounts whose alert levels are equal share one :class:`AccountLevels` in the engine (a copy
an account held ~57 B a position at 20,000 accounts); an account with an override of its own
keeps its own levels, and its bands follow them."""

from __future__ import annotations

import dataclasses

from monitor.alerts.rules import Level, RuleKind, Severity, ThresholdRule
from monitor.alerts.thresholds import account_levels
from monitor.model.ids import ScopeKey
from tests.engine.helpers import T0, VENUE, engine, long_btc, rules, snapshot


def test_accounts_without_an_override_share_their_levels_and_an_override_keeps_its_own() -> None:
    over = ThresholdRule(RuleKind.MARGIN_RATIO, (Level(Severity.WARNING, 0.6, 0.55),))
    r = dataclasses.replace(rules(), accounts={f"{VENUE}:a1": {RuleKind.MARGIN_RATIO: over}})
    eng, keys = engine(3, r=r)
    # each account: 1 BTC long at 100 with 50 cash: equity 50, maintenance 1 → ratio 0.02
    eng.receive([snapshot(f"a{i}", 50.0, long_btc(50.0)) for i in range(3)], T0, 0.0)
    for k in keys:
        assert eng.portfolio.armed(ScopeKey(k.venue, k.account, "cross")), k
    shared, own = eng._levels[f"{VENUE}:a0"], eng._levels[f"{VENUE}:a1"]
    assert eng._levels[f"{VENUE}:a2"] is shared
    assert shared == account_levels(r, f"{VENUE}:a0")
    assert own == account_levels(r, f"{VENUE}:a1") and own.margin_ratio == (0.55, 0.6)
    assert own != shared
