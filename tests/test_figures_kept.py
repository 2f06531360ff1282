"""Figures kept only where something reads them (issue 12.6): the shell keeps a scope's full
figures after its step only while the scope has an alert, and a transition that comes later
without figures of its own (a ``for`` delay run out) still shows them; the engine keeps one
ratio per scope."""

from __future__ import annotations

import math
from pathlib import Path

from monitor.alerts.rules import parse_rules
from monitor.clock import FakeClock
from monitor.model.events import AccountSnapshot, MarkPrice
from monitor.model.instruments import MaintenanceSchedule
from monitor.model.positions import Position, ScopeKey
from monitor.notify.channels import parse_channels
from monitor.notify.sender import AppriseSender
from monitor.store import outbox
from monitor.store.db import open_store
from tests.notify import scenario
from tests.notify.pipeline import Pipeline

CALM = ScopeKey("generic", "calm", "cross")


def account(name: str, collateral: float) -> AccountSnapshot:
    """Long 1 BTC from 10,000, maintenance 5 % of notional, mark 10,000."""
    btc = Position(
        "BTC", 1.0, 10_000.0, maintenance=MaintenanceSchedule.flat(0.05), mark_price=10_000.0
    )
    return AccountSnapshot("generic", name, cross_collateral=collateral, positions=(btc,))


async def test_figures_outlive_their_step_only_for_scopes_with_an_alert(tmp_path: Path) -> None:
    clock = FakeClock(start=1_777_636_800.0)
    rules = parse_rules({**scenario.RULES_TABLE, "for": "30s"}, "t")
    (hook,) = parse_channels(
        {"hook": {"url": "json://127.0.0.1:9/x", "min_severity": "info"}},
        "t",
        env={},
        credentials_dir=None,
    )
    store = await open_store(tmp_path / "monitor.db")
    try:
        service = await Pipeline.start(
            store,
            rules,
            [hook],
            sender=AppriseSender(),
            clock=clock,
            accounts=(scenario.KEY.account_key, CALM.account_key),
        )
        # acct: 1,000 of collateral; calm: 20,000
        await service.process([account("acct", 1_000.0), account("calm", 20_000.0)])
        assert service.risks.by_name == {}  # no alert: no figures kept
        # 9,590: acct 479.5 / 590 = 0.8127 ≥ warning 0.8, pending for 30 s (a warning
        # waits ``for``); calm's price stayed in its band: its ratio is its first one,
        # 500 / 20,000
        clock.advance(1.0)
        assert await service.process([MarkPrice("generic", "BTC", 9_590.0)]) == []
        assert set(service.risks.by_name) == {str(scenario.KEY)}
        assert service.engine.ratios[scenario.KEY] == 479.5 / 590.0
        assert service.engine.ratios[CALM] == 500.0 / 20_000.0
        # 31 s later, no price: the timer fires it, with the figures of its last evaluation
        clock.advance(31.0)
        (fired,) = await service.tick()
        assert (fired.kind.value, fired.risk) == ("fired", None)
        (row,) = await outbox.items(store)
        assert "Scope generic:acct/cross: equity 590.00, maintenance 479.50" in row.body, row.body
        # back to 10,000: resolved, and its figures are dropped with the alert
        clock.advance(1.0)
        await service.process([MarkPrice("generic", "BTC", 10_000.0)])
        assert not service.engine.book.has_alerts(str(scenario.KEY))
        assert service.risks.by_name == {}
    finally:
        await store.close()


def test_the_engine_keeps_inf_for_a_scope_past_zero_equity_and_nan_stays_unknown() -> None:
    from monitor.engine.core import latest_ratio
    from tests.alerts.helpers import scope

    assert latest_ratio(scope(None)) == math.inf  # positions, equity ≤ 0
    assert latest_ratio(scope(None, positions=())) is None  # nothing held, no ratio
    nan = latest_ratio(scope(math.nan))
    assert nan is not None and math.isnan(nan)
    assert latest_ratio(scope(0.25)) == 0.25
