"""A scope that crossed a level while its venue's prices were stale (its alerts held) is
decided again when the feed is live again, even though it had no alert when the feed went
stale. Before the fix only the venue's scopes with an alert were: this one kept the band its
held evaluation gave it, in its new zone, so ticks in that zone never evaluated it, and its
critical alert waited for a sweep round (longer on a large book; never while its prices
stood still).

Figures (tests/engine/helpers.py): 1 BTC long at 100 on cash c, maintenance 1 %: at price p
equity = c + p − 100 and maintenance = 0.01·p. Cash 10 at 100: 1 / 10 = 10 %. Cash 1.05 at
100: 1 / 1.05 = 95.2 % (critical ≥ 90 %); at 100.02: 1.0002 / 1.07 = 93.5 % (still critical)."""

from __future__ import annotations

from monitor.alerts.engine import AlertStatus
from monitor.alerts.rules import Severity
from monitor.engine import Engine
from monitor.model.events import BalanceUpdate, FeedState, FeedStatus, MarkPrice
from tests.engine.helpers import T0, VENUE, engine, long_btc, snapshot

KEY = "margin_ratio|generic:a0/cross"


def _critical(e: Engine) -> bool:
    alert = e.state.alerts.get(KEY)
    return alert is not None and alert.severity is Severity.CRITICAL


def test_a_scope_that_turned_critical_while_prices_were_stale_fires_once_they_are_live() -> None:
    e, _ = engine(1)
    e.receive([snapshot("a0", 10.0, long_btc(10.0)), MarkPrice(VENUE, "BTC", 100.0)], T0, 0.0)
    assert not e.state.alerts
    e.receive([FeedStatus(VENUE, "prices", FeedState.STALE)], T0 + 1, 1.0, sweep=False)
    # the balance drops while the prices are stale: 95.2 %, held
    e.receive([BalanceUpdate(VENUE, "a0", cross_collateral=1.05)], T0 + 2, 2.0, sweep=False)
    assert KEY not in e.state.alerts
    e.receive([FeedStatus(VENUE, "prices", FeedState.LIVE)], T0 + 3, 3.0, sweep=False)
    assert _critical(e)
    alert = e.state.alerts[KEY]
    assert alert.status is AlertStatus.FIRING or alert.due is not None


def test_ticks_in_the_held_zone_after_recovery_do_not_leave_it_unalerted() -> None:
    e, _ = engine(1)
    e.receive([snapshot("a0", 10.0, long_btc(10.0)), MarkPrice(VENUE, "BTC", 100.0)], T0, 0.0)
    e.receive([FeedStatus(VENUE, "prices", FeedState.STALE)], T0 + 1, 1.0, sweep=False)
    e.receive([BalanceUpdate(VENUE, "a0", cross_collateral=1.05)], T0 + 2, 2.0, sweep=False)
    e.receive([FeedStatus(VENUE, "prices", FeedState.RECOVERED)], T0 + 3, 3.0, sweep=False)
    for i, price in enumerate((100.01, 100.0, 100.02), start=4):
        e.receive([MarkPrice(VENUE, "BTC", price)], T0 + i, float(i), sweep=False)
        assert _critical(e)


def test_a_scope_still_held_by_another_stale_channel_is_decided_when_that_one_recovers() -> None:
    e, _ = engine(1)
    e.receive([snapshot("a0", 10.0, long_btc(10.0)), MarkPrice(VENUE, "BTC", 100.0)], T0, 0.0)
    e.receive(
        [
            FeedStatus(VENUE, "prices", FeedState.STALE),
            FeedStatus(VENUE, "funding", FeedState.STALE),
        ],
        T0 + 1,
        1.0,
        sweep=False,
    )
    e.receive([BalanceUpdate(VENUE, "a0", cross_collateral=1.05)], T0 + 2, 2.0, sweep=False)
    e.receive([FeedStatus(VENUE, "prices", FeedState.LIVE)], T0 + 3, 3.0, sweep=False)
    assert KEY not in e.state.alerts  # still held by the stale funding channel
    e.receive([FeedStatus(VENUE, "funding", FeedState.LIVE)], T0 + 4, 4.0, sweep=False)
    assert _critical(e)
