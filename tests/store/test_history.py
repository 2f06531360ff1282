"""Risk history, scope status and feed health in a real SQLite file."""

from __future__ import annotations

import asyncio
import tempfile
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from monitor.model.events import AccountSnapshot, FeedState, FeedStatus, FundingPayment
from monitor.model.instruments import MaintenanceSchedule
from monitor.model.portfolio import Portfolio
from monitor.model.positions import Position, ScopeKey
from monitor.schema import Text
from monitor.store import history
from monitor.store.db import open_store


def _risk(equity_collateral: float = 1000.0):  # type: ignore[no-untyped-def]
    p = Portfolio()
    pos = Position("BTC", 1.0, 100.0, maintenance=MaintenanceSchedule.flat(0.5), mark_price=100.0)
    p.apply(AccountSnapshot("generic", "a", equity_collateral, (pos,)))
    r = p.risk(ScopeKey("generic", "a", "cross"))
    assert r is not None
    return r


def test_sampler_samples_on_interval_and_on_significant_change() -> None:
    s = history.Sampler(interval=60.0, change=0.05)
    r = _risk(1000.0)  # MM 50 / equity 1000 = 5 %
    assert s.due(r, 0.0)  # first sight
    s.taken(history.Sample.of(r, 0.0))
    assert not s.due(r, 30.0)
    assert s.due(r, 60.0)
    moved = _risk(500.0)  # 50 / 500 = 10 %: moved 5 points
    assert s.due(moved, 10.0)
    small = _risk(900.0)  # 50 / 900 = 5.6 %: moved 0.6 point
    assert not s.due(small, 10.0)


async def test_samples_status_feeds_and_funding_round_trip(tmp_path: Path) -> None:
    store = await open_store(tmp_path / "s.sqlite3")
    try:
        r = _risk()
        doc = history.status_doc(r, ["warning:margin_ratio"])
        doc["ts"] = 100.0
        await history.record(
            store, [history.Sample.of(r, 100.0), history.Sample.of(r, 200.0)], [(r.key, doc)]
        )
        got = await history.read_history(store, str(r.key), 150.0)
        assert [s.ts for s in got] == [200.0]
        assert got[0].margin_ratio == pytest.approx(0.05)
        assert await history.scopes(store) == [str(r.key)]
        await history.record_feeds(
            store,
            [FeedStatus("hyperliquid", "activeAssetCtx:BTC", FeedState.STALE, "silent")],
            {"hyperliquid": 90.0},
            100.0,
        )
        await history.record_funding(
            store,
            [
                FundingPayment("hyperliquid", "0xa", "BTC", -1.5, 0.0001, ts_event=10.0),
                FundingPayment("hyperliquid", "0xa", "BTC", -1.5, 0.0001, ts_event=10.0),  # again
                FundingPayment("hyperliquid", "0xa", "BTC", -0.5, 0.0001, ts_event=20.0),
            ],
        )
        await history.set_daemon_status(store, {"pid": 1, "summary": "ok"}, 5.0)
        view = await history.read_status(store)
        assert view.daemon == {"pid": 1, "summary": "ok"}
        (scope,) = view.scopes
        assert scope["active_alerts"] == ["warning:margin_ratio"]
        assert scope["margin_ratio"] == pytest.approx(0.05)
        states = {(f["venue"], f["channel"]): f for f in view.feeds}
        assert states[("hyperliquid", "activeAssetCtx:BTC")]["state"] == "stale"
        assert states[("hyperliquid", "activeAssetCtx:BTC")]["last_message_at"] == 90.0
        # the same payment booked twice counts once
        assert view.funding_paid == [
            {
                "venue": "hyperliquid",
                "account": "0xa",
                "symbol": "BTC",
                "amount": -2.0,
                "payments": 2,
            }
        ]
        # a vanished scope leaves the status table; pruning drops old samples
        await history.record(store, [], [], [str(r.key)])
        assert (await history.read_status(store)).scopes == []
        assert await history.prune(store, 150.0) == 1
        assert [s.ts for s in await history.read_history(store, str(r.key), 0.0)] == [200.0]
    finally:
        await store.close()


def _risks(n: int):  # type: ignore[no-untyped-def]
    p = Portfolio()
    pos = Position("BTC", 1.0, 100.0, maintenance=MaintenanceSchedule.flat(0.5), mark_price=100.0)
    for i in range(n):
        p.apply(AccountSnapshot("generic", f"a{i}", 1000.0 + i, (pos,)))
    out = [p.risk(ScopeKey("generic", f"a{i}", "cross")) for i in range(n)]
    assert all(r is not None for r in out)
    return out


