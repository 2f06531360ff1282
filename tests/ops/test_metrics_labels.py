"""/metrics labels: a dYdX child subaccount and a Hyperliquid HIP-3 dex account carry the
label of the account the configuration names (its parent subaccount, its address), as the
alerts do; before, their ``label`` was empty. Real SQLite store, the store's own writers."""

from __future__ import annotations

from pathlib import Path

from monitor.model.events import AccountSnapshot
from monitor.model.instruments import MaintenanceSchedule
from monitor.model.portfolio import Portfolio
from monitor.model.positions import Position
from monitor.ops.metrics import StoreMetricsSource
from monitor.store import history
from monitor.store.db import open_store

ADDR = "0x" + "1" * 40
DYDX = "dydx1" + "q" * 38
NOW = 1_700_000_000.0


async def test_child_and_dex_accounts_carry_their_parents_label(tmp_path: Path) -> None:
    p = Portfolio()
    btc = Position("BTC", 1.0, 100.0, maintenance=MaintenanceSchedule.flat(0.1), mark_price=100.0)
    for venue, account in (
        ("hyperliquid", ADDR),
        ("hyperliquid", f"{ADDR}@xyz"),
        ("dydx", f"{DYDX}/0"),
        ("dydx", f"{DYDX}/128"),
    ):
        p.apply(AccountSnapshot(venue, account, 50.0, (btc,)))
    store = await open_store(tmp_path / "m.db")
    try:
        statuses = []
        for r in p.risks():
            doc = history.status_doc(r)
            doc["ts"] = NOW
            statuses.append((r.key, doc))
        await history.record(store, [], statuses)
        labels = {f"hyperliquid:{ADDR}": "Main desk", f"dydx:{DYDX}/0": "dYdX desk"}
        snap = await StoreMetricsSource(store, labels=labels, now=lambda: NOW).metrics_snapshot()
    finally:
        await store.close()
    got = {s.account: s.label for s in snap.scopes}
    assert got == {
        ADDR: "Main desk",
        f"{ADDR}@xyz": "Main desk @xyz",
        f"{DYDX}/0": "dYdX desk",
        f"{DYDX}/128": "dYdX desk /128",
    }
