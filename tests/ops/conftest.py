"""A real SQLite store filled the way the daemon fills it (through the store's own writers):
two scopes, feed health, alert state, an outbox backlog and an hour of risk history."""

from __future__ import annotations

import asyncio
import math
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from monitor.alerts.engine import AlertRecord, AlertState, AlertStatus
from monitor.alerts.rules import Severity
from monitor.margin.risk import ScopeRisk
from monitor.model.events import AccountSnapshot, FeedState, FeedStatus
from monitor.model.instruments import MaintenanceSchedule
from monitor.model.portfolio import Portfolio
from monitor.model.positions import Position, ScopeKey
from monitor.store import alert_state, history, outbox
from monitor.store.db import Store, open_store
from tests.ops.botapi import BotApi

#: the store's "now" (epoch s): 2023-11-14T22:13:20Z
NOW = 1_700_000_000.0
HEALTHY = "generic:alice/cross"
BROKE = "generic:bob/cross"


def risk(account: str, collateral: float, mark: float = 100.0, rate: float = 0.5) -> ScopeRisk:
    """One BTC long of size 1 entered at 100, maintenance ``rate`` of notional (flat), so at
    mark 100 with the default rate: maintenance = 1·100·0.5 = 50 and equity = collateral."""
    p = Portfolio()
    pos = Position("BTC", 1.0, 100.0, maintenance=MaintenanceSchedule.flat(rate), mark_price=mark)
    p.apply(AccountSnapshot("generic", account, collateral, (pos,)))
    r = p.risk(ScopeKey("generic", account, "cross"))
    assert r is not None
    return r


def dip() -> list[tuple[float, float]]:
    """An hour of (time, BTC mark), one a minute: 100 → 90 at half past → 100.

    With collateral 20 and a 10 % maintenance rate: equity = 20 + (m − 100) = m − 80,
    MM = 0.1·m, ratio = 0.1·m / (m − 80): 10 / 20 = 50 % at 100, 9 / 10 = 90 % at 90;
    liquidation where m − 80 = 0.1·m, m = 88.89, so the distance is 11.1 % at 100, 1.23 % at 90.
    """
    return [(NOW - 3600.0 + 60.0 * i, 100.0 - 10.0 * math.sin(math.pi * i / 60)) for i in range(61)]


@dataclass
class Filled:
    store: Store
    path: Path


async def fill(store: Store) -> None:
    alice = risk("alice", 1000.0)  # equity 1000, MM 50, ratio 50/1000 = 0.05
    bob = risk("bob", -5.0)  # equity -5: liquidatable, ratio unknown
    statuses = []
    for r in (alice, bob):
        doc = history.status_doc(r, ["critical:margin_ratio"] if r is bob else [])
        doc["ts"] = NOW - 1.0
        statuses.append((r.key, doc))
    samples = [history.Sample.of(risk("alice", 20.0, m, 0.1), t) for t, m in dip()]
    await history.record(store, samples, statuses)
    await history.record_feeds(
        store,
        [
            FeedStatus("hyperliquid", "activeAssetCtx:BTC", FeedState.LIVE),
            FeedStatus("dydx", "v4_markets", FeedState.STALE, "silent 40s"),
        ],
        {"hyperliquid": NOW - 2.0, "dydx": NOW - 45.0},
        NOW,
    )
    alerts = {
        "a": AlertRecord(
            "a", "margin_ratio", BROKE, "generic:bob", AlertStatus.FIRING, Severity.CRITICAL, NOW
        ),
        "b": AlertRecord(
            "b", "shock", BROKE, "generic:bob", AlertStatus.FIRING, Severity.CRITICAL, NOW
        ),
        "c": AlertRecord(
            "c", "shock", HEALTHY, "generic:alice", AlertStatus.FIRING, Severity.CRITICAL, NOW
        ),
        "d": AlertRecord(
            "d", "feed_stale", "feed:dydx", "feed:dydx", AlertStatus.FIRING, Severity.WARNING, NOW
        ),
        "e": AlertRecord(  # pending: not firing yet, not counted
            "e", "drawdown", HEALTHY, "generic:alice", AlertStatus.PENDING, Severity.WARNING, NOW
        ),
    }
    async with store.transaction() as conn:
        await alert_state.save(conn, AlertState(), AlertState(alerts=alerts), NOW)
        await outbox.enqueue(
            conn,
            [
                outbox.OutboundMessage(
                    f"m{i}", ch, "generic:bob", "critical", "t", "b", "text", "failure", created
                )
                for i, (ch, created) in enumerate(
                    [("tg", NOW - 300.0), ("tg", NOW - 20.0), ("mail", NOW - 5.0)]
                )
            ],
        )


def filled_store(path: Path) -> Path:
    """A store file at ``path`` holding :func:`fill`'s rows (for commands run on it)."""

    async def make() -> None:
        s = await open_store(path)
        try:
            await fill(s)
        finally:
            await s.close()

    asyncio.run(make())
    return path


@pytest.fixture
async def filled(tmp_path: Path) -> AsyncIterator[Filled]:
    path = tmp_path / "monitor.sqlite3"
    store = await open_store(path)
    await fill(store)
    yield Filled(store, path)
    await store.close()


@pytest.fixture
async def api() -> AsyncIterator[BotApi]:
    """The Telegram Bot API stand-in on 127.0.0.1, started and stopped around a test."""
    srv = BotApi()
    await srv.start()
    yield srv
    await srv.stop()
