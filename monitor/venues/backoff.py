"""Reconnect delays: jittered, capped exponential backoff that resets after a stable period.

Pure: no clock reads and no sleeping. The caller passes ``now`` (seconds, any monotonic origin)
and sleeps for what :meth:`Backoff.next_delay` returns; the random source is injected so tests
are deterministic.

Delays (seconds): attempt ``n`` (0-based) has the base ``min(cap, initial * factor**n)``; the
returned delay is the base minus up to ``jitter`` of it (``base * (1 - jitter * u)``, ``u`` in
``[0, 1)``), so it never exceeds ``cap`` and keeps its jitter once the cap is reached (clients
that dropped together do not come back together). Attempts reset to 0 only when a connection
that lasted at least ``stable_after`` seconds drops: a venue that accepts and immediately closes
connections keeps backing off.
"""

from __future__ import annotations

import random
from dataclasses import dataclass, field


@dataclass
class Backoff:
    """Backoff state of one connection. All durations in seconds."""

    initial: float = 0.5
    factor: float = 2.0
    cap: float = 30.0
    jitter: float = 0.25
    stable_after: float = 10.0
    rng: random.Random = field(default_factory=random.Random)
    attempts: int = field(default=0, init=False)
    _connected_at: float | None = field(default=None, init=False, repr=False)

    def __post_init__(self) -> None:
        if self.initial <= 0 or self.cap <= 0 or self.factor < 1:
            raise ValueError("backoff needs initial > 0, cap > 0 and factor >= 1")
        if not 0 <= self.jitter <= 1:
            raise ValueError("backoff jitter is a fraction in [0, 1]")

    def base_delay(self) -> float:
        """The un-jittered delay of the next attempt (seconds)."""
        delay = self.initial
        for _ in range(self.attempts):
            delay *= self.factor
            if delay >= self.cap:
                return self.cap
        return min(delay, self.cap)

    def next_delay(self) -> float:
        """The delay before the next connection attempt (seconds); counts the attempt."""
        base = self.base_delay()
        if base < self.cap:
            self.attempts += 1
        return base * (1.0 - self.jitter * self.rng.random())

    def on_connected(self, now: float) -> None:
        """A connection was established at ``now``."""
        self._connected_at = now

    def on_disconnected(self, now: float) -> None:
        """The connection dropped at ``now``: reset attempts if it had been up >= stable_after."""
        if self._connected_at is not None and now - self._connected_at >= self.stable_after:
            self.attempts = 0
        self._connected_at = None
