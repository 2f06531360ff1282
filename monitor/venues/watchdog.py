"""Staleness watchdog of one subscription (pure: time arrives as ``now`` arguments).

A subscription is *stale* when no data arrived for more than ``max_silence`` seconds since the
last data (or since :meth:`Staleness.arm`, when none came yet). The transition to stale is
reported once (a ``FeedStatus`` with state ``STALE``); the next data reports ``RECOVERED`` once.
The I/O shell calls :meth:`check` on a timer and forces a reconnect on a STALE event.
"""

from __future__ import annotations

from monitor.model.events import FeedState, FeedStatus


class Staleness:
    """Tracks silence on ``venue``/``channel``; ``max_silence`` in seconds."""

    __slots__ = ("_last", "_stale", "channel", "max_silence", "venue")

    def __init__(self, venue: str, channel: str, max_silence: float) -> None:
        if max_silence <= 0:
            raise ValueError("max_silence must be > 0 seconds")
        self.venue = venue
        self.channel = channel
        self.max_silence = max_silence
        self._last: float | None = None
        self._stale = False

    @property
    def stale(self) -> bool:
        return self._stale

    @property
    def last_data(self) -> float | None:
        """Time of the last data (or of the last :meth:`arm`), None before either."""
        return self._last

    def arm(self, now: float) -> None:
        """Start (or restart) the silence timer at ``now`` without reporting anything; used
        when a subscription is (re)sent, so a channel that never delivers goes stale too."""
        self._last = now

    def on_data(self, now: float) -> FeedStatus | None:
        """Data arrived at ``now``: a RECOVERED event if the channel was stale, else None."""
        self._last = now
        if self._stale:
            self._stale = False
            return FeedStatus(
                self.venue, self.channel, FeedState.RECOVERED, "data flowing again", ts_recv=now
            )
        return None

    def check(self, now: float) -> FeedStatus | None:
        """A STALE event the first time the silence exceeds ``max_silence``, else None."""
        if self._stale or self._last is None:
            return None
        silence = now - self._last
        if silence > self.max_silence:
            self._stale = True
            return FeedStatus(
                self.venue,
                self.channel,
                FeedState.STALE,
                f"no data for {silence:.1f}s (limit {self.max_silence:g}s)",
                ts_recv=now,
            )
        return None
