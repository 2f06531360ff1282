"""What the metrics exporter reads at scrape time: plain frozen dataclasses and the
:class:`MetricsSource` protocol (no prometheus-client here, so the daemon can build and update
these without importing the exporter).

Units and signs (as in :mod:`monitor.margin.risk`):

* money (``equity``, ``maintenance_margin``): the scope's quote currency;
* ``margin_ratio`` = maintenance / equity, ≥ 1 means liquidatable; ``None`` when it cannot be
  computed (equity ≤ 0: the scope is then liquidatable);
* ``nearest_liquidation_distance`` and ``shock_to_liquidation``: fractions of the price
  (0.1 = a 10 % move), ``None`` when there is no such move;
* times: epoch seconds (UTC) for instants, seconds for ages and durations.
"""

from __future__ import annotations

import bisect
import math
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Protocol

#: upper bounds (seconds) of the engine batch duration histogram: 50 µs … 5 s
BATCH_BUCKETS: tuple[float, ...] = (
    0.00005,
    0.0001,
    0.00025,
    0.0005,
    0.001,
    0.0025,
    0.005,
    0.01,
    0.025,
    0.05,
    0.1,
    0.25,
    0.5,
    1.0,
    2.5,
    5.0,
)


@dataclass(frozen=True, slots=True)
class ScopeFigures:
    """One margin scope (``venue:account/scope``); ``label`` is the account's configured
    label ("" when none). ``updated_at``: when the daemon last computed it (epoch s)."""

    venue: str
    account: str
    scope: str
    label: str
    equity: float | None
    maintenance_margin: float | None
    margin_ratio: float | None
    nearest_liquidation_distance: float | None
    shock_to_liquidation: float | None
    liquidatable: bool
    updated_at: float | None = None


@dataclass(frozen=True, slots=True)
class FeedFigures:
    """One feed subscription: ``state`` is a :class:`monitor.model.events.FeedState` value
    (connecting, live, stale, recovered, down); ``seconds_since_message`` None before the first
    message."""

    venue: str
    channel: str
    state: str
    seconds_since_message: float | None


@dataclass(frozen=True, slots=True)
class AlertCount:
    """How many alerts of ``rule`` are firing at ``severity`` (pending ones excluded)."""

    rule: str
    severity: str
    firing: int


@dataclass(frozen=True, slots=True)
class OutboxFigures:
    """Undelivered notifications of one channel and the age (s) of the oldest (None: none)."""

    channel: str
    backlog: int
    oldest_age_seconds: float | None


@dataclass(frozen=True, slots=True)
class VenueFrames:
    """Frames received and refused (malformed, skipped) from a venue since the start;
    monotonic counters."""

    venue: str
    frames: int
    bad_frames: int


@dataclass(frozen=True, slots=True)
class HistogramFigures:
    """A duration histogram: ``buckets`` are (upper bound s, cumulative count), ascending,
    without +Inf (that is ``count``); ``total`` is the sum of the observations (s)."""

    buckets: tuple[tuple[float, int], ...]
    count: int
    total: float


@dataclass(frozen=True, slots=True)
class MetricsSnapshot:
    """Everything one scrape exposes."""

    scopes: Sequence[ScopeFigures] = ()
    feeds: Sequence[FeedFigures] = ()
    alerts: Sequence[AlertCount] = ()
    outbox: Sequence[OutboxFigures] = ()
    frames: Sequence[VenueFrames] = ()
    batch_seconds: HistogramFigures | None = None
    #: updates from chats the Telegram bot does not answer (None: no bot)
    bot_ignored: int | None = None


class MetricsSource(Protocol):
    """Called once per scrape on the event loop; must not block it for long."""

    async def metrics_snapshot(self) -> MetricsSnapshot: ...


@dataclass(slots=True)
class BatchTimings:
    """The engine's batch durations, bucketed as they come (no prometheus-client import): the
    engine calls :meth:`observe` with each batch's duration in seconds (from
    ``time.perf_counter`` differences); negative or non-finite values are ignored."""

    bounds: tuple[float, ...] = BATCH_BUCKETS
    _counts: list[int] = field(default_factory=list)
    _count: int = 0
    _total: float = 0.0

    def __post_init__(self) -> None:
        if list(self.bounds) != sorted(set(self.bounds)) or not self.bounds:
            raise ValueError("bounds must be ascending and distinct")
        self._counts = [0] * len(self.bounds)

    def observe(self, seconds: float) -> None:
        if not math.isfinite(seconds) or seconds < 0.0:
            return
        i = bisect.bisect_left(self.bounds, seconds)
        if i < len(self._counts):
            self._counts[i] += 1
        self._count += 1
        self._total += seconds

    def figures(self) -> HistogramFigures:
        cumulative: list[tuple[float, int]] = []
        running = 0
        for bound, n in zip(self.bounds, self._counts, strict=True):
            running += n
            cumulative.append((bound, running))
        return HistogramFigures(tuple(cumulative), self._count, self._total)


class Health:
    """The ``healthy()`` callable of :func:`monitor.ops.http.serve_metrics`: healthy while the
    engine has reported within ``max_silence`` seconds and no store error is pending.

    The engine calls :meth:`beat` after each batch and sweep (at least every few seconds);
    the code that writes the store calls :meth:`store_failed` with the error when a write
    fails and :meth:`store_ok` when one succeeds again. ``monotonic`` is the clock (s).
    Before the first beat the daemon counts as starting, which is unhealthy.
    """

    def __init__(
        self, max_silence: float = 30.0, monotonic: Callable[[], float] = time.monotonic
    ) -> None:
        self.max_silence = max_silence
        self.monotonic = monotonic
        self._beat: float | None = None
        self._store_error: str | None = None

    def beat(self) -> None:
        self._beat = self.monotonic()

    def store_failed(self, error: str) -> None:
        self._store_error = error[:200]

    def store_ok(self) -> None:
        self._store_error = None

    def __call__(self) -> tuple[bool, str]:
        if self._store_error is not None:
            return False, f"store error pending: {self._store_error}"
        if self._beat is None:
            return False, "engine starting: no batch evaluated yet"
        silent = self.monotonic() - self._beat
        if silent > self.max_silence:
            return False, f"engine silent for {silent:.0f}s (limit {self.max_silence:g}s)"
        return True, "ok"
