from __future__ import annotations

import asyncio
import time

import pytest

from monitor.clock import Clock, FakeClock, SystemClock


def test_system_clock_reads_wall_and_monotonic_time() -> None:
    clock: Clock = SystemClock()
    before = time.time()
    now = clock.now()
    after = time.time()
    assert before <= now <= after
    m1 = clock.monotonic()
    m2 = clock.monotonic()
    assert m2 >= m1


async def test_system_clock_sleep_zero_and_negative_return() -> None:
    clock = SystemClock()
    await clock.sleep(0)
    await clock.sleep(-1.0)


def test_fake_clock_starts_at_given_time_and_moves_only_when_advanced() -> None:
    clock = FakeClock(start=1000.0)
    assert clock.now() == 1000.0
    assert clock.monotonic() == 0.0
    clock.advance(2.5)
    assert clock.now() == 1002.5  # 1000 + 2.5
    assert clock.monotonic() == 2.5


def test_fake_clock_refuses_to_go_backwards() -> None:
    with pytest.raises(ValueError, match="backwards"):
        FakeClock().advance(-1.0)


async def test_fake_sleep_wakes_only_when_deadline_reached() -> None:
    clock = FakeClock()
    woke: list[float] = []

    async def sleeper() -> None:
        await clock.sleep(10.0)
        woke.append(clock.monotonic())

    task = asyncio.create_task(sleeper())
    await asyncio.sleep(0)
    assert clock.sleepers == 1
    clock.advance(9.999)
    await asyncio.sleep(0)
    assert woke == []
    clock.advance(0.001)
    await task
    assert woke == [pytest.approx(10.0)]


async def test_run_for_wakes_sleepers_in_deadline_order_and_lets_them_sleep_again() -> None:
    clock = FakeClock()
    ticks: list[tuple[str, float]] = []

    async def ticker(name: str, every: float) -> None:
        while True:
            await clock.sleep(every)
            ticks.append((name, clock.monotonic()))

    tasks = [asyncio.create_task(ticker("a", 3.0)), asyncio.create_task(ticker("b", 5.0))]
    await clock.run_for(10.0)
    for t in tasks:
        t.cancel()
    # a at 3, 6, 9; b at 5, 10: merged by time
    assert ticks == [("a", 3.0), ("b", 5.0), ("a", 6.0), ("a", 9.0), ("b", 10.0)]
    assert clock.monotonic() == 10.0


async def test_cancelled_sleeper_is_not_counted() -> None:
    clock = FakeClock()
    task = asyncio.create_task(clock.sleep(5.0))
    await asyncio.sleep(0)
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    assert clock.sleepers == 0
    assert clock.next_deadline() is None