async def test_record_cuts_a_large_flush_into_transactions_another_writer_can_enter(
    tmp_path: Path,
) -> None:
    """A flush larger than ``rows_per_transaction`` is several transactions: a transaction
    started while it runs (the engine's) gets the store before the flush ends, and every row
    is written in the end."""
    import asyncio

    store = await open_store(tmp_path / "s.sqlite3")
    try:
        risks = _risks(25)
        await history.record(store, [], [], [])  # nothing: one empty transaction, no error
        statuses = []
        for r in risks:
            doc = history.status_doc(r)
            doc["ts"] = 100.0
            # names from the configuration are its ``Text`` (a str subclass)
            doc["account"] = Text(doc["account"])
            statuses.append((r.key, doc))
        samples = [history.Sample.of(r, 100.0) for r in risks[:7]]
        flush = asyncio.ensure_future(
            history.record(store, samples, statuses, ["generic:gone/cross"], rows_per_transaction=4)
        )
        await asyncio.sleep(0)  # the flush holds the store for its first transaction
        async with store.transaction() as conn:
            cur = await conn.execute("SELECT count(*) FROM scope_status")
            (seen,) = await cur.fetchone()  # type: ignore[misc]
        assert not flush.done()
        assert 0 <= seen < 25  # the engine got in between, not after the whole flush
        await flush
        view = await history.read_status(store)
        assert sorted(s["account"] for s in view.scopes) == sorted(f"a{i}" for i in range(25))
        assert {s["equity"] for s in view.scopes} == {r.equity for r in risks}
        for r in risks[:7]:
            assert len(await history.read_history(store, str(r.key), 0.0)) == 1
    finally:
        await store.close()


async def test_a_cut_leaves_the_status_rows_out_and_writes_every_sample(tmp_path: Path) -> None:
    """At shutdown the last flush gets a budget for status rows (a cache the engine computes
    again after a restart); the samples (history) and removals all go. ``cut`` is asked
    before each transaction: here it says stop after the first, of 3 rows."""
    store = await open_store(tmp_path / "s.sqlite3")
    try:
        r = _risk()
        keys = [ScopeKey("generic", f"a{i}", "cross") for i in range(5)]
        docs = [(k, {**history.status_doc(r, []), "ts": 1.0}) for k in keys]
        await history.record(store, [], docs[:1])  # a0's row, to be removed
        samples = [history.Sample.of(r, float(t)) for t in range(1, 5)]
        asked: list[int] = []

        def cut() -> bool:
            asked.append(1)
            return len(asked) > 1

        left_out = await history.record(
            store, samples, docs[1:], [str(keys[0])], rows_per_transaction=3, cut=cut
        )
        # 1st transaction: 3 samples; then cut: the 4th sample and the removal, no status
        assert left_out == 4
        assert [s.ts for s in await history.read_history(store, str(r.key), 0.0)] == [1, 2, 3, 4]
        assert (await history.read_status(store)).scopes == []
        # without a cut every row goes
        assert await history.record(store, [], docs[1:]) == 0
        assert len((await history.read_status(store)).scopes) == 4
    finally:
        await store.close()


async def test_once_hurried_the_rest_goes_in_one_large_transaction(tmp_path: Path) -> None:
    """At shutdown no engine step waits for the store: after ``hurry`` says so, the flush
    writes :data:`history.EXIT_ROWS_PER_TRANSACTION` rows a transaction instead of
    ``rows_per_transaction`` (each one a round trip to the store's thread and a commit)."""
    store = await open_store(tmp_path / "s.sqlite3")
    try:
        r = _risk()
        samples = [history.Sample.of(r, float(t)) for t in range(1, 31)]
        begun: list[str] = []
        await store.conn.set_trace_callback(
            lambda sql: begun.append(sql) if sql.startswith("BEGIN") else None
        )
        asked: list[int] = []

        def hurry() -> bool:
            asked.append(1)
            return len(asked) > 1

        assert await history.record(store, samples, [], rows_per_transaction=3, hurry=hurry) == 0
        await store.conn.set_trace_callback(lambda sql: None)
        # 3 rows, then the other 27 at once (10 transactions of 3 without the hurry)
        assert len(begun) == 2
        assert len(await history.read_history(store, str(r.key), 0.0)) == 30
    finally:
        await store.close()


@settings(max_examples=25, deadline=None)
@given(
    n_samples=st.integers(0, 30),
    n_statuses=st.integers(0, 30),
    n_gone=st.integers(0, 5),
    rows=st.integers(1, 12),
    samples_rows=st.one_of(st.none(), st.integers(1, 40)),
)
def test_every_row_is_written_whatever_the_transaction_sizes(
    n_samples: int, n_statuses: int, n_gone: int, rows: int, samples_rows: int | None
) -> None:
    """The loop's end (samples ran out, and the rest did not fill its room) never leaves a
    row behind, for any mix of samples, status rows and removals and any sizes, with a
    samples' size above, equal to or below the rows' one."""

    async def run(path: Path) -> None:
        store = await open_store(path)
        try:
            r = _risk()
            keys = [ScopeKey("generic", f"a{i}", "cross") for i in range(n_statuses + n_gone)]
            docs = [(k, {**history.status_doc(r, []), "ts": 1.0}) for k in keys]
            await history.record(store, [], docs[n_statuses:])  # the rows to remove
            samples = [history.Sample.of(r, float(t)) for t in range(n_samples)]
            await history.record(
                store,
                samples,
                docs[:n_statuses],
                [str(k) for k in keys[n_statuses:]],
                rows_per_transaction=rows,
                samples_per_transaction=samples_rows,
            )
            assert len(await history.read_history(store, str(r.key), -1.0)) == n_samples
            assert len((await history.read_status(store)).scopes) == n_statuses
        finally:
            await store.close()

    with tempfile.TemporaryDirectory() as tmp:
        asyncio.run(run(Path(tmp) / "s.sqlite3"))
