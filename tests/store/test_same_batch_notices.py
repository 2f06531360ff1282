"""Two notices of one subject in one batch (two ADL fills of one position, two bad events of
one account) are two rows of the alert history, each with its own detail: a transition's id
is the history's primary key, and a second row with the first one's id was ignored."""

from __future__ import annotations

from pathlib import Path

from monitor.alerts.engine import AlertState, Observation, evaluate
from monitor.alerts.rules import AlertRules
from monitor.model.positions import ScopeKey
from monitor.store import alert_state
from monitor.store.db import open_store

T0 = 1_800_000_000.0
KEY = ScopeKey("hyperliquid", "0xabc", "cross")


async def test_two_adl_fills_in_one_batch_are_two_history_rows(tmp_path: Path) -> None:
    obs = Observation(
        deleveraged=[
            (KEY, "BTC", "ADL fill 0.4 BTC @ 50000"),
            (KEY, "BTC", "ADL fill 0.6 BTC @ 49000"),
        ],
        quarantined=[("hyperliquid:0xabc", "bad fill 1"), ("hyperliquid:0xabc", "bad fill 2")],
    )
    ts, _ = evaluate(obs, T0, AlertState(), AlertRules.default())
    assert len(ts) == 4
    assert len({t.id for t in ts}) == 4  # one id each: the history's primary key
    store = await open_store(tmp_path / "m.db")
    try:
        async with store.transaction() as conn:
            await alert_state.record_transitions(conn, ts)
        hist = await alert_state.history(store)
        assert sorted(str(h["detail"]) for h in hist) == [
            "ADL fill 0.4 BTC @ 50000",
            "ADL fill 0.6 BTC @ 49000",
            "bad fill 1",
            "bad fill 2",
        ]
    finally:
        await store.close()
