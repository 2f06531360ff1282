"""The outbox delivery worker.

``run()`` resumes rows a dead process left ``sending``, then loops: for every channel with
due rows whose rate limit allows a message now, claim its due rows, **coalesce** them into
one message (as many as fit the channel's ``max_length``; the rest wait for the next slot),
send it with the :class:`~monitor.notify.sender.Sender`, and record the channel's result:

* delivered → rows ``delivered``;
* failed → rows retried after an exponential backoff with jitter
  (``base · 2^(attempts−1)``, capped at ``max_backoff``, ±``jitter`` fraction), or exactly
  after the ``retry_after`` a 429 asked for (the channel is paused that long too);
* a row older than ``max_age`` is marked ``failed`` and its channel is reported in
  :attr:`DeliveryWorker.failing_channels` (the alert service turns that into the
  "delivery failing" alert, which goes out through the channels that still work) until a
  later message on that channel gets through.

Rate limits are per channel (an apprise URL is one chat, or a few): at most one message per
``min_interval`` seconds and ``per_minute`` per rolling minute. Channels are served
concurrently; one slow channel does not hold the others.

``drain(deadline)`` (``deadline`` on ``clock.monotonic()``) stops the loop and delivers what
is due until nothing is left or the deadline passes; undelivered rows stay in the outbox for
the next start. Times stored in the outbox are ``clock.now()`` epoch seconds.
"""

from __future__ import annotations

import asyncio
import contextlib
import random
from collections import deque
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import structlog

from monitor.clock import Clock
from monitor.notify.channels import Channel
from monitor.notify.render import combine
from monitor.notify.sender import Sender
from monitor.store import outbox
from monitor.store.db import Store
from monitor.store.outbox import OutboxItem


def log() -> Any:
    """A fresh logger per call: never a module-level proxy that a configuration done with
    ``cache_logger_on_first_use`` would pin for the life of the process."""
    return structlog.get_logger()


_TYPE_RANK = {"success": 0, "info": 1, "warning": 2, "failure": 3}


@dataclass(frozen=True, slots=True)
class DeliveryConfig:
    """Seconds throughout. ``batch``: rows claimed per channel per round."""

    base_backoff: float = 2.0
    max_backoff: float = 300.0
    jitter: float = 0.2
    max_age: float = 6 * 3600.0
    batch: int = 50
    idle_poll: float = 5.0


class RateLimiter:
    """At most one send per ``min_interval`` s and ``per_minute`` per rolling 60 s;
    ``pause(until)`` blocks until a time (a 429's retry_after)."""

    def __init__(self, min_interval: float, per_minute: int | None) -> None:
        self.min_interval = min_interval
        self.per_minute = per_minute
        self._sent: deque[float] = deque()
        self._paused_until = 0.0

    def next_allowed(self, now: float) -> float:
        t = self._paused_until
        if self._sent:
            t = max(t, self._sent[-1] + self.min_interval)
        if self.per_minute is not None:
            while self._sent and self._sent[0] <= now - 60.0:
                self._sent.popleft()
            if len(self._sent) >= self.per_minute:
                t = max(t, self._sent[-self.per_minute] + 60.0)
        return t

    def record(self, now: float) -> None:
        self._sent.append(now)
        keep = max(self.per_minute or 1, 1)
        while len(self._sent) > keep:
            self._sent.popleft()

    def pause(self, until: float) -> None:
        self._paused_until = max(self._paused_until, until)


