from __future__ import annotations

import asyncio
import tracemalloc

import pytest

from monitor.model.events import (
    BalanceUpdate,
    FeedState,
    FeedStatus,
    FundingRate,
    MarkPrice,
    PositionUpdate,
)
from monitor.model.positions import Position
from monitor.venues.inbox import Inbox


def test_latest_price_per_instrument_wins_in_first_position() -> None:
    box = Inbox()
    box.put(MarkPrice("hyperliquid", "BTC", 100.0))
    box.put(MarkPrice("hyperliquid", "ETH", 10.0))
    box.put(MarkPrice("hyperliquid", "BTC", 101.0))
    box.put(MarkPrice("dydx_v4", "BTC", 99.0))  # other venue: other instrument
    assert len(box) == 3
    out = box.get_nowait()
    assert [(e.venue, e.symbol, e.mark) for e in out if isinstance(e, MarkPrice)] == [
        ("hyperliquid", "BTC", 101.0),
        ("hyperliquid", "ETH", 10.0),
        ("dydx_v4", "BTC", 99.0),
    ]
    assert box.conflated == 1
    assert box.received == 4


def test_mark_and_funding_of_one_instrument_conflate_separately() -> None:
    box = Inbox()
    box.put(MarkPrice("hyperliquid", "BTC", 100.0))
    box.put(FundingRate("hyperliquid", "BTC", 0.0001, 1.0))
    box.put(FundingRate("hyperliquid", "BTC", 0.0002, 1.0))
    out = box.get_nowait()
    assert len(out) == 2
    assert isinstance(out[1], FundingRate)
    assert out[1].rate == 0.0002


def test_account_events_are_never_dropped_and_keep_order() -> None:
    box = Inbox()
    events = []
    for i in range(500):
        pos = Position("BTC", float(i + 1), 100.0)
        events.append(PositionUpdate("hyperliquid", "0xa", pos))
        events.append(BalanceUpdate("hyperliquid", "0xa", cross_cash=float(i)))
        box.put(events[-2])
        box.put(MarkPrice("hyperliquid", "BTC", 100.0 + i))
        box.put(events[-1])
    box.put(FeedStatus("hyperliquid", "x", FeedState.STALE))
    out = box.get_nowait(max_items=10_000)
    non_price = [e for e in out if not isinstance(e, MarkPrice)]
    assert non_price[:-1] == events
    assert isinstance(non_price[-1], FeedStatus)
    assert sum(isinstance(e, MarkPrice) for e in out) == 1
    assert len(box) == 0


def test_get_nowait_respects_max_items() -> None:
    box = Inbox()
    for i in range(5):
        box.put(BalanceUpdate("v", "a", cross_cash=float(i)))
    first = box.get_nowait(max_items=2)
    rest = box.get_nowait(max_items=10)
    assert [e.cross_cash for e in first + rest if isinstance(e, BalanceUpdate)] == [
        0.0,
        1.0,
        2.0,
        3.0,
        4.0,
    ]


async def test_get_batch_waits_until_an_event_is_put() -> None:
    box = Inbox()
    getter = asyncio.create_task(box.get_batch())
    await asyncio.sleep(0)
    assert not getter.done()
    box.put(MarkPrice("v", "S", 1.0))
    out = await asyncio.wait_for(getter, timeout=1.0)
    assert [e.mark for e in out if isinstance(e, MarkPrice)] == [1.0]
    # drained: the next get waits again
    again = asyncio.create_task(box.get_batch())
    await asyncio.sleep(0)
    assert not again.done()
    again.cancel()
    with pytest.raises(asyncio.CancelledError):
        await again


def test_a_million_ticks_keep_the_queue_bounded() -> None:
    box = Inbox()
    symbols = [f"S{i}" for i in range(100)]
    for i in range(1_000_000):
        box.put(MarkPrice("hyperliquid", symbols[i % 100], float(i)))
    assert len(box) == 100
    assert box.conflated == 1_000_000 - 100
    out = box.get_nowait(max_items=1_000)
    last = {e.symbol: e.mark for e in out if isinstance(e, MarkPrice)}
    # the last tick of S7 is the largest i < 1e6 with i % 100 == 7: 999_907
    assert last["S7"] == 999_907.0


def test_memory_held_does_not_grow_with_the_number_of_ticks() -> None:
    box = Inbox()
    symbols = [f"S{i}" for i in range(100)]
    ticks = [MarkPrice("hyperliquid", symbols[i % 100], float(i)) for i in range(100_000)]
    tracemalloc.start()
    try:
        for t in ticks[:1_000]:
            box.put(t)
        small, _ = tracemalloc.get_traced_memory()
        for t in ticks[1_000:]:
            box.put(t)
        large, _ = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    # 100x more ticks, same 100 instruments: the retained size stays about the same (an
    # unconflated queue would hold 99_000 more references, ~800 kB)
    assert large - small < 50_000
