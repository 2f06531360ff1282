"""Alert state persisted: a restart does not re-fire what already fired."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

from monitor.alerts.engine import AlertState, Observation, evaluate
from monitor.alerts.rules import AlertRules
from monitor.model.events import FeedState, FeedStatus
from monitor.store import alert_state
from monitor.store.db import open_store
from tests.alerts.helpers import scope

T0 = 1_700_000_000.0


async def test_saved_state_reloads_and_does_not_refire(tmp_path: Path) -> None:
    rules = replace(AlertRules.default(), pending_for=0.0)
    stale = FeedStatus("dydx_v4", "markets", FeedState.STALE)
    ts, state = evaluate(
        Observation(risks=[scope(0.95, equity=1000.0)], feeds=[stale]), T0, AlertState(), rules
    )
    assert {t.rule for t in ts} == {"margin_ratio", "feed_stale"}
    path = tmp_path / "m.db"
    store = await open_store(path)
    async with store.transaction() as conn:
        await alert_state.save(conn, AlertState(), state, T0)
        await alert_state.record_transitions(conn, ts)
    await store.close()

    store = await open_store(path)
    try:
        loaded = await alert_state.load(store)
        assert loaded.alerts == state.alerts
        assert loaded.peaks == state.peaks and loaded.stale == state.stale
        # same figures a minute later: nothing new (repeat is 10 min for critical)
        ts2, after = evaluate(Observation(risks=[scope(0.95)]), T0 + 60, loaded, rules)
        assert ts2 == []
        # recovery resolves, and the saved difference deletes the row
        ts3, resolved = evaluate(Observation(risks=[scope(0.1)]), T0 + 120, after, rules)
        assert [t.kind.value for t in ts3] == ["resolved"]
        async with store.transaction() as conn:
            await alert_state.save(conn, after, resolved, T0 + 120)
            await alert_state.record_transitions(conn, ts3)
        reloaded = await alert_state.load(store)
        assert set(reloaded.alerts) == {"feed_stale|feed:dydx_v4/markets"}
        hist = await alert_state.history(store)
        assert [h["kind"] for h in hist] == ["resolved", "fired", "fired"]
        assert await alert_state.prune_history(store, before=T0 + 1) == 2  # the two fires
        assert [h["kind"] for h in await alert_state.history(store)] == ["resolved"]
    finally:
        await store.close()
