from __future__ import annotations

import pytest

from monitor.model.events import FeedState
from monitor.venues.watchdog import Staleness


def test_no_report_before_any_data_or_arm() -> None:
    w = Staleness("hyperliquid", "activeAssetCtx:BTC", 5.0)
    assert w.check(1_000.0) is None


def test_silence_longer_than_limit_reports_stale_once() -> None:
    w = Staleness("hyperliquid", "activeAssetCtx:BTC", 5.0)
    assert w.on_data(100.0) is None
    assert w.check(105.0) is None  # 5 s of silence is allowed
    ev = w.check(105.5)
    assert ev is not None
    assert ev.state is FeedState.STALE
    assert (ev.venue, ev.channel, ev.ts_recv) == ("hyperliquid", "activeAssetCtx:BTC", 105.5)
    assert "5.5s" in ev.detail
    assert w.stale
    assert w.check(200.0) is None  # reported once


def test_data_after_stale_reports_recovered_once() -> None:
    w = Staleness("dydx", "v4_markets", 2.0)
    w.on_data(0.0)
    assert w.check(3.0) is not None
    ev = w.on_data(4.0)
    assert ev is not None
    assert ev.state is FeedState.RECOVERED
    assert ev.ts_recv == 4.0
    assert not w.stale
    assert w.on_data(4.5) is None


def test_armed_channel_that_never_delivers_goes_stale() -> None:
    w = Staleness("dydx", "v4_subaccounts:x/0", 1.0)
    w.arm(10.0)
    assert w.check(10.9) is None
    ev = w.check(11.2)
    assert ev is not None
    assert ev.state is FeedState.STALE


def test_rearm_after_stale_does_not_clear_stale_state() -> None:
    w = Staleness("dydx", "v4_markets", 1.0)
    w.arm(0.0)
    assert w.check(2.0) is not None
    w.arm(2.0)  # reconnect resubscribes: still stale until data arrives
    assert w.stale
    assert w.check(5.0) is None
    ev = w.on_data(5.1)
    assert ev is not None
    assert ev.state is FeedState.RECOVERED


def test_non_positive_limit_is_refused() -> None:
    with pytest.raises(ValueError, match="max_silence"):
        Staleness("x", "y", 0.0)
