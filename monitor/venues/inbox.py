"""The conflating inbox between the feeds and the engine.

Feeds ``put()`` events (synchronously, never blocking); the engine task awaits
``get_batch()``. Prices conflate: of the ``MarkPrice`` (and, separately, ``FundingRate``)
events of one ``(venue, symbol)`` still waiting, only the latest is kept, in the queue position
of the first one, so the memory held is bounded by the number of instruments whatever the
tick rate. Every other event (snapshots, position and balance updates, instrument specs,
funding payments, feed status) is kept, in arrival order: nothing of an account is ever dropped
or reordered.
"""

from __future__ import annotations

import asyncio
from collections import deque

from monitor.model.events import Event, FundingRate, MarkPrice

_PriceKey = tuple[type, str, str]


class Inbox:
    """Single-consumer queue with conflation of prices (see the module docstring)."""

    __slots__ = ("_latest", "_queue", "_ready", "conflated", "received")

    def __init__(self) -> None:
        # queue items: an Event, or the key of a conflated price held in ``_latest``
        self._queue: deque[Event | _PriceKey] = deque()
        self._latest: dict[_PriceKey, MarkPrice | FundingRate] = {}
        self._ready = asyncio.Event()
        self.received = 0
        """Events put since creation."""
        self.conflated = 0
        """Price events replaced by a newer one before the engine took them."""

    def put(self, event: Event) -> None:
        """Enqueue ``event``; a waiting price of the same kind and instrument is replaced."""
        self.received += 1
        if isinstance(event, MarkPrice | FundingRate):
            key: _PriceKey = (type(event), event.venue, event.symbol)
            if key in self._latest:
                self.conflated += 1
            else:
                self._queue.append(key)
            self._latest[key] = event
        else:
            self._queue.append(event)
        self._ready.set()

    def get_nowait(self, max_items: int = 1024) -> list[Event]:
        """Up to ``max_items`` events in queue order (possibly none)."""
        out: list[Event] = []
        queue = self._queue
        latest = self._latest
        while queue and len(out) < max_items:
            item = queue.popleft()
            if isinstance(item, tuple):
                out.append(latest.pop(item))
            else:
                out.append(item)
        if not queue:
            self._ready.clear()
        return out

    async def get_batch(
        self, max_items: int = 1024, idle_after: float | None = None
    ) -> list[Event]:
        """Wait until something is queued, then return up to ``max_items`` events; with
        ``idle_after`` (seconds), return an empty batch when nothing came in that long."""
        while not self._queue:
            self._ready.clear()
            if idle_after is None:
                await self._ready.wait()
                continue
            try:
                await asyncio.wait_for(self._ready.wait(), idle_after)
            except TimeoutError:
                return []
        return self.get_nowait(max_items)

    def __len__(self) -> int:
        return len(self._queue)
