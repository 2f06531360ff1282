"""Time as a seam: the daemon reads time and sleeps only through a :class:`Clock`.

Two readings, both in seconds:

* ``now()``: wall-clock time since the Unix epoch (UTC), for timestamps that are stored or
  shown (``ts_recv``, alert times, history samples);
* ``monotonic()``: a clock that never goes backwards, any origin, for measuring intervals
  (staleness, backoff, watchdog cadence).

``await clock.sleep(seconds)`` waits. :class:`SystemClock` is the real thing;
:class:`FakeClock` is for tests: time stands still until ``advance()`` moves it, and sleepers
wake exactly when their deadline is reached, in deadline order.
"""

from __future__ import annotations

import asyncio
import heapq
import itertools
import time
from typing import Protocol


class Clock(Protocol):
    """Where the I/O shells get time from."""

    def now(self) -> float:
        """Wall-clock seconds since the Unix epoch (UTC)."""
        ...

    def monotonic(self) -> float:
        """Seconds on a clock that never goes backwards (arbitrary origin)."""
        ...

    async def sleep(self, seconds: float) -> None:
        """Wait ``seconds`` (≤ 0: just yield to the event loop once)."""
        ...


class SystemClock:
    """The real clocks: :func:`time.time`, :func:`time.monotonic`, :func:`asyncio.sleep`."""

    __slots__ = ()

    def now(self) -> float:
        return time.time()

    def monotonic(self) -> float:
        return time.monotonic()

    async def sleep(self, seconds: float) -> None:
        await asyncio.sleep(max(seconds, 0.0))


class FakeClock:
    """A clock that moves only when told to.

    ``start`` is the initial wall time (epoch seconds); ``monotonic()`` starts at 0 and moves
    by the same amounts. ``sleep(s)`` parks the caller until ``advance()`` has moved time by
    ``s`` or more. ``advance`` is synchronous: it wakes due sleepers (their coroutines resume
    at the event loop's next turn); ``await clock.run_for(s)`` advances step by step and lets
    woken tasks run between steps, which is what most tests want.
    """

    def __init__(self, start: float = 1_700_000_000.0) -> None:
        self._wall0 = start
        self._mono = 0.0
        self._seq = itertools.count()
        self._sleepers: list[tuple[float, int, asyncio.Future[None]]] = []

    def now(self) -> float:
        return self._wall0 + self._mono

    def monotonic(self) -> float:
        return self._mono

    @property
    def sleepers(self) -> int:
        """How many sleeps are parked (cancelled ones excluded)."""
        return sum(1 for _, _, f in self._sleepers if not f.done())

    def next_deadline(self) -> float | None:
        """Monotonic time of the earliest parked sleep, or None."""
        self._drop_done()
        return self._sleepers[0][0] if self._sleepers else None

    async def sleep(self, seconds: float) -> None:
        if seconds <= 0.0:
            await asyncio.sleep(0)
            return
        fut: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        heapq.heappush(self._sleepers, (self._mono + seconds, next(self._seq), fut))
        await fut

    def advance(self, seconds: float) -> None:
        """Move time forward by ``seconds`` (≥ 0) and wake every sleeper now due."""
        if seconds < 0.0:
            raise ValueError("a clock does not go backwards")
        self._mono += seconds
        while self._sleepers and self._sleepers[0][0] <= self._mono:
            _, _, fut = heapq.heappop(self._sleepers)
            if not fut.done():
                fut.set_result(None)

    async def run_for(self, seconds: float) -> None:
        """Advance ``seconds`` in total, stopping at each sleeper's deadline so that tasks
        woken there run (and may sleep again) before time moves on."""
        end = self._mono + seconds
        await _settle()
        while True:
            nxt = self.next_deadline()
            if nxt is None or nxt > end:
                break
            self.advance(nxt - self._mono)
            await _settle()
        self.advance(end - self._mono)
        await _settle()

    def _drop_done(self) -> None:
        while self._sleepers and self._sleepers[0][2].done():
            heapq.heappop(self._sleepers)


async def _settle(turns: int = 5) -> None:
    for _ in range(turns):
        await asyncio.sleep(0)
