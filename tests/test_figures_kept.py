"""Figures kept only where something reads them (issue 12.6): the shell keeps no scope's
figures after its step; a transition that comes later without figures of its own (a ``for``
delay run out, a repeat) shows the scope's figures at the latest prices, computed from the
engine's portfolio when its message is built; the engine keeps one ratio per scope."""

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
from monitor.shell import persist
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


async def test_no_figures_outlive_their_step_and_a_late_transition_shows_the_latest(
    tmp_path: Path,
) -> None:
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
        assert service.risks.by_name == {}  # nothing kept after a step
        # 9,590: acct 479.5 / 590 = 0.8127 ≥ warning 0.8, pending for 30 s (a warning
        # waits ``for``); calm's price stayed in its band: its ratio is its first one,
        # 500 / 20,000
        clock.advance(1.0)
        assert await service.process([MarkPrice("generic", "BTC", 9_590.0)]) == []
        assert service.risks.by_name == {}  # not even for a scope with an alert
        assert service.engine.book.has_alerts(str(scenario.KEY))
        assert service.engine.ratios[scenario.KEY] == 479.5 / 590.0
        assert service.engine.ratios[CALM] == 500.0 / 20_000.0
        # 9,586 stays inside the band (0.8125 is nearer 0.8 than nothing): not evaluated
        evaluated = service.engine.evaluated
        clock.advance(1.0)
        assert await service.process([MarkPrice("generic", "BTC", 9_586.0)]) == []
        assert service.engine.evaluated == evaluated
        # 30 s later, no price: the timer fires it, with the figures at the latest price
        # (its last evaluation's were equity 590.00, maintenance 479.50). Without a sweep
        # slice: the new price owes its holders a sweep round, which would evaluate it
        clock.advance(30.0)
        step = service.engine.receive([], clock.now(), clock.monotonic(), sweep=False)
        await persist(
            store, step, service.channels, service.risks, clock.now(), engine=service.engine
        )
        (fired,) = step.transitions
        assert (fired.kind.value, fired.risk) == ("fired", None)
        (row,) = await outbox.items(store)
        assert "Scope generic:acct/cross: equity 586.00, maintenance 479.30" in row.body, row.body
        # back to 10,000: resolved
        clock.advance(1.0)
        await service.process([MarkPrice("generic", "BTC", 10_000.0)])
        assert not service.engine.book.has_alerts(str(scenario.KEY))
        assert service.risks.by_name == {}
    finally:
        await store.close()


def test_live_figures_are_the_steps_own_else_the_portfolios_and_none_for_what_is_not_held() -> None:
    from monitor.model.portfolio import Portfolio
    from monitor.shell import LiveFigures

    portfolio = Portfolio()
    portfolio.apply(account("acct", 1_000.0))
    portfolio.apply(MarkPrice("generic", "BTC", 9_000.0))
    name = "generic:acct/cross"
    own = portfolio.risk(ScopeKey("generic", "acct", "cross"), with_stress=False)
    assert own is not None
    figures = LiveFigures({"generic:other/cross": own}, portfolio)
    assert figures.get("generic:other/cross") is own  # the step's figures come first
    live = figures.get(name)
    assert live is not None and live.equity == 1_000.0 - 1_000.0  # 1 BTC down 1,000
    assert live.maintenance_margin == 0.05 * 9_000.0
    assert figures.get(name) is live  # computed once per step
    assert figures.get("generic:gone/cross") is None  # not held
    assert figures.get("generic:acct") is None  # an account, not a scope
    assert figures.get("feed:generic") is None
    # the venue's own ratio is a scope key but no pool: none, and no error
    assert figures.get("generic:acct/venue-ratio") is None
    assert portfolio.risk(ScopeKey("generic", "acct", "venue-ratio")) is None
    assert figures.get("not a subject at all") is None
    assert list(figures) == ["generic:other/cross"] and len(figures) == 1


def test_the_engine_keeps_inf_for_a_scope_past_zero_equity_and_nan_stays_unknown() -> None:
    from monitor.engine.core import latest_ratio
    from tests.alerts.helpers import scope

    assert latest_ratio(scope(None)) == math.inf  # positions, equity ≤ 0
    assert latest_ratio(scope(None, positions=())) is None  # nothing held, no ratio
    nan = latest_ratio(scope(math.nan))
    assert nan is not None and math.isnan(nan)
    assert latest_ratio(scope(0.25)) == 0.25