class DeliveryWorker:
    def __init__(
        self,
        store: Store,
        channels: Sequence[Channel],
        sender: Sender,
        clock: Clock,
        *,
        config: DeliveryConfig | None = None,
        rng: random.Random | None = None,
    ) -> None:
        self.store = store
        self.sender = sender
        self.clock = clock
        self.config = config or DeliveryConfig()
        self._rng = rng or random.Random()
        self._channels: dict[str, Channel] = {}
        self._limits: dict[str, RateLimiter] = {}
        self.set_channels(channels)
        self._wake = asyncio.Event()
        self._stopping = False
        self._failing: dict[str, str] = {}
        self.delivered = 0

    # -- configuration ---------------------------------------------------------------------
    def set_channels(self, channels: Sequence[Channel]) -> None:
        """Replace the channels (config reload); rate-limit history is kept per name."""
        self._channels = {c.name: c for c in channels}
        for c in channels:
            lim = self._limits.get(c.name)
            if lim is None:
                self._limits[c.name] = RateLimiter(c.min_interval, c.per_minute)
            else:
                lim.min_interval, lim.per_minute = c.min_interval, c.per_minute

    @property
    def failing_channels(self) -> tuple[str, ...]:
        """Labels (name and redacted URL) of channels whose rows expired undelivered."""
        return tuple(self._failing.values())

    def wake(self) -> None:
        """New rows were enqueued: look now instead of at the next poll."""
        self._wake.set()

    # -- the loop --------------------------------------------------------------------------
    async def run(self) -> None:
        resumed = await outbox.resume(self.store)
        if resumed:
            log().info("outbox.resumed", rows=resumed)
        while not self._stopping:
            await self.step()
            await self._sleep_until_due()

    async def _sleep_until_due(self) -> None:
        now = self.clock.now()
        wait = self.config.idle_poll
        nxt = await outbox.next_due(self.store)
        if nxt is not None:
            wait = min(wait, max(nxt - now, 0.0))
        for name in await outbox.due_channels(self.store, now + wait):
            lim = self._limits.get(name)
            if lim is not None:
                wait = min(wait, max(lim.next_allowed(now) - now, 0.0))
        self._wake.clear()
        sleeper = asyncio.ensure_future(self.clock.sleep(max(wait, 0.001)))
        waker = asyncio.ensure_future(self._wake.wait())
        try:
            await asyncio.wait({sleeper, waker}, return_when=asyncio.FIRST_COMPLETED)
        finally:
            for f in (sleeper, waker):
                f.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await f

    async def step(self) -> int:
        """One round over every channel with due rows; returns how many rows were delivered."""
        now = self.clock.now()
        due = await outbox.due_channels(self.store, now)
        names = [n for n in due if self._ready(n, now)]
        if not names:
            return 0
        counts = await asyncio.gather(*(self._deliver(n, now) for n in names))
        return sum(counts)

    def _ready(self, name: str, now: float) -> bool:
        lim = self._limits.get(name)
        return lim is None or lim.next_allowed(now) <= now

    async def _deliver(self, name: str, now: float) -> int:
        items = await outbox.claim(self.store, name, now, self.config.batch)
        if not items:
            return 0
        channel = self._channels.get(name)
        if channel is None:
            await outbox.mark_failed(self.store, [i.id for i in items], "channel not configured")
            log().warning(
                "outbox.failed", channel=name, rows=len(items), error="channel not configured"
            )
            return 0
        expired = [i for i in items if now - i.created_at > self.config.max_age]
        if expired:
            await self._expire(channel, expired, "too old: gave up after max_age")
        items = [i for i in items if now - i.created_at <= self.config.max_age]
        if not items:
            return 0
        longest = f"{len(items)} alert messages ({items[0].title})"
        body, used = combine([i.body for i in items], channel.body_limit(longest))
        batch, rest = items[:used], items[used:]
        if rest:
            await outbox.release(self.store, [i.id for i in rest])
        title = batch[0].title if used == 1 else f"{used} alert messages ({batch[0].title})"
        ntype = max((i.notify_type for i in batch), key=lambda t: _TYPE_RANK.get(t, 1))
        self._limits[name].record(now)
        result = await self.sender.send(channel, title, body, batch[0].body_format, ntype)
        done = self.clock.now()
        ids = [i.id for i in batch]
        if result.ok:
            await outbox.mark_delivered(self.store, ids, done)
            self.delivered += len(batch)
            if self._failing.pop(name, None) is not None:
                log().info("outbox.channel_recovered", channel=channel.label)
            log().info(
                "outbox.delivered",
                channel=channel.label,
                rows=len(batch),
                coalesced=used > 1,
                attempts=max(i.attempts + 1 for i in batch),
            )
            return len(batch)
        error = result.error or result.status
        attempts = max(i.attempts + 1 for i in batch)
        if result.retry_after is not None:
            delay = result.retry_after
            self._limits[name].pause(done + delay)
        else:
            delay = self._backoff(attempts)
        retry_at = done + delay
        oldest = min(i.created_at for i in batch)
        if retry_at - oldest > self.config.max_age:
            await self._expire(channel, batch, error)
            return 0
        await outbox.mark_retry(self.store, ids, retry_at, error)
        log().warning(
            "outbox.retry",
            channel=channel.label,
            rows=len(batch),
            attempts=attempts,
            retry_in=round(delay, 3),
            retry_after=result.retry_after,
            error=error,
        )
        return 0

    def _backoff(self, attempts: int) -> float:
        c = self.config
        base = min(c.max_backoff, c.base_backoff * 2.0 ** max(attempts - 1, 0))
        return max(base * (1.0 + c.jitter * self._rng.uniform(-1.0, 1.0)), 0.0)

    async def _expire(self, channel: Channel, items: list[OutboxItem], error: str) -> None:
        await outbox.mark_failed(self.store, [i.id for i in items], error)
        self._failing[channel.name] = channel.label
        log().error("outbox.failed", channel=channel.label, rows=len(items), error=error)

    async def drain(self, deadline: float) -> int:
        """Stop the loop; deliver what is due until none is left or ``clock.monotonic()``
        reaches ``deadline``. Returns how many rows are still undelivered."""
        self._stopping = True
        self._wake.set()
        while True:
            await self.step()
            count, _ = await outbox.backlog(self.store)
            remaining = deadline - self.clock.monotonic()
            if count == 0 or remaining <= 0:
                break
            now = self.clock.now()
            nxt = await outbox.next_due(self.store)
            waits = [nxt - now] if nxt is not None else []
            for name in self._limits:
                waits.append(self._limits[name].next_allowed(now) - now)
            wait = min([w for w in waits if w > 0] or [0.001])
            if wait >= remaining:
                break
            await self.clock.sleep(wait)
        count, _ = await outbox.backlog(self.store)
        if count:
            log().warning("outbox.drain_incomplete", undelivered=count)
        else:
            log().info("outbox.drained")
        return count
